package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/etl"
)

// checkRowsOnce checks that the writers received exactly the records
// want[partition] = [from, to) of each partition, each once, and each
// partition's in order.
func checkRowsOnce(t *testing.T, rows []writtenRow, want map[int32][2]int) {
	t.Helper()
	seen := map[string]int{}
	last := map[int32]int64{}
	for _, r := range rows {
		seen[r.id]++
		var p int32
		var n int
		if _, err := fmt.Sscanf(r.id, "p%d-%d", &p, &n); err != nil || int64(n) != r.n {
			t.Fatalf("row %+v: id does not match n", r)
		}
		if prev, ok := last[p]; ok && r.n <= prev {
			t.Errorf("partition %d: record %d written after %d", p, r.n, prev)
		}
		last[p] = r.n
		if wantEvent := (baseMillis + r.n) * 1000; r.event != wantEvent {
			t.Errorf("row %s: event time %d, want %d µs", r.id, r.event, wantEvent)
		}
	}
	total := 0
	for p, rng := range want {
		for n := rng[0]; n < rng[1]; n++ {
			id := fmt.Sprintf("p%d-%d", p, n)
			switch seen[id] {
			case 1:
			case 0:
				t.Errorf("record %s never reached a writer", id)
			default:
				t.Errorf("record %s reached the writers %d times", id, seen[id])
			}
			delete(seen, id)
		}
		total += rng[1] - rng[0]
	}
	for id := range seen {
		t.Errorf("record %s reached a writer but was not expected", id)
	}
	if len(rows) != total {
		t.Errorf("%d rows written, want %d", len(rows), total)
	}
}

// sumCounts adds up checkpoints' counts and the rows of their files.
func sumCounts(acks []checkpoint.DataWritten) (c checkpoint.Counts, fileRows int64) {
	for _, a := range acks {
		c.Add(a.Counts)
		for _, f := range a.Files {
			fileRows += f.Count()
		}
	}
	return c, fileRows
}

// drainAcks returns the acknowledged checkpoints not read yet.
func drainAcks(c *ackCommitter) []checkpoint.DataWritten {
	var out []checkpoint.DataWritten
	for {
		select {
		case dw := <-c.acked:
			out = append(out, dw)
		default:
			return out
		}
	}
}

