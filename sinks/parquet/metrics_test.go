package parquet

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/sluicehq/sluice/ingest/schema"
)

func TestTruncateBound(t *testing.T) {
	long := strings.Repeat("a", 15)
	for _, c := range []struct {
		name   string
		kind   schema.Kind
		in     string
		lower  bool
		want   string
		wantOK bool
	}{
		{"short string kept", schema.KindString, "hello", false, "hello", true},
		{"16 code points kept", schema.KindString, long + "日", false, long + "日", true},
		{"lower cut at a code point", schema.KindString, long + "日本", true, long + "日", true},
		{"upper increments the last code point", schema.KindString, long + "日本", false, long + "旦", true},
		{"upper counts code points, not bytes", schema.KindString, "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀", false, "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😁", true},
		{"upper skips surrogates", schema.KindString, long + "\ud7ffx", false, long + "\ue000", true},
		{"upper carries past the last code point", schema.KindString, long + "\U0010ffffx", false, long[:14] + "b", true},
		{"upper impossible", schema.KindString, strings.Repeat("\U0010ffff", 17), false, "", false},
		{"empty lower dropped", schema.KindString, "", true, "", false},
		{"binary lower", schema.KindBinary, strings.Repeat("\x01", 20), true, strings.Repeat("\x01", 16), true},
		{"binary upper", schema.KindBinary, strings.Repeat("\x01", 20), false, strings.Repeat("\x01", 15) + "\x02", true},
		{"binary upper carries", schema.KindBinary, "\x01" + strings.Repeat("\xff", 20), false, "\x02", true},
		{"binary upper impossible", schema.KindBinary, strings.Repeat("\xff", 17), false, "", false},
		{"binary 16 bytes kept", schema.KindBinary, strings.Repeat("\xff", 16), false, strings.Repeat("\xff", 16), true},
	} {
		got, ok := truncateBound(c.kind, []byte(c.in), c.lower)
		if ok != c.wantOK || string(got) != c.want {
			t.Errorf("%s: truncateBound(%q) = %q, %t; want %q, %t", c.name, c.in, got, ok, c.want, c.wantOK)
		}
		want, wantOK := refTruncate(c.kind, []byte(c.in), c.lower)
		if ok != wantOK || !bytes.Equal(got, want) && ok {
			t.Errorf("%s: reference truncation disagrees: %q, %t", c.name, want, wantOK)
		}
	}
}

