package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/deadletter"
	"github.com/sluicehq/sluice/ingest/etl"
	"github.com/sluicehq/sluice/ingest/parse"
	"github.com/sluicehq/sluice/watermark"
)

// worker decodes, transforms and writes the records of the partitions
// hashed to it, in order, and seals its files at each barrier.
type worker struct {
	id  int
	s   *Stream
	q   *queue
	dec Decoder
	// unknown is what the decoder reported of unknown fields so far.
	unknown int64
	ev      *etl.Evaluator
	out     TableWriter
	lateOut TableWriter // late.policy table; nil otherwise
	// chg upserts change events (format canal or debezium) in place of out;
	// pending are the events since the last barrier.
	chg     ChangeWriter
	pending []pendingChange
	recent  recentIDs

	pmu    sync.Mutex
	paused map[topicPartition]struct{}

	// blocked partitions wait for the stream's restart: their next record
	// needs columns the stream does not have yet.
	blocked map[topicPartition]bool

	positions checkpoint.Positions
	counts    checkpoint.Counts
	// tally counts the checkpoint's records by event hour and outcome for
	// the audit trace; starts holds each partition's first offset in it.
	tally    checkpoint.Tally
	starts   checkpoint.Positions
	maxEvent int64
	// marks is the event-time progress of the partitions read since the
	// last barrier.
	marks map[watermark.Key]watermark.Partition
	key   []byte
	// slab holds the rows of the batch being processed. The table writer
	// keeps pointers into it until Flush, so rows are decoded in place and
	// never copied; it is reused once the batch is flushed.
	slab []parquet.Value
}

const (
	slabValues  = 32 << 10
	chunkValues = 4 << 10 // about 100 KiB of values between flushes
)

// flush writes the rows gathered so far and frees their memory for reuse.
func (w *worker) flush() error {
	if w.out != nil {
		if err := w.out.Flush(); err != nil {
			return fmt.Errorf("worker %d: %w", w.id, err)
		}
	}
	if w.lateOut != nil {
		if err := w.lateOut.Flush(); err != nil {
			return fmt.Errorf("worker %d: late table: %w", w.id, err)
		}
	}
	clear(w.slab) // drop references into the batch's records
	w.slab = w.slab[:0]
	w.dec.Reset()
	return nil
}

// next returns empty spare room at the end of the slab for one row.
func (w *worker) next() parquet.Row {
	if cap(w.slab)-len(w.slab) < 1024 {
		w.slab = make([]parquet.Value, 0, slabValues)
	}
	return w.slab[len(w.slab):len(w.slab)]
}

// keep marks a row returned from next's room as used. A row that outgrew
// the room was allocated elsewhere and needs nothing.
func (w *worker) keep(room, row parquet.Row) {
	if len(row) <= cap(room) {
		w.slab = w.slab[:len(w.slab)+len(row)]
	}
}

func newWorker(s *Stream, id int) (*worker, error) {
	var dec Decoder
	var err error
	if s.opts.NewDecoder != nil {
		dec, err = s.opts.NewDecoder()
	} else {
		dec, err = parse.NewJSON(s.opts.Input, parse.Options{
			EventTime: s.cfg.EventTime, MaxRecordBytes: int(s.cfg.MaxRecordBytes),
		})
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", s.cfg.Name, err)
	}
	w := &worker{id: id, s: s, q: newQueue(), dec: dec, paused: map[topicPartition]struct{}{}, positions: checkpoint.Positions{},
		tally: checkpoint.Tally{}, starts: checkpoint.Positions{},
		blocked: map[topicPartition]bool{}}
	if s.opts.Program != nil {
		if w.ev, err = s.opts.Program.Evaluator(s.opts.Input, s.opts.Output); err != nil {
			return nil, fmt.Errorf("stream %s: %w", s.cfg.Name, err)
		}
	}
	if s.opts.NewChangeWriter != nil {
		if w.chg, err = s.opts.NewChangeWriter(id); err != nil {
			return nil, fmt.Errorf("stream %s: %w", s.cfg.Name, err)
		}
	} else if w.out, err = s.opts.NewWriter(id); err != nil {
		return nil, fmt.Errorf("stream %s: %w", s.cfg.Name, err)
	}
	if s.opts.NewLateWriter != nil {
		if w.lateOut, err = s.opts.NewLateWriter(id); err != nil {
			return nil, fmt.Errorf("stream %s: late table: %w", s.cfg.Name, err)
		}
	}
	return w, nil
}

