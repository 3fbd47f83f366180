package iceberg

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/ingest/schema"
	pq "github.com/sluicehq/sluice/sinks/parquet"
)

// WriterOptions tune one Writer.
type WriterOptions struct {
	// Worker numbers the writer; it is part of every file name.
	Worker int
	// RunID distinguishes files of different daemon runs.
	RunID string
	// TargetFileSize rolls a file once this much was written to it.
	TargetFileSize int64
	// RowGroupSize flushes a row group once this much is buffered.
	RowGroupSize int64
	// Compression codec name.
	Compression string
	// MaxOpenFiles closes the least recently written file beyond it.
	MaxOpenFiles int
	// MemoryBudget closes the largest open files early while the open files
	// together buffer more than this.
	MemoryBudget int64
	// EqualityFieldIDs makes the files equality-delete files on these
	// field IDs (their rows are the keys to delete); empty: data files.
	EqualityFieldIDs []int
}

// Writer writes the rows of one worker for one table: one open Parquet file
// per partition, rolled at the target size, all sealed at a checkpoint.
// Open files are bounded twice: by count (MaxOpenFiles) and by memory
// (MemoryBudget); beyond either, the least recently written close early.
// Files are written in place under the table's data directory; no snapshot
// references them until the committer adds them, so readers never see them
// before that, and a crash leaves them as orphans for the start-up cleanup.
// A Writer is used by one goroutine.
type Writer struct {
	opts   WriterOptions
	fio    icebergio.WriteFileIO
	root   string // table location + "/data"
	layout *schema.Layout
	part   *Partitioner

	open     map[string]*openFile
	dirty    []*openFile // files written since the last Flush
	buffered int64       // memory of open files as last counted
	tick     uint64      // logical clock for least-recently-written eviction
	seq      int
	sealed   []iceberg.DataFile
	sealedSz int64
	unsynced []string        // closed local files not yet fsynced
	closing  *errgroup.Group // closes of remote files in flight
	stats    WriterStats
}

// WriterStats count a writer's files since it started.
type WriterStats struct {
	FilesClosedEarly int64 // sealed before the checkpoint to respect limits
	FilesRolled      int64 // sealed at the target size
}

type openFile struct {
	key      string
	path     string
	dirty    bool  // written since the last Flush
	size     int64 // memory last counted for it in Writer.buffered
	w        *lazyFile
	file     *pq.File
	part     Partition
	pending  []parquet.Row
	lastUsed uint64
}

// NewWriter prepares a writer for a table; it opens nothing yet.
func NewWriter(ctx context.Context, tbl *table.Table, layout *schema.Layout, part *Partitioner, opts WriterOptions) (*Writer, error) {
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("table %s file io: %w", strings.Join(tbl.Identifier(), "."), err)
	}
	wfs, ok := fs.(icebergio.WriteFileIO)
	if !ok {
		return nil, fmt.Errorf("table %s: file io %T cannot write", strings.Join(tbl.Identifier(), "."), fs)
	}
	return NewWriterIn(wfs, strings.TrimSuffix(tbl.Location(), "/")+"/data", layout, part, opts), nil
}

// NewWriterIn prepares a writer whose files go under root (a location
// URL) through fio, in the partitioner's directories.
func NewWriterIn(fio icebergio.WriteFileIO, root string, layout *schema.Layout, part *Partitioner, opts WriterOptions) *Writer {
	if opts.MaxOpenFiles <= 0 {
		opts.MaxOpenFiles = 10000
	}
	if opts.TargetFileSize <= 0 {
		opts.TargetFileSize = 256 << 20
	}
	if opts.MemoryBudget <= 0 {
		opts.MemoryBudget = 64 << 20
	}
	return &Writer{
		opts: opts, fio: fio, root: strings.TrimSuffix(root, "/"),
		layout: layout, part: part, open: map[string]*openFile{},
	}
}

// openFileOverhead is what an open file costs besides the data it buffers:
// its structs, partition values, path and the pending row slice.
const openFileOverhead = 6 << 10

// pendingRows is how many rows are gathered per file before one WriteRows
// call; parquet-go's per-call overhead is amortised over them.
const pendingRows = 256

// Write adds a row to the file of its partition. key is the partition key
// from Partitioner.AppendKey; eventTime (microseconds) names new files. The
// row is not copied: it and its byte slices must stay valid until Flush.
func (w *Writer) Write(key []byte, row parquet.Row, eventTime int64) error {
	f, err := w.fileFor(key, row, eventTime)
	if err != nil {
		return err
	}
	if !f.dirty {
		f.dirty = true
		w.dirty = append(w.dirty, f)
	}
	f.pending = append(f.pending, row)
	if len(f.pending) >= pendingRows {
		return w.flushFile(f)
	}
	return nil
}