// Decimals are the one type whose serialization has a choice in it (the
// width); iceberg-go must produce the same bytes for every value.
func TestDecimalBoundsMatchIceberg(t *testing.T) {
	var values []*big.Int
	for _, v := range []int64{0, 1, -1, 127, 128, -128, -129, 255, 256, -255, -256, 32767, 32768, -32768, -32769,
		math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64, 1e18 - 1, -1e18 + 1} {
		values = append(values, big.NewInt(v))
	}
	max38 := new(big.Int).Sub(new(big.Int).Exp(big.NewInt(10), big.NewInt(38), nil), big.NewInt(1))
	values = append(values, max38, new(big.Int).Neg(max38), new(big.Int).Lsh(big.NewInt(1), 100), new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 100)))
	typ := iceberg.DecimalTypeOf(38, 3)
	for _, v := range values {
		want, err := decimalLiteral(v, 3).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := icebergBound(schema.Type{Kind: schema.KindDecimal, Precision: 38, Scale: 3}, format.FixedLenByteArray, twos(v, 16), true)
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("decimal %s: %x, iceberg-go %x", v, got, want)
		}
		if v.IsInt64() {
			le := binary.LittleEndian.AppendUint64(nil, uint64(v.Int64()))
			if got, _ := icebergBound(schema.Type{Kind: schema.KindDecimal, Precision: 18, Scale: 3}, format.Int64, le, true); !bytes.Equal(got, want) {
				t.Errorf("decimal %s from INT64: %x, iceberg-go %x", v, got, want)
			}
		}
		lit, err := iceberg.LiteralFromBytes(typ, got)
		if err != nil || lit.(iceberg.DecimalLiteral).Val.BigInt().Cmp(v) != 0 {
			t.Errorf("decimal %s decodes as %v, %v", v, lit, err)
		}
	}
	for i, a := range values {
		ab, _ := icebergBound(schema.Type{Kind: schema.KindDecimal}, format.FixedLenByteArray, twos(a, 16), true)
		for _, b := range values[i:] {
			bb, _ := icebergBound(schema.Type{Kind: schema.KindDecimal}, format.FixedLenByteArray, twos(b, 16), true)
			if got, want := compareBound(schema.KindDecimal, ab, bb), a.Cmp(b); got != want {
				t.Errorf("compare %s, %s = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestFloatBounds(t *testing.T) {
	f64 := func(f float64) []byte { return binary.LittleEndian.AppendUint64(nil, math.Float64bits(f)) }
	typ := schema.Type{Kind: schema.KindFloat64}
	if _, ok := icebergBound(typ, format.Double, f64(math.NaN()), true); ok {
		t.Error("NaN is a bound")
	}
	lo, _ := icebergBound(typ, format.Double, f64(0), true)
	hi, _ := icebergBound(typ, format.Double, f64(math.Copysign(0, -1)), false)
	if !math.Signbit(math.Float64frombits(binary.LittleEndian.Uint64(lo))) || math.Signbit(math.Float64frombits(binary.LittleEndian.Uint64(hi))) {
		t.Errorf("zero bounds %x..%x, want -0..+0", lo, hi)
	}
	if compareBound(schema.KindFloat64, lo, hi) >= 0 || compareBound(schema.KindFloat64, f64(-1), f64(-2)) <= 0 {
		t.Error("float order")
	}
	// Typed, not bytewise: -1 serializes with a larger last byte than 1.
	if compareBound(schema.KindInt64, binary.LittleEndian.AppendUint64(nil, ^uint64(0)), binary.LittleEndian.AppendUint64(nil, 1)) >= 0 {
		t.Error("int64 -1 sorts after 1")
	}
}

// footerOf writes rows and returns the file's footer as read back.
func footerOf(t *testing.T, l *schema.Layout, recs ...record) *format.FileMetaData {
	t.Helper()
	rows := make([]parquet.Row, len(recs))
	for i, r := range recs {
		rows[i] = shred(l, r)
	}
	data, _ := writeFile(t, l, WriterOptions{}, rows, len(rows))
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pf.Metadata()
}

func TestMetricsFromFooterStatistics(t *testing.T) {
	l := newLayout(t, fieldSpec{"i", "int64", false}, fieldSpec{"f", "float64", false}, fieldSpec{"s", "string", false})
	ids := fieldIDs(l)
	md := footerOf(t, l,
		record{"i": int64(-7), "f": 1.5, "s": "b"},
		record{"i": int64(3), "f": -2.5, "s": "a"},
		record{"i": nil, "f": nil, "s": nil},
	)
	col := func(name string) *format.ColumnMetaData {
		return &md.RowGroups[0].Columns[l.ByName[name].Column].MetaData
	}
	i64 := func(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

	m, err := MetricsFromFooter(md, l)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.LowerBounds[ids["i"]], i64(-7)) || !bytes.Equal(m.UpperBounds[ids["i"]], i64(3)) ||
		m.NullValueCounts[ids["i"]] != 1 || m.ValueCounts[ids["i"]] != 3 || m.RecordCount != 3 {
		t.Errorf("metrics of i: %x..%x, %d nulls of %d", m.LowerBounds[ids["i"]], m.UpperBounds[ids["i"]], m.NullValueCounts[ids["i"]], m.ValueCounts[ids["i"]])
	}

	// Older writers: only the deprecated min and max. Trusted for numbers,
	// whose signed order they use; not for strings.
	for _, name := range []string{"i", "s"} {
		st := &col(name).Statistics
		st.Min, st.Max, st.MinValue, st.MaxValue = st.MinValue, st.MaxValue, nil, nil
	}
	m, _ = MetricsFromFooter(md, l)
	if !bytes.Equal(m.LowerBounds[ids["i"]], i64(-7)) {
		t.Errorf("deprecated min of an int64 not used: %x", m.LowerBounds[ids["i"]])
	}
	if _, ok := m.LowerBounds[ids["s"]]; ok {
		t.Error("deprecated min of a string used")
	}

	// No statistics at all: null count and bounds unknown.
	col("i").Statistics = format.Statistics{}
	m, _ = MetricsFromFooter(md, l)
	if _, ok := m.NullValueCounts[ids["i"]]; ok {
		t.Error("null count of a chunk without statistics")
	}
	if _, ok := m.LowerBounds[ids["i"]]; ok {
		t.Error("bound of a chunk without statistics")
	}

	// A NaN statistic is no bound.
	col("f").Statistics.MaxValue = binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.NaN()))
	m, _ = MetricsFromFooter(md, l)
	if _, ok := m.UpperBounds[ids["f"]]; ok {
		t.Error("NaN upper bound")
	}
	if _, ok := m.LowerBounds[ids["f"]]; !ok {
		t.Error("lower bound lost with the NaN upper bound")
	}

	// Without column orders min_value and max_value mean nothing.
	md.ColumnOrders = nil
	m, _ = MetricsFromFooter(md, l)
	if _, ok := m.LowerBounds[ids["f"]]; ok {
		t.Error("min_value used without a column order")
	}
}

func TestMetricsFromFooterInconsistentDecimal(t *testing.T) {
	// What parquet-go itself writes for decimal(38) chunks of mixed signs:
	// bytewise min 3, max -5. The bounds must go, not be trusted.
	l := newLayout(t, fieldSpec{"d", "decimal(38,0)", false})
	md := footerOf(t, l, record{"d": big.NewInt(3)}, record{"d": big.NewInt(-5)})
	st := &md.RowGroups[0].Columns[0].MetaData.Statistics
	st.MinValue, st.MaxValue = twos(big.NewInt(3), 16), twos(big.NewInt(-5), 16)
	m, err := MetricsFromFooter(md, l)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.LowerBounds) != 0 || len(m.UpperBounds) != 0 {
		t.Errorf("bounds %x..%x from inconsistent statistics", m.LowerBounds, m.UpperBounds)
	}
}