// pause stops fetching a partition whose push left the queue above high.
func (w *worker) pause(cl *kgo.Client, topic string, partition int32, high int64) {
	w.pmu.Lock()
	defer w.pmu.Unlock()
	// The worker may have drained the queue since the push, finding nothing
	// to resume; pausing now would leave the partition paused with nothing
	// queued to resume it. Checked under pmu: a release that brings the
	// queue below low after this check is followed by a resume that waits
	// for pmu, so it sees this pause.
	if w.q.queued() <= high {
		return
	}
	tp := topicPartition{topic, partition}
	if _, ok := w.paused[tp]; ok {
		return
	}
	w.paused[tp] = struct{}{}
	cl.PauseFetchPartitions(map[string][]int32{topic: {partition}})
	w.s.opts.Metrics.paused.WithLabelValues(w.s.cfg.Name).Inc()
}

// resume lets paused partitions fetch again once the queue drained below
// half its share.
func (w *worker) resume(cl *kgo.Client) {
	w.pmu.Lock()
	defer w.pmu.Unlock()
	if len(w.paused) == 0 {
		return
	}
	m := map[string][]int32{}
	for tp := range w.paused {
		if w.s.align != nil && w.s.align.holds(tp) {
			continue // ahead in event time: the aligner resumes it
		}
		m[tp.topic] = append(m[tp.topic], tp.partition)
	}
	cl.ResumeFetchPartitions(m)
	w.s.opts.Metrics.paused.WithLabelValues(w.s.cfg.Name).Sub(float64(len(w.paused)))
	clear(w.paused)
}

func (w *worker) run(ctx context.Context, cl *kgo.Client) error {
	low := max(int64(w.s.opts.Pipeline.MemoryBudget)/16/int64(len(w.s.workers)), 512<<10)
	for {
		it, ok := w.q.pop(ctx)
		if !ok {
			return nil
		}
		if it.barrier > 0 {
			if err := w.seal(ctx, it.barrier); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			continue
		}
		if err := w.process(ctx, it.recs, it.hwm); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		w.s.opts.Metrics.queued.WithLabelValues(w.s.cfg.Name).Sub(float64(it.bytes))
		if w.q.release(it.bytes) < low {
			w.resume(cl)
		}
	}
}

