package iceberg

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/partition"
)

// Compactor merges the small files of one partition of a table: what it
// merged and what it wrote instead (both empty when there was nothing to
// merge). It runs in the committer's background goroutine and commits
// nothing; the committer commits its result.
type Compactor interface {
	Compact(ctx context.Context, tbl *table.Table, path string) (merged, written []iceberg.DataFile, err error)
}

// compactJob is a closing slice of a stream's table to merge, or (upserts)
// a table kept upserted whose deletes are to be applied.
type compactJob struct {
	stream  string
	ord     int64
	path    string
	upserts bool
}

// compactDone is a merged slice or table, back to the committer.
type compactDone struct {
	compactJob
	merged, written []iceberg.DataFile
	upserts         *UpsertCompaction
	err             error
}

// jobQueue hands closing slices to the compaction goroutine without ever
// blocking the committer.
type jobQueue struct {
	mu     sync.Mutex
	jobs   []compactJob
	signal chan struct{}
}

func newJobQueue() *jobQueue { return &jobQueue{signal: make(chan struct{}, 1)} }

func (q *jobQueue) push(j compactJob) {
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *jobQueue) pop(ctx context.Context) (compactJob, bool) {
	for {
		q.mu.Lock()
		if len(q.jobs) > 0 {
			j := q.jobs[0]
			q.jobs = q.jobs[1:]
			q.mu.Unlock()
			return j, true
		}
		q.mu.Unlock()
		select {
		case <-q.signal:
		case <-ctx.Done():
			return compactJob{}, false
		}
	}
}

// queueClosing queues the compaction of every closing slice of a stream
// not queued yet.
func (c *Committer) queueClosing(st *tableState) {
	ann := st.announce
	if ann.cfg.Compactor == nil {
		return
	}
	queue := func(ord int64) {
		if !ann.queued[ord] {
			ann.queued[ord] = true
			c.jobs.push(compactJob{stream: st.stream, ord: ord, path: ann.cfg.Slicing.Path(ord)})
		}
	}
	for _, ord := range ann.state.Closing {
		queue(ord)
	}
	// Open partitions too, once enough small files piled up in them.
	if n := ann.cfg.CompactAfterFiles; n > 0 {
		for ord, stats := range ann.state.Slices {
			if (!ann.state.Started || ord >= ann.state.Through) && stats.Files >= int64(n) {
				queue(ord)
			}
		}
	}
}

// compactLoop merges closing slices one at a time, so compaction takes at
// most one core beside the pipeline, and hands each result to Run.
func (c *Committer) compactLoop(ctx context.Context) {
	for {
		j, ok := c.jobs.pop(ctx)
		if !ok {
			return
		}
		c.mu.Lock()
		st := c.streams[j.stream]
		var tbl *table.Table
		var comp Compactor
		var target int64
		if st != nil {
			tbl, comp, target = st.main.tbl, st.announce.cfg.Compactor, st.announce.cfg.UpsertTargetSize
		}
		c.mu.Unlock()
		if st == nil || comp == nil && !j.upserts {
			continue // the stream was removed; its next start queues it again
		}
		d := compactDone{compactJob: j}
		if j.upserts {
			d.upserts, d.err = CompactUpserts(ctx, tbl, target)
		} else {
			d.merged, d.written, d.err = comp.Compact(ctx, tbl, j.path)
		}
		select {
		case c.compacted <- d:
		case <-ctx.Done():
			return
		}
	}
}

