package parquet

import (
	"bytes"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

type fieldSpec struct {
	name, typ string
	required  bool
}

// newLayout parses field types, numbers the fields like a new table and
// builds the layout.
func newLayout(t testing.TB, specs ...fieldSpec) *schema.Layout {
	t.Helper()
	var s schema.Schema
	for _, f := range specs {
		typ, err := schema.ParseType(f.typ)
		if err != nil {
			t.Fatalf("type of %s: %v", f.name, err)
		}
		s.Fields = append(s.Fields, schema.Field{Name: f.name, Type: typ, Required: f.required})
	}
	s.AssignIDs()
	return schema.NewLayout(s, "test")
}

// allTypes has every primitive type, an optional column that is mostly
// null, a list and a struct.
var allTypes = []fieldSpec{
	{"s", "string", false},
	{"b", "bool", false},
	{"i32", "int32", false},
	{"i64", "int64", true},
	{"f32", "float32", false},
	{"f64", "float64", false},
	{"d9", "decimal(9,2)", false},
	{"d18", "decimal(18,4)", false},
	{"d38", "decimal(38,10)", false},
	{"dt", "date", false},
	{"ts", "timestamp(us)", false},
	{"tstz", "timestamptz(us)", false},
	{"bin", "binary", false},
	{"opt", "int64", false},
	{"tags", "list<string>", false},
	{"st", "struct<a:int64,b:string>", false},
}

// record is one input row: Go values by field name; nil is null. Lists are
// []any, structs map[string]any, decimals *big.Int (unscaled).
type record map[string]any

// shred turns a record into a parquet.Row by the layout, the way the parse
// stage does (Dremel levels, values ordered by column).
func shred(l *schema.Layout, rec record) parquet.Row {
	var row parquet.Row
	for _, n := range l.Top {
		row = shredNode(row, n, rec[n.Field.Name], 0, 0)
	}
	slices.SortStableFunc(row, func(a, b parquet.Value) int { return a.Column() - b.Column() })
	return row
}

func shredNode(row parquet.Row, n *schema.Node, v any, rep, parentDef int) parquet.Row {
	if v == nil {
		for _, c := range n.Leaves {
			row = append(row, parquet.NullValue().Level(rep, parentDef, c))
		}
		return row
	}
	switch n.Field.Type.Kind {
	case schema.KindStruct:
		m := v.(map[string]any)
		for _, c := range n.Children {
			row = shredNode(row, c, m[c.Field.Name], rep, n.Def)
		}
		return row
	case schema.KindList:
		elems := v.([]any)
		if len(elems) == 0 {
			for _, c := range n.Leaves {
				row = append(row, parquet.NullValue().Level(rep, n.Def, c))
			}
			return row
		}
		for i, e := range elems {
			r := rep
			if i > 0 {
				r = n.Rep
			}
			row = shredNode(row, n.Children[0], e, r, n.Def+1)
		}
		return row
	}
	return append(row, leafValue(n.Field.Type, v).Level(rep, n.Def, n.Column))
}

func leafValue(t schema.Type, v any) parquet.Value {
	switch t.Kind {
	case schema.KindString:
		return parquet.ByteArrayValue([]byte(v.(string)))
	case schema.KindBinary:
		return parquet.ByteArrayValue(v.([]byte))
	case schema.KindBool:
		return parquet.BooleanValue(v.(bool))
	case schema.KindInt32, schema.KindDate:
		return parquet.Int32Value(v.(int32))
	case schema.KindInt64, schema.KindTimestamp, schema.KindTimestampTZ:
		return parquet.Int64Value(v.(int64))
	case schema.KindFloat32:
		return parquet.FloatValue(v.(float32))
	case schema.KindFloat64:
		return parquet.DoubleValue(v.(float64))
	case schema.KindDecimal:
		x := v.(*big.Int)
		switch {
		case t.Precision <= 9:
			return parquet.Int32Value(int32(x.Int64()))
		case t.Precision <= 18:
			return parquet.Int64Value(x.Int64())
		}
		return parquet.FixedLenByteArrayValue(twos(x, schema.DecimalBytes(t.Precision)))
	}
	panic("no value for " + t.String())
}

// twos is x as big-endian two's complement in n bytes.
func twos(x *big.Int, n int) []byte {
	y := new(big.Int).Set(x)
	if y.Sign() < 0 {
		y.Add(y, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	return y.FillBytes(make([]byte, n))
}

// genRecords makes n records of allTypes. Some stretches are null on
// purpose: d38 so that its pages hold only nulls (parquet-go's column index
// bug), opt for a whole row group.
func genRecords(n int, seed uint64) []record {
	r := rand.New(rand.NewPCG(seed, 7))
	alphabet := []rune("abcxyzABC019 -üßé日本語😀")
	str := func(maxRunes int) string {
		var b strings.Builder
		for range 1 + r.IntN(maxRunes) {
			b.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	bigDec := func(digits int) *big.Int {
		lim := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil)
		x := new(big.Int).SetBytes(randBytes(r, 17))
		x.Mod(x, lim)
		if r.IntN(2) == 0 {
			x.Neg(x)
		}
		return x
	}
	recs := make([]record, n)
	for i := range recs {
		rec := record{
			"s":    str(24),
			"b":    r.IntN(2) == 0,
			"i32":  int32(r.Uint32()),
			"i64":  int64(r.Uint64()),
			"f32":  float32(r.NormFloat64() * 1000),
			"f64":  r.NormFloat64() * 1e6,
			"d9":   big.NewInt(r.Int64N(2e9) - 1e9 + 1),
			"d18":  big.NewInt(r.Int64N(2e18) - 1e18 + 1),
			"d38":  bigDec(38),
			"dt":   int32(r.IntN(60000) - 30000),
			"ts":   r.Int64N(4e15) - 2e15,
			"tstz": r.Int64N(4e15),
			"bin":  randBytes(r, 1+r.IntN(24)),
			"opt":  nil,
		}
		if r.IntN(100) == 0 {
			rec["f64"] = math.NaN() // bounds exclude NaN
		}
		if r.IntN(10) < 3 && (i < 2000 || i >= 3500) {
			rec["opt"] = r.Int64N(1000)
		}
		if i%1000 < 600 {
			rec["d38"] = nil
		}
		if r.IntN(20) == 0 {
			rec["s"] = nil
		}
		if i == 1234 { // the maximum, and longer than a bound may be
			rec["s"] = strings.Repeat("😀", 20)
		}
		switch k := r.IntN(10); {
		case k == 0:
			rec["tags"] = nil
		case k == 1:
			rec["tags"] = []any{}
		default:
			tags := make([]any, 1+r.IntN(4))
			for j := range tags {
				if r.IntN(10) > 0 {
					tags[j] = str(8)
				}
			}
			rec["tags"] = tags
		}
		if r.IntN(10) > 0 {
			st := map[string]any{"a": nil, "b": nil}
			if r.IntN(5) > 0 {
				st["a"] = r.Int64N(1e6) - 5e5
			}
			if r.IntN(5) > 0 {
				st["b"] = str(20)
			}
			rec["st"] = st
		}
		recs[i] = rec
	}
	return recs
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// expectedMetrics computes the metrics of records written with l, by
// reference code: counts from the shredded rows, bounds from the Go values
// ordered by type, serialized by iceberg-go's literals.
func expectedMetrics(t testing.TB, l *schema.Layout, rows []parquet.Row, recs []record) Metrics {
	t.Helper()
	cols, err := columnsOf(l)
	if err != nil {
		t.Fatal(err)
	}
	m := Metrics{
		RecordCount:     int64(len(recs)),
		ValueCounts:     map[int]int64{},
		NullValueCounts: map[int]int64{},
		LowerBounds:     map[int][]byte{},
		UpperBounds:     map[int][]byte{},
	}
	for _, row := range rows {
		for _, v := range row {
			id := cols[v.Column()].id
			m.ValueCounts[id]++
			m.NullValueCounts[id] += 0
			if v.IsNull() {
				m.NullValueCounts[id]++
			}
		}
	}
	values := map[int][]any{} // by column, non-null, outside lists
	var collect func(n *schema.Node, v any)
	collect = func(n *schema.Node, v any) {
		switch {
		case v == nil, n.Field.Type.Kind == schema.KindList:
		case n.Field.Type.Kind == schema.KindStruct:
			for _, c := range n.Children {
				collect(c, v.(map[string]any)[c.Field.Name])
			}
		default:
			if f, ok := v.(float64); ok && math.IsNaN(f) {
				return
			}
			values[n.Column] = append(values[n.Column], v)
		}
	}
	for _, rec := range recs {
		for _, n := range l.Top {
			collect(n, rec[n.Field.Name])
		}
	}
	for col, vs := range values {
		c := cols[col]
		lo, hi := vs[0], vs[0]
		for _, v := range vs[1:] {
			if refLess(v, lo) {
				lo = v
			}
			if refLess(hi, v) {
				hi = v
			}
		}
		if b, ok := refTruncate(c.typ.Kind, refBytes(t, c.typ, lo), true); ok {
			m.LowerBounds[c.id] = b
		}
		if b, ok := refTruncate(c.typ.Kind, refBytes(t, c.typ, hi), false); ok {
			m.UpperBounds[c.id] = b
		}
	}
	return m
}

func refLess(a, b any) bool {
	switch a := a.(type) {
	case string:
		return a < b.(string)
	case []byte:
		return bytes.Compare(a, b.([]byte)) < 0
	case bool:
		return !a && b.(bool)
	case int32:
		return a < b.(int32)
	case int64:
		return a < b.(int64)
	case float32:
		return a < b.(float32)
	case float64:
		return a < b.(float64)
	case *big.Int:
		return a.Cmp(b.(*big.Int)) < 0
	}
	panic("refLess")
}

// refBytes serializes v with iceberg-go.
func refBytes(t testing.TB, typ schema.Type, v any) []byte {
	t.Helper()
	var lit iceberg.Literal
	switch typ.Kind {
	case schema.KindString:
		lit = iceberg.StringLiteral(v.(string))
	case schema.KindBinary:
		lit = iceberg.BinaryLiteral(v.([]byte))
	case schema.KindBool:
		lit = iceberg.BoolLiteral(v.(bool))
	case schema.KindInt32:
		lit = iceberg.Int32Literal(v.(int32))
	case schema.KindDate:
		lit = iceberg.DateLiteral(v.(int32))
	case schema.KindInt64:
		lit = iceberg.Int64Literal(v.(int64))
	case schema.KindTimestamp, schema.KindTimestampTZ:
		lit = iceberg.TimestampLiteral(v.(int64))
	case schema.KindFloat32:
		lit = iceberg.Float32Literal(v.(float32))
	case schema.KindFloat64:
		lit = iceberg.Float64Literal(v.(float64))
	case schema.KindDecimal:
		lit = decimalLiteral(v.(*big.Int), typ.Scale)
	}
	b, err := lit.MarshalBinary()
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	return b
}

// refTruncate is Iceberg's truncate(16) by the book: code points for
// strings, bytes for binary.
func refTruncate(k schema.Kind, b []byte, lower bool) ([]byte, bool) {
	if len(b) == 0 {
		return nil, false
	}
	switch k {
	case schema.KindString:
		rs := []rune(string(b))
		if len(rs) <= 16 {
			return b, true
		}
		rs = rs[:16]
		if lower {
			return []byte(string(rs)), true
		}
		for i := len(rs) - 1; i >= 0; i-- {
			if rs[i] < utf8.MaxRune {
				rs[i]++
				if rs[i] >= 0xd800 && rs[i] <= 0xdfff {
					rs[i] = 0xe000
				}
				return []byte(string(rs[:i+1])), true
			}
		}
		return nil, false
	case schema.KindBinary:
		if len(b) <= 16 {
			return b, true
		}
		p := bytes.Clone(b[:16])
		if lower {
			return p, true
		}
		for i := len(p) - 1; i >= 0; i-- {
			if p[i] < 0xff {
				p[i]++
				return p[:i+1], true
			}
		}
		return nil, false
	}
	return b, true
}

// writeFile writes rows in batches and closes the file.
func writeFile(t testing.TB, l *schema.Layout, opts WriterOptions, rows []parquet.Row, batch int) ([]byte, Metrics) {
	t.Helper()
	var buf bytes.Buffer
	f := Create(&buf, l, opts)
	for len(rows) > 0 {
		n := min(batch, len(rows))
		if err := f.WriteRows(rows[:n]); err != nil {
			t.Fatalf("WriteRows: %v", err)
		}
		rows = rows[n:]
	}
	m, size, err := f.Close()
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if size != int64(buf.Len()) {
		t.Fatalf("Close reports size %d, wrote %d", size, buf.Len())
	}
	return buf.Bytes(), m
}