// fileFor returns the open file of a partition key, creating it for row,
// and marks it the most recently used.
func (w *Writer) fileFor(key []byte, row parquet.Row, eventTime int64) (*openFile, error) {
	f := w.open[string(key)]
	if f == nil {
		var err error
		if f, err = w.create(key, row, eventTime); err != nil {
			return nil, err
		}
		w.open[f.key] = f
	}
	w.tick++
	f.lastUsed = w.tick
	return f, nil
}

// rollIfFull seals a file that reached the target size.
func (w *Writer) rollIfFull(f *openFile) error {
	if f.file.WrittenBytes()+f.file.BufferedBytes() < w.opts.TargetFileSize {
		return nil
	}
	w.stats.FilesRolled++
	return w.seal(f)
}

func (w *Writer) create(key []byte, row parquet.Row, eventTime int64) (*openFile, error) {
	if len(w.open) >= w.opts.MaxOpenFiles {
		if err := w.closeLeastRecent(); err != nil {
			return nil, err
		}
	}
	part, err := w.part.Partition(row)
	if err != nil {
		return nil, err
	}
	w.seq++
	dir := w.root
	if part.Path != "" {
		dir += "/" + part.Path
	}
	// The name starts with the event time of the first row so a directory
	// listing shows files in time order.
	name := fmt.Sprintf("%s-w%d-%s-%05d.parquet",
		time.UnixMicro(eventTime).UTC().Format("20060102T150405Z"), w.opts.Worker, w.opts.RunID, w.seq)
	path := dir + "/" + name
	out := &lazyFile{fio: w.fio, path: path}
	// No write buffer here: the Parquet file writes in row-group bursts
	// through a shared buffer, so an open file costs only its staged rows,
	// and no file descriptor until its first row group is written.
	file := pq.Create(out, w.layout, pq.WriterOptions{
		Compression: w.opts.Compression, RowGroupBytes: w.opts.RowGroupSize,
	})
	w.buffered += openFileOverhead
	return &openFile{key: string(key), path: path, w: out, file: file, part: part, size: openFileOverhead}, nil
}

// WriteRowGroup appends a whole row group of a file with the writer's
// layout to the file of the partition of first, its first row (see
// parquet.File.WriteRowGroup). false means the layout needs the rows
// written one by one; nothing was written.
func (w *Writer) WriteRowGroup(key []byte, first parquet.Row, rg parquet.RowGroup, eventTime int64) (bool, error) {
	f, err := w.fileFor(key, first, eventTime)
	if err != nil {
		return false, err
	}
	if err := w.flushFile(f); err != nil {
		return false, err
	}
	ok, err := f.file.WriteRowGroup(rg)
	if err != nil || !ok {
		return ok, err
	}
	return true, w.rollIfFull(f)
}

func (w *Writer) flushFile(f *openFile) error {
	if len(f.pending) == 0 {
		return nil
	}
	if err := f.file.WriteRows(f.pending); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	clear(f.pending)
	f.pending = f.pending[:0]
	return nil
}

// Flush writes every gathered row, after which the caller may reuse the
// memory the rows point into. It then rolls files that reached the target
// size and closes files early while the memory budget is exceeded. Only
// files written since the last Flush are visited: a backfill may hold
// thousands open and flush every few hundred rows.
func (w *Writer) Flush() error {
	for _, f := range w.dirty {
		f.dirty = false
		if w.open[f.key] != f {
			continue // sealed since it was written
		}
		if err := w.flushFile(f); err != nil {
			return err
		}
		size := f.file.BufferedBytes() + openFileOverhead
		w.buffered += size - f.size
		f.size = size
		if err := w.rollIfFull(f); err != nil {
			return err
		}
	}
	clear(w.dirty)
	w.dirty = w.dirty[:0]
	if w.buffered > w.opts.MemoryBudget {
		// Close the least recently written files (in a backfill, the
		// partitions it has moved past) until a quarter of the budget is
		// free, so that one scan serves many rows rather than one. A file
		// still being written is the last to go, so each partition tends to
		// get one file however many are open.
		return w.evict(func(a, b *openFile) bool { return a.lastUsed < b.lastUsed }, func() bool {
			return w.buffered > w.opts.MemoryBudget*3/4
		})
	}
	return nil
}

// evict seals open files in the order less gives while more holds.
func (w *Writer) evict(less func(a, b *openFile) bool, more func() bool) error {
	files := make([]*openFile, 0, len(w.open))
	for _, f := range w.open {
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return less(files[i], files[j]) })
	for _, f := range files {
		if !more() {
			break
		}
		w.stats.FilesClosedEarly++
		if err := w.seal(f); err != nil {
			return err
		}
	}
	return nil
}

// closeLeastRecent makes room for a new file: it closes the least recently
// written tenth of the open files at once.
func (w *Writer) closeLeastRecent() error {
	target := len(w.open) - max(1, w.opts.MaxOpenFiles/10)
	return w.evict(func(a, b *openFile) bool { return a.lastUsed < b.lastUsed }, func() bool {
		return len(w.open) > target
	})
}

