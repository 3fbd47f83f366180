package iceberg

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/partition"
)

// waitTimeout bounds every wait on the committer; reaching it is a
// failure, never the expected path.
const waitTimeout = 30 * time.Second

type ack struct {
	stream   string
	cp       checkpoint.DataWritten
	snapshot int64
}

// ackRecorder is the Acker of the tests: it hands acknowledgements over a
// channel, in the order the committer made them.
type ackRecorder chan ack

func (a ackRecorder) Committed(stream string, cp checkpoint.DataWritten, snapshotID int64) {
	a <- ack{stream, cp, snapshotID}
}

// running is a Committer whose Run is under way.
type running struct {
	*Committer
	acks ackRecorder
	done chan struct{} // closed when Run returned
	err  error         // Run's result, once done is closed
}

// startCommitter makes a committer over cat with one table, starts Run, and
// when the test ends stops it and checks that Run left no goroutine behind.
func startCommitter(t *testing.T, cat catalog.Catalog, tbl *table.Table, workers int, opts CommitterOptions) *running {
	t.Helper()
	return startAnnouncing(t, cat, tbl, workers, opts, Announcing{})
}

// startAnnouncing is startCommitter with the table's watermark and notices
// configured.
func startAnnouncing(t *testing.T, cat catalog.Catalog, tbl *table.Table, workers int, opts CommitterOptions, ann Announcing) *running {
	t.Helper()
	if opts.Pipeline == "" {
		opts.Pipeline = "pipe"
	}
	if opts.RunID == "" {
		opts.RunID = "run1"
	}
	if opts.FailureTimeout == 0 {
		opts.FailureTimeout = time.Minute
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	acks := make(ackRecorder, 100)
	r := &running{Committer: NewCommitter(cat, acks, opts), acks: acks, done: make(chan struct{})}
	st, err := LoadState(tbl, "s1")
	if err != nil {
		t.Fatal(err)
	}
	r.AddTable("s1", tbl, workers, st, ann)

	ignore := goleak.IgnoreCurrent()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(r.done)
		r.err = r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(waitTimeout):
			t.Fatal("Run did not return after its context ended")
		}
		goleak.VerifyNone(t, ignore)
	})
	return r
}

// progressOnly leaves out of a State the event-time progress and the raw
// summary, which the tests of positions do not check.
func progressOnly(st State) State {
	st.EventTimes, st.Notify, st.Summary = nil, partition.State{}, nil
	return st
}

func (r *running) submit(t *testing.T, dws ...checkpoint.DataWritten) {
	t.Helper()
	for _, dw := range dws {
		if err := r.Submit(context.Background(), dw); err != nil {
			t.Fatal(err)
		}
	}
}

// nextAck waits for the committer's next acknowledgement.
func (r *running) nextAck(t *testing.T) ack {
	t.Helper()
	select {
	case a := <-r.acks:
		return a
	case <-r.done:
		t.Fatalf("Run returned before acknowledging: %v", r.err)
	case <-time.After(waitTimeout):
		t.Fatal("no acknowledgement")
	}
	panic("unreachable")
}

// wait waits for Run to return by itself.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return")
	}
	return nil
}

func dataWritten(cp int64, worker int, files []iceberg.DataFile, pos checkpoint.Positions) checkpoint.DataWritten {
	dw := checkpoint.DataWritten{Stream: "s1", Checkpoint: cp, Worker: worker, Files: files, Positions: pos}
	for _, f := range files {
		dw.Bytes += f.FileSizeBytes()
		dw.Counts.Written += f.Count()
	}
	dw.Counts.Read = dw.Counts.Written
	dw.MaxEventTime = cp*1000 + int64(worker)
	return dw
}

// pos builds positions from "topic/partition" → offset.
func pos(kv map[string]int64) checkpoint.Positions {
	p := checkpoint.Positions{}
	for k, off := range kv {
		topic, part, _ := strings.Cut(k, "/")
		n, _ := strconv.Atoi(part)
		p.Set(topic, int32(n), off)
	}
	return p
}

