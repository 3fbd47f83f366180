package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	iceberggo "github.com/apache/iceberg-go"

	"github.com/sluicehq/sluice/compaction"
	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/schema"
	"github.com/sluicehq/sluice/partition"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

// retentionEvery is how often a table's history is tidied.
const retentionEvery = time.Hour

// noticeFlushTimeout is how long a stopping stream waits for its last
// notices to reach their targets; what is left is sent again at the next
// start.
const noticeFlushTimeout = 5 * time.Second

// noticeTable is what notices need of a stream's table.
type noticeTable struct {
	spec iceberggo.PartitionSpec
	// tbl is the Iceberg table; nil for a hive table.
	tbl *table.Table
	// marker makes the success_file target; idx is the time partition's
	// position in the partition spec.
	marker func(idx int) (partition.Target, error)
}

// icebergNotices is the noticeTable of an Iceberg table: markers go to
// its data directory, locally or on HDFS.
func (p *pipeline) icebergNotices(tbl *table.Table) noticeTable {
	return noticeTable{spec: tbl.Spec(), tbl: tbl, marker: func(idx int) (partition.Target, error) {
		return p.icebergMarker(tbl, idx)
	}}
}

// announcing builds a table's watermark policy and, with table.notify, its
// notice targets and their notifier.
func (p *pipeline) announcing(sc config.Stream, nt noticeTable, out *schema.Layout) (iceberg.Announcing, *partition.Notifier, error) {
	ann := iceberg.Announcing{Watermark: sc.Watermark.Policy()}
	if r := sc.Table.Retention; !r.Disabled && r.MaxSnapshotAge > 0 {
		ann.Retention = &iceberg.Retention{MaxSnapshotAge: r.MaxSnapshotAge.D(), MinSnapshots: r.MinSnapshots,
			MaxManifests: r.MaxManifests, Every: retentionEvery}
	}
	if sc.Format == "canal" || sc.Format == "debezium" {
		if c := sc.Table.Compaction; c != nil && c.DeleteFiles > 0 {
			ann.ApplyDeletesAfter, ann.UpsertTargetSize = c.DeleteFiles, int64(p.cfg.Writer.TargetFileSize)
		}
		return ann, nil, nil
	}
	n := sc.Table.Notify
	if n == nil && sc.Table.Compaction == nil {
		return ann, nil, nil
	}
	idx, unit, err := sc.TimePartition()
	if err != nil {
		return ann, nil, fmt.Errorf("table: %w", err)
	}
	spec := nt.spec
	pf := spec.Field(idx)
	ann.Slicing = partition.Slicing{Field: pf.Name, FieldID: pf.FieldID, Unit: unit}
	if sc.Table.Compaction != nil {
		if ann.Compactor, err = p.compactor(sc, nt.tbl, out); err != nil {
			return ann, nil, err
		}
		ann.CompactAfterFiles = max(sc.Table.Compaction.OpenFiles, 0)
	}
	if n == nil {
		return ann, nil, nil
	}
	ann.Delay = n.Delay.D()
	name := sc.Name
	ann.LateBefore = func(us int64) {
		p.mu.Lock()
		r := p.byName[name]
		p.mu.Unlock()
		if r != nil {
			r.s.SetLateBefore(us)
		}
	}
	var targets []partition.Target
	for i, t := range n.Targets {
		switch t.Type {
		case "kafka":
			cl, err := p.noticeClient()
			if err != nil {
				return ann, nil, err
			}
			targets = append(targets, partition.NewKafkaTarget(cl, t.Topic))
		case "webhook":
			targets = append(targets, partition.NewWebhook(t.URL, t.Headers, t.Timeout.D()))
		case "success_file":
			m, err := nt.marker(idx)
			if err != nil {
				return ann, nil, fmt.Errorf("table.notify.targets[%d]: %w", i, err)
			}
			targets = append(targets, m)
		case "table_property":
			ann.Property = true
		}
	}
	if len(targets) == 0 {
		return ann, nil, nil
	}
	notifier, err := partition.NewNotifier(partition.Options{
		Targets: targets, Logger: p.log.With("table", sc.Table.Name), Metrics: p.noticeMetrics, Table: sc.Table.Name,
	})
	if err != nil {
		return ann, nil, err
	}
	ann.Notify = notifier.Enqueue
	return ann, notifier, nil
}