// process handles one batch of one partition's records.
func (w *worker) process(ctx context.Context, recs []*kgo.Record, hwm int64) error {
	var written, dead, filtered, skipped int64
	var match *config.Match
	if m := w.s.cfg.Match; m != nil && m.Header != "" {
		match = m // a match on a field is the decoder's
	}
	first := recs[0]
	if w.blocked[topicPartition{first.Topic, first.Partition}] {
		return nil // read again after the restart
	}
	next := int64(-1) // next position when the batch stops early
	batchMax, late := watermark.None, int64(0)
	lateBefore := watermark.None // records before it are dropped as late
	if p := w.s.cfg.Late.Policy; p == "drop" || p == "table" {
		lateBefore = w.s.lateBefore.Load()
	}
	consumed := len(recs)
	if _, ok := w.starts.Get(first.Topic, first.Partition); !ok {
		w.starts.Set(first.Topic, first.Partition, first.Offset)
	}
	for i, r := range recs {
		if match != nil && !hasHeader(r, match.Header, match.Value) {
			skipped++
			w.tally.Add(0, false, checkpoint.Skipped)
			continue
		}
		if w.chg != nil {
			kept, other, err := w.changes(r)
			if err != nil {
				if err := w.deadLetter(ctx, r, "parse", err); err != nil {
					return err
				}
				dead++
				w.tally.Add(0, false, checkpoint.DeadParse)
				continue
			}
			written += int64(kept)
			skipped += int64(other)
			// A record's changes are counted where they are applied; the
			// record itself once, by outcome.
			if kept > 0 {
				w.tally.Add(0, false, checkpoint.Written)
			} else {
				w.tally.Add(0, false, checkpoint.Skipped)
			}
			continue
		}
		room := w.next()
		row, et, err := w.dec.Decode(room, r.Value)
		isLate := false
		if err == nil {
			batchMax = max(batchMax, et)
			if isLate = et < lateBefore; isLate && w.lateOut == nil {
				late++ // late.policy drop
				w.tally.Add(et, true, checkpoint.LateDropped)
				continue
			}
		}
		if err != nil {
			if rs, ok := err.(interface{ NeedsRestart() bool }); ok && rs.NeedsRestart() {
				// Stop before this record; the rebuilt stream reads it again.
				w.blocked[topicPartition{r.Topic, r.Partition}] = true
				next, consumed = r.Offset, i
				w.s.requestRestart(err)
				break
			}
			if errors.Is(err, parse.ErrNotMatched) {
				skipped++
				w.tally.Add(0, false, checkpoint.Skipped)
				continue
			}
			if err := w.deadLetter(ctx, r, "parse", err); err != nil {
				return err
			}
			dead++
			w.tally.Add(0, false, checkpoint.DeadParse)
			continue
		}
		w.keep(room, row)
		out := row
		if w.ev != nil {
			var keep bool
			room = w.next()
			out, keep, err = w.ev.Apply(room, row)
			if err != nil {
				if err := w.deadLetter(ctx, r, "etl", err); err != nil {
					return err
				}
				dead++
				w.tally.Add(et, true, checkpoint.DeadETL)
				continue
			}
			if !keep {
				filtered++
				w.tally.Add(et, true, checkpoint.Filtered)
				continue
			}
			w.keep(room, out)
		}
		w.key = w.s.opts.Partitioner.AppendKey(w.key[:0], out)
		target := w.out
		if isLate {
			target = w.lateOut
		}
		if err := target.Write(w.key, out, et); err != nil {
			var rej interface{ RowRejected() bool }
			if !errors.As(err, &rej) || !rej.RowRejected() {
				return fmt.Errorf("worker %d: %w", w.id, err)
			}
			// The row cannot take the output's form (an export format's
			// limits): the record, not the stream, is at fault.
			if err := w.deadLetter(ctx, r, "export", err); err != nil {
				return err
			}
			dead++
			w.tally.Add(et, true, checkpoint.DeadExport)
			continue
		}
		if isLate {
			late++ // in the late table
			w.tally.Add(et, true, checkpoint.LateTable)
		} else {
			written++
			w.tally.Add(et, true, checkpoint.Written)
		}
		w.maxEvent = max(w.maxEvent, et)
		if len(w.slab) >= chunkValues {
			// Hand rows over in small chunks so the rows being built stay
			// in the CPU's cache instead of streaming a whole fetch through it.
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	last := recs[len(recs)-1]
	if next < 0 {
		next = last.Offset + 1
	}
	w.positions.Set(last.Topic, last.Partition, next)
	if batchMax != watermark.None {
		// Records after this batch were already waiting: the partition is
		// behind, and its silence from now on is no sign of idleness.
		w.observe(watermark.Key{Topic: last.Topic, Partition: last.Partition}, batchMax, last.Offset+1 < hwm)
	}
	w.counts.Late += late
	w.counts.Read += int64(consumed)
	w.counts.Written += written
	w.counts.DeadLettered += dead
	w.counts.Filtered += filtered
	w.counts.Skipped += skipped
	s := w.s
	s.written.Add(written)
	s.dead.Add(dead)
	s.filtered.Add(filtered)
	m, name := s.opts.Metrics, s.cfg.Name
	m.records.WithLabelValues(name, "parsed").Add(float64(int64(consumed) - dead - skipped))
	m.records.WithLabelValues(name, "written").Add(float64(written))
	if filtered > 0 {
		m.records.WithLabelValues(name, "filtered").Add(float64(filtered))
	}
	if dead > 0 {
		m.records.WithLabelValues(name, "dead_lettered").Add(float64(dead))
	}
	if skipped > 0 {
		m.records.WithLabelValues(name, "skipped").Add(float64(skipped))
	}
	if late > 0 {
		m.records.WithLabelValues(name, "late_"+w.s.cfg.Late.Policy).Add(float64(late))
	}
	if u, ok := w.dec.(interface{ UnknownFields() int64 }); ok {
		if n := u.UnknownFields(); n > w.unknown {
			m.unknown.WithLabelValues(name).Add(float64(n - w.unknown))
			w.unknown = n
		}
	}
	return nil
}

func hasHeader(r *kgo.Record, key, value string) bool {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value) == value
		}
	}
	return false
}