func reload(t *testing.T, cat catalog.Catalog, tbl *table.Table) *table.Table {
	t.Helper()
	tbl, err := cat.LoadTable(context.Background(), tbl.Identifier())
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// history is the main branch, oldest snapshot first.
func history(tbl *table.Table) []table.Snapshot {
	var out []table.Snapshot
	for snap := tbl.CurrentSnapshot(); snap != nil; {
		out = append(out, *snap)
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = tbl.SnapshotByID(*snap.ParentSnapshotID)
	}
	slices.Reverse(out)
	return out
}

// streamSnapshots are the snapshots the committer wrote for stream s1.
func streamSnapshots(tbl *table.Table) []table.Snapshot {
	var out []table.Snapshot
	for _, s := range history(tbl) {
		if s.Summary != nil && s.Summary.Properties[PropStream] == "s1" {
			out = append(out, s)
		}
	}
	return out
}

// tableFiles lists the data files a scan of the current snapshot reads.
func tableFiles(t *testing.T, tbl *table.Table) []string {
	t.Helper()
	tasks, err := tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, task := range tasks {
		out = append(out, task.File.FilePath())
	}
	slices.Sort(out)
	return out
}

func filePaths(sets ...[]iceberg.DataFile) []string {
	var out []string
	for _, files := range sets {
		for _, f := range files {
			out = append(out, f.FilePath())
		}
	}
	slices.Sort(out)
	return out
}

func snapshotPositions(t *testing.T, s table.Snapshot) checkpoint.Positions {
	t.Helper()
	p, err := checkpoint.DecodePositions(s.Summary.Properties[PropPositions])
	if err != nil {
		t.Fatalf("snapshot %d: %v", s.SnapshotID, err)
	}
	return p
}

// TestCommitterCommitsCheckpointsInOrder submits the parts of two
// checkpoints out of order: each checkpoint becomes one snapshot, in order,
// whose summary holds the positions of all checkpoints so far.
func TestCommitterCommitsCheckpointsInOrder(t *testing.T) {
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", []string{"day(ts)"}, eventCols...)
	day := int64(24 * 3600e6)
	cp1w0 := tt.writeFiles(t, 0, event{id: 1, ts: -day}, event{id: 2, ts: 0})
	cp1w1 := tt.writeFiles(t, 1, event{id: 3, ts: day})
	cp2w0 := tt.writeFiles(t, 0, event{id: 4, ts: day}, event{id: 5, ts: day + 1}, event{id: 6, ts: 2 * day})
	cp2w1 := tt.writeFiles(t, 1, event{id: 7, ts: 0})

	r := startCommitter(t, cat, tt.tbl, 2, CommitterOptions{})
	// Health and Table may be asked while Run commits.
	stopPolling := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stopPolling:
				return
			default:
				_ = r.Health()
				_ = r.Table("s1")
			}
		}
	}()
	r.submit(t,
		dataWritten(2, 1, cp2w1, pos(map[string]int64{"u/0": 3})),
		dataWritten(2, 0, cp2w0, pos(map[string]int64{"t/0": 20})),
		dataWritten(1, 1, cp1w1, pos(map[string]int64{"t/1": 5})),
		dataWritten(1, 0, cp1w0, pos(map[string]int64{"t/0": 10})),
	)
	a1, a2 := r.nextAck(t), r.nextAck(t)
	close(stopPolling)
	<-polled

	tbl := reload(t, cat, tt.tbl)
	snaps := history(tbl)
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots, want 2", len(snaps))
	}
	want := []struct {
		ack       ack
		files     [][]iceberg.DataFile
		cp        checkpoint.Positions // the checkpoint's own positions
		positions checkpoint.Positions // all positions so far
		maxEvent  int64
	}{
		{a1, [][]iceberg.DataFile{cp1w0, cp1w1}, pos(map[string]int64{"t/0": 10, "t/1": 5}),
			pos(map[string]int64{"t/0": 10, "t/1": 5}), 1001},
		{a2, [][]iceberg.DataFile{cp2w0, cp2w1}, pos(map[string]int64{"t/0": 20, "u/0": 3}),
			pos(map[string]int64{"t/0": 20, "t/1": 5, "u/0": 3}), 2001},
	}
	for i, w := range want {
		s := snaps[i]
		cp := int64(i + 1)
		props := s.Summary.Properties
		if w.ack.stream != "s1" || w.ack.cp.Checkpoint != cp || w.ack.snapshot != s.SnapshotID {
			t.Errorf("ack %d: stream %s checkpoint %d snapshot %d; want s1, %d, %d",
				i, w.ack.stream, w.ack.cp.Checkpoint, w.ack.snapshot, cp, s.SnapshotID)
		}
		if !reflect.DeepEqual(w.ack.cp.Positions, w.cp) {
			t.Errorf("ack %d positions %v, want %v", i, w.ack.cp.Positions, w.cp)
		}
		if got := filePaths(w.ack.cp.Files); !slices.Equal(got, filePaths(w.files...)) {
			t.Errorf("ack %d files %v, want %v", i, got, filePaths(w.files...))
		}
		if w.ack.cp.Counts.Written != countRows(slices.Concat(w.files...)) {
			t.Errorf("ack %d counts %+v", i, w.ack.cp.Counts)
		}
		if s.Summary.Operation != table.OpAppend {
			t.Errorf("snapshot %d: operation %s", cp, s.Summary.Operation)
		}
		wantProps := map[string]string{
			PropPipeline: "pipe", PropStream: "s1", PropCheckpoint: strconv.FormatInt(cp, 10),
			PropCommitID:       "pipe/s1/run1/" + strconv.FormatInt(cp, 10),
			PropMaxEventTime:   strconv.FormatInt(w.maxEvent, 10),
			PropRecords:        strconv.FormatInt(countRows(slices.Concat(w.files...)), 10),
			"added-data-files": strconv.Itoa(len(slices.Concat(w.files...))),
		}
		for k, v := range wantProps {
			if props[k] != v {
				t.Errorf("snapshot %d: %s = %q, want %q", cp, k, props[k], v)
			}
		}
		if got := snapshotPositions(t, s); !reflect.DeepEqual(got, w.positions) {
			t.Errorf("snapshot %d positions %v, want %v", cp, got, w.positions)
		}
	}
	if got, want := tableFiles(t, tbl), filePaths(cp1w0, cp1w1, cp2w0, cp2w1); !slices.Equal(got, want) {
		t.Errorf("table files %v, want %v", got, want)
	}
	st, err := LoadState(tbl, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if wantSt := (State{Checkpoint: 2, Positions: want[1].positions, SnapshotID: snaps[1].SnapshotID, MaxEventTime: 2001}); !reflect.DeepEqual(progressOnly(st), wantSt) {
		t.Errorf("LoadState = %+v, want %+v", st, wantSt)
	}
	if got := r.Table("s1").CurrentSnapshot().SnapshotID; got != snaps[1].SnapshotID {
		t.Errorf("Table has snapshot %d, want %d", got, snaps[1].SnapshotID)
	}
	if err := r.Health(); err != nil {
		t.Errorf("Health: %v", err)
	}
	if n := metricValue(t, r.metrics.commits.WithLabelValues("db.events")); n != 2 {
		t.Errorf("commits metric %v, want 2", n)
	}
	if n := metricValue(t, r.metrics.recordsAdded.WithLabelValues("db.events")); n != 7 {
		t.Errorf("records metric %v, want 7", n)
	}
}

