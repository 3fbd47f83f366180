package iceberg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/schema"
)

// col is one column of a test schema.
type col struct {
	name, typ string
	required  bool
}

// testSchema parses the column types and numbers the fields like a new
// table.
func testSchema(t testing.TB, cols ...col) schema.Schema {
	t.Helper()
	var s schema.Schema
	for _, c := range cols {
		typ, err := schema.ParseType(c.typ)
		if err != nil {
			t.Fatalf("type of %s: %v", c.name, err)
		}
		s.Fields = append(s.Fields, schema.Field{Name: c.name, Type: typ, Required: c.required})
	}
	s.AssignIDs()
	return s
}

// rowOf builds a row of a layout whose top-level primitive columns take the
// given values (missing ones are null); lists and structs are null. Values
// are ordered by column, as the parse stage orders them.
func rowOf(l *schema.Layout, vals map[string]parquet.Value) parquet.Row {
	var row parquet.Row
	for _, n := range l.Top {
		if !n.Field.Type.IsPrimitive() {
			for _, c := range n.Leaves {
				row = append(row, parquet.NullValue().Level(0, 0, c))
			}
			continue
		}
		v, ok := vals[n.Field.Name]
		if !ok || v.IsNull() {
			row = append(row, parquet.NullValue().Level(0, 0, n.Column))
			continue
		}
		row = append(row, v.Level(0, n.Def, n.Column))
	}
	return row
}

// newTestCatalog opens a SQLite catalog with a file warehouse in a temp
// directory, closed when the test ends.
func newTestCatalog(t testing.TB) catalog.Catalog {
	t.Helper()
	dir := t.TempDir()
	cat, closeCat, err := OpenCatalog(context.Background(), config.Catalog{
		Type: "sql", URI: dir + "/catalog.db", Warehouse: "file://" + dir + "/wh", Name: "sluice",
	})
	if err != nil {
		t.Fatalf("open catalog: %v", err)
	}
	t.Cleanup(func() {
		if err := closeCat(); err != nil {
			t.Errorf("close catalog: %v", err)
		}
	})
	return cat
}

// eventCols is the schema of most tests: an event with an id, a time and a
// key.
var eventCols = []col{
	{"id", "int64", true},
	{"ts", "timestamptz(us)", false},
	{"k", "string", false},
}

// testTable is a table with the layout and partitioner its writers use.
type testTable struct {
	tbl    *table.Table
	layout *schema.Layout
	part   *Partitioner
}

// newTestTable creates a table through EnsureTable, as the daemon does.
func newTestTable(t testing.TB, cat catalog.Catalog, name string, partition []string, cols ...col) *testTable {
	t.Helper()
	tbl, bound, err := EnsureTable(context.Background(), cat, config.Table{Name: name, Partition: partition}, testSchema(t, cols...))
	if err != nil {
		t.Fatalf("ensure table %s: %v", name, err)
	}
	l := schema.NewLayout(bound, name)
	part, err := NewPartitioner(partition, l)
	if err != nil {
		t.Fatalf("partitioner of %s: %v", name, err)
	}
	return &testTable{tbl: tbl, layout: l, part: part}
}

// writerOptions are generous limits that no test reaches unless it lowers
// them.
func writerOptions() WriterOptions {
	return WriterOptions{
		Worker: 0, RunID: "run1", TargetFileSize: 1 << 30, RowGroupSize: 1 << 20,
		Compression: "zstd", MaxOpenFiles: 1000, MemoryBudget: 1 << 30,
	}
}

func (tt *testTable) newWriter(t testing.TB, opts WriterOptions) *Writer {
	t.Helper()
	w, err := NewWriter(context.Background(), tt.tbl, tt.layout, tt.part, opts)
	if err != nil {
		t.Fatalf("new writer: %v", err)
	}
	t.Cleanup(w.Abort)
	return w
}

