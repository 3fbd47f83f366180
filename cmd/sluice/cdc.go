package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/cdc"
	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/schema"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

// Summary properties of a mirror's commits: the log position its changes
// reach (where a restart resumes) and its initial snapshot's progress.
const (
	propCDCPosition = iceberg.SourcePropPrefix + "cdc-position"
	propCDCSnapshot = iceberg.SourcePropPrefix + "cdc-snapshot"
)

// mirrorSink opens the tables of one CDC source as upserted Iceberg tables
// committed by the pipeline's committer, one commit stream per table.
type mirrorSink struct {
	p   *pipeline
	cfg config.CDC
}

// newMirror wires a CDC source.
func (p *pipeline) newMirror(c config.CDC) (*cdc.Mirror, error) {
	src := cdc.Config{Name: c.Name, Host: c.Host, Port: uint16(c.Port), User: c.User, Password: c.Password,
		Flavor: c.Flavor, ServerID: c.ServerID, Tables: c.Tables}
	return cdc.NewMirror(cdc.MirrorConfig{
		Source: src, Interval: p.cfg.Checkpoint.Interval.D(), Snapshot: !c.Snapshot.Disabled,
		ChunkRows: c.Snapshot.ChunkRows, Parallelism: c.Snapshot.Parallelism, MaxBuffered: c.MaxBufferedRows,
		ReconnectTimeout: c.ReconnectTimeout.D(), IdleCheckpoints: c.IdleCheckpoints,
	}, &mirrorSink{p: p, cfg: c}, p.log, p.reg)
}

// mirrorTable names the table that mirrors db.table.
func mirrorTable(c config.CDC, db, tbl string) string {
	return c.Namespace + "." + db + "_" + tbl
}

// Open creates or loads the mirror of a source table and registers it with
// the committer.
func (s *mirrorSink) Open(ctx context.Context, src cdc.TableInfo) (cdc.Target, cdc.Progress, error) {
	name := mirrorTable(s.cfg, src.Schema, src.Table)
	stream := s.cfg.Name + "/" + src.Schema + "." + src.Table
	tbl, err := iceberg.EnsureUpsertTable(ctx, s.p.cat, name, columnsSchema(src.Columns, src.Key), src.Key, nil)
	if err != nil {
		return nil, cdc.Progress{}, err
	}
	state, err := iceberg.LoadState(tbl, stream)
	if err != nil {
		return nil, cdc.Progress{}, fmt.Errorf("table %s: %w", name, err)
	}
	var prog cdc.Progress
	if v := state.Summary[propCDCPosition]; v != "" {
		if prog.Position, err = parsePosition(v); err != nil {
			return nil, cdc.Progress{}, fmt.Errorf("table %s: snapshot %d: %w", name, state.SnapshotID, err)
		}
	}
	if v := state.Summary[propCDCSnapshot]; v != "" {
		if err := json.Unmarshal([]byte(v), &prog.Snapshot); err != nil {
			return nil, cdc.Progress{}, fmt.Errorf("table %s: snapshot %d: %s: %w", name, state.SnapshotID, propCDCSnapshot, err)
		}
	}
	orphans, err := iceberg.RemoveOrphans(ctx, tbl)
	if err != nil {
		return nil, cdc.Progress{}, err
	}
	if len(orphans) > 0 {
		s.p.log.Info("removed uncommitted files of an earlier run", "table", name, "files", len(orphans))
	}
	t := &mirrorTarget{s: s, stream: stream, name: name, key: src.Key, cp: state.Checkpoint, acked: state.Checkpoint}
	t.acks = sync.NewCond(&t.mu)
	if err := t.use(tbl); err != nil {
		return nil, cdc.Progress{}, err
	}
	prog.Columns = slices.Clone(t.cols)
	s.p.committer.AddTable(stream, tbl, 1, state, s.announcing())
	s.p.mu.Lock()
	s.p.mirrors[stream] = t
	s.p.mu.Unlock()
	s.p.log.Info("cdc table resumes", "table", name, "source", src.Schema+"."+src.Table, "position", prog.Position,
		"snapshot_done", prog.Snapshot.Done, "checkpoint", state.Checkpoint)
	return t, prog, nil
}