// TestCommitterEmptyCheckpoints: a checkpoint without files still commits
// when positions moved (records may all have been filtered), and commits
// nothing when nothing moved.
func TestCommitterEmptyCheckpoints(t *testing.T) {
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", []string{"k"}, eventCols...)
	r := startCommitter(t, cat, tt.tbl, 1, CommitterOptions{})
	steps := []struct {
		name      string
		files     []iceberg.DataFile
		positions checkpoint.Positions
		snapshot  bool
		want      checkpoint.Positions // recorded by the table afterwards
	}{
		{"nothing read yet", nil, nil, false, nil},
		{"nothing read yet, empty positions", nil, checkpoint.Positions{}, false, nil},
		{"rows written", tt.writeFiles(t, 0, event{id: 1, k: "a"}), pos(map[string]int64{"t/0": 10}),
			true, pos(map[string]int64{"t/0": 10})},
		{"positions moved, every record filtered", nil, pos(map[string]int64{"t/0": 15}),
			true, pos(map[string]int64{"t/0": 15})},
		{"nothing moved", nil, pos(map[string]int64{"t/0": 15}), false, pos(map[string]int64{"t/0": 15})},
		{"no positions reported", nil, nil, false, pos(map[string]int64{"t/0": 15})},
		{"a new partition", nil, pos(map[string]int64{"t/1": 1}),
			true, pos(map[string]int64{"t/0": 15, "t/1": 1})},
	}
	var snapshots int
	for i, step := range steps {
		cp := int64(i + 1)
		r.submit(t, dataWritten(cp, 0, step.files, step.positions))
		a := r.nextAck(t)
		tbl := reload(t, cat, tt.tbl)
		snaps := streamSnapshots(tbl)
		if step.snapshot {
			snapshots++
		}
		if len(snaps) != snapshots || len(history(tbl)) != snapshots {
			t.Fatalf("%s: %d snapshots (%d of the stream), want %d", step.name, len(history(tbl)), len(snaps), snapshots)
		}
		if a.cp.Checkpoint != cp {
			t.Errorf("%s: acknowledged checkpoint %d, want %d", step.name, a.cp.Checkpoint, cp)
		}
		if !step.snapshot {
			if a.snapshot != 0 {
				t.Errorf("%s: acknowledged with snapshot %d, want 0", step.name, a.snapshot)
			}
			continue
		}
		last := snaps[len(snaps)-1]
		if a.snapshot != last.SnapshotID {
			t.Errorf("%s: acknowledged with snapshot %d, the table has %d", step.name, a.snapshot, last.SnapshotID)
		}
		if got := last.Summary.Properties[PropCheckpoint]; got != strconv.FormatInt(cp, 10) {
			t.Errorf("%s: snapshot of checkpoint %s", step.name, got)
		}
		if got := snapshotPositions(t, last); !reflect.DeepEqual(got, step.want) {
			t.Errorf("%s: positions %v, want %v", step.name, got, step.want)
		}
		if got, want := last.Summary.Properties["added-data-files"], strconv.Itoa(len(step.files)); len(step.files) > 0 && got != want {
			t.Errorf("%s: added-data-files %q, want %q", step.name, got, want)
		}
		if got := last.Summary.Properties[PropRecords]; got != strconv.FormatInt(countRows(step.files), 10) {
			t.Errorf("%s: records %q", step.name, got)
		}
	}
	tbl := reload(t, cat, tt.tbl)
	if got := tableFiles(t, tbl); len(got) != 1 {
		t.Errorf("table files %v, want the one written", got)
	}
}

