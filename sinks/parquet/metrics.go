package parquet

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go/format"

	"github.com/sluicehq/sluice/ingest/schema"
)

// Metrics are the statistics Iceberg keeps for a data file in its manifest
// entry, which engines use to skip the file. Maps are keyed by the Iceberg
// field ID of a leaf column: a primitive column or struct member, or the
// element of a list.
type Metrics struct {
	RecordCount int64
	// ColumnSizes are the bytes of the column's chunks (compressed pages
	// and their headers).
	ColumnSizes map[int]int64
	// ValueCounts count values including nulls; for list elements every
	// empty or null list counts one.
	ValueCounts map[int]int64
	// NullValueCounts is absent for a column whose null count is unknown.
	NullValueCounts map[int]int64
	// LowerBounds and UpperBounds are in Iceberg's single-value binary
	// serialization, strings and binary truncated to 16 code points or
	// bytes. A column has no bound when any row group could not provide
	// one, and columns inside lists never have bounds (Iceberg convention:
	// a bound of repeated values cannot prune rows).
	LowerBounds, UpperBounds map[int][]byte
	// SplitOffsets are the file offsets where row groups start, ascending.
	SplitOffsets []int64
}

// MetricsFromFooter derives the Iceberg metrics of a data file from its
// Parquet footer. l must be the layout the file was written with; every
// column of the footer is checked against it (path, physical type, field
// ID) so a mismatched pair fails instead of producing wrong metrics.
//
// Bounds come from each column chunk's min_value and max_value, or for
// numeric columns from the deprecated min and max. They are compared by the
// column's type, not by their bytes, across row groups. A column loses a
// bound when a row group with values has no usable statistic for it, when
// a float statistic is NaN, or when a chunk's min exceeds its max (how
// parquet-go's unsigned ordering of fixed-length decimals shows up when a
// chunk mixes signs). A null count is unknown for a chunk whose statistics
// are empty: a writer that wrote none cannot be told from one that found
// no nulls and no bounds.
func MetricsFromFooter(md *format.FileMetaData, l *schema.Layout) (Metrics, error) {
	return metricsFromFooter(md, l, false)
}

// metricsFromFooter is MetricsFromFooter; exactNulls says the writer
// always records null counts (parquet-go does), so empty statistics mean
// zero nulls.
func metricsFromFooter(md *format.FileMetaData, l *schema.Layout, exactNulls bool) (Metrics, error) {
	cols, err := columnsOf(l)
	if err != nil {
		return Metrics{}, err
	}
	if err := checkFooterSchema(md, cols); err != nil {
		return Metrics{}, err
	}
	m := Metrics{
		RecordCount:     md.NumRows,
		ColumnSizes:     make(map[int]int64, len(cols)),
		ValueCounts:     make(map[int]int64, len(cols)),
		NullValueCounts: make(map[int]int64, len(cols)),
		LowerBounds:     make(map[int][]byte, len(cols)),
		UpperBounds:     make(map[int][]byte, len(cols)),
		SplitOffsets:    make([]int64, 0, len(md.RowGroups)),
	}
	accs := make([]boundAcc, len(cols))
	nullsUnknown := make([]bool, len(cols))
	var rows int64
	for i := range md.RowGroups {
		rg := &md.RowGroups[i]
		rows += rg.NumRows
		if len(rg.Columns) != len(cols) {
			return Metrics{}, fmt.Errorf("row group %d has %d columns, the layout %d", i, len(rg.Columns), len(cols))
		}
		if len(cols) > 0 {
			m.SplitOffsets = append(m.SplitOffsets, chunkStart(&rg.Columns[0].MetaData))
		}
		for j := range rg.Columns {
			cc, c := &rg.Columns[j], &cols[j]
			if len(cc.EncryptedColumnMetadata) > 0 {
				return Metrics{}, fmt.Errorf("row group %d column %s: encrypted column metadata is not supported", i, c.name())
			}
			meta := &cc.MetaData
			if !slices.Equal(meta.PathInSchema, c.path) {
				return Metrics{}, fmt.Errorf("row group %d column %d is %s, the layout has %s", i, j, strings.Join(meta.PathInSchema, "."), c.name())
			}
			if meta.Type != c.phys {
				return Metrics{}, fmt.Errorf("row group %d column %s is %s, its schema element %s", i, c.name(), meta.Type, c.phys)
			}
			m.ColumnSizes[c.id] += meta.TotalCompressedSize
			m.ValueCounts[c.id] += meta.NumValues
			st := &meta.Statistics
			nullsKnown := exactNulls || meta.NumValues == 0 || !statsEmpty(st)
			if nullsKnown {
				m.NullValueCounts[c.id] += st.NullCount
			} else {
				nullsUnknown[j] = true
			}
			if !c.repeated {
				accs[j].add(c, meta, nullsKnown)
			}
		}
	}
	if rows != md.NumRows {
		return Metrics{}, fmt.Errorf("row groups hold %d rows, the footer says %d", rows, md.NumRows)
	}
	for j := range cols {
		c := &cols[j]
		if nullsUnknown[j] {
			delete(m.NullValueCounts, c.id)
		}
		if c.repeated {
			continue
		}
		a := &accs[j]
		if a.lo != nil && !a.noLo {
			if b, ok := truncateBound(c.typ.Kind, a.lo, true); ok {
				m.LowerBounds[c.id] = b
			}
		}
		if a.hi != nil && !a.noHi {
			if b, ok := truncateBound(c.typ.Kind, a.hi, false); ok {
				m.UpperBounds[c.id] = b
			}
		}
	}
	return m, nil
}

