package parquet

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/sluicehq/sluice/ingest/schema"
)

// The schema stores decimals wider than 18 digits as FIXED_LEN_BYTE_ARRAY,
// where parquet-go v0.32.0 has two bugs:
//
//   - It orders fixed-length byte arrays as unsigned bytes, also for
//     decimals, whose order is signed: a chunk holding -5 and 3 gets min 3
//     and max -5, in the chunk statistics, the page headers and the column
//     index. An engine that prunes with them may skip row groups that
//     match.
//   - Its column index gets no min or max entry for a page holding only
//     nulls, so the lists come out shorter than null_pages, which parquet-mr
//     and Arrow reject ("Not all sizes are equal").
//
// So a File asks parquet-go for no page statistics or bounds on these
// columns, tracks min and max per row group itself with signed order, and
// at Close rewrites the tail of the file (page indexes and footer, which
// parquet-go writes last, into memory here): the column indexes of these
// columns are dropped, and their chunk statistics get the tracked bounds.
// Offset indexes and everything else are copied unchanged.

// fixedTracker tracks the bounds of the fixed-length columns of a layout.
type fixedTracker struct {
	cols  []fixedColumn
	byCol []int // leaf column -> index in cols, or -1
	flat  bool  // rows hold column c at position c
	// drop marks every fixed-length column, tracked or not (inside a list,
	// where chunks need no bounds), whose column index must go.
	drop []bool
}

type fixedColumn struct {
	col    int
	lo, hi []byte      // of the row group being written; nil before a value
	groups [][2][]byte // of finished row groups
}

// newFixedTracker returns nil when l has no fixed-length columns.
func newFixedTracker(l *schema.Layout, shape rowShape) *fixedTracker {
	cols, err := columnsOf(l)
	if err != nil {
		// Without field IDs there are no metrics to fix; MetricsFromFooter
		// will report the error at Close. Still drop the broken indexes.
		cols = nil
	}
	var t *fixedTracker
	for c, cs := range shape {
		if cs.kind != parquet.FixedLenByteArray {
			continue
		}
		if t == nil {
			t = &fixedTracker{byCol: make([]int, len(shape)), drop: make([]bool, len(shape)), flat: l.Flat}
			for i := range t.byCol {
				t.byCol[i] = -1
			}
		}
		t.drop[c] = true
		if cols != nil && !cols[c].repeated {
			t.byCol[c] = len(t.cols)
			t.cols = append(t.cols, fixedColumn{col: c})
		}
	}
	return t
}

// options are the writer options that keep parquet-go from computing
// statistics for the fixed-length columns.
func (t *fixedTracker) options(l *schema.Layout) []parquet.WriterOption {
	var opts []parquet.WriterOption
	for c, p := range l.Parquet.Columns() {
		if t.drop[c] {
			opts = append(opts, parquet.SkipPageBounds(p...), parquet.SkipPageStatistics(p...))
		}
	}
	return opts
}

// observe folds rows that were written into the current row group.
func (t *fixedTracker) observe(rows []parquet.Row) {
	for _, row := range rows {
		if t.flat {
			for i := range t.cols {
				t.cols[i].see(row[t.cols[i].col])
			}
			continue
		}
		for _, v := range row {
			if k := t.byCol[v.Column()]; k >= 0 {
				t.cols[k].see(v)
			}
		}
	}
}

func (fc *fixedColumn) see(v parquet.Value) {
	if v.IsNull() {
		return
	}
	b := v.ByteArray()
	switch {
	case fc.lo == nil:
		fc.lo = bytes.Clone(b)
		fc.hi = bytes.Clone(b)
	case compareSigned(b, fc.lo) < 0:
		fc.lo = append(fc.lo[:0], b...)
	case compareSigned(b, fc.hi) > 0:
		fc.hi = append(fc.hi[:0], b...)
	}
}

// compareSigned orders two big-endian two's complement integers of equal
// width.
func compareSigned(a, b []byte) int {
	if a[0] != b[0] {
		return cmp3(int64(int8(a[0])), int64(int8(b[0])))
	}
	return bytes.Compare(a[1:], b[1:])
}