// TestLoadState commits a stream's checkpoints, puts snapshots of others
// on top, and checks that LoadState finds the stream's last one and that a
// committer resumed from it continues the positions.
func TestLoadState(t *testing.T) {
	ctx := context.Background()
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", nil, eventCols...)

	fresh, err := LoadState(tt.tbl, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Checkpoint != 0 || fresh.SnapshotID != 0 || fresh.Positions == nil || fresh.Positions.Count() != 0 {
		t.Errorf("LoadState of a new table = %+v", fresh)
	}

	r := startCommitter(t, cat, tt.tbl, 1, CommitterOptions{})
	r.submit(t,
		dataWritten(1, 0, tt.writeFiles(t, 0, event{id: 1}), pos(map[string]int64{"t/0": 10, "t/1": 4})),
		dataWritten(2, 0, tt.writeFiles(t, 0, event{id: 2}), pos(map[string]int64{"t/0": 20})))
	r.nextAck(t)
	s1 := r.nextAck(t)

	// On top: a plain append by someone else, without sluice properties, a
	// snapshot of another stream, and an expiry-free property change.
	tbl := reload(t, cat, tt.tbl)
	tbl = commitFiles(t, tbl, tt.writeFiles(t, 5, event{id: 100}), nil)
	tbl = commitFiles(t, tbl, tt.writeFiles(t, 6, event{id: 101}), iceberg.Properties{
		PropStream: "s2", PropCheckpoint: "7", PropPositions: `{"v":{"0":70}}`, PropMaxEventTime: "99",
	})
	tx := tbl.NewTransaction()
	if err := tx.SetProperties(iceberg.Properties{"owner": "someone"}); err != nil {
		t.Fatal(err)
	}
	if tbl, err = tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	otherSnap := tbl.CurrentSnapshot().SnapshotID

	tests := []struct {
		stream string
		want   State
	}{
		{"s1", State{Checkpoint: 2, Positions: pos(map[string]int64{"t/0": 20, "t/1": 4}), SnapshotID: s1.snapshot, MaxEventTime: 2000}},
		{"s2", State{Checkpoint: 7, Positions: pos(map[string]int64{"v/0": 70}), SnapshotID: otherSnap, MaxEventTime: 99}},
		{"never written", State{Positions: checkpoint.Positions{}}},
	}
	for _, tc := range tests {
		t.Run(tc.stream, func(t *testing.T) {
			got, err := LoadState(tbl, tc.stream)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(progressOnly(got), tc.want) {
				t.Errorf("LoadState = %+v, want %+v", got, tc.want)
			}
		})
	}

	t.Run("resume", func(t *testing.T) {
		// A restarted daemon: a new committer from the loaded state commits
		// checkpoint 3 on top of everything, keeping partitions it did not
		// hear about this time.
		r2 := startCommitter(t, cat, tbl, 1, CommitterOptions{RunID: "run2"})
		r2.submit(t, dataWritten(3, 0, nil, pos(map[string]int64{"t/0": 30})))
		a := r2.nextAck(t)
		st, err := LoadState(reload(t, cat, tbl), "s1")
		if err != nil {
			t.Fatal(err)
		}
		want := State{Checkpoint: 3, Positions: pos(map[string]int64{"t/0": 30, "t/1": 4}), SnapshotID: a.snapshot, MaxEventTime: 3000}
		if !reflect.DeepEqual(progressOnly(st), want) {
			t.Errorf("after resume LoadState = %+v, want %+v", st, want)
		}
		if got := len(tableFiles(t, reload(t, cat, tbl))); got != 4 {
			t.Errorf("%d files after resume, want 4", got)
		}
	})

	t.Run("bad positions", func(t *testing.T) {
		bad := commitFiles(t, reload(t, cat, tbl), tt.writeFiles(t, 7, event{id: 102}), iceberg.Properties{
			PropStream: "s3", PropCheckpoint: "1", PropPositions: "not json",
		})
		if _, err := LoadState(bad, "s3"); err == nil || !strings.Contains(err.Error(), strconv.FormatInt(bad.CurrentSnapshot().SnapshotID, 10)) {
			t.Errorf("LoadState of bad positions: %v, want an error naming the snapshot", err)
		}
	})
}

// metricValue reads a counter or gauge.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	t.Fatalf("metric %v is neither counter nor gauge", m.Desc())
	return 0
}

