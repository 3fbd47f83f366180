package iceberg

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

const (
	hourUS = int64(time.Hour / time.Microsecond)
	dayUS  = 24 * hourUS
)

func tsUS(t testing.TB, s string) int64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UnixMicro()
}

func dateDays(t testing.TB, s string) int32 {
	t.Helper()
	tm, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t.Fatal(err)
	}
	return int32(floorDiv(tm.Unix(), 86400))
}

// twos is x as big-endian two's complement in n bytes, the way a
// fixed-length decimal reaches the writers.
func twos(x *big.Int, n int) []byte {
	y := new(big.Int).Set(x)
	if y.Sign() < 0 {
		y.Add(y, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	return y.FillBytes(make([]byte, n))
}

// partitionName is the name Iceberg gives a partition field over column c.
func partitionName(c string, tr iceberg.Transform) string {
	switch tr.(type) {
	case iceberg.IdentityTransform:
		return c
	case iceberg.BucketTransform:
		return c + "_bucket"
	}
	return c + "_" + tr.String()
}

// transformCase is one column type and transform, with values as the parse
// stage hands them to the sinks and the same values as iceberg-go literals.
type transformCase struct {
	typ    string
	expr   string // over column c
	tr     iceberg.Transform
	values []parquet.Value
	lit    func(parquet.Value) iceberg.Literal
}

func transformCases(t testing.TB) []transformCase {
	timestamps := []int64{
		0, -1, 1,
		hourUS - 1, hourUS, -hourUS, -hourUS - 1, -hourUS + 1,
		dayUS - 1, dayUS, -dayUS, -dayUS - 1, -dayUS + 1,
		tsUS(t, "2024-02-29T23:59:59.999999Z"), tsUS(t, "2024-03-01T00:00:00Z"),
		tsUS(t, "2023-12-31T23:59:59.999999Z"), tsUS(t, "2024-01-01T00:00:00Z"),
		tsUS(t, "1969-12-31T23:00:00Z"), tsUS(t, "1969-12-01T00:00:00Z"), tsUS(t, "1969-11-30T23:59:59.999999Z"),
		tsUS(t, "1969-01-01T00:00:00Z"), tsUS(t, "1968-12-31T23:59:59.999999Z"),
		tsUS(t, "1900-03-01T00:30:00Z"), tsUS(t, "1600-02-29T12:00:00Z"),
		tsUS(t, "0001-01-01T00:00:00Z"), tsUS(t, "9999-12-31T23:59:59.999999Z"),
		tsUS(t, "2017-11-16T22:31:08Z"),
	}
	dates := []int32{
		0, -1, 1, 30, 31, -31, -32, 365, -365, -366,
		dateDays(t, "2024-02-29"), dateDays(t, "2024-03-01"), dateDays(t, "2023-12-31"),
		dateDays(t, "1969-12-01"), dateDays(t, "1969-11-30"), dateDays(t, "1969-01-01"), dateDays(t, "1968-12-31"),
		dateDays(t, "1900-02-28"), dateDays(t, "0001-01-01"), dateDays(t, "9999-12-31"),
		dateDays(t, "2017-11-16"),
	}
	tsVals := make([]parquet.Value, len(timestamps))
	for i, v := range timestamps {
		tsVals[i] = parquet.Int64Value(v)
	}
	dateVals := make([]parquet.Value, len(dates))
	for i, v := range dates {
		dateVals[i] = parquet.Int32Value(v)
	}
	tsLit := func(v parquet.Value) iceberg.Literal { return iceberg.NewLiteral(iceberg.Timestamp(v.Int64())) }
	dateLit := func(v parquet.Value) iceberg.Literal { return iceberg.NewLiteral(iceberg.Date(v.Int32())) }

	int32s := []int32{0, 1, -1, 34, 127, 128, -128, -129, math.MaxInt32, math.MinInt32, 1 << 20}
	int32Vals := make([]parquet.Value, len(int32s))
	for i, v := range int32s {
		int32Vals[i] = parquet.Int32Value(v)
	}
	int64s := []int64{0, 1, -1, 34, -34, 1 << 40, math.MaxInt64, math.MinInt64, math.MaxInt32 + 1}
	int64Vals := make([]parquet.Value, len(int64s))
	for i, v := range int64s {
		int64Vals[i] = parquet.Int64Value(v)
	}
	strs := []string{"", "iceberg", "a", "ab", "日本語 😀", "with/slash=and space", "/../../x", "100%", strings.Repeat("x", 300)}
	strVals := make([]parquet.Value, len(strs))
	for i, v := range strs {
		strVals[i] = parquet.ByteArrayValue([]byte(v))
	}
	bins := [][]byte{{}, {0}, {0, 1, 2, 3}, {0xff, 0xfe}, []byte("iceberg")}
	binVals := make([]parquet.Value, len(bins))
	for i, v := range bins {
		binVals[i] = parquet.ByteArrayValue(v)
	}

	// Unscaled decimals around every byte boundary of the minimal two's
	// complement form Iceberg hashes, both signs.
	var unscaled []*big.Int
	for _, s := range []string{"0", "1", "-1", "1420", "-1420", "99", "-99"} {
		x, _ := new(big.Int).SetString(s, 10)
		unscaled = append(unscaled, x)
	}
	for bits := 7; bits <= 127; bits += 8 {
		p := new(big.Int).Lsh(big.NewInt(1), uint(bits)) // 2^(8k-1)
		for _, d := range []int64{-1, 0, 1} {
			x := new(big.Int).Add(p, big.NewInt(d))
			unscaled = append(unscaled, x, new(big.Int).Neg(x))
		}
	}
	decimals := func(precision int) (vals []parquet.Value, lit func(parquet.Value) iceberg.Literal) {
		limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(precision)), nil)
		var kept []*big.Int
		for _, x := range unscaled {
			if new(big.Int).Abs(x).Cmp(limit) < 0 {
				kept = append(kept, x)
			}
		}
		max := new(big.Int).Sub(limit, big.NewInt(1))
		kept = append(kept, max, new(big.Int).Neg(max))
		n := schema.DecimalBytes(precision)
		for _, x := range kept {
			switch {
			case precision <= 9:
				vals = append(vals, parquet.Int32Value(int32(x.Int64())))
			case precision <= 18:
				vals = append(vals, parquet.Int64Value(x.Int64()))
			default:
				vals = append(vals, parquet.FixedLenByteArrayValue(twos(x, n)))
			}
		}
		lit = func(v parquet.Value) iceberg.Literal {
			var x *big.Int
			switch v.Kind() {
			case parquet.Int32:
				x = big.NewInt(int64(v.Int32()))
			case parquet.Int64:
				x = big.NewInt(v.Int64())
			default:
				b := v.ByteArray()
				x = new(big.Int).SetBytes(b)
				if b[0]&0x80 != 0 {
					x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
				}
			}
			return iceberg.NewLiteral(iceberg.Decimal{Val: decimal128.FromBigInt(x), Scale: 2})
		}
		return vals, lit
	}
	d9, d9Lit := decimals(9)
	d18, d18Lit := decimals(18)
	d30, d30Lit := decimals(30)

	var cases []transformCase
	for _, typ := range []string{"timestamptz(us)", "timestamp(us)"} {
		cases = append(cases,
			transformCase{typ, "hour(c)", iceberg.HourTransform{}, tsVals, tsLit},
			transformCase{typ, "day(c)", iceberg.DayTransform{}, tsVals, tsLit},
			transformCase{typ, "month(c)", iceberg.MonthTransform{}, tsVals, tsLit},
			transformCase{typ, "year(c)", iceberg.YearTransform{}, tsVals, tsLit},
			transformCase{typ, "c", iceberg.IdentityTransform{}, tsVals, tsLit},
		)
	}
	cases = append(cases,
		transformCase{"date", "day(c)", iceberg.DayTransform{}, dateVals, dateLit},
		transformCase{"date", "month(c)", iceberg.MonthTransform{}, dateVals, dateLit},
		transformCase{"date", "year(c)", iceberg.YearTransform{}, dateVals, dateLit},
		transformCase{"date", "identity(c)", iceberg.IdentityTransform{}, dateVals, dateLit},
		transformCase{"string", "c", iceberg.IdentityTransform{}, strVals,
			func(v parquet.Value) iceberg.Literal { return iceberg.NewLiteral(string(v.ByteArray())) }},
		transformCase{"binary", "c", iceberg.IdentityTransform{}, binVals,
			func(v parquet.Value) iceberg.Literal { return iceberg.NewLiteral(v.ByteArray()) }},
		transformCase{"int32", "c", iceberg.IdentityTransform{}, int32Vals,
			func(v parquet.Value) iceberg.Literal { return iceberg.NewLiteral(v.Int32()) }},
		transformCase{"int64", "c", iceberg.IdentityTransform{}, int64Vals,
			func(v parquet.Value) iceberg.Literal { return iceberg.NewLiteral(v.Int64()) }},
		transformCase{"bool", "c", iceberg.IdentityTransform{}, []parquet.Value{parquet.BooleanValue(true), parquet.BooleanValue(false)},
			func(v parquet.Value) iceberg.Literal { return iceberg.NewLiteral(v.Boolean()) }},
	)
	for _, n := range []int{1, 16, 1000, 1 << 20} {
		bucket := iceberg.BucketTransform{NumBuckets: n}
		expr := fmt.Sprintf("bucket(%d, c)", n)
		cases = append(cases,
			transformCase{"int32", expr, bucket, int32Vals,
				func(v parquet.Value) iceberg.Literal { return iceberg.NewLiteral(v.Int32()) }},
			transformCase{"int64", expr, bucket, int64Vals,
				func(v parquet.Value) iceberg.Literal { return iceberg.NewLiteral(v.Int64()) }},
			transformCase{"string", expr, bucket, strVals,
				func(v parquet.Value) iceberg.Literal { return iceberg.NewLiteral(string(v.ByteArray())) }},
			transformCase{"binary", expr, bucket, binVals,
				func(v parquet.Value) iceberg.Literal { return iceberg.NewLiteral(v.ByteArray()) }},
			transformCase{"date", expr, bucket, dateVals, dateLit},
			transformCase{"timestamp(us)", expr, bucket, tsVals, tsLit},
			transformCase{"timestamptz(us)", expr, bucket, tsVals, tsLit},
			transformCase{"decimal(9,2)", expr, bucket, d9, d9Lit},
			transformCase{"decimal(18,2)", expr, bucket, d18, d18Lit},
			transformCase{"decimal(30,2)", expr, bucket, d30, d30Lit},
		)
	}
	return cases
}

