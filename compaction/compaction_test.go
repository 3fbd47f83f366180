package compaction

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/schema"
	ice "github.com/sluicehq/sluice/sinks/iceberg"
)

// fixture is a table with hour partitions written in many small files, as
// a pipeline with a short checkpoint interval leaves it.
type fixture struct {
	cat    catalog.Catalog
	tbl    *table.Table
	layout *schema.Layout
	part   []string
}

var hour0 = time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cat, closeCat, err := ice.OpenCatalog(ctx, config.Catalog{Type: "sql", URI: dir + "/catalog.db", Warehouse: "file://" + dir + "/wh", Name: "sluice"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeCat() })
	out := schema.Schema{Fields: []schema.Field{
		{Name: "id", Type: schema.Type{Kind: schema.KindString}, Required: true},
		{Name: "ts", Type: schema.Type{Kind: schema.KindTimestampTZ}, Required: true},
		{Name: "n", Type: schema.Type{Kind: schema.KindInt64}},
	}}
	part := []string{"hour(ts)"}
	tbl, bound, err := ice.EnsureTable(ctx, cat, config.Table{Name: "db.events", Partition: part}, out)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{cat: cat, tbl: tbl, layout: schema.NewLayout(bound, "db.events"), part: part}
}

// commit writes rows ids from..to, spread over hours hours, as one file per
// hour, and commits them as one append.
func (f *fixture) commit(t *testing.T, from, to, hours int) {
	t.Helper()
	ctx := context.Background()
	p, err := ice.NewPartitioner(f.part, f.layout)
	if err != nil {
		t.Fatal(err)
	}
	w, err := ice.NewWriter(ctx, f.tbl, f.layout, p, ice.WriterOptions{Worker: 0, RunID: fmt.Sprint("c", from), Compression: "zstd"})
	if err != nil {
		t.Fatal(err)
	}
	var key []byte
	for i := from; i < to; i++ {
		ts := hour0.Add(time.Duration(i%hours)*time.Hour + time.Duration(i)*time.Millisecond).UnixMicro()
		row := parquet.Row{
			parquet.ByteArrayValue([]byte(fmt.Sprintf("id-%06d", i))).Level(0, 0, f.layout.ByName["id"].Column),
			parquet.Int64Value(ts).Level(0, 0, f.layout.ByName["ts"].Column),
			parquet.Int64Value(int64(i)).Level(0, 1, f.layout.ByName["n"].Column),
		}
		sortRow(row)
		key = p.AppendKey(key[:0], row)
		if err := w.Write(key, row, ts); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	files, _, err := w.Seal()
	if err != nil {
		t.Fatal(err)
	}
	tx := f.tbl.NewTransaction()
	if err := tx.AddDataFiles(ctx, files, iceberg.Properties{"sluice.test": "append"}); err != nil {
		t.Fatal(err)
	}
	if f.tbl, err = tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func sortRow(row parquet.Row) {
	for i := 1; i < len(row); i++ {
		for j := i; j > 0 && row[j].Column() < row[j-1].Column(); j-- {
			row[j], row[j-1] = row[j-1], row[j]
		}
	}
}

func (f *fixture) load(ctx context.Context) (*table.Table, error) {
	return f.cat.LoadTable(ctx, f.tbl.Identifier())
}

// ids reads the id column at a snapshot (0: the current one).
func ids(t *testing.T, tbl *table.Table, snapshot int64) map[string]int {
	t.Helper()
	opts := []table.ScanOption{table.WithSelectedFields("id")}
	if snapshot != 0 {
		opts = append(opts, table.WithSnapshotID(snapshot))
	}
	_, it, err := tbl.Scan(opts...).ToArrowRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rec, err := range it {
		if err != nil {
			t.Fatal(err)
		}
		col := rec.Column(0).(*array.String)
		for i := range col.Len() {
			out[col.Value(i)]++
		}
		rec.Release()
	}
	return out
}

func TestMergeAndCommit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for c := range 6 { // six checkpoints, each a small file per hour
		f.commit(t, c*100, (c+1)*100, 3)
	}
	before := f.tbl.CurrentSnapshot().SnapshotID
	parts, err := Partitions(ctx, f.tbl, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 {
		t.Fatalf("%d partitions, want 3", len(parts))
	}
	m, err := NewMerger(ctx, f.tbl, f.layout, f.part, Options{Writer: ice.WriterOptions{Worker: 900, RunID: "compact", Compression: "zstd"}})
	if err != nil {
		t.Fatal(err)
	}
	var merged, written []iceberg.DataFile
	for _, p := range parts {
		if len(p.Files) != 6 {
			t.Errorf("%s has %d files, want 6", p.Path, len(p.Files))
		}
		mf, wf, err := m.MergeFiles(ctx, p.Files)
		if err != nil {
			t.Fatal(err)
		}
		merged, written = append(merged, mf...), append(written, wf...)
	}
	if len(merged) != 18 || len(written) != 3 {
		t.Fatalf("merged %d files into %d, want 18 into 3", len(merged), len(written))
	}
	tbl, err := Commit(ctx, f.load, f.tbl, merged, written, iceberg.Properties{"sluice.compaction": "test"})
	if err != nil {
		t.Fatal(err)
	}
	after, err := Partitions(ctx, tbl, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range after {
		if len(p.Files) != 1 || p.Files[0].Count() != 200 {
			t.Errorf("%s after compaction: %d files", p.Path, len(p.Files))
		}
	}
	// Every row once, now and at the snapshot before.
	for _, snap := range []int64{before, 0} {
		got := ids(t, tbl, snap)
		if len(got) != 600 {
			t.Errorf("snapshot %d: %d ids, want 600", snap, len(got))
		}
		for id, n := range got {
			if n != 1 {
				t.Errorf("snapshot %d: %s %d times", snap, id, n)
			}
		}
	}
	if op := tbl.CurrentSnapshot().Summary.Operation; op != table.OpReplace {
		t.Errorf("rewrite snapshot operation %q, want replace", op)
	}
}

// TestCommitRetriesConflict: an append lands between the merge and its
// commit; the rewrite is retried on the reloaded table and both survive.
func TestCommitRetriesConflict(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.commit(t, 0, 100, 1)
	f.commit(t, 100, 200, 1)
	stale := f.tbl
	parts, err := Partitions(ctx, stale, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMerger(ctx, stale, f.layout, f.part, Options{Writer: ice.WriterOptions{Worker: 900, RunID: "compact"}})
	if err != nil {
		t.Fatal(err)
	}
	merged, written, err := m.Merge(ctx, parts[0].Files)
	if err != nil {
		t.Fatal(err)
	}
	f.commit(t, 200, 300, 1) // the concurrent append
	tbl, err := Commit(ctx, f.load, stale, merged, written, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(t, tbl, 0); len(got) != 300 {
		t.Errorf("%d ids after the retried rewrite, want 300", len(got))
	}
}

func TestPlan(t *testing.T) {
	mk := func(sizes ...int64) []iceberg.DataFile {
		var out []iceberg.DataFile
		for i, s := range sizes {
			b, err := iceberg.NewDataFileBuilder(*iceberg.UnpartitionedSpec, iceberg.EntryContentData,
				fmt.Sprintf("f%02d.parquet", i), iceberg.ParquetFile, nil, nil, nil, 1, s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b.Build())
		}
		return out
	}
	opts := Options{TargetFileSize: 100}
	tests := []struct {
		name  string
		sizes []int64
		want  []int // group sizes
	}{
		{"one small file", []int64{10}, nil},
		{"two small", []int64{10, 20}, []int{2}},
		{"near target left alone", []int64{80, 90, 10}, nil},
		{"groups reach the target", []int64{40, 40, 40, 40, 40}, []int{3, 2}},
		{"a lone remainder stays", []int64{60, 50, 10}, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			for _, g := range Plan(mk(tt.sizes...), opts) {
				got = append(got, len(g))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("groups %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMergeTwice: a partition merged, then merged again with new small
// files, keeps every row: the second merge's files do not overwrite the
// first's.
func TestMergeTwice(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	m, err := NewMerger(ctx, f.tbl, f.layout, f.part, Options{Writer: ice.WriterOptions{Worker: 900, RunID: "compact"}})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		f.commit(t, round*200, round*200+100, 1)
		f.commit(t, round*200+100, round*200+200, 1)
		parts, err := Partitions(ctx, f.tbl, nil)
		if err != nil {
			t.Fatal(err)
		}
		merged, written, err := m.Merge(ctx, parts[0].Files)
		if err != nil {
			t.Fatal(err)
		}
		if f.tbl, err = Commit(ctx, f.load, f.tbl, merged, written, nil); err != nil {
			t.Fatal(err)
		}
		for _, snap := range f.tbl.Metadata().Snapshots() {
			for id, n := range ids(t, f.tbl, snap.SnapshotID) {
				if n != 1 {
					t.Fatalf("round %d, snapshot %d: %s %d times", round, snap.SnapshotID, id, n)
				}
			}
		}
		if got := len(ids(t, f.tbl, 0)); got != (round+1)*200 {
			t.Fatalf("round %d: %d ids, want %d", round, got, (round+1)*200)
		}
	}
}

// TestMergeSorted merges the files of a table with a sort order (n
// descending, nulls last, then id): the rows of each merged file come in
// that order, and a small sort budget makes each run a file of its own.
func TestMergeSorted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for c := range 4 {
		f.commit(t, c*50, (c+1)*50, 1) // ids ascending: n ascending
	}
	nID, idID := f.layout.ByName["n"].Field.ID, f.layout.ByName["id"].Field.ID
	order, err := table.NewSortOrder(1, []table.SortField{
		{SourceIDs: []int{nID}, Transform: iceberg.IdentityTransform{}, Direction: table.SortDESC, NullOrder: table.NullsLast},
		{SourceIDs: []int{idID}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst},
	})
	if err != nil {
		t.Fatal(err)
	}
	tx := f.tbl.NewTransaction()
	if err := tx.ReplaceSortOrder(order); err != nil {
		t.Fatal(err)
	}
	if f.tbl, err = tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		runBytes  int64
		wantFiles int
	}{
		{"one run", 0, 1},
		{"runs of 100 rows", 100 * 3 * 24, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewMerger(ctx, f.tbl, f.layout, f.part, Options{SortRunBytes: tc.runBytes,
				Writer: ice.WriterOptions{Worker: 901, RunID: "sorted-" + tc.name, Compression: "zstd"}})
			if err != nil {
				t.Fatal(err)
			}
			parts, err := Partitions(ctx, f.tbl, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, written, err := m.MergeFiles(ctx, parts[0].Files)
			if err != nil {
				t.Fatal(err)
			}
			if len(written) != tc.wantFiles {
				t.Fatalf("%d files written, want %d", len(written), tc.wantFiles)
			}
			total := 0
			for _, w := range written {
				fs, _ := f.tbl.FS(ctx)
				in, err := fs.Open(w.FilePath())
				if err != nil {
					t.Fatal(err)
				}
				pf, err := parquet.OpenFile(in.(io.ReaderAt), w.FileSizeBytes())
				if err != nil {
					t.Fatal(err)
				}
				rows := make([]parquet.Row, w.Count())
				rr := parquet.NewReader(pf)
				n, _ := rr.ReadRows(rows)
				rr.Close()
				in.Close()
				total += n
				last := int64(1 << 62)
				for _, row := range rows[:n] {
					v := valueAt(row, f.layout.ByName["n"].Column).Int64()
					if v > last {
						t.Fatalf("file %s: n %d after %d, not descending", w.FilePath(), v, last)
					}
					last = v
				}
			}
			if total != 200 {
				t.Errorf("%d rows written, want 200", total)
			}
		})
	}
}