// endRowGroup closes the bounds of a row group parquet-go has written.
func (t *fixedTracker) endRowGroup() {
	for i := range t.cols {
		fc := &t.cols[i]
		fc.groups = append(fc.groups, [2][]byte{fc.lo, fc.hi})
		fc.lo, fc.hi = nil, nil
	}
}

// apply writes the tracked bounds into the chunk statistics of md.
func (t *fixedTracker) apply(md *format.FileMetaData) error {
	for i := range t.cols {
		fc := &t.cols[i]
		if len(fc.groups) != len(md.RowGroups) {
			return fmt.Errorf("tracked %d row groups, the footer has %d", len(fc.groups), len(md.RowGroups))
		}
		for g, b := range fc.groups {
			st := &md.RowGroups[g].Columns[fc.col].MetaData.Statistics
			st.MinValue, st.MaxValue = b[0], b[1]
			st.Min, st.Max = nil, nil
		}
	}
	return nil
}

// rewriteTail rebuilds the end of a file: tail is what parquet-go wrote
// from file offset base on, namely the magic bytes if nothing came before,
// the column indexes, the offset indexes, the footer, its length and "PAR1".
// md is the footer, with statistics already fixed; rewriteTail updates its
// index offsets. Column indexes of columns marked in drop are left out.
func rewriteTail(tail []byte, base int64, md *format.FileMetaData, drop []bool) ([]byte, error) {
	if len(tail) < 8 || string(tail[len(tail)-4:]) != "PAR1" {
		return nil, fmt.Errorf("file tail of %d bytes does not end in a footer", len(tail))
	}
	footerStart := len(tail) - 8 - int(binary.LittleEndian.Uint32(tail[len(tail)-8:]))
	if footerStart < 0 {
		return nil, fmt.Errorf("footer length exceeds the %d-byte tail", len(tail))
	}
	// The indexes are contiguous and end where the footer starts; check it
	// rather than assume it, or bytes could be lost.
	start, total := footerStart, 0
	for i := range md.RowGroups {
		for j := range md.RowGroups[i].Columns {
			cc := &md.RowGroups[i].Columns[j]
			for _, r := range [...]struct {
				off int64
				n   int32
			}{{cc.ColumnIndexOffset, cc.ColumnIndexLength}, {cc.OffsetIndexOffset, cc.OffsetIndexLength}} {
				if r.n == 0 {
					continue
				}
				o := r.off - base
				if o < 0 || r.n < 0 || o+int64(r.n) > int64(footerStart) {
					return nil, fmt.Errorf("page index at %d+%d is outside the file tail %d+%d", r.off, r.n, base, footerStart)
				}
				start = min(start, int(o))
				total += int(r.n)
			}
		}
	}
	if start+total != footerStart {
		return nil, fmt.Errorf("file tail holds %d bytes besides its page indexes", footerStart-start-total)
	}

	out := make([]byte, 0, len(tail))
	out = append(out, tail[:start]...)
	move := func(off *int64, n *int32) {
		o := *off - base
		*off = base + int64(len(out))
		out = append(out, tail[o:o+int64(*n)]...)
	}
	// parquet-go writes every column index, then every offset index, each
	// in row group then column order; keep that order.
	for i := range md.RowGroups {
		for j := range md.RowGroups[i].Columns {
			cc := &md.RowGroups[i].Columns[j]
			switch {
			case cc.ColumnIndexLength == 0:
			case j < len(drop) && drop[j]:
				cc.ColumnIndexOffset, cc.ColumnIndexLength = 0, 0
			default:
				move(&cc.ColumnIndexOffset, &cc.ColumnIndexLength)
			}
		}
	}
	for i := range md.RowGroups {
		for j := range md.RowGroups[i].Columns {
			if cc := &md.RowGroups[i].Columns[j]; cc.OffsetIndexLength != 0 {
				move(&cc.OffsetIndexOffset, &cc.OffsetIndexLength)
			}
		}
	}
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), md)
	if err != nil {
		return nil, fmt.Errorf("encode footer: %w", err)
	}
	out = append(out, footer...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(footer)))
	return append(out, "PAR1"...), nil
}