// TestStreamDeliversEveryRecordOnce: records produced before and while the
// stream runs reach the table writers once each, in partition order; the
// checkpoints that cover them are numbered on from the table's last one and
// their positions end at the end of the log.
func TestStreamDeliversEveryRecordOnce(t *testing.T) {
	e := newEnv(t, 3)
	for p := range e.parts {
		e.produceRange(p, 0, 150, 0)
	}
	s := e.newStream(streamOptions{startCheckpoint: 41})
	leaks := goleak.IgnoreCurrent()
	r := e.run(s)
	for p := range e.parts {
		e.produceRange(p, 150, 300, 0)
	}
	end := checkpoint.Positions{e.topic: {0: 300, 1: 300, 2: 300}}
	acks := e.committer.waitPositions(t, checkpoint.Positions{}, end)

	// Group offsets follow the commits, for lag monitoring.
	adm := kadm.NewClient(e.newClient())
	defer adm.Close()
	waitFor(t, "group offsets at the committed positions", func() bool {
		offs, err := adm.FetchOffsets(context.Background(), s.GroupID())
		if err != nil {
			return false
		}
		for p, want := range end[e.topic] {
			if o, ok := offs.Lookup(e.topic, p); !ok || o.Err != nil || o.At != want {
				return false
			}
		}
		return true
	})
	if got := s.GroupID(); got != "sluice.it.clicks" {
		t.Errorf("GroupID() = %q", got)
	}
	adm.Close() // its broker connections are not the stream's

	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// The broker's goroutines serving other clients (the producer's) are
	// the test's, not the stream's.
	goleak.VerifyNone(t, leaks,
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*clientConn).read.func1"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*clientConn).read"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*clientConn).write"))

	// The last checkpoint, taken on the way out, covers nothing new.
	acks = append(acks, drainAcks(e.committer)...)
	for i, a := range acks {
		if want := int64(42 + i); a.Checkpoint != want {
			t.Fatalf("checkpoint #%d is %d, want %d (numbers start after StartCheckpoint and increase by one)", i, a.Checkpoint, want)
		}
	}
	pos := checkpoint.Positions{}
	for _, a := range acks {
		pos.Merge(a.Positions)
	}
	if pos.Encode() != end.Encode() {
		t.Errorf("positions after the last checkpoint = %s, want %s", pos.Encode(), end.Encode())
	}
	// Every worker reports every checkpoint.
	perCheckpoint := map[int64]map[int]bool{}
	for _, p := range e.committer.submitted() {
		if perCheckpoint[p.Checkpoint] == nil {
			perCheckpoint[p.Checkpoint] = map[int]bool{}
		}
		if perCheckpoint[p.Checkpoint][p.Worker] {
			t.Errorf("worker %d reported checkpoint %d twice", p.Worker, p.Checkpoint)
		}
		perCheckpoint[p.Checkpoint][p.Worker] = true
	}
	for cp, ws := range perCheckpoint {
		if len(ws) != 2 {
			t.Errorf("checkpoint %d reported by workers %v, want both", cp, ws)
		}
	}

	checkRowsOnce(t, e.table.snapshot(), map[int32][2]int{0: {0, 300}, 1: {0, 300}, 2: {0, 300}})
	counts, fileRows := sumCounts(acks)
	if want := (checkpoint.Counts{Read: 900, Written: 900}); counts != want {
		t.Errorf("counts = %+v, want %+v", counts, want)
	}
	if fileRows != 900 {
		t.Errorf("files hold %d rows, want 900", fileRows)
	}
	var maxEvent int64
	for _, a := range acks {
		maxEvent = max(maxEvent, a.MaxEventTime)
	}
	if want := (baseMillis + 299) * int64(1000); maxEvent != want {
		t.Errorf("MaxEventTime = %d, want %d", maxEvent, want)
	}

	st := s.Stats()
	if st.Read != 900 || st.Written != 900 || st.Committed != 900 || st.DeadLettered != 0 {
		t.Errorf("Stats = %+v", st)
	}
	if st.Checkpoint != acks[len(acks)-1].Checkpoint || st.Positions.Encode() != end.Encode() {
		t.Errorf("Stats: checkpoint %d positions %s, want %d %s", st.Checkpoint, st.Positions.Encode(), acks[len(acks)-1].Checkpoint, end.Encode())
	}
	if st.LastCommit.IsZero() {
		t.Error("Stats.LastCommit not set")
	}
	if got := metricValue(t, e.metrics.records.WithLabelValues("clicks", "committed")); got != 900 {
		t.Errorf("sluice_records_total{stage=committed} = %v, want 900", got)
	}
	if got := metricValue(t, e.metrics.records.WithLabelValues("clicks", "read")); got != 900 {
		t.Errorf("sluice_records_total{stage=read} = %v, want 900", got)
	}
}

// TestStreamResumesFromStartPositions: the table's positions decide where
// reading starts, whatever the consumer group committed; partitions without
// a position start at start_offset.
func TestStreamResumesFromStartPositions(t *testing.T) {
	e := newEnv(t, 3)
	for p := range e.parts {
		e.produceRange(p, 0, 20, 0)
	}
	start := checkpoint.Positions{e.topic: {0: 5, 1: 0}} // partition 2: no position

	// The group's offsets, which the table's positions must override.
	s1 := e.newStream(streamOptions{startPositions: start, startCheckpoint: 7})
	group := kadm.Offsets{e.topic: {}}
	for p := range e.parts {
		group[e.topic][p] = kadm.Offset{Topic: e.topic, Partition: p, At: 15, LeaderEpoch: -1}
	}
	if err := kadm.NewClient(e.producer).CommitAllOffsets(context.Background(), s1.GroupID(), group); err != nil {
		t.Fatalf("commit group offsets: %v", err)
	}

	r := e.run(s1)
	end := checkpoint.Positions{e.topic: {0: 20, 1: 20, 2: 20}}
	acks := e.committer.waitPositions(t, start, end)
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if acks[0].Checkpoint != 8 {
		t.Errorf("first checkpoint = %d, want 8", acks[0].Checkpoint)
	}
	checkRowsOnce(t, e.table.snapshot(), map[int32][2]int{0: {5, 20}, 1: {0, 20}, 2: {0, 20}})

	// A second run resumes where the first committed and reads only what
	// was produced since.
	st := s1.Stats()
	if st.Positions.Encode() != end.Encode() {
		t.Fatalf("Stats().Positions = %s, want %s", st.Positions.Encode(), end.Encode())
	}
	drainAcks(e.committer)
	for p := range e.parts {
		e.produceRange(p, 20, 30, 0)
	}
	e.table = newMemTable()
	s2 := e.newStream(streamOptions{startPositions: st.Positions, startCheckpoint: st.Checkpoint})
	r = e.run(s2)
	acks = e.committer.waitPositions(t, st.Positions, checkpoint.Positions{e.topic: {0: 30, 1: 30, 2: 30}})
	if err := r.stop(); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if acks[0].Checkpoint != st.Checkpoint+1 {
		t.Errorf("second run's first checkpoint = %d, want %d", acks[0].Checkpoint, st.Checkpoint+1)
	}
	checkRowsOnce(t, e.table.snapshot(), map[int32][2]int{0: {20, 30}, 1: {20, 30}, 2: {20, 30}})
}

