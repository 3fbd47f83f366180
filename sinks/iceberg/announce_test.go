package iceberg

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/partition"
	"github.com/sluicehq/sluice/watermark"
)

// testClock is the committer's clock in these tests: it moves only when
// the test sets it.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// noticeLog records the notices the committer hands to Notify. Notify
// calls done while deliver is set, and otherwise holds it for release.
type noticeLog struct {
	mu      sync.Mutex
	got     []partition.Notice
	deliver bool
	held    []func()
}

func (l *noticeLog) notify(ns []partition.Notice, done func()) {
	l.mu.Lock()
	l.got = append(l.got, ns...)
	deliver := l.deliver
	if !deliver {
		l.held = append(l.held, done)
	}
	l.mu.Unlock()
	if deliver {
		done()
	}
}

// release reports the held notices delivered.
func (l *noticeLog) release() {
	l.mu.Lock()
	held := l.held
	l.held = nil
	l.mu.Unlock()
	for _, done := range held {
		done()
	}
}

func (l *noticeLog) setDeliver(v bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deliver = v
}

// take returns the notices handed over since the last take.
func (l *noticeLog) take() []partition.Notice {
	l.mu.Lock()
	defer l.mu.Unlock()
	got := l.got
	l.got = nil
	return got
}

// lateLog records the values handed to LateBefore.
type lateLog struct {
	mu  sync.Mutex
	got []int64
}

func (l *lateLog) record(us int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, us)
}

// expect checks every value LateBefore heard so far.
func (l *lateLog) expect(t *testing.T, when string, want ...int64) {
	t.Helper()
	l.mu.Lock()
	got := slices.Clone(l.got)
	l.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("%s: LateBefore heard %v, want %v", when, times(got), times(want))
	}
}

func times(us []int64) []string {
	var out []string
	for _, u := range us {
		if u == watermark.None {
			out = append(out, "None")
			continue
		}
		out = append(out, time.UnixMicro(u).UTC().Format(time.RFC3339Nano))
	}
	return out
}

var hourSlicing = partition.Slicing{Field: "ts_hour", FieldID: 1000, Unit: "hour"}

// hourAt is h:m on the day of these tests, 2026-11-23 (UTC).
func hourAt(h, m int) time.Time {
	return time.Date(2026, 11, 23, h, m, 0, 0, time.UTC)
}

func micros(h, m int) int64 { return hourAt(h, m).UnixMicro() }

// marksOf is the progress of source partition t/0: its largest event time
// and when its last record was read.
func marksOf(maxEventTime int64, lastRecord time.Time) map[watermark.Key]watermark.Partition {
	return map[watermark.Key]watermark.Partition{
		{Topic: "t", Partition: 0}: {MaxEventTime: maxEventTime, LastRecord: lastRecord},
	}
}

// commitOf is what the notices of one commit share.
type commitOf struct {
	snapshot   int64
	checkpoint int64
	watermark  time.Time
	emitted    time.Time
}

// slice is a notice of one hour, as the test expects it.
type slice struct {
	kind           partition.Kind
	hour           int
	records, files int64
}

// notices builds the notices a commit should hand over.
func (c commitOf) notices(ss ...slice) []partition.Notice {
	var out []partition.Notice
	for _, s := range ss {
		start := hourAt(s.hour, 0)
		label := start.Format("2006-01-02-15")
		path := "ts_hour=" + label
		out = append(out, partition.Notice{
			ID: partition.NoticeID("db.events", path, s.kind, c.checkpoint), Kind: s.kind,
			Pipeline: "pipe", Stream: "s1", Table: "db.events",
			Partition: map[string]string{"ts_hour": label}, Path: path, Start: start, End: start.Add(time.Hour),
			SnapshotID: c.snapshot, Records: s.records, Files: s.files,
			Watermark: c.watermark, Checkpoint: c.checkpoint, EmittedAt: c.emitted,
		})
	}
	return out
}

// sameNotices compares notices by their JSON, which is what targets get.
func sameNotices(t *testing.T, what string, got, want []partition.Notice) {
	t.Helper()
	g, err := json.MarshalIndent(got, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.MarshalIndent(want, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("%s: notices\n%s\nwant\n%s", what, g, w)
	}
}

func noticeIDs(ns []partition.Notice) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.ID)
	}
	return out
}

