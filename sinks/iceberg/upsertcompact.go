package iceberg

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/apache/iceberg-go/table/compaction"

	"github.com/sluicehq/sluice/ingest/checkpoint"
)

// UpsertCompaction is a table kept upserted (see Upserts) rewritten with
// its equality deletes applied: the live rows of one snapshot in new data
// files, replacing every data and delete file of that snapshot.
type UpsertCompaction struct {
	Snapshot int64
	// Seq is the snapshot's sequence number, which the new files take: the
	// equality deletes of row deltas committed after the snapshot apply
	// to them as they did to the files they replace.
	Seq int64
	// Result holds the files read and written.
	Result table.CompactionGroupResult
	// Deletes are the snapshot's delete files, all applied by the rewrite.
	Deletes []iceberg.DataFile
}

// deleteFiles is the number of delete files in the table's current
// snapshot.
func deleteFiles(tbl *table.Table) int64 {
	snap := tbl.CurrentSnapshot()
	if snap == nil || snap.Summary == nil {
		return 0
	}
	n, _ := strconv.ParseInt(snap.Summary.Properties["total-delete-files"], 10, 64)
	return n
}

// CompactUpserts reads the table's current snapshot with its deletes
// applied (iceberg-go's reader) and writes the live rows into files of
// about targetSize. It commits nothing.
func CompactUpserts(ctx context.Context, tbl *table.Table, targetSize int64) (*UpsertCompaction, error) {
	name := strings.Join(tbl.Identifier(), ".")
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return nil, nil
	}
	tasks, err := tbl.Scan(table.WithSnapshotID(snap.SnapshotID)).PlanFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("compact %s: plan files: %w", name, err)
	}
	var size int64
	rewritten := map[string]struct{}{}
	for _, t := range tasks {
		size += t.File.FileSizeBytes()
		rewritten[t.File.FilePath()] = struct{}{}
	}
	fsys, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("compact %s: %w", name, err)
	}
	// Every data file is rewritten, so every equality delete of the
	// snapshot is applied: none can reach a file that stays.
	deletes, err := compaction.CollectDeadEqualityDeletes(ctx, fsys, snap, rewritten)
	if err != nil {
		return nil, fmt.Errorf("compact %s: delete files: %w", name, err)
	}
	group := table.CompactionTaskGroup{PartitionKey: name, Tasks: tasks, TotalSizeBytes: size}
	res, err := table.ExecuteCompactionGroup(ctx, tbl, group, table.WithCompactionTargetFileSize(targetSize))
	if err != nil {
		return nil, fmt.Errorf("compact %s: %w", name, err)
	}
	return &UpsertCompaction{Snapshot: snap.SnapshotID, Seq: snap.SequenceNumber, Result: res, Deletes: deletes}, nil
}

// queueUpserts queues the compaction of a table kept upserted once its
// current snapshot holds ApplyDeletesAfter delete files, one at a time.
func (c *Committer) queueUpserts(st *tableState) {
	n := st.announce.cfg.ApplyDeletesAfter
	if n <= 0 || st.upsertsQueued || deleteFiles(st.main.tbl) < int64(n) {
		return
	}
	st.upsertsQueued = true
	c.jobs.push(compactJob{stream: st.stream, upserts: true})
}

// finishUpserts commits a table's upsert compaction as one rewrite whose
// new files keep the compacted snapshot's sequence number.
func (c *Committer) finishUpserts(ctx context.Context, st *tableState, d compactDone) error {
	st.upsertsQueued = false
	u := d.upserts
	if d.err != nil {
		c.log.Warn("compaction failed; the table keeps its delete files", "table", st.name, "err", d.err)
		return nil
	}
	if u == nil || len(u.Result.OldDataFiles) == 0 && len(u.Deletes) == 0 {
		return nil
	}
	live, err := allLive(ctx, st.main.tbl, u.Result.OldDataFiles)
	if err != nil || !live {
		return err // another merge won; the written files are orphans, removed later
	}
	cp := st.gathering.Last()
	st.compactions++
	token := fmt.Sprintf("%s/compact/upserts/%d", c.token(st, cp), st.compactions)
	props := c.streamProps(st, cp, st.positions, token)
	maps.Copy(props, st.props)
	maps.Copy(props, st.announce.summary(st.announce.state))
	props[PropRecords] = "0"
	props[PropCompaction] = "deletes applied"
	props[PropAudit] = checkpoint.Tally{{Hour: checkpoint.NoHour, Outcome: checkpoint.Compacted}: CountRecords(u.Result.OldDataFiles)}.Encode()
	replace := append(slices.Clone(u.Result.OldDataFiles), u.Deletes...)
	seq := u.Seq
	snap, err := c.retry(ctx, st, &st.main, changeSet{replace: replace, files: u.Result.NewDataFiles, dataSeq: &seq}, props, nil, cp)
	if err != nil {
		return err
	}
	// The manifests now list mostly removed files, which every scan plan
	// would still read: merge them too.
	if _, err := c.rewriteManifests(ctx, st, 1); err != nil {
		c.log.Warn("manifest rewrite after compaction failed", "table", st.name, "err", err)
	}
	c.metrics.compacted.WithLabelValues(st.name).Add(float64(len(u.Result.OldDataFiles)))
	c.log.Info("table compacted, deletes applied", "table", st.name, "data_files", len(u.Result.OldDataFiles),
		"delete_files", len(u.Deletes), "into", len(u.Result.NewDataFiles), "snapshot", snap)
	return nil
}