// TestStreamStartOffsetLatest: with start_offset latest, a partition without
// a position starts at its end, and one with a position still starts there.
func TestStreamStartOffsetLatest(t *testing.T) {
	e := newEnv(t, 2)
	e.pipeline.Kafka.StartOffset = "latest"
	e.produceRange(0, 0, 10, 0)
	e.produceRange(1, 0, 10, 0)
	// The end of partition 0 is looked up once its assignment is known;
	// records produced before that would be skipped too. The broker handles
	// requests one at a time, so a record produced after it has seen the
	// lookup lands after the end it returns.
	listed := make(chan struct{})
	e.cluster.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.DropControl()
		close(listed)
		return nil, nil, false
	})
	start := checkpoint.Positions{e.topic: {1: 4}}
	s := e.newStream(streamOptions{startPositions: start})
	r := e.run(s)
	select {
	case <-listed:
	case <-time.After(testTimeout):
		t.Fatal("the stream never looked up where partition 0 ends")
	}
	e.produceRange(0, 10, 15, 0)
	e.committer.waitPositions(t, start, checkpoint.Positions{e.topic: {0: 15, 1: 10}})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkRowsOnce(t, e.table.snapshot(), map[int32][2]int{0: {10, 15}, 1: {4, 10}})
}

// TestStreamShutdownTakesLastCheckpoint: cancelling Run stops reading, takes
// one last checkpoint and returns only once it is committed.
func TestStreamShutdownTakesLastCheckpoint(t *testing.T) {
	e := newEnv(t, 2)
	e.pipeline.Checkpoint.Interval = config.Duration(time.Hour) // only the last checkpoint
	s := e.newStream(streamOptions{startCheckpoint: 3})
	r := e.run(s)
	e.produceRange(0, 0, 50, 0)
	e.produceRange(1, 0, 50, 0)
	waitFor(t, "every record to reach a writer", func() bool { return len(e.table.snapshot()) == 100 })

	e.committer.holdAcks()
	r.cancel()
	waitFor(t, "both workers to submit the last checkpoint", func() bool { return len(e.committer.submitted()) == 2 })
	if r.returned() {
		t.Fatal("Run returned before its last checkpoint was committed")
	}
	for _, p := range e.committer.submitted() {
		if p.Checkpoint != 4 {
			t.Errorf("worker %d submitted checkpoint %d, want 4", p.Worker, p.Checkpoint)
		}
	}
	e.committer.releaseAcks()
	if err := r.wait(); err != nil {
		t.Fatalf("Run = %v after its last checkpoint committed, want nil", err)
	}
	acks := drainAcks(e.committer)
	if len(acks) != 1 {
		t.Fatalf("%d checkpoints committed, want the last one only", len(acks))
	}
	if got, want := acks[0].Positions.Encode(), (checkpoint.Positions{e.topic: {0: 50, 1: 50}}).Encode(); got != want {
		t.Errorf("last checkpoint positions = %s, want %s", got, want)
	}
	if acks[0].Counts.Written != 100 || len(acks[0].Files) != 2 {
		t.Errorf("last checkpoint wrote %d rows in %d files, want 100 in 2", acks[0].Counts.Written, len(acks[0].Files))
	}
	if st := s.Stats(); st.Checkpoint != 4 || st.Committed != 100 {
		t.Errorf("Stats: checkpoint %d committed %d, want 4 and 100", st.Checkpoint, st.Committed)
	}
}