// lastStreamSnapshot is the newest snapshot of stream s1.
func lastStreamSnapshot(t *testing.T, tbl *table.Table) table.Snapshot {
	t.Helper()
	snaps := streamSnapshots(tbl)
	if len(snaps) == 0 {
		t.Fatal("no snapshot of the stream")
	}
	return snaps[len(snaps)-1]
}

// notifyState decodes the announcement state a snapshot recorded.
func notifyState(t *testing.T, s table.Snapshot) partition.State {
	t.Helper()
	raw, ok := s.Summary.Properties[PropNotify]
	if !ok {
		t.Fatalf("snapshot %d has no %s", s.SnapshotID, PropNotify)
	}
	var st partition.State
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("snapshot %d: %s: %v", s.SnapshotID, PropNotify, err)
	}
	return st
}

func ord(h int) int64 { return hourSlicing.Of(micros(h, 0)) }

// hourFiles writes events of the given number of distinct hours and checks
// that each hour got one file, so the test knows the files per hour.
func hourFiles(t *testing.T, tt *testTable, hours int, events ...event) []iceberg.DataFile {
	t.Helper()
	files := tt.writeFiles(t, 0, events...)
	if len(files) != hours {
		t.Fatalf("%d files for events of %d hours", len(files), hours)
	}
	return files
}

