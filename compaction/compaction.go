// Package compaction merges a table's small data files into files near the
// target size and commits the merge as one rewrite snapshot, so readers at
// any snapshot see every row exactly once.
package compaction

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/iceberg-go"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
	ice "github.com/sluicehq/sluice/sinks/iceberg"
)

// Defaults.
const (
	DefaultTargetFileSize = 256 << 20
	// smallShare: a file under this share of the target is small.
	smallShare = 0.75
)

// Options configure a merge.
type Options struct {
	// TargetFileSize is the size merged files roll at (default 256 MiB).
	TargetFileSize int64
	// MinFiles is the fewest small files of a partition worth merging
	// (default 2).
	MinFiles int
	// Writer names and tunes the merged files (Worker, RunID, codec,
	// row group size).
	Writer ice.WriterOptions
	// SortRunBytes bounds the rows held in memory to be sorted, for tables
	// with a sort order (default 64 MiB): each merged file is one sorted
	// run of at most this much.
	SortRunBytes int64
}

func (o Options) withDefaults() Options {
	if o.TargetFileSize <= 0 {
		o.TargetFileSize = DefaultTargetFileSize
	}
	if o.MinFiles < 2 {
		o.MinFiles = 2
	}
	o.Writer.TargetFileSize = o.TargetFileSize
	if o.SortRunBytes <= 0 {
		o.SortRunBytes = 64 << 20
	}
	return o
}

// Partition is a table partition's current data files.
type Partition struct {
	Path  string // e.g. ts_hour=2026-11-23-07; "" unpartitioned
	Files []iceberg.DataFile
}

// Partitions lists the data files of tbl's current snapshot by partition
// path, keeping those whose path passes keep (nil: all). Files with
// deletes against them are left out: merging them would need the deletes
// applied.
func Partitions(ctx context.Context, tbl *table.Table, keep func(path string) bool) ([]Partition, error) {
	if tbl.CurrentSnapshot() == nil {
		return nil, nil
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan files of %s: %w", strings.Join(tbl.Identifier(), "."), err)
	}
	spec, sch := tbl.Spec(), tbl.Schema()
	byPath := map[string]*Partition{}
	var order []string
	seen := map[string]bool{} // a large file is planned as several tasks
	for _, t := range tasks {
		if len(t.DeleteFiles) > 0 || len(t.EqualityDeleteFiles) > 0 || len(t.DeletionVectorFiles) > 0 || seen[t.File.FilePath()] {
			continue
		}
		seen[t.File.FilePath()] = true
		path := partitionPath(spec, sch, t.File)
		if keep != nil && !keep(path) {
			continue
		}
		p := byPath[path]
		if p == nil {
			p = &Partition{Path: path}
			byPath[path] = p
			order = append(order, path)
		}
		p.Files = append(p.Files, t.File)
	}
	slices.Sort(order)
	out := make([]Partition, len(order))
	for i, path := range order {
		out[i] = *byPath[path]
	}
	return out, nil
}

type record []any

func (r record) Size() int        { return len(r) }
func (r record) Get(i int) any    { return r[i] }
func (r record) Set(i int, v any) { r[i] = v }

func partitionPath(spec iceberg.PartitionSpec, sch *iceberg.Schema, f iceberg.DataFile) string {
	if spec.NumFields() == 0 {
		return ""
	}
	vals := f.Partition()
	rec := make(record, spec.NumFields())
	for i := range spec.NumFields() {
		rec[i] = vals[spec.Field(i).FieldID]
	}
	return spec.PartitionToPath(rec, sch)
}

// Plan groups a partition's small files for merging: each group's files
// together come near the target size (a group may fall short, never over
// by more than one file). Files already near the target are left alone, and
// so is a partition with fewer than MinFiles small files.
func Plan(files []iceberg.DataFile, opts Options) [][]iceberg.DataFile {
	opts = opts.withDefaults()
	var small []iceberg.DataFile
	for _, f := range files {
		if float64(f.FileSizeBytes()) < smallShare*float64(opts.TargetFileSize) {
			small = append(small, f)
		}
	}
	if len(small) < opts.MinFiles {
		return nil
	}
	// Oldest names first keeps merged files in time order.
	slices.SortFunc(small, func(a, b iceberg.DataFile) int { return strings.Compare(a.FilePath(), b.FilePath()) })
	var groups [][]iceberg.DataFile
	var cur []iceberg.DataFile
	var size int64
	for _, f := range small {
		cur = append(cur, f)
		if size += f.FileSizeBytes(); size >= opts.TargetFileSize {
			groups = append(groups, cur)
			cur, size = nil, 0
		}
	}
	if len(cur) > 1 {
		groups = append(groups, cur)
	}
	return groups
}