// TestPartitionMatchesIceberg proves the hand-written transforms equal
// iceberg-go's for every supported source type, including values before
// 1970 and on exact boundaries, and that the partition path is the one
// iceberg-go derives from its own values.
func TestPartitionMatchesIceberg(t *testing.T) {
	for _, tc := range transformCases(t) {
		for _, shape := range []string{"flat", "nested"} {
			t.Run(fmt.Sprintf("%s/%s/%s", tc.typ, tc.expr, shape), func(t *testing.T) {
				cols := []col{{"a_before", "string", false}, {"c", tc.typ, false}, {"z_after", "int64", false}}
				if shape == "nested" {
					// A list makes the layout non-flat: values are found by
					// column, not by index.
					cols = append(cols, col{"tags", "list<string>", false})
				}
				s := testSchema(t, cols...)
				l := schema.NewLayout(s, "t")
				if l.Flat != (shape == "flat") {
					t.Fatalf("layout flat = %t", l.Flat)
				}
				p, err := NewPartitioner([]string{tc.expr}, l)
				if err != nil {
					t.Fatal(err)
				}
				isch, err := s.Iceberg()
				if err != nil {
					t.Fatal(err)
				}
				c, _ := s.Field("c")
				spec := iceberg.NewPartitionSpec(iceberg.PartitionField{
					SourceIDs: []int{c.ID}, FieldID: 1000, Name: partitionName("c", tc.tr), Transform: tc.tr,
				})
				if !sameSpec(p.Spec(), spec) {
					t.Fatalf("spec = %s, want %s", p.Spec().String(), spec.String())
				}
				check := func(row parquet.Row, in iceberg.Optional[iceberg.Literal]) {
					t.Helper()
					got, err := p.Partition(row)
					if err != nil {
						t.Fatalf("Partition(%v): %v", in, err)
					}
					out := tc.tr.Apply(in)
					var want any
					if out.Valid {
						want = out.Val.Any()
					} else if in.Valid {
						t.Fatalf("iceberg-go cannot apply %s to %v", tc.tr, in.Val)
					}
					if !reflect.DeepEqual(got.Values[1000], want) {
						t.Errorf("%s(%v) = %#v (%T), iceberg-go says %#v (%T)", tc.tr, in, got.Values[1000], got.Values[1000], want, want)
					}
					// A file IO decodes the location: what it makes of
					// Path must be iceberg-go's partition path.
					wantPath := spec.PartitionToPath(partRecord{want}, isch)
					if dir, err := url.PathUnescape(got.Path); err != nil || dir != wantPath {
						t.Errorf("path of %v = %q, decoding to %q (%v); iceberg-go says %q", in, got.Path, dir, err, wantPath)
					}
				}
				for _, v := range tc.values {
					row := rowOf(l, map[string]parquet.Value{
						"a_before": parquet.ByteArrayValue([]byte("x")), "c": v, "z_after": parquet.Int64Value(7),
					})
					check(row, iceberg.Optional[iceberg.Literal]{Valid: true, Val: tc.lit(v)})
				}
				check(rowOf(l, nil), iceberg.Optional[iceberg.Literal]{})
			})
		}
	}
}

