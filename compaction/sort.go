package compaction

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

// sortKey is one field of a table's sort order, on a top-level primitive
// column of the writers' layout.
type sortKey struct {
	column    int
	typ       parquet.Type
	desc      bool
	nullsLast bool
}

// sortKeys binds a table's sort order to the layout's columns. Sort
// fields on nested columns or through a transform other than identity are
// not supported: merging such a table is refused rather than done unsorted.
func sortKeys(tbl *table.Table, layout *schema.Layout) ([]sortKey, error) {
	order := tbl.SortOrder()
	if order.IsUnsorted() {
		return nil, nil
	}
	var keys []sortKey
	for _, f := range order.Fields() {
		if len(f.SourceIDs) != 1 {
			return nil, fmt.Errorf("sort order %s: multi-column fields are not supported", order)
		}
		if _, ok := f.Transform.(iceberg.IdentityTransform); !ok {
			return nil, fmt.Errorf("sort order %s: transform %s is not supported (identity only)", order, f.Transform)
		}
		var node *schema.Node
		for _, n := range layout.Top {
			if n.Field.ID == f.SourceIDs[0] {
				node = n
			}
		}
		if node == nil || !node.Field.Type.IsPrimitive() {
			return nil, fmt.Errorf("sort order %s: field %d is not a top-level primitive column", order, f.SourceIDs[0])
		}
		leaf := layout.Parquet.Columns()[node.Column]
		col, _ := layout.Parquet.Lookup(leaf...)
		keys = append(keys, sortKey{column: node.Column, typ: col.Node.Type(),
			desc: f.Direction == table.SortDESC, nullsLast: f.NullOrder == table.NullsLast})
	}
	return keys, nil
}

// compareRows orders two rows by the keys.
func compareRows(keys []sortKey, a, b parquet.Row) int {
	for _, k := range keys {
		va, vb := valueAt(a, k.column), valueAt(b, k.column)
		var c int
		switch {
		case va.IsNull() && vb.IsNull():
			c = 0
		case va.IsNull() || vb.IsNull():
			c = -1
			if vb.IsNull() {
				c = 1
			}
			if k.nullsLast {
				c = -c
			}
			return c // nulls go first or last whatever the direction
		default:
			c = k.typ.Compare(va, vb)
			if k.desc {
				c = -c
			}
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

func valueAt(row parquet.Row, column int) parquet.Value {
	if column < len(row) && row[column].Column() == column {
		return row[column] // a flat row: one value per column
	}
	for _, v := range row {
		if v.Column() == column {
			return v
		}
	}
	return parquet.NullValue()
}

// sortRun buffers rows up to a byte budget, to be written sorted.
type sortRun struct {
	rows  []parquet.Row
	bytes int64
}

func (r *sortRun) add(row parquet.Row) {
	r.rows = append(r.rows, row.Clone())
	for _, v := range row {
		r.bytes += 24
		if k := v.Kind(); (k == parquet.ByteArray || k == parquet.FixedLenByteArray) && !v.IsNull() {
			r.bytes += int64(len(v.ByteArray()))
		}
	}
}

func (r *sortRun) sort(keys []sortKey) {
	slices.SortStableFunc(r.rows, func(a, b parquet.Row) int { return cmp.Compare(compareRows(keys, a, b), 0) })
}

func (r *sortRun) reset() {
	clear(r.rows)
	r.rows, r.bytes = r.rows[:0], 0
}