// column is a Parquet leaf column in Iceberg terms.
type column struct {
	id       int
	typ      schema.Type
	path     []string
	repeated bool        // below a list: no bounds
	phys     format.Type // from the footer
	// typeDefined: the footer orders min_value and max_value by the
	// column's logical type. Without a column order they mean nothing.
	typeDefined bool
}

func (c *column) name() string { return strings.Join(c.path, ".") }

// columnsOf lists the leaf columns of l in column order.
func columnsOf(l *schema.Layout) ([]column, error) {
	paths := l.Parquet.Columns()
	cols := make([]column, len(paths))
	var walk func(n *schema.Node, repeated bool) error
	walk = func(n *schema.Node, repeated bool) error {
		switch n.Field.Type.Kind {
		case schema.KindList:
			// The element node carries the list's ElemID.
			return walk(n.Children[0], true)
		case schema.KindMap:
			// Key and value nodes carry the map's KeyID and ValueID; like list
			// elements, they are repeated and get no bounds.
			for _, c := range n.Children {
				if err := walk(c, true); err != nil {
					return err
				}
			}
			return nil
		case schema.KindStruct:
			for _, c := range n.Children {
				if err := walk(c, repeated); err != nil {
					return err
				}
			}
			return nil
		}
		if n.Column < 0 || n.Column >= len(cols) {
			return fmt.Errorf("layout column %d of %s is out of range", n.Column, n.Field.Name)
		}
		cols[n.Column] = column{id: n.Field.ID, typ: n.Field.Type, path: paths[n.Column], repeated: repeated}
		return nil
	}
	for _, n := range l.Top {
		if err := walk(n, false); err != nil {
			return nil, err
		}
	}
	seen := make(map[int]bool, len(cols))
	for i := range cols {
		c := &cols[i]
		switch {
		case c.path == nil:
			return nil, fmt.Errorf("layout has no field for column %d", i)
		case c.id <= 0:
			return nil, fmt.Errorf("column %s has no Iceberg field ID (is the schema bound to a table?)", c.name())
		case seen[c.id]:
			return nil, fmt.Errorf("column %s repeats field ID %d", c.name(), c.id)
		}
		seen[c.id] = true
	}
	return cols, nil
}