func (w *worker) deadLetter(ctx context.Context, r *kgo.Record, stage string, cause error) error {
	var re *parse.RecordError
	if stage == "parse" && !errors.As(cause, &re) {
		return fmt.Errorf("decode %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, cause)
	}
	w.s.opts.Metrics.deadLetters.WithLabelValues(w.s.cfg.Name, stage).Inc()
	err := w.s.opts.DeadLetters.Put(ctx, deadletter.Entry{
		Stream: w.s.cfg.Name, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp, Key: r.Key, Value: r.Value, Stage: stage, Reason: cause.Error(),
	})
	if err != nil {
		return fmt.Errorf("dead-letter %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return nil
}

// observe records a batch's largest event time for its partition, for the
// next checkpoint and, when the stream aligns its partitions, at once.
func (w *worker) observe(k watermark.Key, maxEvent int64, behind bool) {
	p := watermark.Partition{MaxEventTime: maxEvent, LastRecord: time.Now(), Behind: behind}
	if w.marks == nil {
		w.marks = map[watermark.Key]watermark.Partition{}
	}
	if have, ok := w.marks[k]; ok {
		p = have.Merge(p)
	}
	w.marks[k] = p
	if w.s.align != nil {
		w.s.align.observe(k, p)
	}
}

// seal closes this worker's files at barrier n and reports them with the
// positions they cover. Dead letters are flushed first: a checkpoint never
// moves past a record that is neither in the table nor dead-lettered.
func (w *worker) seal(ctx context.Context, n int64) error {
	start := time.Now()
	var (
		files, deletes []iceberg.DataFile
		size           int64
		err            error
	)
	if w.chg != nil {
		files, deletes, err = w.applyChanges(ctx, n)
		for _, f := range files {
			size += f.FileSizeBytes()
		}
	} else {
		files, size, err = w.out.Seal()
	}
	if err != nil {
		return fmt.Errorf("worker %d: checkpoint %d: %w", w.id, n, err)
	}
	var lateFiles []iceberg.DataFile
	if w.lateOut != nil {
		if lateFiles, _, err = w.lateOut.Seal(); err != nil {
			return fmt.Errorf("worker %d: checkpoint %d: late table: %w", w.id, n, err)
		}
	}
	if w.counts.DeadLettered > 0 {
		if err := w.s.opts.DeadLetters.Flush(ctx); err != nil {
			return fmt.Errorf("worker %d: checkpoint %d: %w", w.id, n, err)
		}
	}
	m, name := w.s.opts.Metrics, w.s.cfg.Name
	m.checkpoint.WithLabelValues(name).Observe(time.Since(start).Seconds())
	m.files.WithLabelValues(name).Add(float64(len(files)))
	m.bytes.WithLabelValues(name).Add(float64(size))
	if of, ok := w.out.(interface{ OpenFiles() int }); ok {
		m.openFiles.WithLabelValues(name).Set(float64(of.OpenFiles()))
	}
	dw := checkpoint.DataWritten{
		Stream: name, Checkpoint: n, Worker: w.id, Files: files, DeleteFiles: deletes, Positions: w.positions,
		MaxEventTime: w.maxEvent, Counts: w.counts, Bytes: size, Marks: w.marks, LateFiles: lateFiles,
		Tally: w.tally, Starts: w.starts,
	}
	w.positions, w.counts, w.marks = checkpoint.Positions{}, checkpoint.Counts{}, nil
	w.tally, w.starts = checkpoint.Tally{}, checkpoint.Positions{}
	return w.s.opts.Committer.Submit(ctx, dw)
}