// TestCommitterAnnouncesHours drives a table partitioned by hour(ts)
// through a day's commits: a checkpoint whose watermark passes an hour, an
// empty checkpoint whose idle clock passes two more, late data, and the
// exact boundary where the watermark reaches an hour's end.
func TestCommitterAnnouncesHours(t *testing.T) {
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", []string{"hour(ts)"}, eventCols...)
	clk := &testClock{now: hourAt(6, 15)}
	notes := &noticeLog{deliver: true}
	var late lateLog
	r := startAnnouncing(t, cat, tt.tbl, 1, CommitterOptions{Now: clk.Now}, Announcing{
		Watermark: watermark.Config{OutOfOrderness: 0, IdleTimeout: time.Hour},
		Slicing:   hourSlicing, Property: true, Notify: notes.notify, LateBefore: late.record,
	})
	late.expect(t, "after AddTable", watermark.None)

	// Checkpoint 1: three records of 05:00 and one of 06:00; the watermark
	// reaches 06:10, so 05:00 is ready.
	files1 := hourFiles(t, tt, 2,
		event{id: 1, ts: micros(5, 10), k: "a"}, event{id: 2, ts: micros(5, 20), k: "a"},
		event{id: 3, ts: micros(5, 50), k: "b"}, event{id: 4, ts: micros(6, 10), k: "a"})
	dw := dataWritten(1, 0, files1, pos(map[string]int64{"t/0": 4}))
	dw.Marks = marksOf(micros(6, 10), clk.Now())
	r.submit(t, dw)
	a1 := r.nextAck(t)
	tbl := reload(t, cat, tt.tbl)
	snap := lastStreamSnapshot(t, tbl)
	if a1.snapshot == 0 || a1.snapshot != snap.SnapshotID {
		t.Fatalf("checkpoint 1 acknowledged with snapshot %d, the table has %d", a1.snapshot, snap.SnapshotID)
	}
	c1 := commitOf{snapshot: a1.snapshot, checkpoint: 1, watermark: hourAt(6, 10), emitted: hourAt(6, 15)}
	sameNotices(t, "checkpoint 1", notes.take(), c1.notices(slice{partition.Ready, 5, 3, 1}))
	props := snap.Summary.Properties
	if got, want := props[PropWatermark], strconv.FormatInt(micros(6, 10), 10); got != want {
		t.Errorf("checkpoint 1: %s = %s, want %s", PropWatermark, got, want)
	}
	et, err := checkpoint.DecodePositions(props[PropEventTimes])
	if err != nil {
		t.Fatalf("checkpoint 1: %s: %v", PropEventTimes, err)
	}
	if got, ok := et.Get("t", 0); !ok || got != micros(6, 10) || et.Count() != 1 {
		t.Errorf("checkpoint 1: %s = %s, want t/0 at 06:10", PropEventTimes, props[PropEventTimes])
	}
	st := notifyState(t, snap)
	if !st.Started || st.Through != ord(6) || st.Watermark != micros(6, 10) {
		t.Errorf("checkpoint 1: state started %v through %d watermark %d, want through %d watermark %d",
			st.Started, st.Through, st.Watermark, ord(6), micros(6, 10))
	}
	if want := map[int64]partition.Stats{ord(5): {Records: 3, Files: 1}, ord(6): {Records: 1, Files: 1}}; !mapsEqual(st.Slices, want) {
		t.Errorf("checkpoint 1: slices %v, want %v", st.Slices, want)
	}
	// The notices are stored before anyone could deliver them, without
	// the snapshot id, which is the snapshot's own.
	if got, want := noticeIDs(st.Undelivered), []string{"db.events/ts_hour=2026-11-23-05/ready"}; !slices.Equal(got, want) {
		t.Errorf("checkpoint 1: undelivered %v, want %v", got, want)
	} else if st.Undelivered[0].SnapshotID != 0 {
		t.Errorf("checkpoint 1: stored notice has snapshot %d", st.Undelivered[0].SnapshotID)
	}
	if got, want := noticeIDs(st.Notices), []string{"db.events/ts_hour=2026-11-23-05/ready"}; !slices.Equal(got, want) {
		t.Errorf("checkpoint 1: notices of the commit %v, want %v", got, want)
	}
	checkReadyProps(t, "checkpoint 1", tbl, "ts_hour=2026-11-23-05", hourAt(6, 10), hourAt(6, 15))
	late.expect(t, "after checkpoint 1", watermark.None, micros(6, 0))

	// Checkpoint 2 has no files, no marks and the same positions, but t/0
	// went idle: the watermark follows the clock to 08:30, and an empty
	// snapshot announces 06:00 (with data) and 07:00 (without).
	clk.set(hourAt(8, 30))
	r.submit(t, dataWritten(2, 0, nil, pos(map[string]int64{"t/0": 4})))
	a2 := r.nextAck(t)
	tbl = reload(t, cat, tt.tbl)
	snap = lastStreamSnapshot(t, tbl)
	if a2.snapshot == 0 || a2.snapshot != snap.SnapshotID || len(streamSnapshots(tbl)) != 2 {
		t.Fatalf("checkpoint 2 acknowledged with snapshot %d; the stream has %d snapshots, the last %d",
			a2.snapshot, len(streamSnapshots(tbl)), snap.SnapshotID)
	}
	if got := snap.Summary.Properties["added-data-files"]; got != "" && got != "0" {
		t.Errorf("checkpoint 2 added %s data files", got)
	}
	if got := snap.Summary.Properties[PropRecords]; got != "0" {
		t.Errorf("checkpoint 2: %s = %s", PropRecords, got)
	}
	if got := len(tableFiles(t, tbl)); got != 2 {
		t.Errorf("%d table files after checkpoint 2, want 2", got)
	}
	c2 := commitOf{snapshot: a2.snapshot, checkpoint: 2, watermark: hourAt(8, 30), emitted: hourAt(8, 30)}
	sameNotices(t, "checkpoint 2", notes.take(), c2.notices(slice{partition.Ready, 6, 1, 1}, slice{partition.Empty, 7, 0, 0}))
	if got, want := snap.Summary.Properties[PropWatermark], strconv.FormatInt(micros(8, 30), 10); got != want {
		t.Errorf("checkpoint 2: %s = %s, want %s", PropWatermark, got, want)
	}
	st = notifyState(t, snap)
	if st.Through != ord(8) || st.Watermark != micros(8, 30) {
		t.Errorf("checkpoint 2: through %d watermark %d, want %d, %d", st.Through, st.Watermark, ord(8), micros(8, 30))
	}
	// 05:00 was delivered: the commit drops it.
	if got, want := noticeIDs(st.Undelivered), []string{"db.events/ts_hour=2026-11-23-06/ready", "db.events/ts_hour=2026-11-23-07/empty"}; !slices.Equal(got, want) {
		t.Errorf("checkpoint 2: undelivered %v, want %v", got, want)
	}
	if got, want := noticeIDs(st.Notices), []string{"db.events/ts_hour=2026-11-23-06/ready", "db.events/ts_hour=2026-11-23-07/empty"}; !slices.Equal(got, want) {
		t.Errorf("checkpoint 2: notices of the commit %v, want %v", got, want)
	}
	checkReadyProps(t, "checkpoint 2", tbl, "ts_hour=2026-11-23-07", hourAt(8, 30), hourAt(8, 30))
	late.expect(t, "after checkpoint 2", watermark.None, micros(6, 0), micros(8, 0))

	// Checkpoint 3 brings two late records of 05:00 and one of 08:00: an
	// update of 05:00 with its totals, nothing ready.
	clk.set(hourAt(8, 35))
	files3 := hourFiles(t, tt, 2, event{id: 5, ts: micros(5, 30), k: "a"}, event{id: 6, ts: micros(5, 40), k: "c"},
		event{id: 7, ts: micros(8, 20), k: "a"})
	dw = dataWritten(3, 0, files3, pos(map[string]int64{"t/0": 7}))
	dw.Marks = marksOf(micros(8, 20), clk.Now())
	r.submit(t, dw)
	a3 := r.nextAck(t)
	c3 := commitOf{snapshot: a3.snapshot, checkpoint: 3, watermark: hourAt(8, 30), emitted: hourAt(8, 35)}
	sameNotices(t, "checkpoint 3", notes.take(), c3.notices(slice{partition.Updated, 5, 5, 2}))
	tbl = reload(t, cat, tt.tbl)
	snap = lastStreamSnapshot(t, tbl)
	if snap.SnapshotID != a3.snapshot {
		t.Errorf("checkpoint 3 acknowledged with snapshot %d, the table has %d", a3.snapshot, snap.SnapshotID)
	}
	st = notifyState(t, snap)
	if got, want := noticeIDs(st.Notices), []string{"db.events/ts_hour=2026-11-23-05/updated/3"}; !slices.Equal(got, want) {
		t.Errorf("checkpoint 3: notices of the commit %v, want %v", got, want)
	}
	// An update is no complete partition: the properties stay.
	checkReadyProps(t, "checkpoint 3", tbl, "ts_hour=2026-11-23-07", hourAt(8, 30), hourAt(8, 30))
	late.expect(t, "after checkpoint 3", watermark.None, micros(6, 0), micros(8, 0), micros(8, 0))

	// Checkpoint 4: the watermark stops a microsecond short of 09:00, and
	// with nothing else new there is no snapshot.
	clk.set(hourAt(9, 0))
	dw = dataWritten(4, 0, nil, pos(map[string]int64{"t/0": 7}))
	dw.Marks = marksOf(micros(9, 0)-1, clk.Now())
	r.submit(t, dw)
	if a := r.nextAck(t); a.snapshot != 0 {
		t.Errorf("checkpoint 4 acknowledged with snapshot %d, want none", a.snapshot)
	}
	if got := notes.take(); len(got) != 0 {
		t.Errorf("checkpoint 4 announced %v", noticeIDs(got))
	}
	if n := len(streamSnapshots(reload(t, cat, tt.tbl))); n != 3 {
		t.Errorf("%d snapshots after checkpoint 4, want 3", n)
	}

	// Checkpoint 5: the watermark reaches 09:00 exactly; 08:00 is ready.
	dw = dataWritten(5, 0, nil, pos(map[string]int64{"t/0": 7}))
	dw.Marks = marksOf(micros(9, 0), clk.Now())
	r.submit(t, dw)
	a5 := r.nextAck(t)
	if a5.snapshot == 0 {
		t.Fatal("checkpoint 5 made no snapshot")
	}
	c5 := commitOf{snapshot: a5.snapshot, checkpoint: 5, watermark: hourAt(9, 0), emitted: hourAt(9, 0)}
	sameNotices(t, "checkpoint 5", notes.take(), c5.notices(slice{partition.Ready, 8, 1, 1}))
	late.expect(t, "after checkpoint 5", watermark.None, micros(6, 0), micros(8, 0), micros(8, 0), micros(9, 0))

	for kind, want := range map[partition.Kind]float64{partition.Ready: 3, partition.Empty: 1, partition.Updated: 1} {
		if n := metricValue(t, r.metrics.notices.WithLabelValues("db.events", string(kind))); n != want {
			t.Errorf("notices{kind=%s} = %v, want %v", kind, n, want)
		}
	}
	if n := metricValue(t, r.metrics.watermark.WithLabelValues("db.events")); n != float64(hourAt(9, 0).Unix()) {
		t.Errorf("watermark gauge = %v, want %v", n, hourAt(9, 0).Unix())
	}
}