// checkFooterSchema matches the leaf schema elements of md with cols and
// records their physical types and column orders.
func checkFooterSchema(md *format.FileMetaData, cols []column) error {
	var errs []error
	j := 0
	for i := range md.Schema {
		e := &md.Schema[i]
		if !e.Type.Valid { // a group
			continue
		}
		if j >= len(cols) {
			j++
			continue
		}
		c := &cols[j]
		c.phys = e.Type.V
		c.typeDefined = j < len(md.ColumnOrders) && isTypeDefined(md.ColumnOrders[j])
		j++
		if e.Name != c.path[len(c.path)-1] {
			errs = append(errs, fmt.Errorf("footer column %d is %s, the layout has %s", j-1, e.Name, c.name()))
			continue
		}
		if int(e.FieldID) != c.id {
			errs = append(errs, fmt.Errorf("column %s has field ID %d in the footer but %d in the layout", c.name(), e.FieldID, c.id))
		}
		if !physicalFits(c.typ.Kind, c.phys) {
			errs = append(errs, fmt.Errorf("column %s is %s, which cannot hold %s", c.name(), c.phys, c.typ))
		}
		switch lt := e.LogicalType.Value.(type) {
		case *format.DecimalType:
			if c.typ.Kind == schema.KindDecimal && int(lt.Scale) != c.typ.Scale {
				errs = append(errs, fmt.Errorf("column %s has scale %d in the footer, the layout %s", c.name(), lt.Scale, c.typ))
			}
		case *format.TimestampType:
			if _, us := lt.Unit.Value.(*format.MicroSeconds); !us {
				errs = append(errs, fmt.Errorf("column %s stores timestamps in %s, not microseconds", c.name(), &lt.Unit))
			}
		}
	}
	if j != len(cols) {
		errs = append(errs, fmt.Errorf("footer has %d leaf columns, the layout %d", j, len(cols)))
	}
	return errors.Join(errs...)
}

func isTypeDefined(o format.ColumnOrder) bool {
	_, ok := o.Value.(*format.TypeDefinedOrder)
	return ok
}

// physicalFits reports whether Parquet type p may store a column of kind k.
func physicalFits(k schema.Kind, p format.Type) bool {
	switch k {
	case schema.KindBool:
		return p == format.Boolean
	case schema.KindInt32, schema.KindDate:
		return p == format.Int32
	case schema.KindInt64, schema.KindTimestamp, schema.KindTimestampTZ:
		return p == format.Int64
	case schema.KindFloat32:
		return p == format.Float
	case schema.KindFloat64:
		return p == format.Double
	case schema.KindString, schema.KindBinary:
		return p == format.ByteArray
	case schema.KindDecimal:
		return p == format.Int32 || p == format.Int64 || p == format.FixedLenByteArray || p == format.ByteArray
	}
	return false
}

// legacyOrdered reports whether the deprecated min and max of a chunk of
// type p are ordered as its values: they were always compared signed, which
// is wrong for byte arrays but right for numbers.
func legacyOrdered(p format.Type) bool {
	switch p {
	case format.Boolean, format.Int32, format.Int64, format.Float, format.Double:
		return true
	}
	return false
}

// statsEmpty reports whether a chunk carries no statistics at all.
func statsEmpty(st *format.Statistics) bool {
	return st.NullCount == 0 && st.DistinctCount == 0 &&
		st.MinValue == nil && st.MaxValue == nil && st.Min == nil && st.Max == nil
}

// chunkStart is where a column chunk's first page, dictionary or data,
// begins; for the first column that is where its row group begins.
func chunkStart(meta *format.ColumnMetaData) int64 {
	if off := meta.DictionaryPageOffset; off > 0 && off < meta.DataPageOffset {
		return off
	}
	return meta.DataPageOffset
}

// boundAcc folds the bounds of one column's chunks into the file's.
type boundAcc struct {
	lo, hi     []byte
	noLo, noHi bool // a chunk with values had no usable bound
}

func (a *boundAcc) add(c *column, meta *format.ColumnMetaData, nullsKnown bool) {
	st := &meta.Statistics
	if nullsKnown && st.NullCount >= meta.NumValues {
		return // nulls only: nothing to bound
	}
	var minV, maxV []byte
	if c.typeDefined {
		minV, maxV = st.MinValue, st.MaxValue
	}
	if legacyOrdered(c.phys) {
		if minV == nil {
			minV = st.Min
		}
		if maxV == nil {
			maxV = st.Max
		}
	}
	lo, loOK := icebergBound(c.typ, c.phys, minV, true)
	hi, hiOK := icebergBound(c.typ, c.phys, maxV, false)
	if loOK && hiOK && compareBound(c.typ.Kind, lo, hi) > 0 {
		loOK, hiOK = false, false
	}
	switch {
	case !loOK:
		a.noLo = true
	case a.lo == nil || compareBound(c.typ.Kind, lo, a.lo) < 0:
		a.lo = lo
	}
	switch {
	case !hiOK:
		a.noHi = true
	case a.hi == nil || compareBound(c.typ.Kind, hi, a.hi) > 0:
		a.hi = hi
	}
}
