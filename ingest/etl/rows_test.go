package etl

import (
	"bytes"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

// newSchema builds a schema from "name type" pairs; a "!" after the type
// makes the column required.
func newSchema(t testing.TB, cols ...string) schema.Schema {
	t.Helper()
	var s schema.Schema
	for i := 0; i+1 < len(cols); i += 2 {
		typ, required := cols[i+1], false
		if n := len(typ); n > 0 && typ[n-1] == '!' {
			typ, required = typ[:n-1], true
		}
		ty, err := schema.ParseType(typ)
		if err != nil {
			t.Fatalf("column %s: %v", cols[i], err)
		}
		s.Fields = append(s.Fields, schema.Field{Name: cols[i], Type: ty, Required: required})
	}
	return s
}

// layout assigns IDs to a copy of s and builds its layout.
func layout(s schema.Schema) *schema.Layout {
	s = cloneSchema(s)
	s.AssignIDs()
	return schema.NewLayout(s, "t")
}

// buildRow builds the row of a record given as column name -> Go value
// (nil or absent for null, []any for lists, map[string]any for structs), the
// way a parser does: values grouped by leaf column, with levels from the
// layout. Tests check the rows it builds by writing them with parquet-go.
func buildRow(t testing.TB, l *schema.Layout, rec map[string]any) parquet.Row {
	t.Helper()
	cols := make([][]parquet.Value, l.NumColumns)
	for _, n := range l.Top {
		addValue(t, cols, n, rec[n.Field.Name], 0)
	}
	var row parquet.Row
	for _, c := range cols {
		row = append(row, c...)
	}
	return row
}

func addValue(t testing.TB, cols [][]parquet.Value, n *schema.Node, v any, rep int) {
	t.Helper()
	if v == nil {
		if n.Field.Required {
			t.Fatalf("column %s is required", n.Field.Name)
		}
		for _, c := range n.Leaves {
			cols[c] = append(cols[c], parquet.NullValue().Level(rep, n.Def-1, c))
		}
		return
	}
	switch n.Field.Type.Kind {
	case schema.KindStruct:
		m := v.(map[string]any)
		for _, child := range n.Children {
			addValue(t, cols, child, m[child.Field.Name], rep)
		}
	case schema.KindList:
		elems := v.([]any)
		if len(elems) == 0 {
			for _, c := range n.Leaves {
				cols[c] = append(cols[c], parquet.NullValue().Level(rep, n.Def, c))
			}
			return
		}
		for i, e := range elems {
			r := rep
			if i > 0 {
				r = n.Rep
			}
			addValue(t, cols, n.Children[0], e, r)
		}
	default:
		cols[n.Column] = append(cols[n.Column], leafValue(t, n.Field.Type, v).Level(rep, n.Def, n.Column))
	}
}

// leafValue converts a Go value to the Parquet value of a primitive type.
func leafValue(t testing.TB, typ schema.Type, v any) parquet.Value {
	t.Helper()
	switch typ.Kind {
	case schema.KindString:
		return parquet.ByteArrayValue([]byte(v.(string)))
	case schema.KindBinary:
		return parquet.ByteArrayValue(v.([]byte))
	case schema.KindBool:
		return parquet.BooleanValue(v.(bool))
	case schema.KindInt32:
		return parquet.Int32Value(int32(v.(int)))
	case schema.KindInt64:
		return parquet.Int64Value(int64(v.(int)))
	case schema.KindFloat32:
		return parquet.FloatValue(float32(v.(float64)))
	case schema.KindFloat64:
		return parquet.DoubleValue(v.(float64))
	case schema.KindDate:
		return parquet.Int32Value(int32(v.(time.Time).Unix() / secondsPerDay))
	case schema.KindTimestamp, schema.KindTimestampTZ:
		return parquet.Int64Value(v.(time.Time).UnixMicro())
	case schema.KindDecimal:
		pv, _, err := schema.DecimalValue(v.(string), typ, nil)
		if err != nil {
			t.Fatal(err)
		}
		return pv
	}
	t.Fatalf("no test value for %s", typ)
	return parquet.Value{}
}

// roundTrip writes rows with parquet-go and reads them back as Go values,
// so the library checks the levels and column indexes.
func roundTrip(t testing.TB, l *schema.Layout, rows ...parquet.Row) []map[string]any {
	t.Helper()
	defer func() {
		// parquet-go panics on some malformed rows; report it as a failure.
		if r := recover(); r != nil {
			t.Fatalf("parquet-go rejected the rows: %v", r)
		}
	}()
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, l.Parquet)
	if _, err := w.WriteRows(rows); err != nil {
		t.Fatalf("writing rows: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("closing writer: %v", err)
	}
	r := parquet.NewReader(bytes.NewReader(buf.Bytes()), l.Parquet)
	var out []map[string]any
	for range rows {
		m := map[string]any{}
		if err := r.Read(&m); err != nil {
			t.Fatalf("reading row %d back: %v", len(out), err)
		}
		out = append(out, m)
	}
	return out
}