// TestStreamShutdownTimeout: a last checkpoint that does not commit within
// checkpoint.shutdown_timeout makes Run return an error instead of hanging.
func TestStreamShutdownTimeout(t *testing.T) {
	e := newEnv(t, 1)
	e.pipeline.Checkpoint.Interval = config.Duration(time.Hour)
	e.pipeline.Checkpoint.ShutdownTimeout = config.Duration(200 * time.Millisecond)
	s := e.newStream(streamOptions{})
	r := e.run(s)
	e.produceRange(0, 0, 10, 0)
	waitFor(t, "every record to reach a writer", func() bool { return len(e.table.snapshot()) == 10 })

	e.committer.holdAcks()
	start := time.Now()
	err := r.stop()
	if err == nil {
		t.Fatal("Run = nil though its last checkpoint never committed")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last checkpoint 1 did not commit within 200ms") {
		t.Errorf("Run error = %v, want the last checkpoint's timeout", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("Run returned after %s, before the shutdown timeout", took)
	}
	// The commit may still land after Run gave up; acknowledging it then is
	// harmless.
	e.committer.releaseAcks()
	if st := s.Stats(); st.Checkpoint != 1 || st.Committed != 10 {
		t.Errorf("Stats after a late ack: checkpoint %d committed %d", st.Checkpoint, st.Committed)
	}
}

// TestStreamCancelledBeforeStart: a Run whose context is already done still
// takes its (empty) last checkpoint and returns nil.
func TestStreamCancelledBeforeStart(t *testing.T) {
	e := newEnv(t, 1)
	s := e.newStream(streamOptions{startCheckpoint: 9})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	acks := drainAcks(e.committer)
	if len(acks) != 1 || acks[0].Checkpoint != 10 || acks[0].Positions.Count() != 0 {
		t.Errorf("checkpoints = %+v, want one empty checkpoint 10", acks)
	}
}

// badRecord returns a record the decoder refuses, of three kinds, or nil
// for a good record.
func badRecord(partition int32, n int) []byte {
	switch n % 10 {
	case 3:
		return []byte(`{"id": "broken`)
	case 7:
		return fmt.Appendf(nil, `{"id":"p%d-%d","n":"seven","ts":%d}`, partition, n, baseMillis+n)
	case 9:
		return fmt.Appendf(nil, `{"n":%d,"ts":%d}`, n, baseMillis+n) // required id missing
	}
	return nil
}

// TestStreamDeadLetters: records that do not decode go to the dead letters
// with their origin, and are flushed before any checkpoint that moves past
// them is submitted.
func TestStreamDeadLetters(t *testing.T) {
	e := newEnv(t, 2)
	type origin struct {
		partition int32
		offset    int64
	}
	bad := map[origin][]byte{}
	for p := range e.parts {
		for n := range 100 {
			v := badRecord(p, n)
			if v == nil {
				v = record(p, n, 0)
			} else {
				bad[origin{p, int64(n)}] = v // offsets are n: the partitions start empty
			}
			e.produce(p, v)
		}
	}
	var violations []string
	e.committer.check = func(dw checkpoint.DataWritten) {
		flushed, _ := e.dead.entries()
		done := map[origin]bool{}
		for _, d := range flushed {
			done[origin{d.Partition, d.Offset}] = true
		}
		for o := range bad {
			if pos, ok := dw.Positions.Get(e.topic, o.partition); ok && pos > o.offset && !done[o] {
				violations = append(violations, fmt.Sprintf("checkpoint %d of worker %d moves partition %d to %d before dead letter @%d was flushed",
					dw.Checkpoint, dw.Worker, o.partition, pos, o.offset))
			}
		}
	}
	s := e.newStream(streamOptions{})
	r := e.run(s)
	acks := e.committer.waitPositions(t, checkpoint.Positions{}, checkpoint.Positions{e.topic: {0: 100, 1: 100}})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	e.committer.mu.Lock()
	for _, v := range violations {
		t.Error(v)
	}
	e.committer.mu.Unlock()

	flushed, pending := e.dead.entries()
	if len(pending) != 0 {
		t.Errorf("%d dead letters never flushed", len(pending))
	}
	got := map[origin]bool{}
	for _, d := range flushed {
		o := origin{d.Partition, d.Offset}
		want, ok := bad[o]
		switch {
		case !ok:
			t.Errorf("dead letter for good record %d@%d", o.partition, o.offset)
		case got[o]:
			t.Errorf("record %d@%d dead-lettered twice", o.partition, o.offset)
		case d.Stage != "parse" || d.Stream != "clicks" || d.Topic != e.topic || string(d.Value) != string(want) || d.Reason == "":
			t.Errorf("dead letter %d@%d = %+v", o.partition, o.offset, d)
		case d.Timestamp.IsZero():
			t.Errorf("dead letter %d@%d has no record timestamp", o.partition, o.offset)
		}
		got[o] = true
		if o.offset%10 == 7 && !strings.Contains(d.Reason, "field n") {
			t.Errorf("reason for a bad n = %q, want it to name field n", d.Reason)
		}
	}
	if len(got) != len(bad) {
		t.Errorf("%d records dead-lettered, want %d", len(got), len(bad))
	}

	rows := e.table.snapshot()
	written := map[string]bool{}
	for _, row := range rows {
		written[row.id] = true
	}
	for p := range e.parts {
		for n := range 100 {
			id := fmt.Sprintf("p%d-%d", p, n)
			if isBad := bad[origin{p, int64(n)}] != nil; isBad == written[id] {
				t.Errorf("record %s: bad %t, written %t", id, isBad, written[id])
			}
		}
	}
	if len(rows) != 140 {
		t.Errorf("%d rows written, want 140", len(rows))
	}
	counts, _ := sumCounts(acks)
	if want := (checkpoint.Counts{Read: 200, Written: 140, DeadLettered: 60}); counts != want {
		t.Errorf("counts = %+v, want %+v", counts, want)
	}
	if st := s.Stats(); st.DeadLettered != 60 {
		t.Errorf("Stats.DeadLettered = %d, want 60", st.DeadLettered)
	}
	if got := metricValue(t, e.metrics.deadLetters.WithLabelValues("clicks", "parse")); got != 60 {
		t.Errorf("sluice_dead_letters_total{stage=parse} = %v, want 60", got)
	}
}

// TestStreamETL: records the ETL filter drops are counted, not written;
// records an expression fails on are dead-lettered at stage "etl".
func TestStreamETL(t *testing.T) {
	e := newEnv(t, 1)
	// n runs 1..34: no n is both filtered (n%5 == 0) and failing (n%7 == 0).
	e.produceRange(0, 1, 35, 0)
	s := e.newStream(streamOptions{etl: etl.Config{
		Filter:  "n % 5 != 0",
		Columns: []etl.Column{{Name: "inverse", Expr: "100 / (n % 7)"}},
	}})
	r := e.run(s)
	acks := e.committer.waitPositions(t, checkpoint.Positions{}, checkpoint.Positions{e.topic: {0: 34}})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	counts, _ := sumCounts(acks)
	if want := (checkpoint.Counts{Read: 34, Written: 24, Filtered: 6, DeadLettered: 4}); counts != want {
		t.Errorf("counts = %+v, want %+v", counts, want)
	}
	for _, row := range e.table.snapshot() {
		if row.n%5 == 0 || row.n%7 == 0 {
			t.Errorf("record %s written", row.id)
		}
	}
	flushed, _ := e.dead.entries()
	var offsets []int64
	for _, d := range flushed {
		if d.Stage != "etl" || !strings.Contains(d.Reason, "division by zero") {
			t.Errorf("dead letter %+v, want stage etl and the expression's error", d)
		}
		offsets = append(offsets, d.Offset)
	}
	// Offsets are n-1: the partition starts empty and n starts at 1.
	if fmt.Sprint(offsets) != "[6 13 20 27]" {
		t.Errorf("dead-lettered offsets %v, want [6 13 20 27]", offsets)
	}
	if st := s.Stats(); st.Filtered != 6 || st.DeadLettered != 4 || st.Written != 24 {
		t.Errorf("Stats = %+v", st)
	}
	if got := metricValue(t, e.metrics.deadLetters.WithLabelValues("clicks", "etl")); got != 4 {
		t.Errorf("sluice_dead_letters_total{stage=etl} = %v, want 4", got)
	}
}

// TestStreamDeadLetterFlushFailure: when dead letters cannot be flushed, no
// checkpoint moves past them and Run fails.
func TestStreamDeadLetterFlushFailure(t *testing.T) {
	e := newEnv(t, 1)
	flushErr := errors.New("dead-letter topic unavailable")
	e.dead.flushErr = flushErr
	e.produceRange(0, 0, 3, 0)
	e.produce(0, []byte("not json")) // offset 3
	e.produceRange(0, 4, 6, 0)
	s := e.newStream(streamOptions{})
	r := e.run(s)
	if err := r.wait(); !errors.Is(err, flushErr) {
		t.Fatalf("Run = %v, want the flush error", err)
	}
	for _, p := range e.committer.submitted() {
		if pos, ok := p.Positions.Get(e.topic, 0); ok && pos > 3 {
			t.Errorf("checkpoint %d moved past the unflushed dead letter to %d", p.Checkpoint, pos)
		}
	}
}

// TestStreamBackpressure: a worker stuck on a slow commit gets its partitions
// paused once its queue exceeds its share of the memory budget, while the
// poll loop keeps serving the other workers; once the commit goes through,
// everything arrives once and the partitions are resumed.
func TestStreamBackpressure(t *testing.T) {
	e := newEnv(t, 2)
	// Each worker's queue may hold an eighth of the memory budget, shared.
	share := int64(e.pipeline.MemoryBudget) / 8 / int64(e.pipeline.Writer.Workers)
	s := e.newStream(streamOptions{})
	slow := s.workerFor(e.topic, 0)
	other := s.workerFor(e.topic, 1)
	if slow == other {
		t.Fatal("partitions 0 and 1 hash to the same worker")
	}
	paused := e.metrics.paused.WithLabelValues("clicks")

	// The slow worker blocks in Submit at the first checkpoint, before any
	// record of partition 0 exists, so all of them queue up behind it.
	release := e.committer.block(slow.id)
	defer release()
	r := e.run(s)
	select {
	case <-e.committer.blocked:
	case <-time.After(testTimeout):
		t.Fatal("the slow worker never reached a checkpoint")
	}
	const big = 1500 // 1500 × 4KiB ≈ 6MiB, over the 4MiB share
	e.produceRange(0, 0, big, 4<<10)
	waitFor(t, "partition 0 to be paused", func() bool { return metricValue(t, paused) == 1 })
	if q := slow.q.queued(); q <= share {
		t.Errorf("slow worker's queue holds %d bytes while paused, want more than its share %d", q, share)
	}
	queued := e.metrics.queued.WithLabelValues("clicks")
	if got := metricValue(t, queued); got <= float64(share) {
		t.Errorf("sluice_queued_bytes = %v while paused, want more than the share %d", got, share)
	}
	if n := e.table.count("p0-"); n != 0 {
		t.Errorf("%d records of partition 0 written while its worker was blocked", n)
	}

	// Polling goes on: partition 1's worker still gets new records.
	e.produceRange(1, 0, 100, 0)
	waitFor(t, "partition 1's records while partition 0 is paused", func() bool { return e.table.count("p1-") == 100 })
	if got := metricValue(t, paused); got != 1 {
		t.Errorf("sluice_paused_partitions = %v, want 1", got)
	}

	release()
	e.committer.waitPositions(t, checkpoint.Positions{}, checkpoint.Positions{e.topic: {0: big, 1: 100}})
	waitFor(t, "partition 0 to be resumed", func() bool { return metricValue(t, paused) == 0 })
	// Everything committed was processed, so nothing is queued any more.
	if got := metricValue(t, queued); got != 0 {
		t.Errorf("sluice_queued_bytes = %v after everything committed, want 0", got)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkRowsOnce(t, e.table.snapshot(), map[int32][2]int{0: {0, big}, 1: {0, 100}})
}

// TestStreamWriterErrorStopsRun: an error from the table writer ends Run
// with it, and the checkpoint in progress is not submitted.
func TestStreamWriterErrorStopsRun(t *testing.T) {
	e := newEnv(t, 1)
	e.produceRange(0, 0, 5, 0)
	e.produce(0, []byte(`{"id":"","n":5,"ts":1}`)) // memWriter refuses an empty id
	s := e.newStream(streamOptions{})
	r := e.run(s)
	err := r.wait()
	if err == nil || !strings.Contains(err.Error(), "row without id") {
		t.Fatalf("Run = %v, want the writer's error", err)
	}
	for _, p := range e.committer.submitted() {
		if pos, ok := p.Positions.Get(e.topic, 0); ok && pos > 5 {
			t.Errorf("checkpoint %d moved past the failed record to %d", p.Checkpoint, pos)
		}
	}
}

// TestStreamWriterRejectsRow: a row the writer's format cannot hold
// dead-letters its record at stage "export" and the stream goes on.
func TestStreamWriterRejectsRow(t *testing.T) {
	e := newEnv(t, 1)
	e.produceRange(0, 0, 5, 0)
	e.produce(0, []byte(`{"id":"reject-1","n":5,"ts":1}`))
	e.produceRange(0, 6, 10, 0)
	s := e.newStream(streamOptions{})
	r := e.run(s)
	e.committer.waitPositions(t, checkpoint.Positions{}, checkpoint.Positions{e.topic: {0: 10}})
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	flushed, _ := e.dead.entries()
	if len(flushed) != 1 || flushed[0].Stage != "export" || flushed[0].Offset != 5 || !strings.Contains(flushed[0].Reason, "cannot hold") {
		t.Fatalf("dead letters = %+v, want the rejected record at stage export", flushed)
	}
	if rows := e.table.snapshot(); len(rows) != 9 {
		t.Errorf("%d rows written, want 9", len(rows))
	}
}

// TestPauseAfterQueueDrained: the poll loop decides to pause a partition
// after pushing to a full queue, but the worker may drain the queue (and
// find nothing to resume) before the pause happens. The pause must then not
// happen, or the partition would stay paused with nothing queued to resume it.
func TestPauseAfterQueueDrained(t *testing.T) {
	e := newEnv(t, 1)
	s := e.newStream(streamOptions{})
	cl := e.newClient()
	w := s.workers[0]
	const high = 1 << 20

	// poll: push makes the queue exceed its share...
	if q := w.q.push(item{bytes: high + 1}); q <= high {
		t.Fatalf("queued %d", q)
	}
	// ...worker: takes the batch, releases it and resumes (nothing paused yet)...
	if _, ok := w.q.pop(context.Background()); !ok {
		t.Fatal("pop")
	}
	if q := w.q.release(high + 1); q != 0 {
		t.Fatalf("queued %d after release", q)
	}
	w.resume(cl)
	// ...poll: pauses as decided.
	w.pause(cl, e.topic, 0, high)

	if p := cl.PauseFetchPartitions(nil); len(p) != 0 {
		t.Errorf("partitions %v paused with an empty queue: nothing would resume them", p)
	}
	if got := metricValue(t, e.metrics.paused.WithLabelValues("clicks")); got != 0 {
		t.Errorf("sluice_paused_partitions = %v, want 0", got)
	}

	// A pause while the queue is still full does happen, and resume undoes it.
	w.q.push(item{bytes: high + 1})
	w.pause(cl, e.topic, 0, high)
	if p := cl.PauseFetchPartitions(nil); len(p[e.topic]) != 1 {
		t.Errorf("paused partitions = %v, want %s/0", p, e.topic)
	}
	w.resume(cl)
	if p := cl.PauseFetchPartitions(nil); len(p) != 0 {
		t.Errorf("paused partitions after resume = %v", p)
	}
}

func TestNewStreamIncompleteOptions(t *testing.T) {
	if _, err := NewStream(Options{}); err == nil {
		t.Error("NewStream(Options{}) = nil error")
	}
}

// TestStreamAlignsPartitions: a partition whose event time runs more than
// max_drift ahead of the stream's is paused until the others catch up,
// then read to the end.
func TestStreamAlignsPartitions(t *testing.T) {
	e := newEnv(t, 2)
	e.pipeline.Streams[0].Watermark = config.Watermark{MaxDrift: config.Duration(30 * time.Minute), IdleTimeout: config.Duration(time.Hour)}
	// A small budget: a worker's queue takes at most 1MiB before
	// backpressure pauses its partitions, bounding what is read ahead.
	e.pipeline.MemoryBudget = 8 << 20
	minutes := func(p int32, from, to int) {
		pad := strings.Repeat("x", 2000) // a fetch holds a few dozen records
		var vs [][]byte
		for i := from; i < to; i++ {
			vs = append(vs, fmt.Appendf(nil, `{"id":"p%d-%d","n":%d,"ts":%d,"pad":"%s"}`, p, i, i, baseMillis+int64(i)*60_000, pad))
			if len(vs) == 10 || i == to-1 { // small batches, as producers send them
				e.produce(p, vs...)
				vs = vs[:0]
			}
		}
	}
	minutes(1, 0, 10) // ten minutes
	s := e.newStream(streamOptions{})
	r := e.run(s)
	held := func() float64 { return metricValue(t, e.metrics.held.WithLabelValues("clicks")) }

	pos := checkpoint.Positions{}
	next := func() {
		t.Helper()
		select {
		case dw := <-e.committer.acked:
			pos.Merge(dw.Positions)
		case <-time.After(testTimeout):
			t.Fatalf("no checkpoint within %s; positions %s", testTimeout, pos.Encode())
		}
	}
	for p1, _ := pos.Get(e.topic, 1); p1 < 10; p1, _ = pos.Get(e.topic, 1) {
		next()
	}
	minutes(0, 0, 6000) // a hundred hours, while partition 1 is at minute 10
	for held() != 1 {
		next()
	}
	// Ten more checkpoints: partition 0 stays held well short of its end.
	for range 10 {
		next()
	}
	if p0, _ := pos.Get(e.topic, 0); p0 >= 2000 {
		t.Fatalf("partition 0 read to %d while partition 1 is at minute 10 (max_drift 30m)", p0)
	}
	minutes(1, 10, 6000)
	for pos.Encode() != (checkpoint.Positions{e.topic: {0: 6000, 1: 6000}}).Encode() {
		next()
	}
	// Partition 0 was resumed once partition 1 caught up: it reached its end.
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestStreamLatePolicies: records older than the announced time are dropped
// and counted with late.policy drop, written to the late writer with
// policy table, and written as usual with append; their event time still
// counts toward the partition's progress.
func TestStreamLatePolicies(t *testing.T) {
	for _, policy := range []string{"append", "drop", "table"} {
		t.Run(policy, func(t *testing.T) {
			e := newEnv(t, 1)
			e.pipeline.Streams[0].Late = config.Late{Policy: policy}
			e.produceRange(0, 0, 10, 0) // ts = baseMillis + n
			late := &memTable{}
			o := streamOptions{}
			if policy == "table" {
				o.late = late
			}
			s := e.newStream(o)
			// Records with n < 4 belong to announced time.
			s.SetLateBefore((baseMillis + 4) * 1000)
			r := e.run(s)
			acks := e.committer.waitPositions(t, checkpoint.Positions{}, checkpoint.Positions{e.topic: {0: 10}})
			if err := r.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			counts, _ := sumCounts(acks)
			wantWritten, wantLate := int64(6), int64(4)
			if policy == "append" {
				wantWritten, wantLate = 10, 0
			}
			if counts.Written != wantWritten || counts.Late != wantLate || counts.Read != 10 {
				t.Errorf("counts %+v, want %d written and %d late of 10", counts, wantWritten, wantLate)
			}
			if got := len(e.table.snapshot()); int64(got) != wantWritten {
				t.Errorf("%d rows in the table, want %d", got, wantWritten)
			}
			wantInLate := 0
			if policy == "table" {
				wantInLate = 4
			}
			if got := len(late.snapshot()); got != wantInLate {
				t.Errorf("%d rows in the late table, want %d", got, wantInLate)
			}
			var marks int
			for _, a := range acks {
				for _, m := range a.Marks {
					marks++
					if m.MaxEventTime != (baseMillis+9)*1000 {
						t.Errorf("partition mark %v, want the last record's event time", m)
					}
				}
			}
			if marks == 0 {
				t.Error("no partition marks reported")
			}
		})
	}
}
