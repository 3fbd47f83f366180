package iceberg

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/checkpoint"
)

// readKeys reads id → k of the table's current rows, equality deletes
// applied.
func readKeys(t *testing.T, tbl *table.Table, opts ...table.ScanOption) map[int64]string {
	t.Helper()
	_, it, err := tbl.Scan(append(opts, table.WithSelectedFields("id", "k"))...).ToArrowRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]string{}
	for rec, err := range it {
		if err != nil {
			t.Fatal(err)
		}
		ids := rec.Column(rec.Schema().FieldIndices("id")[0]).(*array.Int64)
		ks := rec.Column(rec.Schema().FieldIndices("k")[0]).(*array.String)
		for i := range ids.Len() {
			if _, dup := out[ids.Value(i)]; dup {
				t.Errorf("key %d read twice", ids.Value(i))
			}
			out[ids.Value(i)] = ks.Value(i)
		}
		rec.Release()
	}
	return out
}

// TestUpserts keeps a table equal to a keyed source over checkpoints of
// inserts, updates, deletes and re-inserts, each checkpoint one row delta.
func TestUpserts(t *testing.T) {
	ctx := context.Background()
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.mirror", nil, eventCols...)
	r := startCommitter(t, cat, tt.tbl, 1, CommitterOptions{})
	type op struct {
		del bool
		id  int64
		k   string
	}
	checkpoints := [][]op{
		{{id: 1, k: "a"}, {id: 2, k: "b"}, {id: 3, k: "c"}},
		{{id: 2, k: "b2"}, {del: true, id: 3}, {id: 4, k: "d"}, {id: 4, k: "d2"}},
		{{del: true, id: 1}, {id: 3, k: "c again"}, {id: 2, k: "b3"}, {del: true, id: 2}},
		{{id: 2, k: "back"}},
	}
	want := map[int64]string{}
	for i, ops := range checkpoints {
		u, err := NewUpserts(r.Table("s1"), tt.layout, []string{"id"}, WriterOptions{Worker: 0, RunID: fmt.Sprint("u", i)})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range ops {
			row := tt.row(event{id: o.id, ts: int64(i), k: o.k})
			if o.del {
				err = u.Delete(row)
				delete(want, o.id)
			} else {
				err = u.Put(row, int64(i))
				want[o.id] = o.k
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		data, deletes, err := u.Seal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dw := dataWritten(int64(i+1), 0, data, checkpoint.Positions{"t": {0: int64(i + 1)}})
		dw.DeleteFiles = deletes
		r.submit(t, dw)
		r.nextAck(t)
		got := readKeys(t, reload(t, cat, tt.tbl))
		if !maps.Equal(got, want) {
			t.Fatalf("after checkpoint %d: %v, want %v", i+1, got, want)
		}
	}
}

func TestNewUpsertsRefuses(t *testing.T) {
	cat := newTestCatalog(t)
	parted := newTestTable(t, cat, "db.parted", []string{"k"}, eventCols...)
	if _, err := NewUpserts(parted.tbl, parted.layout, []string{"id"}, WriterOptions{}); err == nil {
		t.Error("a partitioned table was accepted")
	}
	plain := newTestTable(t, cat, "db.plain", nil, eventCols...)
	for _, key := range [][]string{nil, {"nope"}} {
		if _, err := NewUpserts(plain.tbl, plain.layout, key, WriterOptions{}); err == nil {
			t.Errorf("key %v was accepted", key)
		}
	}
}

// TestUpsertCompaction applies a table's equality deletes once it holds
// three delete files, while checkpoints keep committing: every commit,
// the rewrite included, reads the keyed source exactly, and the rewrite
// leaves no delete file behind it.
func TestUpsertCompaction(t *testing.T) {
	ctx := context.Background()
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.mirror", nil, eventCols...)
	r := startAnnouncing(t, cat, tt.tbl, 1, CommitterOptions{}, Announcing{ApplyDeletesAfter: 3})
	rng := rand.New(rand.NewPCG(5, 6))
	want := map[int64]string{}
	wants := map[string]map[int64]string{} // by checkpoint
	compacted := false
	for cp := int64(1); cp <= 12; cp++ {
		u, err := NewUpserts(r.Table("s1"), tt.layout, []string{"id"}, WriterOptions{RunID: fmt.Sprint("c", cp)})
		if err != nil {
			t.Fatal(err)
		}
		for range 40 {
			id := rng.Int64N(60)
			row := tt.row(event{id: id, ts: cp, k: fmt.Sprint(cp, "-", id)})
			if rng.IntN(4) == 0 {
				err = u.Delete(row)
				delete(want, id)
			} else {
				err = u.Put(row, cp)
				want[id] = fmt.Sprint(cp, "-", id)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		data, deletes, err := u.Seal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dw := dataWritten(cp, 0, data, checkpoint.Positions{"t": {0: cp}})
		dw.DeleteFiles = deletes
		r.submit(t, dw)
		r.nextAck(t)
		wants[fmt.Sprint(cp)] = maps.Clone(want)
		tbl := reload(t, cat, tt.tbl)
		if got := readKeys(t, tbl); !maps.Equal(got, want) {
			t.Fatalf("after checkpoint %d: %d keys, want %d", cp, len(got), len(want))
		}
		// A compaction's snapshot reads the source as of the checkpoint
		// it followed.
		for snap := tbl.CurrentSnapshot(); snap != nil && snap.Summary != nil; {
			if snap.Summary.Properties[PropCompaction] != "" {
				compacted = true
				after := snap.Summary.Properties[PropCheckpoint]
				if got := readKeys(t, tbl, table.WithSnapshotID(snap.SnapshotID)); !maps.Equal(got, wants[after]) {
					t.Fatalf("compaction snapshot %d (after checkpoint %s): %d keys, want %d", snap.SnapshotID, after, len(got), len(wants[after]))
				}
			}
			if snap.ParentSnapshotID == nil {
				break
			}
			snap = tbl.SnapshotByID(*snap.ParentSnapshotID)
		}
		if compacted && deleteFiles(tbl) > 4 {
			t.Errorf("after checkpoint %d: %d delete files remain after compaction", cp, deleteFiles(tbl))
		}
	}
	if !compacted {
		t.Fatal("no compaction committed")
	}
	st, err := LoadState(reload(t, cat, tt.tbl), "s1")
	if err != nil || st.Checkpoint != 12 {
		t.Fatalf("state after compactions: checkpoint %d, %v", st.Checkpoint, err)
	}
}