// TestBucketSpecHashes checks the hashes against the values the Iceberg
// specification lists (Appendix B), independently of iceberg-go: with
// 2^31-1 buckets the bucket is the non-negative hash itself.
func TestBucketSpecHashes(t *testing.T) {
	tests := []struct {
		name string
		kind schema.Kind
		v    parquet.Value
		hash int32 // as the spec prints it
	}{
		{"int 34", schema.KindInt32, parquet.Int32Value(34), 2017239379},
		{"long 34", schema.KindInt64, parquet.Int64Value(34), 2017239379},
		{"decimal 14.20 as int32", schema.KindDecimal, parquet.Int32Value(1420), -500754589},
		{"decimal 14.20 as int64", schema.KindDecimal, parquet.Int64Value(1420), -500754589},
		{"decimal 14.20 as fixed", schema.KindDecimal, parquet.FixedLenByteArrayValue(twos(big.NewInt(1420), 13)), -500754589},
		{"date 2017-11-16", schema.KindDate, parquet.Int32Value(dateDays(t, "2017-11-16")), -653330422},
		{"timestamp 2017-11-16T22:31:08", schema.KindTimestamp, parquet.Int64Value(tsUS(t, "2017-11-16T22:31:08Z")), -2047944441},
		{"timestamptz 2017-11-16T14:31:08-08:00", schema.KindTimestampTZ, parquet.Int64Value(tsUS(t, "2017-11-16T14:31:08-08:00")), -2047944441},
		{"string iceberg", schema.KindString, parquet.ByteArrayValue([]byte("iceberg")), 1210000089},
		{"binary 00010203", schema.KindBinary, parquet.ByteArrayValue([]byte{0, 1, 2, 3}), -188683207},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &partField{transform: "bucket", buckets: math.MaxInt32, kind: tt.kind, scale: 2}
			want := tt.hash & math.MaxInt32
			if want == math.MaxInt32 {
				want = 0
			}
			if got := bucket(f, tt.v); got != want {
				t.Errorf("bucket = %d, want %d (hash %d)", got, want, tt.hash)
			}
		})
	}
}