func mapsEqual(a, b map[int64]partition.Stats) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// checkReadyProps checks the table properties of the table_property
// target.
func checkReadyProps(t *testing.T, when string, tbl *table.Table, path string, wm, at time.Time) {
	t.Helper()
	props := tbl.Properties()
	want := map[string]string{
		PropReadyPartition: path,
		PropReadyWatermark: wm.Format(time.RFC3339Nano),
		PropReadyAt:        at.Format(time.RFC3339Nano),
	}
	for k, v := range want {
		if props[k] != v {
			t.Errorf("%s: table property %s = %q, want %q", when, k, props[k], v)
		}
	}
}

// TestCommitterResendsUndelivered restarts the committer: notices that
// were committed but not delivered are handed over again, with the
// snapshot that made them due, and those whose delivery a later commit
// recorded are not. The restarted committer's watermark goes on from the
// event times the table recorded.
func TestCommitterResendsUndelivered(t *testing.T) {
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", []string{"hour(ts)"}, eventCols...)
	clk := &testClock{now: hourAt(6, 15)}
	announcing := func(notes *noticeLog, late *lateLog) Announcing {
		return Announcing{
			Watermark: watermark.Config{IdleTimeout: time.Hour},
			Slicing:   hourSlicing, Notify: notes.notify, LateBefore: late.record,
		}
	}
	t0, t1 := watermark.Key{Topic: "t", Partition: 0}, watermark.Key{Topic: "t", Partition: 1}
	var s2 int64 // the snapshot that announced 06:00
	var undelivered []partition.Notice

	ok := t.Run("first run", func(t *testing.T) {
		notes := &noticeLog{deliver: true}
		var late lateLog
		r := startAnnouncing(t, cat, tt.tbl, 1, CommitterOptions{Now: clk.Now}, announcing(notes, &late))

		// 05:00 is announced and delivered.
		dw := dataWritten(1, 0, hourFiles(t, tt, 1, event{id: 1, ts: micros(5, 10)}), pos(map[string]int64{"t/0": 1}))
		dw.Marks = marksOf(micros(6, 10), clk.Now())
		r.submit(t, dw)
		r.nextAck(t)
		if got := noticeIDs(notes.take()); !slices.Equal(got, []string{"db.events/ts_hour=2026-11-23-05/ready"}) {
			t.Fatalf("checkpoint 1 announced %v", got)
		}
		// Delivered after its commit: only the next commit can record that,
		// so until then a restart would send it again.
		st, err := LoadState(reload(t, cat, tt.tbl), "s1")
		if err != nil {
			t.Fatal(err)
		}
		if got := noticeIDs(st.Notify.Undelivered); !slices.Equal(got, []string{"db.events/ts_hour=2026-11-23-05/ready"}) {
			t.Errorf("after checkpoint 1: undelivered %v", got)
		}

		// 06:00 is announced but never delivered. t/1 holds the watermark
		// at 07:05, behind t/0.
		notes.setDeliver(false)
		clk.set(hourAt(7, 40))
		dw = dataWritten(2, 0, hourFiles(t, tt, 1, event{id: 2, ts: micros(6, 20)}), pos(map[string]int64{"t/0": 2, "t/1": 1}))
		dw.Marks = map[watermark.Key]watermark.Partition{
			t0: {MaxEventTime: micros(7, 30), LastRecord: clk.Now()},
			t1: {MaxEventTime: micros(7, 5), LastRecord: clk.Now()},
		}
		r.submit(t, dw)
		s2 = r.nextAck(t).snapshot
		undelivered = notes.take()
		c2 := commitOf{snapshot: s2, checkpoint: 2, watermark: hourAt(7, 5), emitted: hourAt(7, 40)}
		sameNotices(t, "checkpoint 2", undelivered, c2.notices(slice{partition.Ready, 6, 1, 1}))

		// Checkpoint 3 only moves positions: it records that 05:00 was
		// delivered and keeps 06:00.
		clk.set(hourAt(7, 50))
		r.submit(t, dataWritten(3, 0, nil, pos(map[string]int64{"t/0": 3})))
		if a := r.nextAck(t); a.snapshot == 0 {
			t.Fatal("checkpoint 3 made no snapshot")
		}
		if got := notes.take(); len(got) != 0 {
			t.Errorf("checkpoint 3 announced %v", noticeIDs(got))
		}
		late.expect(t, "first run", watermark.None, micros(6, 0), micros(7, 0), micros(7, 0))
	})
	if !ok {
		return
	}

	// The state of checkpoint 3 lists 06:00 with the snapshot that
	// announced it, not its own.
	st, err := LoadState(reload(t, cat, tt.tbl), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := noticeIDs(st.Notify.Undelivered), []string{"db.events/ts_hour=2026-11-23-06/ready"}; !slices.Equal(got, want) {
		t.Fatalf("after the first run: undelivered %v, want %v", got, want)
	}
	if got := st.Notify.Undelivered[0].SnapshotID; got != s2 {
		t.Errorf("stored notice has snapshot %d, want %d", got, s2)
	}

	var s5 int64 // the snapshot that announced 07:00
	ok = t.Run("restart", func(t *testing.T) {
		notes := &noticeLog{deliver: true}
		var late lateLog
		clk.set(hourAt(8, 0))
		r := startAnnouncing(t, cat, reload(t, cat, tt.tbl), 1, CommitterOptions{RunID: "run2", Now: clk.Now}, announcing(notes, &late))
		// AddTable sent 06:00 again, as it was.
		sameNotices(t, "after restart", notes.take(), undelivered)
		late.expect(t, "after restart", micros(7, 0))
		notes.setDeliver(false)

		// t/1 moves on to 08:10; t/0, not heard of since the restart, holds
		// the watermark at the 07:30 the table recorded for it.
		dw := dataWritten(4, 0, nil, pos(map[string]int64{"t/1": 2}))
		dw.Marks = map[watermark.Key]watermark.Partition{t1: {MaxEventTime: micros(8, 10), LastRecord: clk.Now()}}
		r.submit(t, dw)
		if a := r.nextAck(t); a.snapshot == 0 || a.cp.Checkpoint != 4 {
			t.Fatalf("checkpoint 4 acknowledged as %d with snapshot %d", a.cp.Checkpoint, a.snapshot)
		}
		if got := notes.take(); len(got) != 0 {
			t.Errorf("checkpoint 4 announced %v", noticeIDs(got))
		}
		st, err := LoadState(reload(t, cat, tt.tbl), "s1")
		if err != nil {
			t.Fatal(err)
		}
		// The delivery of 06:00 is recorded.
		if len(st.Notify.Undelivered) != 0 {
			t.Errorf("after checkpoint 4: undelivered %v", noticeIDs(st.Notify.Undelivered))
		}
		if st.Notify.Watermark != micros(7, 30) {
			t.Errorf("after checkpoint 4: watermark %v, want 07:30", times([]int64{st.Notify.Watermark}))
		}

		// t/0 reaches 08:20: 07:00 is announced empty, and not delivered.
		dw = dataWritten(5, 0, nil, pos(map[string]int64{"t/0": 4}))
		dw.Marks = map[watermark.Key]watermark.Partition{t0: {MaxEventTime: micros(8, 20), LastRecord: clk.Now()}}
		r.submit(t, dw)
		s5 = r.nextAck(t).snapshot
		undelivered = notes.take()
		c5 := commitOf{snapshot: s5, checkpoint: 5, watermark: hourAt(8, 10), emitted: hourAt(8, 0)}
		sameNotices(t, "checkpoint 5", undelivered, c5.notices(slice{partition.Empty, 7, 0, 0}))
	})
	if !ok {
		return
	}

	t.Run("second restart", func(t *testing.T) {
		notes := &noticeLog{deliver: true}
		var late lateLog
		startAnnouncing(t, cat, reload(t, cat, tt.tbl), 1, CommitterOptions{RunID: "run3", Now: clk.Now}, announcing(notes, &late))
		// Only 07:00: its snapshot, stored as unknown in the summary of
		// the commit that made it due, is that commit's.
		sameNotices(t, "after the second restart", notes.take(), undelivered)
		late.expect(t, "after the second restart", micros(8, 0))
	})
}

// TestCommitterDeliveryDuringCommit: a notice delivered while the next
// commit is under way is still listed by that commit, whose state was
// prepared before; the commit after drops it.
func TestCommitterDeliveryDuringCommit(t *testing.T) {
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", []string{"hour(ts)"}, eventCols...)
	notes := &noticeLog{}
	faulty := &faultyCatalog{Catalog: cat}
	faulty.before = func(_ context.Context, n int) error {
		if n == 2 {
			notes.release()
		}
		return nil
	}
	clk := &testClock{now: hourAt(6, 15)}
	r := startAnnouncing(t, faulty, reload(t, faulty, tt.tbl), 1, CommitterOptions{Now: clk.Now}, Announcing{
		Watermark: watermark.Config{IdleTimeout: time.Hour}, Slicing: hourSlicing, Notify: notes.notify,
	})
	dw := dataWritten(1, 0, hourFiles(t, tt, 1, event{id: 1, ts: micros(5, 10)}), pos(map[string]int64{"t/0": 1}))
	dw.Marks = marksOf(micros(6, 10), clk.Now())
	r.submit(t, dw)
	r.nextAck(t)
	ready := []string{"db.events/ts_hour=2026-11-23-05/ready"}
	if got := noticeIDs(notes.take()); !slices.Equal(got, ready) {
		t.Fatalf("checkpoint 1 announced %v, want %v", got, ready)
	}
	for i, want := range [][]string{ready, nil} {
		cp := int64(i + 2)
		r.submit(t, dataWritten(cp, 0, nil, pos(map[string]int64{"t/0": 1 + cp})))
		r.nextAck(t)
		st := notifyState(t, lastStreamSnapshot(t, reload(t, cat, tt.tbl)))
		if got := noticeIDs(st.Undelivered); !slices.Equal(got, want) {
			t.Errorf("checkpoint %d: undelivered %v, want %v", cp, got, want)
		}
	}
}

// TestCommitterWatermarkHeldBack: a source partition known without
// records holds the watermark back (at none, on a new table) until it goes
// idle; the slicing starts at the data meanwhile but announces nothing.
func TestCommitterWatermarkHeldBack(t *testing.T) {
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", []string{"hour(ts)"}, eventCols...)
	clk := &testClock{now: hourAt(6, 15)}
	notes := &noticeLog{deliver: true}
	var late lateLog
	r := startAnnouncing(t, cat, tt.tbl, 1, CommitterOptions{Now: clk.Now}, Announcing{
		Watermark: watermark.Config{IdleTimeout: time.Hour}, Slicing: hourSlicing, Notify: notes.notify, LateBefore: late.record,
	})
	t0, t1 := watermark.Key{Topic: "t", Partition: 0}, watermark.Key{Topic: "t", Partition: 1}
	dw := dataWritten(1, 0, hourFiles(t, tt, 1, event{id: 1, ts: micros(5, 10)}), pos(map[string]int64{"t/0": 1, "t/1": 0}))
	dw.Marks = map[watermark.Key]watermark.Partition{
		t0: {MaxEventTime: micros(6, 10), LastRecord: clk.Now()},
		t1: {MaxEventTime: watermark.None, LastRecord: hourAt(5, 20)},
	}
	r.submit(t, dw)
	r.nextAck(t)
	if got := notes.take(); len(got) != 0 {
		t.Errorf("checkpoint 1 announced %v without a watermark", noticeIDs(got))
	}
	snap := lastStreamSnapshot(t, reload(t, cat, tt.tbl))
	if got, want := snap.Summary.Properties[PropWatermark], strconv.FormatInt(watermark.None, 10); got != want {
		t.Errorf("checkpoint 1: %s = %s, want %s", PropWatermark, got, want)
	}
	if st := notifyState(t, snap); !st.Started || st.Through != ord(5) || st.Watermark != watermark.None {
		t.Errorf("checkpoint 1: state started %v through %d watermark %d, want through %d and none",
			st.Started, st.Through, st.Watermark, ord(5))
	}

	// t/1 has been silent for over an hour: t/0 alone makes the watermark.
	clk.set(hourAt(6, 25))
	dw = dataWritten(2, 0, nil, pos(map[string]int64{"t/0": 2}))
	dw.Marks = marksOf(micros(6, 20), clk.Now())
	r.submit(t, dw)
	a2 := r.nextAck(t)
	c2 := commitOf{snapshot: a2.snapshot, checkpoint: 2, watermark: hourAt(6, 20), emitted: hourAt(6, 25)}
	sameNotices(t, "checkpoint 2", notes.take(), c2.notices(slice{partition.Ready, 5, 1, 1}))
	// Nothing is late before something was announced.
	late.expect(t, "after checkpoint 2", watermark.None, watermark.None, micros(6, 0))
}

// TestCommitterWatermarkWithoutNotices: without a slicing the committer
// still records the watermark and event times, but no announcement state,
// and LateBefore hears nothing.
func TestCommitterWatermarkWithoutNotices(t *testing.T) {
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", []string{"hour(ts)"}, eventCols...)
	clk := &testClock{now: hourAt(6, 15)}
	var late lateLog
	r := startAnnouncing(t, cat, tt.tbl, 1, CommitterOptions{Now: clk.Now}, Announcing{
		Watermark: watermark.Config{OutOfOrderness: 5 * time.Minute, IdleTimeout: time.Hour}, LateBefore: late.record,
	})
	dw := dataWritten(1, 0, hourFiles(t, tt, 1, event{id: 1, ts: micros(5, 10)}), pos(map[string]int64{"t/0": 1}))
	dw.Marks = marksOf(micros(6, 10), clk.Now())
	r.submit(t, dw)
	r.nextAck(t)
	props := lastStreamSnapshot(t, reload(t, cat, tt.tbl)).Summary.Properties
	if got, want := props[PropWatermark], strconv.FormatInt(micros(6, 5), 10); got != want {
		t.Errorf("%s = %s, want %s", PropWatermark, got, want)
	}
	if got, want := props[PropEventTimes], pos(map[string]int64{"t/0": micros(6, 10)}).Encode(); got != want {
		t.Errorf("%s = %s, want %s", PropEventTimes, got, want)
	}
	if got, ok := props[PropNotify]; ok {
		t.Errorf("%s = %s without notices", PropNotify, got)
	}
	late.expect(t, "without notices")

	// A restarted committer keeps the watermark from going back.
	st, err := LoadState(reload(t, cat, tt.tbl), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Notify.Watermark != micros(6, 5) {
		t.Errorf("LoadState watermark %v, want 06:05", times([]int64{st.Notify.Watermark}))
	}
}

// TestCommitterAnnouncesWithoutNotify: with the table_property target
// alone there is no Notify ("nil: no delivery targets"), so no notice is
// ever delivered, and none should be kept as undelivered: the state is
// written into every snapshot summary, which would grow with every hour
// announced for as long as the table lives.
func TestCommitterAnnouncesWithoutNotify(t *testing.T) {
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", []string{"hour(ts)"}, eventCols...)
	clk := &testClock{now: hourAt(6, 15)}
	r := startAnnouncing(t, cat, tt.tbl, 1, CommitterOptions{Now: clk.Now}, Announcing{
		Watermark: watermark.Config{IdleTimeout: time.Minute}, Slicing: hourSlicing, Property: true,
	})
	dw := dataWritten(1, 0, hourFiles(t, tt, 1, event{id: 1, ts: micros(5, 10)}), pos(map[string]int64{"t/0": 1}))
	dw.Marks = marksOf(micros(6, 10), clk.Now())
	r.submit(t, dw)
	r.nextAck(t)
	for h := 7; h <= 12; h++ {
		clk.set(hourAt(h, 0))
		r.submit(t, dataWritten(int64(h-5), 0, nil, pos(map[string]int64{"t/0": 1})))
		if a := r.nextAck(t); a.snapshot == 0 {
			t.Fatalf("the idle clock at %02d:00 announced nothing", h)
		}
	}
	tbl := reload(t, cat, tt.tbl)
	checkReadyProps(t, "at 12:00", tbl, "ts_hour=2026-11-23-11", hourAt(12, 0), hourAt(12, 0))
	st := notifyState(t, lastStreamSnapshot(t, tbl))
	if st.Through != ord(12) {
		t.Errorf("through %d, want %d", st.Through, ord(12))
	}
	if len(st.Undelivered) != 0 {
		t.Errorf("%d notices kept as undelivered without delivery targets: %v", len(st.Undelivered), noticeIDs(st.Undelivered))
	}
}
