package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/cdc"
)

// ChangeWriter keeps a table upserted by its primary key from change
// events (sinks/iceberg.Upserts): changes collapse per key in the order
// given, and each checkpoint seals into data and equality-delete files.
type ChangeWriter interface {
	Put(row parquet.Row, eventTime int64) error
	Delete(row parquet.Row) error
	Seal(ctx context.Context) (data, deletes []iceberg.DataFile, err error)
	// SetRunID names the next Seal's files apart from earlier ones.
	SetRunID(id string)
}

// pendingChange is a change event read since the last barrier, waiting to
// be put in source order.
type pendingChange struct {
	change cdc.Change // ID, Op and order; its maps are dropped
	row    parquet.Row
	et     int64
}

// recentIDs remembers the ids of the last changes applied, so a change a
// producer delivers again in a later checkpoint is dropped too.
type recentIDs struct {
	ring []string
	next int
	set  map[string]struct{}
}

const recentChanges = 1 << 20

func (r *recentIDs) seen(id string) bool {
	_, ok := r.set[id]
	return ok
}

func (r *recentIDs) add(id string) {
	if r.set == nil {
		r.set, r.ring = map[string]struct{}{}, make([]string, recentChanges)
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ring[r.next] = id
	r.set[id] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
}

// decodeChanges reads a Canal or Debezium record into its row changes;
// cdc.ErrNotRowChange marks records without one.
func decodeChanges(format string, value []byte) ([]cdc.Change, error) {
	if format == "canal" {
		return cdc.DecodeCanal(value)
	}
	c, err := cdc.DecodeDebezium(value)
	if err != nil {
		return nil, err
	}
	return []cdc.Change{c}, nil
}

// changes decodes one change-event record and keeps its changes until the
// barrier. It reports how many it kept and how many it skipped (another
// table's, or not a row change); a record it cannot read is an error for
// the dead-letter destination.
func (w *worker) changes(r *kgo.Record) (kept, skipped int, err error) {
	cfg := w.s.cfg
	changes, err := decodeChanges(cfg.Format, r.Value)
	if errors.Is(err, cdc.ErrNotRowChange) {
		return 0, 1, nil
	}
	if err != nil {
		return 0, 0, err
	}
	for _, c := range changes {
		if cfg.SourceTable != "" && c.Schema+"."+c.Table != cfg.SourceTable {
			skipped++
			continue
		}
		values := c.After
		if c.Op == cdc.Delete {
			values = c.Before
		}
		// The values keep their JSON form (numbers exact): the stream's
		// JSON decoder types them as for any JSON record.
		data, err := json.Marshal(values)
		if err != nil {
			return 0, 0, fmt.Errorf("change %s: %w", c.ID, err)
		}
		row, et, err := w.dec.Decode(w.next(), data)
		if err != nil {
			return 0, 0, fmt.Errorf("change %s: %w", c.ID, err)
		}
		if cfg.EventTime == "" {
			et = c.TsMs * 1000
		}
		c.Before, c.After = nil, nil
		w.pending = append(w.pending, pendingChange{change: c, row: row.Clone(), et: et})
		kept++
	}
	return kept, skipped, nil
}

// applyChanges puts the checkpoint's changes in source order — each
// delivered once, ordered by source time then source position — and seals
// them.
func (w *worker) applyChanges(ctx context.Context, n int64) (data, deletes []iceberg.DataFile, err error) {
	changes := make([]cdc.Change, len(w.pending))
	for i, p := range w.pending {
		changes[i] = p.change
		changes[i].Ref = i
	}
	arranged := cdc.Arrange(changes)
	dropped := len(changes) - len(arranged)
	for _, c := range arranged {
		if w.recent.seen(c.ID) {
			dropped++
			continue
		}
		w.recent.add(c.ID)
		p := w.pending[c.Ref]
		if c.Op == cdc.Delete {
			err = w.chg.Delete(p.row)
		} else {
			err = w.chg.Put(p.row, p.et)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("worker %d: checkpoint %d: change %s: %w", w.id, n, c.ID, err)
		}
	}
	clear(w.pending)
	w.pending = w.pending[:0]
	if dropped > 0 {
		w.s.opts.Metrics.records.WithLabelValues(w.s.cfg.Name, "duplicate").Add(float64(dropped))
	}
	w.chg.SetRunID(fmt.Sprintf("%s-%d", w.s.opts.RunID, n))
	data, deletes, err = w.chg.Seal(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("worker %d: checkpoint %d: %w", w.id, n, err)
	}
	return data, deletes, nil
}