var errConnReset = errors.New("read tcp 10.0.0.1:5432: connection reset by peer")

// TestCommitterAmbiguousCommit fails a commit with an error that does not
// say whether the catalog applied it: the committer must look for its
// token and commit exactly once either way.
func TestCommitterAmbiguousCommit(t *testing.T) {
	tests := []struct {
		name    string
		applied bool // whether the failed commit reached the catalog
		commits int  // CommitTable calls the committer makes for checkpoint 1
	}{
		{"applied", true, 1},
		{"not applied", false, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cat := newTestCatalog(t)
			tt := newTestTable(t, cat, "db.events", []string{"day(ts)"}, eventCols...)
			faulty := &faultyCatalog{Catalog: cat}
			fail := func(n int) error {
				if n == 1 {
					return errConnReset
				}
				return nil
			}
			if tc.applied {
				faulty.after = fail
			} else {
				faulty.before = func(_ context.Context, n int) error { return fail(n) }
			}
			tbl := reload(t, faulty, tt.tbl)
			r := startCommitter(t, faulty, tbl, 1, CommitterOptions{})

			files := tt.writeFiles(t, 0, event{id: 1, ts: 0}, event{id: 2, ts: 24 * 3600e6})
			r.submit(t, dataWritten(1, 0, files, pos(map[string]int64{"t/0": 2})))
			a := r.nextAck(t)
			if got := faulty.commits(); got != tc.commits {
				t.Errorf("%d commits reached the catalog, want %d", got, tc.commits)
			}
			got := reload(t, cat, tt.tbl)
			snaps := history(got)
			if len(snaps) != 1 || snaps[0].Summary.Properties[PropCheckpoint] != "1" {
				t.Fatalf("snapshots %v, want one of checkpoint 1", snaps)
			}
			if a.snapshot != snaps[0].SnapshotID {
				t.Errorf("acknowledged snapshot %d, the table has %d", a.snapshot, snaps[0].SnapshotID)
			}
			if paths := tableFiles(t, got); !slices.Equal(paths, filePaths(files)) {
				t.Errorf("table files %v, want each of %v once", paths, filePaths(files))
			}
			if err := r.Health(); err != nil {
				t.Errorf("Health after recovery: %v", err)
			}
			if n := metricValue(t, r.metrics.failures.WithLabelValues("db.events", "error")); n != 1 {
				t.Errorf("failures{kind=error} = %v, want 1", n)
			}

			// The committer goes on from the table it reloaded.
			more := tt.writeFiles(t, 0, event{id: 3, ts: 0})
			r.submit(t, dataWritten(2, 0, more, pos(map[string]int64{"t/0": 3})))
			r.nextAck(t)
			got = reload(t, cat, tt.tbl)
			if n := len(history(got)); n != 2 {
				t.Errorf("%d snapshots after checkpoint 2, want 2", n)
			}
			if paths := tableFiles(t, got); !slices.Equal(paths, filePaths(files, more)) {
				t.Errorf("table files %v, want %v", paths, filePaths(files, more))
			}
		})
	}
}