func TestMetricsFromFooterLayoutMismatch(t *testing.T) {
	l := newLayout(t, fieldSpec{"a", "int64", false}, fieldSpec{"b", "string", false})
	md := footerOf(t, l, record{"a": int64(1), "b": "x"})

	other := newLayout(t, fieldSpec{"a", "int64", false}, fieldSpec{"b", "string", false}, fieldSpec{"c", "bool", false})
	if _, err := MetricsFromFooter(md, other); err == nil || !strings.Contains(err.Error(), "leaf columns") {
		t.Errorf("extra layout column: %v", err)
	}
	retyped := newLayout(t, fieldSpec{"a", "int32", false}, fieldSpec{"b", "string", false})
	if _, err := MetricsFromFooter(md, retyped); err == nil || !strings.Contains(err.Error(), "cannot hold int32") {
		t.Errorf("retyped column: %v", err)
	}
	renumbered := newLayout(t, fieldSpec{"a", "int64", false}, fieldSpec{"b", "string", false})
	renumbered.Top[1].Field.ID = 9
	if _, err := MetricsFromFooter(md, renumbered); err == nil || !strings.Contains(err.Error(), "field ID 2 in the footer but 9") {
		t.Errorf("renumbered column: %v", err)
	}
	unbound := schema.NewLayout(schema.Schema{Fields: []schema.Field{{Name: "a", Type: schema.Type{Kind: schema.KindInt64}}}}, "t")
	if _, err := MetricsFromFooter(md, unbound); err == nil || !strings.Contains(err.Error(), "no Iceberg field ID") {
		t.Errorf("unbound layout: %v", err)
	}
}