// Merger rewrites groups of one table's files through a writer with the
// table's layout and partitioning, so the merged files carry the same
// partition values and column metrics as any the pipeline writes. Rows are
// copied as they are, or, when the table has a sort order, sorted: each
// merged file then holds one sorted run.
type Merger struct {
	tbl    *table.Table
	layout *schema.Layout
	part   *ice.Partitioner
	fs     icebergio.IO
	opts   Options
	keys   []sortKey    // the table's sort order; none: unsorted
	merges atomic.Int64 // names each merge's files apart
}

// NewMerger prepares merging files of tbl written with layout (the columns
// the stream writes) under the table's partitioning exprs.
func NewMerger(ctx context.Context, tbl *table.Table, layout *schema.Layout, partition []string, opts Options) (*Merger, error) {
	part, err := ice.NewPartitioner(partition, layout)
	if err != nil {
		return nil, err
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("table %s file io: %w", strings.Join(tbl.Identifier(), "."), err)
	}
	keys, err := sortKeys(tbl, layout)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", strings.Join(tbl.Identifier(), "."), err)
	}
	return &Merger{tbl: tbl, layout: layout, part: part, fs: fs, opts: opts.withDefaults(), keys: keys}, nil
}

// ErrOtherSchema marks a file written with other columns than the merger's
// layout (an older schema version); such files are left as they are.
var ErrOtherSchema = errors.New("file has other columns than the table's writers")

// Merge reads every row of group and writes them into new files near the
// target size. It returns the files merged (those of other schemas are left
// out of the merge) and the files written. Nothing is committed: until a
// snapshot references them the new files are orphans, removed at the next
// start if the merge is not committed.
func (m *Merger) Merge(ctx context.Context, group []iceberg.DataFile) (merged, written []iceberg.DataFile, err error) {
	// A writer numbers its files from 1: each merge gets a run name of its
	// own, or a second merge of a partition would overwrite the first's
	// files, which a snapshot references.
	wopts := m.opts.Writer
	wopts.RunID = fmt.Sprintf("%s-m%d", wopts.RunID, m.merges.Add(1))
	w, err := ice.NewWriter(ctx, m.tbl, m.layout, m.part, wopts)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	const batch = 1024
	rows := make([]parquet.Row, batch)
	var key []byte
	var run *sortRun
	if len(m.keys) > 0 {
		run = &sortRun{}
	}
	for _, f := range group {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		var n int64
		if run != nil {
			n, err = m.sortFile(f, w, run, rows, &key, &written)
		} else {
			n, err = m.copyFile(f, w, rows, &key)
		}
		if errors.Is(err, ErrOtherSchema) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("merge %s: %w", f.FilePath(), err)
		}
		if n != f.Count() {
			return nil, nil, fmt.Errorf("merge %s: read %d rows, the manifest says %d", f.FilePath(), n, f.Count())
		}
		merged = append(merged, f)
	}
	if len(merged) < 2 {
		w.Abort()
		return nil, nil, nil
	}
	if run != nil {
		if err := m.writeRun(w, run, &key, &written); err != nil {
			return nil, nil, err
		}
		return merged, written, nil
	}
	written, _, err = w.Seal()
	if err != nil {
		return nil, nil, err
	}
	return merged, written, nil
}