// event is one row of eventCols.
type event struct {
	id int64
	ts int64 // microseconds
	k  string
}

func (tt *testTable) row(e event) parquet.Row {
	return rowOf(tt.layout, map[string]parquet.Value{
		"id": parquet.Int64Value(e.id),
		"ts": parquet.Int64Value(e.ts),
		"k":  parquet.ByteArrayValue([]byte(e.k)),
	})
}

// write writes events through w (event time = ts) and flushes.
func (tt *testTable) write(t testing.TB, w *Writer, events ...event) {
	t.Helper()
	var key []byte
	for _, e := range events {
		row := tt.row(e)
		key = tt.part.AppendKey(key[:0], row)
		if err := w.Write(key, row, e.ts); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

var writerRuns atomic.Int64

// writeFiles writes events with a fresh writer and seals its files.
func (tt *testTable) writeFiles(t testing.TB, worker int, events ...event) []iceberg.DataFile {
	t.Helper()
	opts := writerOptions()
	opts.Worker = worker
	// A writer numbers its files from 1: each gets its own run so that
	// names never collide.
	opts.RunID = fmt.Sprintf("run%d", writerRuns.Add(1))
	w := tt.newWriter(t, opts)
	tt.write(t, w, events...)
	files, _, err := w.Seal()
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return files
}

// localPath turns a file:// location into a path the way iceberg-go's
// local file IO does: percent escapes (partition paths are URL-escaped) are
// decoded.
func localPath(loc string) string {
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "file" {
		return strings.TrimPrefix(loc, "file://")
	}
	return u.Path
}

// readParquet reads every row of a data file with parquet-go.
func readParquet(t testing.TB, loc string) (*parquet.File, []parquet.Row) {
	t.Helper()
	f, err := os.Open(localPath(loc))
	if err != nil {
		t.Fatalf("open data file: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatalf("parquet open %s: %v", loc, err)
	}
	var rows []parquet.Row
	for _, rg := range pf.RowGroups() {
		rr := rg.Rows()
		buf := make([]parquet.Row, 64)
		for {
			n, err := rr.ReadRows(buf)
			for _, r := range buf[:n] {
				rows = append(rows, r.Clone())
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("read %s: %v", loc, err)
			}
		}
		rr.Close()
	}
	return pf, rows
}

// faultyCatalog passes everything to a real catalog but lets a test
// interfere with commits. Tables it loads commit through it, so commits a
// transaction makes, including iceberg-go's own retries, reach the hooks.
type faultyCatalog struct {
	catalog.Catalog

	mu    sync.Mutex
	calls int
	// before runs before the n-th (from 1) CommitTable reaches the real
	// catalog; an error is returned without committing.
	before func(ctx context.Context, n int) error
	// after runs once the real catalog accepted the n-th commit; an error
	// is returned in place of the result, making the commit ambiguous.
	after func(n int) error
}

func (c *faultyCatalog) LoadTable(ctx context.Context, ident table.Identifier) (*table.Table, error) {
	tbl, err := c.Catalog.LoadTable(ctx, ident)
	if err != nil {
		return nil, err
	}
	return table.New(tbl.Identifier(), tbl.Metadata(), tbl.MetadataLocation(), tbl.FS, c), nil
}

func (c *faultyCatalog) CommitTable(ctx context.Context, ident table.Identifier, reqs []table.Requirement, updates []table.Update) (table.Metadata, string, error) {
	c.mu.Lock()
	c.calls++
	n := c.calls
	c.mu.Unlock()
	if c.before != nil {
		if err := c.before(ctx, n); err != nil {
			return nil, "", err
		}
	}
	meta, loc, err := c.Catalog.CommitTable(ctx, ident, reqs, updates)
	if err == nil && c.after != nil {
		if err := c.after(n); err != nil {
			return nil, "", err
		}
	}
	return meta, loc, err
}

func (c *faultyCatalog) commits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}
