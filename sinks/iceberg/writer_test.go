package iceberg

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

// checkDataFiles checks every sealed file against what is on disk: it exists
// with the reported size, parquet-go reads the reported number of rows, it
// lies in <table location>/data/<partition path>/ of its rows, its
// partition values are those of its rows, and its name starts with the UTC
// time of its first row (whose event time the tests set to ts). It returns
// the ids read, which the caller compares with the ids written.
func checkDataFiles(t *testing.T, tt *testTable, files []iceberg.DataFile) []int64 {
	t.Helper()
	var ids []int64
	seen := map[string]bool{}
	idCol, tsCol := tt.layout.ByName["id"].Column, tt.layout.ByName["ts"].Column
	for _, f := range files {
		loc := f.FilePath()
		if seen[loc] {
			t.Errorf("%s returned twice", loc)
			continue
		}
		seen[loc] = true
		st, err := os.Stat(localPath(loc))
		if err != nil {
			t.Errorf("sealed file: %v", err)
			continue
		}
		if st.Size() != f.FileSizeBytes() {
			t.Errorf("%s: %d bytes on disk, %d reported", loc, st.Size(), f.FileSizeBytes())
		}
		pf, rows := readParquet(t, loc)
		if pf.NumRows() != f.Count() || int64(len(rows)) != f.Count() {
			t.Errorf("%s: footer says %d rows, read %d, reported %d", loc, pf.NumRows(), len(rows), f.Count())
		}
		if len(rows) == 0 {
			t.Errorf("%s: empty file", loc)
			continue
		}
		part, err := tt.part.Partition(rows[0])
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			p, err := tt.part.Partition(r)
			if err != nil {
				t.Fatal(err)
			}
			if p.Path != part.Path {
				t.Errorf("%s: row %d is in partition %s, row 0 in %s", loc, i, p.Path, part.Path)
			}
			ids = append(ids, r[idCol].Int64())
		}
		if !reflect.DeepEqual(f.Partition(), part.Values) {
			t.Errorf("%s: partition %v, its rows are in %v", loc, f.Partition(), part.Values)
		}
		// Whatever the partition values, the file is inside the table.
		dataDir := localPath(strings.TrimSuffix(tt.tbl.Location(), "/") + "/data")
		if rel, err := filepath.Rel(dataDir, localPath(loc)); err != nil || !filepath.IsLocal(rel) {
			t.Errorf("%s is outside %s", localPath(loc), dataDir)
		}
		dir, name := path.Split(loc)
		wantDir := strings.TrimSuffix(tt.tbl.Location(), "/") + "/data/"
		if part.Path != "" {
			wantDir += part.Path + "/"
		}
		if dir != wantDir {
			t.Errorf("%s: in %s, want %s", loc, dir, wantDir)
		}
		first := time.UnixMicro(rows[0][tsCol].Int64()).UTC().Format("20060102T150405Z")
		if !strings.HasPrefix(name, first+"-") {
			t.Errorf("%s: name does not start with the time of its first row %s", name, first)
		}
	}
	return ids
}

func sameIDs(t *testing.T, got []int64, want []event) {
	t.Helper()
	count := map[int64]int{}
	for _, id := range got {
		count[id]++
	}
	for _, e := range want {
		count[e.id]--
	}
	for id, n := range count {
		if n != 0 {
			t.Errorf("id %d read %+d times more than written", id, n)
		}
	}
}

func countRows(files []iceberg.DataFile) int64 {
	var n int64
	for _, f := range files {
		n += f.Count()
	}
	return n
}

// events makes n events spread over keys, time increasing from start.
func events(r *rand.Rand, firstID int64, n int, keys []string, start int64) []event {
	out := make([]event, n)
	for i := range out {
		out[i] = event{id: firstID + int64(i), ts: start + int64(i)*int64(time.Second/time.Microsecond), k: keys[r.IntN(len(keys))]}
	}
	return out
}

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("p%02d", i)
	}
	return out
}