// TestAppendKeyGroupsPartitions checks that rows have equal keys exactly
// when iceberg-go puts them in the same partition.
func TestAppendKeyGroupsPartitions(t *testing.T) {
	for _, shape := range []string{"flat", "nested"} {
		t.Run(shape, func(t *testing.T) {
			cols := []col{
				{"id", "int64", true}, {"ts", "timestamptz(us)", false}, {"k", "string", false},
				{"d", "date", false}, {"amount", "decimal(30,2)", false}, {"ok", "bool", false},
			}
			if shape == "nested" {
				cols = append(cols, col{"attrs", "struct<a:int64,b:string>", false})
			}
			s := testSchema(t, cols...)
			l := schema.NewLayout(s, "t")
			exprs := []string{"hour(ts)", "bucket(4, id)", "k", "month(d)", "bucket(3, amount)", "ok"}
			trs := []iceberg.Transform{
				iceberg.HourTransform{}, iceberg.BucketTransform{NumBuckets: 4}, iceberg.IdentityTransform{},
				iceberg.MonthTransform{}, iceberg.BucketTransform{NumBuckets: 3}, iceberg.IdentityTransform{},
			}
			srcs := []string{"ts", "id", "k", "d", "amount", "ok"}
			p, err := NewPartitioner(exprs, l)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			base := tsUS(t, "1969-12-31T22:00:00Z")
			keys := map[string]string{}  // key -> partition as iceberg-go computes it
			parts := map[string]string{} // and back
			var key []byte
			for i := range 5000 {
				vals := map[string]parquet.Value{
					"id": parquet.Int64Value(r.Int64N(1000) - 500),
					"ts": parquet.Int64Value(base + r.Int64N(4*hourUS)),
					"k":  parquet.ByteArrayValue([]byte([]string{"", "a", "ab", "b"}[r.IntN(4)])),
					"d":  parquet.Int32Value(int32(r.IntN(90) - 45)),
					"amount": parquet.FixedLenByteArrayValue(twos(
						big.NewInt(r.Int64N(1<<20)-1<<19), schema.DecimalBytes(30))),
					"ok": parquet.BooleanValue(r.IntN(2) == 0),
				}
				for _, name := range srcs {
					if r.IntN(8) == 0 {
						delete(vals, name)
					}
				}
				vals["id"] = parquet.Int64Value(int64(i % 7)) // required
				row := rowOf(l, vals)
				key = p.AppendKey(key[:0], row)

				var want []string
				for j, name := range srcs {
					in := iceberg.Optional[iceberg.Literal]{}
					if v, ok := vals[name]; ok {
						in.Valid = true
						switch name {
						case "id":
							in.Val = iceberg.NewLiteral(v.Int64())
						case "ts":
							in.Val = iceberg.NewLiteral(iceberg.Timestamp(v.Int64()))
						case "k":
							in.Val = iceberg.NewLiteral(string(v.ByteArray()))
						case "d":
							in.Val = iceberg.NewLiteral(iceberg.Date(v.Int32()))
						case "amount":
							b := v.ByteArray()
							x := new(big.Int).SetBytes(b)
							if b[0]&0x80 != 0 {
								x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
							}
							in.Val = iceberg.NewLiteral(iceberg.Decimal{Val: decimal128.FromBigInt(x), Scale: 2})
						case "ok":
							in.Val = iceberg.NewLiteral(v.Boolean())
						}
					}
					out := trs[j].Apply(in)
					if out.Valid {
						want = append(want, fmt.Sprintf("%v", out.Val.Any()))
					} else {
						want = append(want, "null")
					}
				}
				part := strings.Join(want, "|")
				if prev, ok := keys[string(key)]; ok && prev != part {
					t.Fatalf("row %d: key %x also holds partition %s, this row is in %s", i, key, prev, part)
				}
				if prev, ok := parts[part]; ok && prev != string(key) {
					t.Fatalf("row %d: partition %s has keys %x and %x", i, part, prev, key)
				}
				keys[string(key)], parts[part] = part, string(key)
			}
			if len(keys) < 100 {
				t.Errorf("only %d partitions: the test data does not spread", len(keys))
			}
		})
	}
}

