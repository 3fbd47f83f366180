// Package parquet writes rolling Parquet data files and derives the Iceberg
// column metrics engines use to prune them.
//
// A File writes one data file with the Parquet schema of a schema.Layout,
// flushing a row group whenever about WriterOptions.RowGroupBytes are
// buffered; Close writes the footer and returns the file's Metrics, ready
// for iceberg.NewDataFileBuilder. MetricsFromFooter derives the same
// metrics from any footer written with a layout.
package parquet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

// ErrClosed is returned by a File's methods after Close.
var ErrClosed = errors.New("parquet file is closed")

// rowsPerSizeCheck bounds how far a row group may overshoot RowGroupBytes
// within one WriteRows call. parquet-go itself hands rows to the columns 64
// at a time.
const rowsPerSizeCheck = 128

// File is a Parquet data file being written. It is used by one goroutine.
//
// Memory: the first rows of each row group are staged in a compact copy
// (see stage.go) until they outweigh parquet-go's fixed cost; from then on
// parquet-go keeps, per leaf column, the values not yet encoded (up to
// PageBufferBytes) and the compressed pages of the current row group.
// Write buffering happens only while a row group or the footer is written,
// in a buffer borrowed from a pool.
type File struct {
	layout *schema.Layout
	out    sink
	w      *parquet.Writer // created when rows first leave the stage
	wopts  []parquet.WriterOption
	shape  rowShape
	fixed  *fixedTracker // nil without fixed-length columns
	opts   WriterOptions

	stage      stage // rows of the current row group parquet-go has not seen
	stageLimit int64
	rows       int64
	rgRows     int64 // rows parquet-go holds in the current row group
	// err is sticky: after a failed write the file's content is undefined.
	err    error
	closed bool

	metrics Metrics
	size    int64
}

// Create starts a file writing to w with the layout's Parquet schema. It
// writes nothing until the first row group is flushed. Invalid options
// (see WriterOptions.Validate) are reported by every method of the File.
func Create(w io.Writer, l *schema.Layout, opts WriterOptions) *File {
	opts.EnsureDefaults()
	f := &File{layout: l, out: sink{dst: w}, opts: opts}
	if err := opts.Validate(); err != nil {
		f.err = fmt.Errorf("parquet writer options: %w", err)
		return f
	}
	f.shape = newRowShape(l)
	f.fixed = newFixedTracker(l, f.shape)
	wopts := []parquet.WriterOption{
		l.Parquet,
		parquet.Compression(codecs[opts.Compression]),
		parquet.PageBufferSize(opts.PageBufferBytes),
		// parquet-go's own write buffer (32 KiB) would stay allocated as
		// long as the file is open; the sink buffers only while a row group
		// or the footer is written. Zero selects the default, any negative
		// size disables it.
		parquet.WriteBufferSize(-1),
		// Version 1 data pages and PLAIN byte arrays, which every reader
		// supports: parquet-go defaults to version 2 pages and
		// DELTA_LENGTH_BYTE_ARRAY, which Iceberg's vectorized Spark reader
		// rejects ("Cannot support vectorized reads for column ... with
		// encoding ..."), as do Spark's own before 3.3.
		parquet.DataPageVersion(1),
		parquet.DefaultEncodingFor(parquet.ByteArray, &parquet.Plain),
	}
	if f.fixed != nil {
		wopts = append(wopts, f.fixed.options(l)...)
	}
	f.wopts = wopts
	f.stageLimit = min(int64(stageBytesPerColumn*max(1, l.NumColumns)), opts.RowGroupBytes)
	return f
}

// WriteRows appends rows. Each row must hold the values of every leaf
// column in column order, as laid out by the File's schema.Layout. The
// rows are checked first: if one does not fit, WriteRows returns an error
// wrapping ErrMalformedRow and writes none of them. Values are copied;
// the caller may reuse the rows' memory when WriteRows returns.
//
// Any other error leaves the file unusable: every later call returns it.
func (f *File) WriteRows(rows []parquet.Row) error {
	if err := f.usable(); err != nil {
		return err
	}
	for i, row := range rows {
		if err := f.shape.check(row); err != nil {
			return fmt.Errorf("%w: row %d: %w", ErrMalformedRow, i, err)
		}
	}
	f.rows += int64(len(rows))
	if f.rgRows == 0 {
		// parquet-go holds nothing of this row group yet: stage.
		f.stage.add(rows)
		if f.stage.bytes() < f.stageLimit {
			return nil
		}
		rows = nil
	}
	if err := f.unstage(); err != nil {
		return err
	}
	return f.write(rows)
}