// TestWriterMaxOpenFiles writes rows in random order over more partitions
// than may be open: the least recently written file is closed early, and
// the next Seal returns it, once.
func TestWriterMaxOpenFiles(t *testing.T) {
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", []string{"k"}, eventCols...)
	opts := writerOptions()
	opts.MaxOpenFiles = 3
	w := tt.newWriter(t, opts)
	r := rand.New(rand.NewPCG(3, 4))
	start := tsUS(t, "1969-12-31T23:59:00Z") // names before and after 1970

	var all []iceberg.DataFile
	var sealedAtCheckpoint int64
	for cp := range 2 {
		written := events(r, int64(cp)*1000, 400, keys(7), start+int64(cp)*3600e6)
		for i := 0; i < len(written); i += 50 {
			tt.write(t, w, written[i:i+50]...)
			if n := w.OpenFiles(); n > opts.MaxOpenFiles {
				t.Fatalf("%d files open, MaxOpenFiles is %d", n, opts.MaxOpenFiles)
			}
		}
		open := w.OpenFiles()
		files, size, err := w.Seal()
		if err != nil {
			t.Fatal(err)
		}
		sealedAtCheckpoint += int64(open)
		if got := countRows(files); got != int64(len(written)) {
			t.Errorf("checkpoint %d: files hold %d rows, %d written", cp, got, len(written))
		}
		var sum int64
		for _, f := range files {
			sum += f.FileSizeBytes()
		}
		if size != sum {
			t.Errorf("checkpoint %d: Seal reports %d bytes, files hold %d", cp, size, sum)
		}
		sameIDs(t, checkDataFiles(t, tt, files), written)
		all = append(all, files...)
	}
	checkDataFiles(t, tt, all) // no file in both checkpoints
	st := w.Stats()
	if st.FilesClosedEarly == 0 {
		t.Error("no file was closed early")
	}
	if got := st.FilesClosedEarly + sealedAtCheckpoint; got != int64(len(all)) {
		t.Errorf("%d closed early + %d at checkpoints, but %d files", st.FilesClosedEarly, sealedAtCheckpoint, len(all))
	}
	if files, size, err := w.Seal(); err != nil || len(files) != 0 || size != 0 {
		t.Errorf("Seal with nothing written = %d files, %d bytes, %v", len(files), size, err)
	}
}

// TestWriterRollsAtTargetSize checks that a partition written past the
// target size gets several files.
func TestWriterRollsAtTargetSize(t *testing.T) {
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", []string{"k"}, eventCols...)
	opts := writerOptions()
	opts.TargetFileSize = 16 << 10
	opts.RowGroupSize = 4 << 10
	w := tt.newWriter(t, opts)
	r := rand.New(rand.NewPCG(5, 6))
	var written []event
	for i := range 40 {
		// Random ids compress badly, so the files grow.
		batch := events(r, int64(i)*100, 100, keys(2), tsUS(t, "2024-01-01T00:00:00Z")+int64(i)*100e6)
		for j := range batch {
			batch[j].id += r.Int64N(1<<40) << 16
		}
		tt.write(t, w, batch...)
		written = append(written, batch...)
	}
	open := w.OpenFiles()
	files, _, err := w.Seal()
	if err != nil {
		t.Fatal(err)
	}
	sameIDs(t, checkDataFiles(t, tt, files), written)
	perPartition := map[string]int{}
	for _, f := range files {
		perPartition[path.Base(path.Dir(f.FilePath()))]++
	}
	for p, n := range perPartition {
		if n < 3 {
			t.Errorf("partition %s has %d files, want several", p, n)
		}
	}
	if st := w.Stats(); st.FilesRolled+int64(open) != int64(len(files)) || st.FilesClosedEarly != 0 {
		t.Errorf("stats %+v with %d open at Seal, %d files", st, open, len(files))
	}
}

// TestWriterMemoryBudget checks that Flush closes the least recently
// written files while the open files together buffer more than the budget,
// until a quarter of it is free.
func TestWriterMemoryBudget(t *testing.T) {
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", []string{"k"}, eventCols...)
	// p00 gets most rows, so it buffers most.
	var input []event
	for i := range 600 {
		k := "p00"
		if i%10 == 0 {
			k = fmt.Sprintf("p%02d", 1+i%3)
		}
		input = append(input, event{id: int64(i), ts: tsUS(t, "2024-01-01T00:00:00Z") + int64(i), k: k})
	}

	// What the four open files buffer with no budget to speak of.
	ref := tt.newWriter(t, writerOptions())
	tt.write(t, ref, input...)
	total := ref.BufferedBytes()
	if ref.OpenFiles() != 4 || total == 0 {
		t.Fatalf("reference writer: %d files open, %d bytes buffered", ref.OpenFiles(), total)
	}

	tests := []struct {
		name       string
		budget     int64
		wantEarly  int64
		wantOpen   int
		wantClosed string // partition of the file closed early, if one
	}{
		{"under budget", total, 0, 4, ""},
		// p00 is written last; p01, p02, p03 before it, p01 first.
		{"just over", total - 1, 3, 1, "k=p01"},
		{"tiny", 1, 4, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := writerOptions()
			opts.MemoryBudget = tc.budget
			w := tt.newWriter(t, opts)
			tt.write(t, w, input...)
			if st := w.Stats(); st.FilesClosedEarly != tc.wantEarly {
				t.Errorf("FilesClosedEarly = %d, want %d", st.FilesClosedEarly, tc.wantEarly)
			}
			if w.OpenFiles() != tc.wantOpen {
				t.Errorf("OpenFiles = %d, want %d", w.OpenFiles(), tc.wantOpen)
			}
			if w.BufferedBytes() > tc.budget {
				t.Errorf("%d bytes buffered after Flush, budget %d", w.BufferedBytes(), tc.budget)
			}
			// Files closed early are sealed: Seal returns them with the rest.
			files, _, err := w.Seal()
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 4 {
				t.Errorf("Seal returned %d files, want 4", len(files))
			}
			if tc.wantClosed != "" {
				// The early one was sealed first.
				if got := path.Base(path.Dir(files[0].FilePath())); got != tc.wantClosed {
					t.Errorf("closed %s first, want the least recently written, %s", got, tc.wantClosed)
				}
			}
			sameIDs(t, checkDataFiles(t, tt, files), input)
		})
	}
}

