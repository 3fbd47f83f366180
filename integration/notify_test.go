package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/twmb/franz-go/pkg/kgo"
)

const notifyConfig = `
writer:
  workers: 2
streams:
  - name: events
    topics: [events]
    event_time: ts
    watermark: {out_of_orderness: 2m, idle_timeout: 3s}
    late: {{late}}
    columns:
      - {name: id, type: string, required: true}
      - {name: ts, type: timestamptz(ms), required: true}
    table:
      name: it.events
      partition: ["hour(ts)"]
      compaction: {open_files: 4}
      notify:
        targets:
          - {type: kafka, topic: notices}
          - {type: success_file}
          - {type: table_property}
`

// notice is what a scheduler reads of a partition notice.
type notice struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Table      string    `json:"table"`
	Path       string    `json:"path"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	SnapshotID int64     `json:"snapshot_id"`
	Records    int64     `json:"records"`
	Files      int64     `json:"files"`
	Watermark  time.Time `json:"watermark"`
}

// scheduler consumes the notices topic as a batch scheduler would.
type scheduler struct {
	mu      sync.Mutex
	byID    map[string]notice
	order   []string // first arrival of each id
	arrived map[string]time.Time
}

func (s *scheduler) run(ctx context.Context, t *testing.T, addr string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("notices"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			var n notice
			if err := json.Unmarshal(r.Value, &n); err != nil {
				t.Errorf("bad notice %s: %v", r.Value, err)
				return
			}
			s.mu.Lock()
			if _, seen := s.byID[n.ID]; !seen {
				s.order = append(s.order, n.ID)
				s.arrived[n.ID] = time.Now()
			}
			s.byID[n.ID] = n // a re-send after a crash carries the same id
			s.mu.Unlock()
		})
	}
}

func (s *scheduler) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.byID[id]
	return ok
}

func (s *scheduler) notices() []notice {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]notice, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.byID[id])
	}
	return out
}

// TestPartitionNotices simulates a scheduler: six hours of events with
// out-of-order records, a source partition that goes idle for two hours
// and resumes, late records for an announced hour, and SIGKILLs while it
// all streams in. For every notice the scheduler reads the table at the
// named snapshot: a ready hour holds exactly the records produced for it,
// no hour is announced twice or early, hours without data are announced
// empty, and the late records produce an updated notice — or, with
// late.policy table, land in the late table, exactly once, and the hour
// stays as announced.
func TestPartitionNotices(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	for _, policy := range []string{"append", "table"} {
		t.Run(policy, func(t *testing.T) { partitionNotices(t, policy) })
	}
}

func partitionNotices(t *testing.T, policy string) {
	kills := 4
	if os.Getenv("SLUICE_SOAK") != "" {
		kills = 15
	}
	e := newEnv(t, 4, "events", "notices")
	lateCfg := "{policy: append}"
	if policy == "table" {
		lateCfg = "{policy: table, table: it.late_events}"
	}
	cfg := e.writePipeline(notifyConfig, "{{late}}", lateCfg)
	// Event time starts eight hours ago: the hours after the data are in
	// the past, so once every partition is idle they are announced empty.
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-8 * time.Hour)
	hour := func(k int) string { return "ts_hour=" + t0.Add(time.Duration(k)*time.Hour).Format("2006-01-02-15") }
	id := func(k int) string { return "it.events/" + hour(k) + "/ready" }

	sched := &scheduler{byID: map[string]notice{}, arrived: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	var consumers sync.WaitGroup
	consumers.Add(1)
	go func() { defer consumers.Done(); sched.run(ctx, t, e.addr) }()
	defer func() { cancel(); consumers.Wait() }()

	// The producer walks simulated time a minute per step; every partition
	// gets a record per step, with ts up to 50s out of order, except
	// partition 3 during hours 2 and 3. After hour 4 began, five late
	// records of hour 1 follow once hour 1 was announced.
	const hours, late = 6, 5
	produced := make([]atomic.Int64, hours)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addr), kgo.DefaultProduceTopic("events"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var lateSent atomic.Bool
	lateRecords := func() []*kgo.Record {
		var recs []*kgo.Record
		for i := range late {
			recs = append(recs, &kgo.Record{Partition: int32(i % 4),
				Value: fmt.Appendf(nil, `{"id":"h1-late-%d","ts":"%s"}`, i, t0.Add(time.Hour+30*time.Minute).Format(time.RFC3339))})
		}
		return recs
	}
	producerDone := make(chan error, 1)
	go func() {
		var n int
		for step := range hours * 60 {
			k := step / 60
			var recs []*kgo.Record
			byHour := map[int]int64{}
			for p := int32(0); p < 4; p++ {
				if p == 3 && (k == 2 || k == 3) {
					continue
				}
				// Up to 99s back: out of order, within out_of_orderness.
				ts := t0.Add(max(0, time.Duration(step)*time.Minute-time.Duration((n*37)%100)*time.Second))
				kk := int(ts.Sub(t0) / time.Hour)
				recs = append(recs, &kgo.Record{Partition: p,
					Value: fmt.Appendf(nil, `{"id":"h%d-p%d-%d","ts":"%s"}`, kk, p, n, ts.Format(time.RFC3339))})
				byHour[kk]++
				n++
			}
			if k >= 4 && !lateSent.Load() && sched.has(id(1)) {
				recs = append(recs, lateRecords()...)
				byHour[1] += late
				lateSent.Store(true)
			}
			if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				producerDone <- err
				return
			}
			for kk, c := range byHour {
				produced[kk].Add(c)
			}
			time.Sleep(25 * time.Millisecond)
		}
		producerDone <- nil
	}()

	e.killLoop(cfg, kills, 1500*time.Millisecond, 1500*time.Millisecond, nil)
	d := e.start(cfg)
	if err := <-producerDone; err != nil {
		t.Fatal(err)
	}
	if !lateSent.Load() {
		// A slow daemon had not announced hour 1 by the end: send the late
		// records once it has.
		waitFor(t, 2*time.Minute, "hour 1 to be announced", func() bool { return sched.has(id(1)) })
		if err := cl.ProduceSync(context.Background(), lateRecords()...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		produced[1].Add(late)
		lateSent.Store(true)
	}
	waitFor(t, 2*time.Minute, "every hour to be announced", func() bool {
		return sched.has(id(hours-1)) && sched.has("it.events/"+hour(hours)+"/empty")
	})
	if policy == "append" {
		waitFor(t, time.Minute, "the late records to be announced", func() bool {
			for _, n := range sched.notices() {
				if n.Kind == "updated" && n.Path == hour(1) && n.Records == produced[1].Load() {
					return true
				}
			}
			return false
		})
	} else {
		waitFor(t, time.Minute, "the late records to reach the late table", func() bool {
			tbl, done := e.loadTable("it.late_events")
			defer done()
			return tbl.CurrentSnapshot() != nil && len(scanColumn(t, tbl, "id")) == late
		})
	}
	if code, _ := d.stop(); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, d.logTail())
	}
	cancel()
	consumers.Wait()

	tbl, done := e.loadTable("it.events")
	defer done()
	announced := map[string]string{} // path → kind of its first announcement
	for _, n := range sched.notices() {
		if n.Table != "it.events" {
			t.Errorf("notice %s names table %s", n.ID, n.Table)
		}
		if n.Watermark.Before(n.End) {
			t.Errorf("notice %s came early: watermark %s before the end %s", n.ID, n.Watermark, n.End)
		}
		counts := hourCounts(t, tbl, n.SnapshotID)
		k := int(n.Start.Sub(t0) / time.Hour)
		switch n.Kind {
		case "ready", "empty":
			if prev, ok := announced[n.Path]; ok {
				t.Errorf("%s announced twice (%s, then %s)", n.Path, prev, n.Kind)
			}
			announced[n.Path] = n.Kind
			want := int64(0)
			if k >= 0 && k < hours {
				want = produced[k].Load()
				if k == 1 {
					want -= late // produced after the announcement
				}
			}
			if (want == 0) != (n.Kind == "empty") || counts[k] != want || n.Records != want {
				t.Errorf("%s %s: table holds %d records of it at snapshot %d, notice says %d, producer wrote %d",
					n.Kind, n.Path, counts[k], n.SnapshotID, n.Records, want)
			}
			// Compacted before it was announced: one file, as many as the
			// notice says.
			if files := hourFiles(t, tbl, n.SnapshotID, n.Path); n.Kind == "ready" && (files != 1 || n.Files != 1) {
				t.Errorf("ready %s: %d files at snapshot %d, notice says %d; want 1 (compacted)", n.Path, files, n.SnapshotID, n.Files)
			}
		case "updated":
			if _, ok := announced[n.Path]; !ok || k != 1 || policy != "append" {
				t.Errorf("updated notice %s for a partition not announced or without late data", n.ID)
			}
			if counts[k] != n.Records {
				t.Errorf("updated %s: table holds %d records at snapshot %d, notice says %d", n.Path, counts[k], n.SnapshotID, n.Records)
			}
		default:
			t.Errorf("notice %s has kind %q", n.ID, n.Kind)
		}
	}
	// Every hour from the first to the last announced, once, in order.
	last := -1
	for k := 0; ; k++ {
		if _, ok := announced[hour(k)]; !ok {
			break
		}
		last = k
	}
	if last < hours || len(announced) != last+1 {
		t.Errorf("announced %d hours, %v; want hours 0..%d (at least) each once", len(announced), announced, hours)
	}
	for k := range hours {
		marker := filepath.Join(strings.TrimPrefix(tbl.Location(), "file://"), "data", hour(k), "_SUCCESS")
		if b, err := os.ReadFile(marker); err != nil || !strings.Contains(string(b), hour(k)) {
			t.Errorf("marker of %s: %v %s", hour(k), err, b)
		}
	}
	if got := tbl.Properties()["sluice.ready-partition"]; got != hour(last) {
		t.Errorf("table property sluice.ready-partition = %q, want %q", got, hour(last))
	}

	if policy == "table" {
		lt, done := e.loadTable("it.late_events")
		ids := scanColumn(t, lt, "id")
		done()
		if len(ids) != late {
			t.Errorf("late table holds %d ids, want the %d late records: %v", len(ids), late, ids)
		}
		for id, n := range ids {
			if !strings.HasPrefix(id, "h1-late-") || n != 1 {
				t.Errorf("late table: %s appears %d times", id, n)
			}
		}
	}

	// Every snapshot, compaction rewrites included, reads every row once
	// and every file it references is there.
	for _, snap := range tbl.Metadata().Snapshots() {
		hourCounts(t, tbl, snap.SnapshotID)
	}
	// A restart recovers: no file is left that no snapshot references.
	d = e.start(cfg)
	d.waitReady()
	if orphans := unreferenced(t, tbl, strings.TrimPrefix(tbl.Location(), "file://")); len(orphans) > 0 {
		t.Errorf("%d files no snapshot references after recovery: %v", len(orphans), orphans)
	}
	if code, _ := d.stop(); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, d.logTail())
	}

	// sluice partitions tells the same story.
	out, err := exec.Command(sluiceBin, "partitions", "-c", cfg, "--json", "it.events").CombinedOutput()
	if err != nil {
		t.Fatalf("sluice partitions: %v\n%s", err, out)
	}
	var reports []struct {
		Table      string `json:"table"`
		Partitions []struct {
			Path    string `json:"path"`
			State   string `json:"state"`
			Records int64  `json:"records"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal(out, &reports); err != nil || len(reports) != 1 {
		t.Fatalf("sluice partitions --json: %v\n%s", err, out)
	}
	states := map[string]string{}
	for _, p := range reports[0].Partitions {
		states[p.Path] = p.State
		k := int(0)
		for ; k <= last && hour(k) != p.Path; k++ {
		}
		want := int64(0)
		if k < hours {
			want = produced[k].Load()
		}
		if k == 1 && policy == "table" {
			want -= late
		}
		if p.Records != want {
			t.Errorf("sluice partitions: %s has %d records, want %d", p.Path, p.Records, want)
		}
	}
	for k := 0; k <= last; k++ {
		want := announced[hour(k)]
		if k == 1 && policy == "append" {
			want = "updated"
		}
		if states[hour(k)] != want {
			t.Errorf("sluice partitions: %s is %q, want %q", hour(k), states[hour(k)], want)
		}
	}
}