// icebergMarker writes _SUCCESS files into the directory of a slice's
// files: the table's data directory and the slice's path, which must lead
// the partition path.
func (p *pipeline) icebergMarker(tbl *table.Table, idx int) (partition.Target, error) {
	if idx != 0 {
		return nil, fmt.Errorf("success_file needs the time partition first in table.partition, so each slice has one directory")
	}
	u, err := url.Parse(tbl.Location())
	if err != nil {
		return nil, fmt.Errorf("success_file: table location %s: %w", tbl.Location(), err)
	}
	data := path.Join(u.Path, "data")
	dir := func(n partition.Notice) (string, bool) { return path.Join(data, n.Path), true }
	switch u.Scheme {
	case "file", "":
		return partition.NewMarker(dir), nil
	case "hdfs":
		fsys, err := p.hdfs.FS(u.Host)
		if err != nil {
			return nil, fmt.Errorf("success_file: %w", err)
		}
		return partition.NewMarkerIn(fsys, dir), nil
	}
	return nil, fmt.Errorf("success_file needs a file:// or hdfs:// warehouse, not %s", tbl.Location())
}

// noticeClient is the Kafka producer of notice topics, made on first use.
func (p *pipeline) noticeClient() (*kgo.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.notices == nil {
		cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), p.kopts...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))...)
		if err != nil {
			return nil, fmt.Errorf("notice producer: %w", err)
		}
		p.notices = cl
		p.closers = append(p.closers, func() error { cl.Close(); return nil })
	}
	return p.notices, nil
}

// run runs the stream and, beside it, the delivery of its table's notices;
// once the stream stopped, the notices of its last commit get a moment to
// go out.
func (r *streamRun) run(ctx context.Context) error {
	if r.notifier == nil {
		return r.s.Run(ctx)
	}
	nctx, stopNotices := context.WithCancel(context.WithoutCancel(ctx))
	g := new(errgroup.Group)
	g.Go(func() error { return r.notifier.Run(nctx) })
	err := r.s.Run(ctx)
	deadline := time.Now().Add(noticeFlushTimeout)
	for r.notifier.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stopNotices()
	if nerr := g.Wait(); err == nil {
		err = nerr
	}
	return err
}

// compactor merges a stream's closing partitions with the stream's own
// layout and partitioning, so files of older column sets stay as they are.
func (p *pipeline) compactor(sc config.Stream, tbl *table.Table, out *schema.Layout) (iceberg.Compactor, error) {
	c := sc.Table.Compaction
	target := int64(c.TargetFileSize)
	if target == 0 {
		target = int64(p.cfg.Writer.TargetFileSize)
	}
	opts := compaction.Options{TargetFileSize: target, MinFiles: c.MinFiles, Writer: iceberg.WriterOptions{
		Worker: compactionWorker, RunID: p.runID, Compression: p.cfg.Writer.Compression,
		RowGroupSize: int64(p.cfg.Writer.RowGroupSize), MaxOpenFiles: 1,
	}}
	m, err := compaction.NewMerger(context.Background(), tbl, out, sc.Table.Partition, opts)
	if err != nil {
		return nil, fmt.Errorf("table.compaction: %w", err)
	}
	// A live writer's file waits at most a checkpoint or two and the
	// commit's retries for its snapshot: anything older is an orphan.
	orphanAge := p.cfg.Checkpoint.CommitFailureTimeout.D() + 3*p.cfg.Checkpoint.Interval.D()
	return partitionCompactor{m: m, orphanAge: orphanAge, log: p.log}, nil
}

// compactionWorker numbers merged files' names apart from the workers'.
const compactionWorker = 999

type partitionCompactor struct {
	m         *compaction.Merger
	orphanAge time.Duration
	log       *slog.Logger
}

// Compact first deletes the partition's orphans (files of crashed runs
// older than orphanAge), then merges its small files.
func (pc partitionCompactor) Compact(ctx context.Context, tbl *table.Table, path string) ([]iceberggo.DataFile, []iceberggo.DataFile, error) {
	removed, err := iceberg.RemoveOrphansIn(ctx, tbl, path, pc.orphanAge)
	if err != nil {
		return nil, nil, err
	}
	if len(removed) > 0 {
		pc.log.Info("removed orphan files before announcing", "table", strings.Join(tbl.Identifier(), "."), "partition", path, "files", len(removed))
	}
	parts, err := compaction.Partitions(ctx, tbl, func(p string) bool { return p == path })
	if err != nil || len(parts) == 0 {
		return nil, nil, err
	}
	return pc.m.MergeFiles(ctx, parts[0].Files)
}