// TestWriterPartitionValuesCommitted commits files of edge-case partitions
// and reads the partition values back from the manifests: what a reader
// prunes by must be what the rows hold.
func TestWriterPartitionValuesCommitted(t *testing.T) {
	ctx := context.Background()
	minus128 := parquet.FixedLenByteArrayValue(twos(big.NewInt(-128), schema.DecimalBytes(30)))
	tests := []struct {
		name      string
		typ       string
		partition string
		values    []parquet.Value
	}{
		{"empty binary is not null", "binary", "v", []parquet.Value{
			parquet.ByteArrayValue([]byte{}), parquet.NullValue(), parquet.ByteArrayValue([]byte{0})}},
		{"empty string is not null", "string", "v", []parquet.Value{
			parquet.ByteArrayValue([]byte{}), parquet.NullValue(), parquet.ByteArrayValue([]byte("x"))}},
		{"strings that look like paths", "string", "v", []parquet.Value{
			parquet.ByteArrayValue([]byte("/../../../../../../escaped")), parquet.ByteArrayValue([]byte("..")),
			parquet.ByteArrayValue([]byte("a/b")), parquet.ByteArrayValue([]byte("100%")), parquet.ByteArrayValue([]byte("%2F"))}},
		{"day before 1970", "date", "day(v)", []parquet.Value{parquet.Int32Value(-1), parquet.Int32Value(0)}},
		{"month before 1970", "timestamptz(us)", "month(v)", []parquet.Value{parquet.Int64Value(-1), parquet.Int64Value(0)}},
		{"identity timestamp", "timestamp(us)", "v", []parquet.Value{parquet.Int64Value(-1), parquet.Int64Value(0)}},
		{"bucket of a wide decimal", "decimal(30,2)", "bucket(16, v)", []parquet.Value{minus128, parquet.NullValue()}},
		{"bool", "bool", "v", []parquet.Value{parquet.BooleanValue(false), parquet.BooleanValue(true), parquet.NullValue()}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cat := newTestCatalog(t)
			tt := newTestTable(t, cat, fmt.Sprintf("db.t%d", i), []string{tc.partition},
				col{"id", "int64", true}, col{"v", tc.typ, false})
			w := tt.newWriter(t, writerOptions())
			want := map[int64]map[int]any{} // by id, the only row of its file
			for id, v := range tc.values {
				row := rowOf(tt.layout, map[string]parquet.Value{"id": parquet.Int64Value(int64(id)), "v": v})
				p, err := tt.part.Partition(row)
				if err != nil {
					t.Fatal(err)
				}
				want[int64(id)] = p.Values
				if err := w.Write(tt.part.AppendKey(nil, row), row, 0); err != nil {
					t.Fatal(err)
				}
			}
			files, _, err := w.Seal()
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != len(tc.values) {
				t.Fatalf("%d files for %d partitions", len(files), len(tc.values))
			}
			tx := tt.tbl.NewTransaction()
			if err := tx.AddDataFiles(ctx, files, nil); err != nil {
				t.Fatal(err)
			}
			tbl, err := tx.Commit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tasks, err := tbl.Scan().PlanFiles(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(tasks) != len(files) {
				t.Fatalf("scan plans %d files, %d committed", len(tasks), len(files))
			}
			idCol := tt.layout.ByName["id"].Column
			for _, task := range tasks {
				_, rows := readParquet(t, task.File.FilePath())
				id := rows[0][idCol].Int64()
				if got := task.File.Partition(); !reflect.DeepEqual(got, want[id]) {
					t.Errorf("row %d (%v): manifest says partition %#v, the writer computed %#v", id, tc.values[id], got, want[id])
				}
			}
		})
	}
}