// TestAppendKeySeparates checks pairs of rows whose partitions differ only
// in ways an ambiguous encoding would lose.
func TestAppendKeySeparates(t *testing.T) {
	l := schema.NewLayout(testSchema(t,
		col{"a", "string", false}, col{"b", "string", false}, col{"n", "int64", false},
		col{"ok", "bool", false}, col{"ts", "timestamp(us)", false}), "t")
	p, err := NewPartitioner([]string{"a", "b", "n", "ok", "day(ts)"}, l)
	if err != nil {
		t.Fatal(err)
	}
	str := func(s string) parquet.Value { return parquet.ByteArrayValue([]byte(s)) }
	tests := []struct {
		name string
		x, y map[string]parquet.Value
		same bool
	}{
		{"split between strings", map[string]parquet.Value{"a": str("ab"), "b": str("c")}, map[string]parquet.Value{"a": str("a"), "b": str("bc")}, false},
		{"null and empty string", map[string]parquet.Value{"a": str("")}, map[string]parquet.Value{}, false},
		{"null and zero", map[string]parquet.Value{"n": parquet.Int64Value(0)}, map[string]parquet.Value{}, false},
		{"null and false", map[string]parquet.Value{"ok": parquet.BooleanValue(false)}, map[string]parquet.Value{}, false},
		{"true and false", map[string]parquet.Value{"ok": parquet.BooleanValue(true)}, map[string]parquet.Value{"ok": parquet.BooleanValue(false)}, false},
		{"null and epoch day", map[string]parquet.Value{"ts": parquet.Int64Value(0)}, map[string]parquet.Value{}, false},
		{"either side of midnight 1970", map[string]parquet.Value{"ts": parquet.Int64Value(0)}, map[string]parquet.Value{"ts": parquet.Int64Value(-1)}, false},
		{"same day", map[string]parquet.Value{"ts": parquet.Int64Value(-1)}, map[string]parquet.Value{"ts": parquet.Int64Value(-dayUS)}, true},
		{"equal strings", map[string]parquet.Value{"a": str("x")}, map[string]parquet.Value{"a": str("x")}, true},
		{"all null", map[string]parquet.Value{}, map[string]parquet.Value{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kx := p.AppendKey(nil, rowOf(l, tt.x))
			ky := p.AppendKey(nil, rowOf(l, tt.y))
			if same := string(kx) == string(ky); same != tt.same {
				t.Errorf("keys %x and %x: same = %t, want %t", kx, ky, same, tt.same)
			}
			px, err := p.Partition(rowOf(l, tt.x))
			if err != nil {
				t.Fatal(err)
			}
			py, err := p.Partition(rowOf(l, tt.y))
			if err != nil {
				t.Fatal(err)
			}
			if same := reflect.DeepEqual(px.Values, py.Values); same != tt.same {
				t.Errorf("partitions %v and %v: same = %t, want %t", px.Values, py.Values, same, tt.same)
			}
		})
	}
	// AppendKey appends: the buffer's prefix is kept.
	if k := p.AppendKey([]byte("prefix"), rowOf(l, nil)); !strings.HasPrefix(string(k), "prefix") {
		t.Errorf("AppendKey dropped the buffer's prefix: %q", k)
	}
}