func (s *mirrorSink) announcing() iceberg.Announcing {
	var ann iceberg.Announcing
	if c := s.cfg.Compaction; c.DeleteFiles > 0 {
		ann.ApplyDeletesAfter, ann.UpsertTargetSize = c.DeleteFiles, int64(c.TargetFileSize)
		if ann.UpsertTargetSize == 0 {
			ann.UpsertTargetSize = int64(s.p.cfg.Writer.TargetFileSize)
		}
	}
	if r := s.cfg.Retention; !r.Disabled && r.MaxSnapshotAge > 0 {
		ann.Retention = &iceberg.Retention{MaxSnapshotAge: r.MaxSnapshotAge.D(), MinSnapshots: r.MinSnapshots,
			MaxManifests: r.MaxManifests, Every: retentionEvery}
	}
	return ann
}

// columnsSchema is the Iceberg form of source columns: nullable, except
// the key's.
func columnsSchema(cols []cdc.Column, key []string) schema.Schema {
	var s schema.Schema
	for _, c := range cols {
		s.Fields = append(s.Fields, schema.Field{Name: c.Name, Type: c.Type, Required: slices.Contains(key, c.Name)})
	}
	return s
}

// parsePosition reads Position.String's form, file:offset.
func parsePosition(s string) (cdc.Position, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return cdc.Position{}, fmt.Errorf("%s %q is not file:offset", propCDCPosition, s)
	}
	n, err := strconv.ParseUint(s[i+1:], 10, 32)
	if err != nil {
		return cdc.Position{}, fmt.Errorf("%s %q is not file:offset", propCDCPosition, s)
	}
	return cdc.Position{File: s[:i], Pos: uint32(n)}, nil
}

// mirrorTarget collapses one table's changes per checkpoint (Upserts) and
// hands each checkpoint to the committer.
type mirrorTarget struct {
	s      *mirrorSink
	stream string
	name   string
	key    []string

	tbl    *table.Table
	layout *schema.Layout
	cols   []cdc.Column // the table's columns, in the order values come
	// slots place the values in Parquet column order: value index and
	// definition level of each leaf column.
	slots []slot
	ups   *iceberg.Upserts
	row   parquet.Row
	cp    int64 // last checkpoint handed over

	mu    sync.Mutex
	acks  *sync.Cond
	acked int64 // last checkpoint committed
}

type slot struct{ value, def, column int }

// use makes tbl's current schema the one values come in.
func (t *mirrorTarget) use(tbl *table.Table) error {
	s, err := schema.FromIceberg(tbl.Schema())
	if err != nil {
		return fmt.Errorf("table %s: %w", t.name, err)
	}
	t.tbl, t.layout = tbl, schema.NewLayout(s, t.name)
	t.cols, t.slots = t.cols[:0], t.slots[:0]
	for i, f := range s.Fields {
		if !f.Type.IsPrimitive() {
			return fmt.Errorf("table %s: column %s is %s; a mirror's columns are primitive", t.name, f.Name, f.Type)
		}
		t.cols = append(t.cols, cdc.Column{Name: f.Name, Type: f.Type})
		n := t.layout.ByName[f.Name]
		t.slots = append(t.slots, slot{value: i, def: n.Def, column: n.Column})
	}
	slices.SortFunc(t.slots, func(a, b slot) int { return a.column - b.column })
	return t.fresh()
}

// fresh starts upserts in the table's current schema.
func (t *mirrorTarget) fresh() error {
	cfg := t.s.p.cfg
	ups, err := iceberg.NewUpserts(t.tbl, t.layout, t.key, iceberg.WriterOptions{
		RunID: t.runID(), TargetFileSize: int64(cfg.Writer.TargetFileSize),
		RowGroupSize: int64(cfg.Writer.RowGroupSize), Compression: cfg.Writer.Compression, MaxOpenFiles: 1,
		MemoryBudget: int64(cfg.MemoryBudget) / 8,
	})
	if err != nil {
		return err
	}
	t.ups = ups
	return nil
}

// runID names the next checkpoint's files apart from every earlier one's.
func (t *mirrorTarget) runID() string { return fmt.Sprintf("%s-%d", t.s.p.runID, t.cp+1) }

func (t *mirrorTarget) rowOf(values []parquet.Value) parquet.Row {
	row := t.row[:0]
	for _, sl := range t.slots {
		v := values[sl.value]
		if v.IsNull() {
			row = append(row, parquet.NullValue().Level(0, 0, sl.column))
		} else {
			row = append(row, v.Level(0, sl.def, sl.column))
		}
	}
	t.row = row
	return row
}