// seal closes one file and keeps its DataFile for the next checkpoint.
func (w *Writer) seal(f *openFile) error {
	delete(w.open, f.key)
	w.buffered -= f.size
	if err := w.flushFile(f); err != nil {
		return err
	}
	m, size, err := f.file.Close()
	if err != nil {
		return fmt.Errorf("close %s: %w", f.path, err)
	}
	// Data must be durable before a snapshot points at it. Local files are
	// synced together at the checkpoint, in parallel, rather than one by
	// one as they close: a backfill may close thousands between checkpoints.
	// Closing a remote file (HDFS) waits for its DataNodes' acknowledgements
	// and the NameNode's complete, the slowest call there is; those closes
	// run in the background, many at once, and Seal waits for them all, so
	// a checkpoint takes about one close rather than the sum of them.
	if osf, ok := f.w.w.(*os.File); ok || f.w.w == nil {
		if ok {
			w.unsynced = append(w.unsynced, osf.Name())
		}
		if err := f.w.Close(); err != nil {
			return fmt.Errorf("close %s: %w", f.path, err)
		}
	} else {
		if w.closing == nil {
			w.closing = new(errgroup.Group)
			w.closing.SetLimit(maxClosing)
		}
		out, path := f.w, f.path
		w.closing.Go(func() error {
			if err := out.Close(); err != nil {
				return fmt.Errorf("close %s: %w", path, err)
			}
			return nil
		})
	}
	content := iceberg.EntryContentData
	if len(w.opts.EqualityFieldIDs) > 0 {
		content = iceberg.EntryContentEqDeletes
	}
	b, err := iceberg.NewDataFileBuilder(w.part.Spec(), content, f.path, iceberg.ParquetFile,
		f.part.Values, nil, nil, m.RecordCount, size)
	if err != nil {
		return fmt.Errorf("describe %s: %w", f.path, err)
	}
	if content == iceberg.EntryContentEqDeletes {
		b = b.EqualityFieldIDs(w.opts.EqualityFieldIDs)
	}
	df := b.ColumnSizes(m.ColumnSizes).ValueCounts(m.ValueCounts).NullValueCounts(m.NullValueCounts).
		LowerBoundValues(m.LowerBounds).UpperBoundValues(m.UpperBounds).SplitOffsets(m.SplitOffsets).Build()
	w.sealed = append(w.sealed, df)
	w.sealedSz += size
	return nil
}

// Seal closes every open file and returns all files sealed since the last
// Seal, with their total size, once they are durable.
func (w *Writer) Seal() ([]iceberg.DataFile, int64, error) {
	for _, f := range w.open {
		if err := w.seal(f); err != nil {
			return nil, 0, err
		}
	}
	if err := w.waitClosing(); err != nil {
		return nil, 0, err
	}
	if err := syncFiles(w.unsynced); err != nil {
		return nil, 0, err
	}
	w.unsynced = w.unsynced[:0]
	files, size := w.sealed, w.sealedSz
	w.sealed, w.sealedSz = nil, 0
	return files, size, nil
}

// maxClosing bounds the remote closes in flight per writer.
const maxClosing = 128

// waitClosing waits for the background closes.
func (w *Writer) waitClosing() error {
	if w.closing == nil {
		return nil
	}
	err := w.closing.Wait()
	w.closing = nil
	return err
}

// lazyFile creates its file on the first write. Most files of a backfill
// over many partitions stay small and are written once, at close; they hold
// no file descriptor while open.
type lazyFile struct {
	fio  icebergio.WriteFileIO
	path string
	w    icebergio.FileWriter
}

func (l *lazyFile) Write(p []byte) (int, error) {
	if l.w == nil {
		w, err := l.fio.Create(l.path)
		if err != nil {
			return 0, fmt.Errorf("create data file %s: %w", l.path, err)
		}
		l.w = w
	}
	return l.w.Write(p)
}

// Close closes the file if it was created.
func (l *lazyFile) Close() error {
	if l.w == nil {
		return nil
	}
	return l.w.Close()
}

// syncFiles fsyncs closed files, several at a time.
func syncFiles(paths []string) error {
	var g errgroup.Group
	g.SetLimit(8)
	for _, p := range paths {
		g.Go(func() error {
			f, err := os.Open(p)
			if err != nil {
				return fmt.Errorf("sync %s: %w", p, err)
			}
			defer f.Close()
			if err := f.Sync(); err != nil {
				return fmt.Errorf("sync %s: %w", p, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// OpenFiles is the number of files open now.
func (w *Writer) OpenFiles() int { return len(w.open) }

// BufferedBytes estimates the memory held by open files, as counted
// against the budget (their buffered data plus a fixed cost each), as of
// the last Flush.
func (w *Writer) BufferedBytes() int64 { return w.buffered }

// Stats returns counters since the writer started.
func (w *Writer) Stats() WriterStats { return w.stats }

// Abort closes open files without sealing them; they stay orphans for the
// start-up cleanup.
func (w *Writer) Abort() {
	for key, f := range w.open {
		f.w.Close()
		delete(w.open, key)
	}
	w.waitClosing()
	w.buffered = 0
}