// TestPartitionPath pins the directory names of a few partitions, so a
// change in iceberg-go's rendering shows up here too.
func TestPartitionPath(t *testing.T) {
	l := schema.NewLayout(testSchema(t,
		col{"ts", "timestamptz(us)", false}, col{"k", "string", false}, col{"id", "int64", false}, col{"d", "date", false}), "t")
	tests := []struct {
		partition []string
		vals      map[string]parquet.Value
		want      string
	}{
		{[]string{"hour(ts)"}, map[string]parquet.Value{"ts": parquet.Int64Value(tsUS(t, "2024-05-06T07:08:09Z"))}, "ts_hour=2024-05-06-07"},
		{[]string{"hour(ts)"}, map[string]parquet.Value{"ts": parquet.Int64Value(-1)}, "ts_hour=1969-12-31-23"},
		{[]string{"day(ts)"}, map[string]parquet.Value{"ts": parquet.Int64Value(-1)}, "ts_day=1969-12-31"},
		{[]string{"month(ts)"}, map[string]parquet.Value{"ts": parquet.Int64Value(-1)}, "ts_month=1969-12"},
		{[]string{"year(ts)"}, map[string]parquet.Value{"ts": parquet.Int64Value(-1)}, "ts_year=1969"},
		{[]string{"day(d)", "k"}, map[string]parquet.Value{"d": parquet.Int32Value(-1), "k": parquet.ByteArrayValue([]byte("a b/c"))}, "d_day=1969-12-31/k=a+b%252Fc"},
		// Decoded, still one directory: "k=%2F..%2F..%2Fx".
		{[]string{"k"}, map[string]parquet.Value{"k": parquet.ByteArrayValue([]byte("/../../x"))}, "k=%252F..%252F..%252Fx"},
		{[]string{"k"}, map[string]parquet.Value{"k": parquet.ByteArrayValue([]byte("100%"))}, "k=100%2525"},
		{[]string{"k"}, map[string]parquet.Value{"k": parquet.ByteArrayValue([]byte(".."))}, "k=.."},
		{[]string{"bucket(8, id)", "k"}, map[string]parquet.Value{"id": parquet.Int64Value(34)}, "id_bucket=3/k=null"},
		{nil, map[string]parquet.Value{"id": parquet.Int64Value(34)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			p, err := NewPartitioner(tt.partition, l)
			if err != nil {
				t.Fatal(err)
			}
			if p.Unpartitioned() != (len(tt.partition) == 0) {
				t.Errorf("Unpartitioned = %t", p.Unpartitioned())
			}
			got, err := p.Partition(rowOf(l, tt.vals))
			if err != nil {
				t.Fatal(err)
			}
			if got.Path != tt.want {
				t.Errorf("path = %q, want %q", got.Path, tt.want)
			}
		})
	}
}