func (t *mirrorTarget) Put(values []parquet.Value, eventTime int64) error {
	if err := t.ups.Put(t.rowOf(values), eventTime); err != nil {
		return fmt.Errorf("table %s: %w", t.name, err)
	}
	return nil
}

func (t *mirrorTarget) Delete(values []parquet.Value) error {
	if err := t.ups.Delete(t.rowOf(values)); err != nil {
		return fmt.Errorf("table %s: %w", t.name, err)
	}
	return nil
}

func (t *mirrorTarget) Buffered() int { return t.ups.Len() }

func (t *mirrorTarget) Checkpoint(ctx context.Context, at cdc.Position, snap cdc.SnapshotProgress) error {
	data, deletes, err := t.ups.Seal(ctx)
	if err != nil {
		return fmt.Errorf("table %s: %w", t.name, err)
	}
	progress, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("table %s: %w", t.name, err)
	}
	t.cp++
	dw := checkpoint.DataWritten{
		Stream: t.stream, Checkpoint: t.cp, Files: data, DeleteFiles: deletes,
		Positions: checkpoint.Positions{"binlog": {0: positionNumber(at)}},
		Props:     map[string]string{propCDCPosition: at.String(), propCDCSnapshot: string(progress)},
		Counts:    checkpoint.Counts{Written: iceberg.CountRecords(data)}, Bytes: totalSize(data),
	}
	if err := t.s.p.committer.Submit(ctx, dw); err != nil {
		return err
	}
	t.ups.SetRunID(t.runID())
	return nil
}

// positionNumber orders positions as one number for displays of positions
// (the file's sequence number, then the offset); the summary's
// sluice.cdc-position is what a restart reads.
func positionNumber(p cdc.Position) int64 {
	i := strings.LastIndexByte(p.File, '.')
	seq, _ := strconv.ParseInt(p.File[i+1:], 10, 32)
	return seq<<32 | int64(p.Pos)
}

// committed hears the committer's acknowledgement of a checkpoint.
func (t *mirrorTarget) committed(cp int64) {
	t.mu.Lock()
	t.acked = max(t.acked, cp)
	t.mu.Unlock()
	t.acks.Broadcast()
}

// Wait returns once every checkpoint handed over is committed.
func (t *mirrorTarget) Wait(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.acks.Broadcast()
	})
	defer stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.acked < t.cp {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("table %s: waiting for checkpoint %d: %w", t.name, t.cp, err)
		}
		t.acks.Wait()
	}
	return nil
}

// Evolve changes the table's schema between checkpoints: once everything
// handed over is committed, the committer lets the table go, the schema
// changes, and the committer takes it back at its new state.
func (t *mirrorTarget) Evolve(ctx context.Context, cols []cdc.Column, renamed map[string]string) error {
	if err := t.Wait(ctx); err != nil {
		return err
	}
	c := t.s.p.committer
	c.RemoveTable(t.stream)
	tbl, err := t.s.p.cat.LoadTable(ctx, t.tbl.Identifier())
	if err != nil {
		return fmt.Errorf("table %s: %w", t.name, err)
	}
	if tbl, err = iceberg.EvolveUpsertTable(ctx, tbl, columnsSchema(cols, t.key), renamed); err != nil {
		return err
	}
	state, err := iceberg.LoadState(tbl, t.stream)
	if err != nil {
		return fmt.Errorf("table %s: %w", t.name, err)
	}
	c.AddTable(t.stream, tbl, 1, state, t.s.announcing())
	if err := t.use(tbl); err != nil {
		return err
	}
	// The mirror's order of columns is its own; the table's must match
	// it by name, which it does after the change.
	for i, col := range cols {
		if i >= len(t.cols) || t.cols[i].Name != col.Name {
			return t.reorder(cols)
		}
	}
	return nil
}

// reorder makes values come in the order of cols, which names every
// column of the table.
func (t *mirrorTarget) reorder(cols []cdc.Column) error {
	byName := map[string]int{}
	for i, c := range cols {
		byName[c.Name] = i
	}
	for i := range t.slots {
		name := t.cols[t.slots[i].value].Name
		j, ok := byName[name]
		if !ok {
			return fmt.Errorf("table %s: column %s is missing from the source's columns", t.name, name)
		}
		t.slots[i].value = j
	}
	t.cols = slices.Clone(cols)
	return nil
}
