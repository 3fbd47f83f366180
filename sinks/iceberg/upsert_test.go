package iceberg

import (
	"context"
	"fmt"
	"maps"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/checkpoint"
)

// readKeys reads id → k of the table's current rows, equality deletes
// applied.
func readKeys(t *testing.T, tbl *table.Table) map[int64]string {
	t.Helper()
	_, it, err := tbl.Scan(table.WithSelectedFields("id", "k")).ToArrowRecords(context.Background())
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