// sortFile adds a file's rows to the sorted run, writing the run out as a
// file of its own whenever it reaches its budget.
func (m *Merger) sortFile(f iceberg.DataFile, w *ice.Writer, run *sortRun, rows []parquet.Row, key *[]byte, written *[]iceberg.DataFile) (int64, error) {
	pf, closeFile, err := m.open(f)
	if err != nil {
		return 0, err
	}
	defer closeFile()
	var n int64
	for _, rg := range pf.RowGroups() {
		k, err := eachBatch(rg, rows, func(batch []parquet.Row) error {
			for _, row := range batch {
				run.add(row)
			}
			if run.bytes >= m.opts.SortRunBytes {
				return m.writeRun(w, run, key, written)
			}
			return nil
		})
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// eachBatch reads a row group's rows a batch at a time (rows is reused)
// and hands each batch to fn.
func eachBatch(rg parquet.RowGroup, rows []parquet.Row, fn func([]parquet.Row) error) (int64, error) {
	rr := rg.Rows()
	defer rr.Close()
	var n int64
	for {
		k, err := rr.ReadRows(rows)
		n += int64(k)
		if ferr := fn(rows[:k]); ferr != nil {
			return n, ferr
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// writeRun writes the run sorted and seals it as its own file(s).
func (m *Merger) writeRun(w *ice.Writer, run *sortRun, key *[]byte, written *[]iceberg.DataFile) error {
	if len(run.rows) == 0 {
		return nil
	}
	run.sort(m.keys)
	for _, row := range run.rows {
		*key = m.part.AppendKey((*key)[:0], row)
		if err := w.Write(*key, row, 0); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	files, _, err := w.Seal()
	if err != nil {
		return err
	}
	*written = append(*written, files...)
	run.reset()
	return nil
}

// MergeFiles merges a partition's files: every group Plan makes of them,
// with the merger's options. It returns all the files merged and written.
func (m *Merger) MergeFiles(ctx context.Context, files []iceberg.DataFile) (merged, written []iceberg.DataFile, err error) {
	for _, g := range Plan(files, m.opts) {
		mf, wf, err := m.Merge(ctx, g)
		if err != nil {
			return nil, nil, err
		}
		merged, written = append(merged, mf...), append(written, wf...)
	}
	return merged, written, nil
}

// open opens a data file of the merger's columns (ErrOtherSchema if not).
func (m *Merger) open(f iceberg.DataFile) (*parquet.File, func() error, error) {
	in, err := m.fs.Open(f.FilePath())
	if err != nil {
		return nil, nil, err
	}
	ra, ok := in.(io.ReaderAt)
	if !ok {
		in.Close()
		return nil, nil, fmt.Errorf("file io %T cannot read at offsets", in)
	}
	pf, err := parquet.OpenFile(ra, f.FileSizeBytes())
	if err != nil {
		in.Close()
		return nil, nil, err
	}
	if !sameColumns(pf.Schema(), m.layout.Parquet) {
		in.Close()
		return nil, nil, ErrOtherSchema
	}
	return pf, in.Close, nil
}

func (m *Merger) copyFile(f iceberg.DataFile, w *ice.Writer, rows []parquet.Row, key *[]byte) (int64, error) {
	pf, closeFile, err := m.open(f)
	if err != nil {
		return 0, err
	}
	defer closeFile()
	var n int64
	for _, rg := range pf.RowGroups() {
		// A whole row group at once when the writer can take it: its
		// column chunks are copied without decoding.
		rr := rg.Rows()
		k, err := rr.ReadRows(rows[:1])
		rr.Close()
		if k == 1 {
			*key = m.part.AppendKey((*key)[:0], rows[0])
			ok, err := w.WriteRowGroup(*key, rows[0], rg, 0)
			if err != nil {
				return n, err
			}
			if ok {
				n += rg.NumRows()
				continue
			}
		} else if err != nil && err != io.EOF {
			return n, err
		}
		read, err := eachBatch(rg, rows, func(batch []parquet.Row) error {
			for _, row := range batch {
				*key = m.part.AppendKey((*key)[:0], row)
				if err := w.Write(*key, row, 0); err != nil {
					return err
				}
			}
			// The writer keeps rows until Flush; the next read reuses them.
			return w.Flush()
		})
		n += read
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// sameColumns compares two Parquet schemas leaf by leaf, names of the
// messages aside.
func sameColumns(a, b *parquet.Schema) bool {
	body := func(s *parquet.Schema) string {
		text := s.String()
		if i := strings.IndexByte(text, '{'); i >= 0 {
			return text[i:]
		}
		return text
	}
	return body(a) == body(b)
}

// commitAttempts bounds the retries of a rewrite that keeps losing to
// other commits.
const commitAttempts = 20

// Commit replaces merged by written in one rewrite (replace) snapshot
// carrying props. A commit that loses to another (a concurrent append) is
// retried on the reloaded table: the files merged are still there after an
// append, so the rewrite stays valid. One whose files were removed
// meanwhile fails its validation and is not retried.
func Commit(ctx context.Context, load func(context.Context) (*table.Table, error), tbl *table.Table,
	merged, written []iceberg.DataFile, props iceberg.Properties) (*table.Table, error) {
	name := strings.Join(tbl.Identifier(), ".")
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		tx := tbl.NewTransaction()
		rw := tx.NewRewrite(props)
		for _, f := range merged {
			rw.DeleteFile(f)
		}
		for _, f := range written {
			rw.AddDataFile(f)
		}
		if err := rw.Commit(ctx); err != nil {
			return nil, fmt.Errorf("stage rewrite of %s: %w", name, err)
		}
		next, err := tx.Commit(ctx)
		if err == nil {
			return next, nil
		}
		// The SQL catalog reports a moved branch as a plain error, not as
		// table.ErrCommitFailed: every failed commit is retried, a bounded
		// number of times.
		if attempt == commitAttempts || ctx.Err() != nil {
			return nil, fmt.Errorf("commit rewrite of %s (attempt %d): %w", name, attempt, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
		if tbl, err = load(ctx); err != nil {
			return nil, fmt.Errorf("reload %s: %w", name, err)
		}
	}
}