// WriteRowGroup appends a whole row group of a file with the same schema.
// parquet-go splices its column chunks in verbatim when they were written
// with this file's settings, with no decoding, which is what makes merging
// small files cheap. It reports false, writing nothing, for layouts whose
// rows the File must see one by one (fixed-length decimals); the caller
// writes the rows instead.
func (f *File) WriteRowGroup(rg parquet.RowGroup) (bool, error) {
	if err := f.usable(); err != nil {
		return false, err
	}
	if f.fixed != nil {
		return false, nil
	}
	if err := f.unstage(); err != nil {
		return false, err
	}
	if f.rgRows > 0 {
		if err := f.flushRowGroup(); err != nil {
			return false, err
		}
	}
	if f.w == nil {
		f.w = parquet.NewWriter(&f.out, f.wopts...)
	}
	err := f.out.buffered(func() error {
		_, err := f.w.WriteRowGroup(rg)
		return err
	})
	if err != nil {
		f.err = fmt.Errorf("write row group: %w", err)
		return false, f.err
	}
	f.rows += rg.NumRows()
	return true, nil
}

// unstage hands the staged rows to parquet-go.
func (f *File) unstage() error {
	if f.stage.len() == 0 {
		return nil
	}
	err := f.write(f.stage.take())
	f.stage.reset()
	return err
}