// finishCompaction commits a merged slice as one rewrite snapshot that also
// records the slice as announced, and hands its ready notice over.
func (c *Committer) finishCompaction(ctx context.Context, d compactDone) error {
	c.mu.Lock()
	st := c.streams[d.stream]
	c.mu.Unlock()
	if st == nil {
		return nil
	}
	if d.compactJob.upserts {
		return c.finishUpserts(ctx, st, d)
	}
	ann := st.announce
	delete(ann.queued, d.ord)
	if d.err != nil {
		// The files stay as they are; a closed partition is announced
		// uncompacted rather than never.
		c.log.Warn("compaction failed; the partition keeps its files", "table", st.name, "partition", d.path, "err", d.err)
		d.merged, d.written = nil, nil
	}
	if len(d.merged) > 0 {
		// Another merge of the partition may have been committed since this
		// one read it (a stream restarted by a reload queues its closing
		// partitions again): its files must all still be there.
		live, err := allLive(ctx, st.main.tbl, d.merged)
		if err != nil {
			return err
		}
		if !live {
			c.log.Info("dropped a merge of files another merge replaced", "table", st.name, "partition", d.path)
			d.merged, d.written = nil, nil // the written files are orphans, removed later
		}
	}
	next := ann.state
	next.Slices = maps.Clone(ann.state.Slices)
	next.Notices = nil
	files := next.Slices[d.ord].Files - int64(len(d.merged)) + int64(len(d.written))
	cp := st.gathering.Last()
	p := pending{next: next}
	if n, ok := ann.cfg.Slicing.Release(&p.next, d.ord, files); ok {
		n.Pipeline, n.Stream, n.Table, n.Checkpoint, n.EmittedAt = c.opts.Pipeline, st.stream, st.name, cp, c.opts.Now().UTC()
		n.ID = partition.NoticeID(st.name, n.Path, n.Kind, cp)
		p.due = []partition.Notice{n}
		p.next.Notices = p.due
		if ann.cfg.Notify != nil {
			p.next.Undelivered = append(slices.Clone(p.next.Undelivered), n)
		}
	} else if len(d.merged) == 0 {
		return nil // an open partition with nothing merged: nothing to record
	} else {
		stats := p.next.Slices[d.ord]
		stats.Files = files
		p.next.Slices[d.ord] = stats
	}
	st.compactions++
	token := fmt.Sprintf("%s/compact/%d/%d", c.token(st, cp), d.ord, st.compactions)
	props := c.streamProps(st, cp, st.positions, token)
	maps.Copy(props, ann.summary(p.next))
	props[PropRecords] = "0"
	props[PropCompaction] = d.path
	if len(d.merged) > 0 {
		// The audit trace counts the records a merge rewrote, under the
		// slice's first hour.
		start, _ := ann.cfg.Slicing.Bounds(d.ord)
		tally := checkpoint.Tally{}
		tally[checkpoint.TallyKey{Hour: start.Unix() / 3600, Outcome: checkpoint.Compacted}] = CountRecords(d.merged)
		props[PropAudit] = tally.Encode()
	}
	// The table property names the latest partition announced: not this
	// one if a later one was announced while this one was merged.
	newest := true
	for ord := d.ord + 1; ord < p.next.Through; ord++ {
		if !slices.Contains(p.next.Closing, ord) {
			newest = false
			break
		}
	}
	if newest {
		p.tableProp = ann.readyProps(p.due)
	}
	snap, err := c.retryingRewrite(ctx, st, d.merged, d.written, props, p.tableProp, cp)
	if err != nil {
		return err
	}
	ann.committed(p, snap)
	c.metrics.compacted.WithLabelValues(st.name).Add(float64(len(d.merged)))
	for _, n := range p.due {
		c.metrics.notices.WithLabelValues(st.name, string(n.Kind)).Inc()
	}
	c.log.Info("partition compacted", "table", st.name, "partition", d.path, "merged", len(d.merged),
		"into", len(d.written), "announced", len(p.due) > 0, "snapshot", snap)
	return nil
}

// PropCompaction names the partition a rewrite snapshot compacted.
const PropCompaction = "sluice.compaction"

// allLive reports whether every file is in the table's current snapshot.
func allLive(ctx context.Context, tbl *table.Table, files []iceberg.DataFile) (bool, error) {
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return false, fmt.Errorf("plan files of %s: %w", strings.Join(tbl.Identifier(), "."), err)
	}
	live := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		live[t.File.FilePath()] = true
	}
	for _, f := range files {
		if !live[f.FilePath()] {
			return false, nil
		}
	}
	return true, nil
}