// hourCounts counts a snapshot's records by the hour their id names.
func hourCounts(t *testing.T, tbl *table.Table, snapshot int64) map[int]int64 {
	t.Helper()
	counts := map[int]int64{}
	for id, n := range scanColumn(t, tbl, "id", table.WithSnapshotID(snapshot)) {
		var k int
		if _, err := fmt.Sscanf(id, "h%d-", &k); err != nil {
			t.Fatalf("id %q: %v", id, err)
		}
		if n != 1 {
			t.Errorf("id %s appears %d times at snapshot %d", id, n, snapshot)
		}
		counts[k] += int64(n)
	}
	return counts
}

// hourFiles counts a snapshot's data files in a partition directory.
func hourFiles(t *testing.T, tbl *table.Table, snapshot int64, path string) int {
	t.Helper()
	tasks, err := tbl.Scan(table.WithSnapshotID(snapshot)).PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, task := range tasks {
		if strings.Contains(task.File.FilePath(), "/"+path+"/") {
			seen[task.File.FilePath()] = true
		}
	}
	return len(seen)
}

// unreferenced lists the Parquet files under a table's data directory that
// no snapshot of tbl references.
func unreferenced(t *testing.T, tbl *table.Table, location string) []string {
	t.Helper()
	// Every file any snapshot's manifests list, data and delete files.
	fs, err := tbl.FS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	referenced := map[string]bool{}
	for _, snap := range tbl.Metadata().Snapshots() {
		manifests, err := snap.Manifests(fs)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range manifests {
			entries, err := m.FetchEntries(fs, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				referenced[strings.TrimPrefix(e.DataFile().FilePath(), "file://")] = true
			}
		}
	}
	var out []string
	filepath.WalkDir(filepath.Join(location, "data"), func(path string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() && strings.HasSuffix(path, ".parquet") && !referenced[path] {
			out = append(out, path)
		}
		return nil
	})
	return out
}