// write hands rows to parquet-go, flushing row groups by size.
func (f *File) write(rows []parquet.Row) error {
	if f.w == nil && len(rows) > 0 {
		f.w = parquet.NewWriter(&f.out, f.wopts...)
	}
	for len(rows) > 0 {
		n := min(len(rows), rowsPerSizeCheck)
		if _, err := f.w.WriteRows(rows[:n]); err != nil {
			f.err = fmt.Errorf("write rows: %w", err)
			return f.err
		}
		if f.fixed != nil {
			f.fixed.observe(rows[:n])
		}
		f.rgRows += int64(n)
		rows = rows[n:]
		if f.dataBytes() >= f.opts.RowGroupBytes {
			if err := f.flushRowGroup(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *File) usable() error {
	switch {
	case f.err != nil:
		return f.err
	case f.closed:
		return ErrClosed
	}
	return nil
}

func (f *File) flushRowGroup() error {
	if err := f.out.buffered(f.w.Flush); err != nil {
		f.err = fmt.Errorf("flush row group: %w", err)
		return f.err
	}
	if f.fixed != nil {
		f.fixed.endRowGroup()
	}
	f.rgRows = 0
	return nil
}

// Rows is the number of rows written.
func (f *File) Rows() int64 { return f.rows }

// BufferedBytes estimates the memory this open file holds: staged rows,
// and once parquet-go has seen rows, the values it has not yet encoded into
// pages, the compressed pages of the current row group, and the buffers and
// state it keeps per column for the rest of the file.
func (f *File) BufferedBytes() int64 {
	if f.closed {
		return 0
	}
	n := f.dataBytes()
	if f.w != nil {
		n += writerBytesPerColumn * int64(f.layout.NumColumns)
	}
	return n
}

// dataBytes is the data of the current row group the file holds, staged or
// in parquet-go; row groups are flushed by it.
func (f *File) dataBytes() int64 {
	n := f.stage.bytes()
	if f.w != nil {
		// Size counts what parquet-go has written, which at rest is
		// exactly what reached the destination, plus what it buffers.
		n += max(0, f.w.Size()-f.out.n)
	}
	return n
}

// writerBytesPerColumn is what parquet-go keeps per leaf column once it has
// written a page, even between row groups: its column writer, definition
// level and row index buffers sized to a page, footer metadata. Measured
// with TestFileMemoryPerOpenFile at 18 to 23 KiB with the default page
// buffer size.
const writerBytesPerColumn = 20 << 10

// WrittenBytes is the number of bytes already flushed to the destination.
func (f *File) WrittenBytes() int64 { return f.out.n }

// Close flushes the last row group and writes the footer; it returns the
// file's metrics and its total size. It does not close the destination.
// Later calls return the same results.
func (f *File) Close() (Metrics, int64, error) {
	if f.closed {
		return f.metrics, f.size, f.err
	}
	if f.err == nil {
		f.metrics, f.size, f.err = f.close()
	}
	f.closed = true
	// Let the buffers go even while the caller keeps the File.
	f.w, f.fixed = nil, nil
	f.stage.reset()
	return f.metrics, f.size, f.err
}

func (f *File) close() (Metrics, int64, error) {
	if f.w == nil && f.stage.len() > 0 {
		// A small file closed before its first row group was full: page
		// buffers sized for its data rather than the default, since a
		// backfill closes thousands of these and each would otherwise
		// allocate (and drop) full-size buffers per column.
		cols := max(1, f.layout.NumColumns)
		pb := max(4<<10, min(f.opts.PageBufferBytes, int(f.stage.bytes())/cols))
		f.w = parquet.NewWriter(&f.out, append(f.wopts[:len(f.wopts):len(f.wopts)], parquet.PageBufferSize(pb))...)
	}
	if err := f.unstage(); err != nil {
		return Metrics{}, 0, err
	}
	if f.w == nil { // no rows: the footer of an empty file
		f.w = parquet.NewWriter(&f.out, f.wopts...)
	}
	if f.fixed == nil {
		if err := f.out.buffered(f.w.Close); err != nil {
			return Metrics{}, 0, fmt.Errorf("close: %w", err)
		}
	} else if err := f.closeRepaired(); err != nil {
		return Metrics{}, 0, fmt.Errorf("close: %w", err)
	}
	// The footer costs nothing to get: in parquet-go v0.32.0, File() of a
	// closed Writer returns a view whose Metadata is the FileMetaData the
	// writer has just encoded into the file (TestFileMetricsAllTypes checks
	// that reading it back from the bytes gives the same metrics). No tail
	// buffer to re-parse, no reader over the destination; the size is what
	// the sink counted.
	md := f.w.File().Metadata()
	m, err := metricsFromFooter(md, f.layout, true)
	if err != nil {
		return Metrics{}, 0, fmt.Errorf("metrics: %w", err)
	}
	return m, f.out.n, nil
}

// closeRepaired closes a file with fixed-length columns: see repair.go.
func (f *File) closeRepaired() error {
	if f.rgRows > 0 {
		if err := f.flushRowGroup(); err != nil {
			return err
		}
	}
	// All row groups are out; what Close writes now is the tail.
	base := f.out.n
	var tail bytes.Buffer
	f.out.capture = &tail
	err := f.w.Close()
	f.out.capture = nil
	if err != nil {
		return err
	}
	md := f.w.File().Metadata()
	if err := f.fixed.apply(md); err != nil {
		return err
	}
	b, err := rewriteTail(tail.Bytes(), base, md, f.fixed.drop)
	if err != nil {
		return err
	}
	_, err = f.out.direct().Write(b)
	return err
}

// sink is the destination as parquet-go sees it: it counts what reaches
// the destination, and buffers or captures writes in the phases that need
// it.
type sink struct {
	dst     io.Writer
	n       int64         // bytes the destination accepted
	buf     *bufio.Writer // set while a row group or the footer is written
	capture *bytes.Buffer // set while the tail is written for a rewrite
}

func (s *sink) Write(p []byte) (int, error) {
	switch {
	case s.capture != nil:
		return s.capture.Write(p)
	case s.buf != nil:
		return s.buf.Write(p)
	}
	return s.direct().Write(p)
}

// sinkDirect writes straight to the destination and counts.
type sinkDirect sink

func (s *sink) direct() *sinkDirect { return (*sinkDirect)(s) }

func (d *sinkDirect) Write(p []byte) (int, error) {
	n, err := d.dst.Write(p)
	d.n += int64(n)
	return n, err
}

// writeBuffers serve all files: parquet-go writes a footer in many small
// pieces, and only a file being flushed needs a buffer.
var writeBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}

// buffered runs fn with writes buffered and flushed before it returns.
func (s *sink) buffered(fn func() error) error {
	b := writeBuffers.Get().(*bufio.Writer)
	b.Reset(s.direct())
	s.buf = b
	err := fn()
	if ferr := b.Flush(); err == nil {
		err = ferr
	}
	s.buf = nil
	b.Reset(nil)
	writeBuffers.Put(b)
	return err
}