// TestCommitterConflict lets another writer commit between the committer's
// load and its commit. Whoever notices (iceberg-go's own retry when the
// catalog reports a conflict, the committer otherwise) replays the commit
// on top, and both changes end up in the table.
func TestCommitterConflict(t *testing.T) {
	tests := []struct {
		name string
		// conflict makes the catalog answer with table.ErrCommitFailed, as
		// a REST catalog does; otherwise the SQL catalog checks the
		// commit's requirements against the new head itself.
		conflict  bool
		retries   string // commit.retry.num-retries of the table, if set
		conflicts float64
		errors    float64
	}{
		// The SQL catalog of iceberg-go v0.7.0 reports a stale base as a
		// plain "requirement failed" error: iceberg-go does not replay it
		// and the committer counts it as an error, then settles it like
		// an ambiguous commit.
		{"sql catalog rejects a stale base", false, "", 0, 1},
		{"iceberg-go replays a conflict", true, "4", 0, 0},
		// iceberg-go does not retry by default.
		{"committer retries a conflict", true, "", 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cat := newTestCatalog(t)
			tt := newTestTable(t, cat, "db.events", []string{"k"}, eventCols...)
			if tc.retries != "" {
				tx := tt.tbl.NewTransaction()
				if err := tx.SetProperties(iceberg.Properties{table.CommitNumRetriesKey: tc.retries}); err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			theirs := tt.writeFiles(t, 9, event{id: 100, k: "theirs"})
			faulty := &faultyCatalog{Catalog: cat}
			faulty.before = func(ctx context.Context, n int) error {
				if n != 1 {
					return nil
				}
				// Another writer wins the race, through the real catalog.
				tbl, err := cat.LoadTable(ctx, tt.tbl.Identifier())
				if err != nil {
					return err
				}
				tx := tbl.NewTransaction()
				if err := tx.AddDataFiles(ctx, theirs, iceberg.Properties{"writer": "other"}); err != nil {
					return err
				}
				if _, err = tx.Commit(ctx); err != nil {
					return err
				}
				if tc.conflict {
					return fmt.Errorf("%w: branch main has changed", table.ErrCommitFailed)
				}
				return nil
			}
			tbl := reload(t, faulty, tt.tbl)
			r := startCommitter(t, faulty, tbl, 1, CommitterOptions{})

			ours := tt.writeFiles(t, 0, event{id: 1, k: "ours"})
			r.submit(t, dataWritten(1, 0, ours, pos(map[string]int64{"t/0": 1})))
			a := r.nextAck(t)

			got := reload(t, cat, tt.tbl)
			var snaps []table.Snapshot
			for _, s := range history(got) {
				if s.Summary.Operation == table.OpAppend {
					snaps = append(snaps, s)
				}
			}
			if len(snaps) != 2 || snaps[0].Summary.Properties["writer"] != "other" || snaps[1].Summary.Properties[PropCheckpoint] != "1" {
				t.Fatalf("appends %v, want theirs then checkpoint 1", snaps)
			}
			if a.snapshot != snaps[1].SnapshotID {
				t.Errorf("acknowledged snapshot %d, want %d", a.snapshot, snaps[1].SnapshotID)
			}
			if paths := tableFiles(t, got); !slices.Equal(paths, filePaths(theirs, ours)) {
				t.Errorf("table files %v, want %v", paths, filePaths(theirs, ours))
			}
			if faulty.commits() < 2 {
				t.Errorf("%d commits reached the catalog, want a retry", faulty.commits())
			}
			if n := metricValue(t, r.metrics.failures.WithLabelValues("db.events", "conflict")); n != tc.conflicts {
				t.Errorf("failures{kind=conflict} = %v, want %v", n, tc.conflicts)
			}
			if n := metricValue(t, r.metrics.failures.WithLabelValues("db.events", "error")); n != tc.errors {
				t.Errorf("failures{kind=error} = %v, want %v", n, tc.errors)
			}
		})
	}
}

