package iceberg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/partition"
)

// Snapshot summary properties written with every commit. Positions are the
// truth a restarted stream resumes from; the token settles ambiguous commits.
const (
	PropPipeline     = "sluice.pipeline"
	PropStream       = "sluice.stream"
	PropCheckpoint   = "sluice.checkpoint"
	PropCommitID     = "sluice.commit-id"
	PropPositions    = "sluice.positions"
	PropMaxEventTime = "sluice.max-event-time"
	PropRecords      = "sluice.records"
	// PropAudit counts the checkpoint's records by event hour and outcome
	// (checkpoint.Tally); PropAuditOffsets the source ranges it covers.
	PropAudit        = "sluice.audit"
	PropAuditOffsets = "sluice.audit-offsets"
)

// State is a stream's progress as recorded in its table.
type State struct {
	// Checkpoint is the last committed checkpoint number (0 if none).
	Checkpoint int64
	// Positions are the next offsets to read per partition.
	Positions checkpoint.Positions
	// SnapshotID is the snapshot that recorded them (0 if none).
	SnapshotID int64
	// MaxEventTime is the largest event time committed (microseconds).
	MaxEventTime int64
	// EventTimes are the largest event times per source partition.
	EventTimes checkpoint.Positions
	// Notify is the announcement state, with the committed watermark.
	Notify partition.State
	// Summary is the whole summary of the snapshot, for properties a
	// source recorded (checkpoint.DataWritten.Props).
	Summary map[string]string
}

// LoadState finds the newest snapshot of the table's main branch written by
// the stream and reads its positions. Snapshots written by others (for
// example a rewrite) are skipped.
func LoadState(tbl *table.Table, stream string) (State, error) {
	for snap := tbl.CurrentSnapshot(); snap != nil; {
		if snap.Summary != nil && snap.Summary.Properties[PropStream] == stream {
			st, err := StateFromProps(snap.Summary.Properties, snap.SnapshotID)
			if err != nil {
				return State{}, fmt.Errorf("snapshot %d: %w", snap.SnapshotID, err)
			}
			return st, nil
		}
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = tbl.SnapshotByID(*snap.ParentSnapshotID)
	}
	return State{Positions: checkpoint.Positions{}}, nil
}

// StateFromProps reads a stream's progress from the properties a commit
// recorded (a snapshot summary, or a directory table's checkpoint record),
// committed as id.
func StateFromProps(props map[string]string, id int64) (State, error) {
	pos, err := checkpoint.DecodePositions(props[PropPositions])
	if err != nil {
		return State{}, err
	}
	cp, err := strconv.ParseInt(props[PropCheckpoint], 10, 64)
	if err != nil {
		return State{}, fmt.Errorf("bad %s %q", PropCheckpoint, props[PropCheckpoint])
	}
	met, _ := strconv.ParseInt(props[PropMaxEventTime], 10, 64)
	st := State{Checkpoint: cp, Positions: pos, SnapshotID: id, MaxEventTime: met, Summary: props}
	if err := decodeState(props, &st); err != nil {
		return State{}, err
	}
	return st, nil
}

// findToken reports the snapshot that carries a commit token, if any.
func findToken(tbl *table.Table, token string) (int64, bool) {
	for snap := tbl.CurrentSnapshot(); snap != nil; {
		if snap.Summary != nil && snap.Summary.Properties[PropCommitID] == token {
			return snap.SnapshotID, true
		}
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = tbl.SnapshotByID(*snap.ParentSnapshotID)
	}
	return 0, false
}

// RemoveOrphans deletes data files no snapshot references: files a crashed
// run wrote but never committed. It must run before any writer of this table
// starts, and only while no other process writes to it.
//
// Only Parquet files are removed: the data directory also holds what
// other tools put there for readers, such as _SUCCESS markers.
func RemoveOrphans(ctx context.Context, tbl *table.Table) ([]string, error) {
	return RemoveOrphansIn(ctx, tbl, "", 0)
}

// RemoveOrphansIn deletes the Parquet files of one partition directory
// (path, e.g. ts_hour=2026-11-23-07) that no snapshot references and that
// are older than age: files of crashed runs or failed merges, while the
// daemon runs. age must exceed how long a live writer's file can wait for
// its commit.
func RemoveOrphansIn(ctx context.Context, tbl *table.Table, path string, age time.Duration) ([]string, error) {
	loc := strings.TrimSuffix(tbl.Location(), "/") + "/data"
	if path != "" {
		loc += "/" + path
	}
	fsys, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("remove orphan files of %s: %w", strings.Join(tbl.Identifier(), "."), err)
	}
	var removed []string
	_, err = tbl.DeleteOrphanFiles(ctx,
		table.WithLocation(loc),
		table.WithFilesOlderThan(age),
		table.WithCleanupMaxConcurrency(1), // removed is appended to unlocked
		table.WithDeleteFunc(func(path string) error {
			if !strings.HasSuffix(path, ".parquet") {
				return nil
			}
			removed = append(removed, path)
			return fsys.Remove(path)
		}))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing written yet
	}
	if err != nil {
		return nil, fmt.Errorf("remove orphan files of %s: %w", strings.Join(tbl.Identifier(), "."), err)
	}
	return removed, nil
}

// RollBackAhead undoes the commits of a stream's late table that are ahead
// of the stream's own table: checkpoints after cp, committed by a run that
// stopped before committing the same checkpoint to its own table. Their
// records are read again, and whether each is late is decided again, so
// keeping them would write some rows twice. It reports how many commits
// were undone. The late table belongs to the stream alone.
func RollBackAhead(ctx context.Context, tbl *table.Table, stream string, cp int64) (*table.Table, int, error) {
	undone := 0
	var target *table.Snapshot
	for snap := tbl.CurrentSnapshot(); snap != nil; {
		var props iceberggo.Properties
		if snap.Summary != nil {
			props = snap.Summary.Properties
		}
		n, err := strconv.ParseInt(props[PropCheckpoint], 10, 64)
		if props[PropStream] != stream || err != nil || n <= cp {
			target = snap
			break
		}
		undone++
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = tbl.SnapshotByID(*snap.ParentSnapshotID)
	}
	if undone == 0 {
		return tbl, 0, nil
	}
	tx := tbl.NewTransaction()
	var err error
	if target != nil {
		err = tx.RollbackToSnapshot(target.SnapshotID)
	} else {
		// Everything the table holds is ahead.
		err = tx.Delete(ctx, iceberggo.AlwaysTrue{}, iceberggo.Properties{PropStream: stream, PropCheckpoint: strconv.FormatInt(cp, 10)})
	}
	if err != nil {
		return nil, 0, fmt.Errorf("roll back %s to checkpoint %d: %w", strings.Join(tbl.Identifier(), "."), cp, err)
	}
	rolled, err := tx.Commit(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("roll back %s to checkpoint %d: %w", strings.Join(tbl.Identifier(), "."), cp, err)
	}
	return rolled, undone, nil
}