func TestHivePath(t *testing.T) {
	l := schema.NewLayout(testSchema(t,
		col{"ts", "timestamptz(us)", false}, col{"k", "string", false}, col{"id", "int64", false}, col{"d", "date", false}), "t")
	tests := []struct {
		partition []string
		vals      map[string]parquet.Value
		want      string // as Partition.Path has it: % escaped once more for a location URL
	}{
		{[]string{"hour(ts)"}, map[string]parquet.Value{"ts": parquet.Int64Value(tsUS(t, "2026-11-23T07:08:09Z"))}, "dt=2026-11-23/hour=07"},
		{[]string{"hour(ts)"}, map[string]parquet.Value{"ts": parquet.Int64Value(-1)}, "dt=1969-12-31/hour=23"},
		{[]string{"day(ts)", "k"}, map[string]parquet.Value{"ts": parquet.Int64Value(tsUS(t, "2026-11-23T07:08:09Z")), "k": parquet.ByteArrayValue([]byte("DE"))}, "dt=2026-11-23/k=DE"},
		{[]string{"day(d)"}, map[string]parquet.Value{"d": parquet.Int32Value(dateDays(t, "2026-02-01"))}, "dt=2026-02-01"},
		{[]string{"month(ts)"}, map[string]parquet.Value{"ts": parquet.Int64Value(-1)}, "month=1969-12"},
		{[]string{"month(ts)"}, map[string]parquet.Value{"ts": parquet.Int64Value(tsUS(t, "2026-11-23T07:08:09Z"))}, "month=2026-11"},
		{[]string{"year(ts)"}, map[string]parquet.Value{"ts": parquet.Int64Value(tsUS(t, "2026-11-23T07:08:09Z"))}, "year=2026"},
		{[]string{"hour(ts)"}, map[string]parquet.Value{}, "dt=" + HiveDefaultPartition},
		// A value never splits a path nor reads as another key.
		{[]string{"k"}, map[string]parquet.Value{"k": parquet.ByteArrayValue([]byte("/../x=y"))}, "k=%252F..%252Fx%253Dy"},
		{[]string{"k"}, map[string]parquet.Value{"k": parquet.ByteArrayValue([]byte("a b"))}, "k=a b"},
		{[]string{"bucket(8, id)"}, map[string]parquet.Value{"id": parquet.Int64Value(34)}, "id_bucket=3"},
		{[]string{"k"}, map[string]parquet.Value{}, "k=" + HiveDefaultPartition},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			p, err := NewPartitioner(tt.partition, l)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Hive().Partition(rowOf(l, tt.vals))
			if err != nil {
				t.Fatal(err)
			}
			if got.Path != tt.want {
				t.Errorf("path = %q, want %q", got.Path, tt.want)
			}
		})
	}
}