var errRefused = errors.New("dial tcp 10.0.0.1:5432: connection refused")

// TestCommitterFailureTimeout: while commits of a table fail, Health says
// so; once they failed for FailureTimeout, Run gives up with an error
// naming the table.
func TestCommitterFailureTimeout(t *testing.T) {
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", []string{"k"}, eventCols...)
	faulty := &faultyCatalog{Catalog: cat}
	healthWhileFailing := make(chan error, 1)
	var r *running
	faulty.before = func(_ context.Context, n int) error {
		if n == 2 {
			// The first attempt failed and Run is retrying.
			healthWhileFailing <- r.Health()
		}
		return errRefused
	}
	tbl := reload(t, faulty, tt.tbl)
	const timeout = 300 * time.Millisecond
	r = startCommitter(t, faulty, tbl, 1, CommitterOptions{FailureTimeout: timeout})

	start := time.Now()
	r.submit(t, dataWritten(1, 0, tt.writeFiles(t, 0, event{id: 1, k: "a"}), pos(map[string]int64{"t/0": 1})))
	err := r.wait(t)
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("Run gave up after %s, before FailureTimeout %s", elapsed, timeout)
	}
	if err == nil || !strings.Contains(err.Error(), "db.events") || !errors.Is(err, errRefused) {
		t.Errorf("Run = %v, want an error naming db.events and wrapping the catalog's", err)
	}
	select {
	case h := <-healthWhileFailing:
		if h == nil || !strings.Contains(h.Error(), "db.events") || !errors.Is(h, errRefused) {
			t.Errorf("Health while failing = %v", h)
		}
	default:
		t.Error("Run gave up after a single attempt")
	}
	if h := r.Health(); h == nil {
		t.Error("Health after giving up is nil")
	}
	if n := metricValue(t, r.metrics.failing.WithLabelValues("db.events")); n <= 0 {
		t.Errorf("failing gauge = %v", n)
	}
	select {
	case a := <-r.acks:
		t.Errorf("acknowledged %+v", a)
	default:
	}
	if snaps := history(reload(t, cat, tt.tbl)); len(snaps) != 0 {
		t.Errorf("%d snapshots", len(snaps))
	}
}

// TestCommitterUnknownStream: a checkpoint of a stream no table was added
// for is a programming error that stops Run.
func TestCommitterUnknownStream(t *testing.T) {
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", nil, eventCols...)
	r := startCommitter(t, cat, tt.tbl, 1, CommitterOptions{})
	dw := dataWritten(1, 0, nil, nil)
	dw.Stream = "nope"
	r.submit(t, dw)
	if err := r.wait(t); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Run = %v, want an error naming the stream", err)
	}
}

// TestCommitterSubmitHonoursContext: Submit blocks while the committer is
// behind and gives up when its context ends.
func TestCommitterSubmitHonoursContext(t *testing.T) {
	c := NewCommitter(nil, nil, CommitterOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	for i := range cap(c.in) {
		if err := c.Submit(ctx, checkpoint.DataWritten{Checkpoint: int64(i)}); err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
	}
	cancel()
	if err := c.Submit(ctx, checkpoint.DataWritten{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Submit to a full committer after cancel = %v", err)
	}
}
