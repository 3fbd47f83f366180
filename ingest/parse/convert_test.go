package parse

import (
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/sluicehq/sluice/ingest/schema"
)

// TestDecodeValue decodes one value of each column type, good and bad, in a
// record {"ts": <event time>, "v": <json>}.
func TestDecodeValue(t *testing.T) {
	micros := func(s string) int64 {
		t.Helper()
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts.UnixMicro()
	}
	days := func(s string) int32 {
		t.Helper()
		ts, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return int32(ts.Unix() / secondsPerDay)
	}
	str := func(s string) parquet.Value { return parquet.ByteArrayValue([]byte(s)) }
	i32, i64 := parquet.Int32Value, parquet.Int64Value
	f32, f64 := parquet.FloatValue, parquet.DoubleValue

	for _, tc := range []struct {
		typ, json string
		want      parquet.Value
		err       string // the error's Reason
		at        string // the error's Field, if not v
	}{
		{typ: "string", json: `"abc"`, want: str("abc")},
		{typ: "string", json: `""`, want: str("")},
		{typ: "string", json: `"caf\u00e9 \"q\" \ud83d\ude00"`, want: str("café \"q\" 😀")},
		{typ: "string", json: `"日本"`, want: str("日本")},
		{typ: "string", json: "\"\xff\xfe\"", err: "invalid UTF-8"},
		{typ: "string", json: `12`, err: "expected a string, got number"},
		{typ: "string", json: `{"a":1}`, err: "expected a string, got object"},

		{typ: "bool", json: `true`, want: parquet.BooleanValue(true)},
		{typ: "bool", json: `false`, want: parquet.BooleanValue(false)},
		{typ: "bool", json: `"true"`, err: "expected a bool, got string"},
		{typ: "bool", json: `1`, err: "expected a bool, got number"},

		{typ: "int32", json: `42`, want: i32(42)},
		{typ: "int32", json: `-0`, want: i32(0)},
		{typ: "int32", json: `2147483647`, want: i32(math.MaxInt32)},
		{typ: "int32", json: `-2147483648`, want: i32(math.MinInt32)},
		{typ: "int32", json: `2147483648`, err: "2147483648 overflows int32"},
		{typ: "int32", json: `-2147483649`, err: "-2147483649 overflows int32"},
		{typ: "int32", json: `1.0`, want: i32(1)},
		{typ: "int32", json: `1e3`, want: i32(1000)},
		{typ: "int32", json: `1500e-3`, err: "1500e-3 is not an integer"},
		{typ: "int32", json: `1.5`, err: "1.5 is not an integer"},
		{typ: "int32", json: `"42"`, want: i32(42)},
		{typ: "int32", json: `"-042"`, want: i32(-42)},
		{typ: "int32", json: `"4.2"`, err: `invalid integer "4.2"`},
		{typ: "int32", json: `"+1"`, err: `invalid integer "+1"`},
		{typ: "int32", json: `""`, err: `invalid integer ""`},
		{typ: "int32", json: `"3000000000"`, err: "3000000000 overflows int32"},
		{typ: "int32", json: `true`, err: "expected an integer, got bool"},
		{typ: "int32", json: `01`, err: "invalid number 01"},
		{typ: "int32", json: `1-2`, err: "invalid number 1-2"},   // fastjson takes it for a number
		{typ: "int32", json: `NaN`, err: "invalid number NaN"},   // fastjson takes it for a number
		{typ: "int32", json: `-inf`, err: "invalid number -inf"}, // fastjson takes it for a number
		{typ: "int64", json: `9223372036854775807`, want: i64(math.MaxInt64)},
		{typ: "int64", json: `-9223372036854775808`, want: i64(math.MinInt64)},
		{typ: "int64", json: `9223372036854775808`, err: "9223372036854775808 overflows int64"},
		{typ: "int64", json: `123456789012345678901234567890`, err: "123456789012345678901234567890 overflows int64"},
		{typ: "int64", json: `"-9223372036854775808"`, want: i64(math.MinInt64)},
		{typ: "int64", json: `"9223372036854775808"`, err: "9223372036854775808 overflows int64"},
		{typ: "int64", json: `9007199254740993`, want: i64(9007199254740993)}, // 2^53+1: not a float64
		{typ: "int64", json: `1.5e3`, want: i64(1500)},
		{typ: "int64", json: `100E-2`, want: i64(1)},
		{typ: "int64", json: `0.000e99999999999999999999`, want: i64(0)},
		{typ: "int64", json: `1e19`, err: "1e19 overflows int64"},
		{typ: "int64", json: `1e99999999999999999999`, err: "1e99999999999999999999 overflows int64"},
		{typ: "int64", json: `1e-99999999999999999999`, err: "1e-99999999999999999999 is not an integer"},

		{typ: "float32", json: `1.5`, want: f32(1.5)},
		{typ: "float32", json: `-0.0`, want: f32(float32(math.Copysign(0, -1)))},
		{typ: "float32", json: `3.4e38`, want: f32(3.4e38)},
		{typ: "float32", json: `3.5e38`, err: "3.5e38 overflows float32"},
		{typ: "float32", json: `1e-50`, want: f32(0)}, // underflow rounds, as any float parser does
		{typ: "float32", json: `"NaN"`, want: f32(float32(math.NaN()))},
		{typ: "float32", json: `"-Infinity"`, want: f32(float32(math.Inf(-1)))},
		{typ: "float32", json: `"1.5"`, err: `invalid number "1.5", want a JSON number, "NaN", "Infinity" or "-Infinity"`},
		{typ: "float32", json: `NaN`, err: "invalid number NaN"},
		{typ: "float32", json: `.5`, err: "invalid number .5"}, // fastjson takes it for a number
		{typ: "float32", json: `1.5.5`, err: "invalid number 1.5.5"},
		{typ: "float64", json: `0.1`, want: f64(0.1)},
		{typ: "float64", json: `7`, want: f64(7)},
		{typ: "float64", json: `1e308`, want: f64(1e308)},
		{typ: "float64", json: `1e309`, err: "1e309 overflows float64"},
		{typ: "float64", json: `"Infinity"`, want: f64(math.Inf(1))},
		{typ: "float64", json: `"nan"`, err: `invalid number "nan", want a JSON number, "NaN", "Infinity" or "-Infinity"`},
		{typ: "float64", json: `[1]`, err: "expected a number, got array"},

		{typ: "decimal(12,2)", json: `19.99`, want: i64(1999)},
		{typ: "decimal(12,2)", json: `"19.99"`, want: i64(1999)},
		{typ: "decimal(12,2)", json: `19.9`, want: i64(1990)},
		{typ: "decimal(12,2)", json: `19`, want: i64(1900)},
		{typ: "decimal(12,2)", json: `"19.990000"`, want: i64(1999)},
		{typ: "decimal(12,2)", json: `-0.01`, want: i64(-1)},
		{typ: "decimal(12,2)", json: `-0`, want: i64(0)},
		{typ: "decimal(12,2)", json: `1.5e2`, want: i64(15000)},
		{typ: "decimal(12,2)", json: `15e-2`, want: i64(15)},
		{typ: "decimal(12,2)", json: `"1E+3"`, want: i64(100000)},
		{typ: "decimal(12,2)", json: `"+5"`, want: i64(500)},
		{typ: "decimal(12,2)", json: `".5"`, want: i64(50)},
		{typ: "decimal(12,2)", json: `"5."`, want: i64(500)},
		{typ: "decimal(12,2)", json: `"000.10"`, want: i64(10)},
		{typ: "decimal(12,2)", json: `9999999999.99`, want: i64(999999999999)},
		{typ: "decimal(12,2)", json: `-9999999999.99`, want: i64(-999999999999)},
		{typ: "decimal(12,2)", json: `0.1000000000000000055511151231257827`, err: "0.1000000000000000055511151231257827 has more than 2 fractional digits"},
		{typ: "decimal(12,2)", json: `19.999`, err: "19.999 has more than 2 fractional digits"},
		{typ: "decimal(12,2)", json: `10000000000`, err: "10000000000 overflows decimal(12,2)"},
		{typ: "decimal(12,2)", json: `1e10`, err: "1e10 overflows decimal(12,2)"},
		{typ: "decimal(12,2)", json: `0e999999999999`, want: i64(0)},
		{typ: "decimal(12,2)", json: `"1,5"`, err: `invalid decimal "1,5"`},
		{typ: "decimal(12,2)", json: `""`, err: `invalid decimal ""`},
		{typ: "decimal(12,2)", json: `"."`, err: `invalid decimal "."`},
		{typ: "decimal(12,2)", json: `"1e"`, err: `invalid decimal "1e"`},
		{typ: "decimal(12,2)", json: `1.`, err: "invalid number 1."},
		{typ: "decimal(12,2)", json: `true`, err: "expected a decimal number or string, got bool"},
		{typ: "decimal(9,3)", json: `999999.999`, want: i32(999999999)},
		{typ: "decimal(9,3)", json: `-1.5`, want: i32(-1500)},
		{typ: "decimal(9,3)", json: `1000000`, err: "1000000 overflows decimal(9,3)"},
		{typ: "decimal(18,0)", json: `999999999999999999`, want: i64(999999999999999999)},
		{typ: "decimal(18,0)", json: `1e18`, err: "1e18 overflows decimal(18,0)"},
		{typ: "decimal(20,4)", json: `"-0.0001"`, want: flba(t, "-1", 9)},
		{typ: "decimal(20,4)", json: `12.5`, want: flba(t, "125000", 9)},
		{typ: "decimal(20,4)", json: `9999999999999999.9999`, want: flba(t, "99999999999999999999", 9)},
		{typ: "decimal(20,4)", json: `-9999999999999999.9999`, want: flba(t, "-99999999999999999999", 9)},
		{typ: "decimal(38,0)", json: `"` + strings.Repeat("9", 38) + `"`, want: flba(t, strings.Repeat("9", 38), 16)},
		{typ: "decimal(38,0)", json: `-` + strings.Repeat("9", 38), want: flba(t, "-"+strings.Repeat("9", 38), 16)},
		{typ: "decimal(38,0)", json: `1e38`, err: "1e38 overflows decimal(38,0)"},
		{typ: "decimal(38,10)", json: `1234567890123456789012345678.9012345678`, want: flba(t, "12345678901234567890123456789012345678", 16)},
		{typ: "decimal(38,10)", json: `-170141183460469231731.687303715884105728`, err: "-170141183460469231731.687303715884105728 has more than 10 fractional digits"},

		{typ: "date", json: `"2026-11-23"`, want: i32(days("2026-11-23"))},
		{typ: "date", json: `"1970-01-01"`, want: i32(0)},
		{typ: "date", json: `"1969-12-31"`, want: i32(-1)},
		{typ: "date", json: `"2024-02-29"`, want: i32(days("2024-02-29"))},
		{typ: "date", json: `"2000-02-29"`, want: i32(days("2000-02-29"))},
		{typ: "date", json: `"0001-01-01"`, want: i32(days("0001-01-01"))},
		{typ: "date", json: `"9999-12-31"`, want: i32(days("9999-12-31"))},
		{typ: "date", json: `20780`, want: i32(20780)},
		{typ: "date", json: `-1`, want: i32(-1)},
		{typ: "date", json: `"1900-02-29"`, err: `invalid date "1900-02-29", want YYYY-MM-DD`},
		{typ: "date", json: `"2026-13-01"`, err: `invalid date "2026-13-01", want YYYY-MM-DD`},
		{typ: "date", json: `"2026-11-23T00:00:00Z"`, err: `invalid date "2026-11-23T00:00:00Z", want YYYY-MM-DD`},
		{typ: "date", json: `"2026-1-2"`, err: `invalid date "2026-1-2", want YYYY-MM-DD`},
		{typ: "date", json: `2147483648`, err: "2147483648 overflows int32"},
		{typ: "date", json: `1.5`, err: "1.5 is not an integer"},
		{typ: "date", json: `{}`, err: "expected a date string or integer, got object"},

		{typ: "timestamptz", json: `"2026-11-23T07:00:00Z"`, want: i64(micros("2026-11-23T07:00:00Z"))},
		{typ: "timestamptz", json: `"2026-11-23T07:00:00.123456789Z"`, want: i64(micros("2026-11-23T07:00:00.123456Z"))},
		{typ: "timestamptz", json: `"2026-11-23T07:00:00.1Z"`, want: i64(micros("2026-11-23T07:00:00.1Z"))},
		{typ: "timestamptz", json: `"2026-11-23T09:30:00+02:30"`, want: i64(micros("2026-11-23T07:00:00Z"))},
		{typ: "timestamptz", json: `"2026-11-23T00:00:00-08:00"`, want: i64(micros("2026-11-23T08:00:00Z"))},
		{typ: "timestamptz", json: `"2026-11-23T07:00:00"`, want: i64(micros("2026-11-23T07:00:00Z"))},
		{typ: "timestamptz", json: `"2026-11-23 07:00:00.123"`, want: i64(micros("2026-11-23T07:00:00.123Z"))},
		{typ: "timestamptz", json: `"2026-11-23t07:00:00z"`, want: i64(micros("2026-11-23T07:00:00Z"))},
		{typ: "timestamptz", json: `"2026-11-23T07:00:00,5Z"`, want: i64(micros("2026-11-23T07:00:00.5Z"))}, // time.Parse
		{typ: "timestamptz", json: `"1969-12-31T23:59:59.9999999Z"`, want: i64(-1)},                         // truncated toward the past
		{typ: "timestamptz", json: `"0000-01-01T00:00:00Z"`, want: i64(micros("0000-01-01T00:00:00Z"))},
		{typ: "timestamptz", json: `1795417200123`, want: i64(1795417200123000)}, // milliseconds
		{typ: "timestamptz", json: `9223372036854775807`, err: "9223372036854775807 ms overflows a timestamp"},
		{typ: "timestamptz", json: `"2026-11-23"`, err: `invalid timestamp "2026-11-23", want RFC 3339`},
		{typ: "timestamptz", json: `"2026-11-23T24:00:00Z"`, err: `invalid timestamp "2026-11-23T24:00:00Z", want RFC 3339`},
		{typ: "timestamptz", json: `"2026-11-23T07:00:00.Z"`, err: `invalid timestamp "2026-11-23T07:00:00.Z", want RFC 3339`},
		{typ: "timestamptz", json: `"2026-11-23T07:00:00+0200"`, err: `invalid timestamp "2026-11-23T07:00:00+0200", want RFC 3339`},
		{typ: "timestamptz", json: `"Mon, 23 Nov 2026 07:00:00 GMT"`, err: `invalid timestamp "Mon, 23 Nov 2026 07:00:00 GMT", want RFC 3339`},
		{typ: "timestamptz", json: `1.5`, err: "1.5 is not an integer"},
		{typ: "timestamptz", json: `false`, err: "expected a timestamp string or integer, got bool"},
		{typ: "timestamp(us)", json: `1795417200123456`, want: i64(1795417200123456)},
		{typ: "timestamp(us)", json: `"2026-11-23T07:00:00+01:00"`, want: i64(micros("2026-11-23T06:00:00Z"))},
		{typ: "timestamp(us)", json: `9223372036854775807`, want: i64(math.MaxInt64)},

		{typ: "binary", json: `"aGVsbG8="`, want: str("hello")},
		{typ: "binary", json: `"aGVsbG8"`, want: str("hello")},
		{typ: "binary", json: `"aGVsbA=="`, want: str("hell")},
		{typ: "binary", json: `"aGVsbA"`, want: str("hell")},
		{typ: "binary", json: `""`, want: str("")},
		{typ: "binary", json: `"+/+/"`, want: str("\xfb\xff\xbf")},
		{typ: "binary", json: `"aGVsbA="`, err: "invalid base64"},
		{typ: "binary", json: `"aGVsbB=="`, err: "invalid base64"}, // nonzero trailing bits
		{typ: "binary", json: `"-_-_"`, err: "invalid base64"},     // URL alphabet
		{typ: "binary", json: `"a"`, err: "invalid base64"},
		{typ: "binary", json: `"===="`, err: "invalid base64"},
		{typ: "binary", json: `5`, err: "expected a base64 string, got number"},

		{typ: "list<int32>", json: `{}`, err: "expected an array, got object"},
		{typ: "list<int32>", json: `[1,"x"]`, err: `invalid integer "x"`, at: "v[1]"},
		{typ: "struct<a:int32>", json: `[]`, err: "expected an object, got array"},
	} {
		t.Run(tc.typ+"/"+tc.json, func(t *testing.T) {
			l := newLayout(t, req("ts", "timestamptz"), opt("v", tc.typ))
			d := newDecoder(t, l, Options{EventTime: "ts"})
			row, _, err := d.Decode(nil, []byte(`{"ts":"2026-11-23T07:00:00Z","v":`+tc.json+`}`))
			if tc.err != "" {
				wantField := "v"
				if tc.at != "" {
					wantField = tc.at
				}
				re, ok := err.(*RecordError)
				if !ok || re.Reason != tc.err || re.Field != wantField {
					t.Fatalf("got error %#v, want reason %q at field %q", err, tc.err, wantField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v := l.ByName["v"]
			want := parquet.Row{tc.want.Level(0, v.Def, v.Column)}
			got := parquet.Row{row[v.Column]}
			if isNaN(tc.want) && isNaN(got[0]) {
				return
			}
			if !got.Equal(want) || got[0].Kind() != want[0].Kind() {
				t.Fatalf("got %s %s, want %s %s", got[0].Kind(), fmtRow(got), want[0].Kind(), fmtRow(want))
			}
			roundTrip(t, l, row)
		})
	}
}

// flba is the fixed-length big-endian two's complement form of the integer
// s in n bytes, computed with math/big as an independent check.
func flba(t *testing.T, s string, n int) parquet.Value {
	t.Helper()
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("bad integer %q", s)
	}
	if v.Sign() < 0 {
		v.Add(v, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	return parquet.FixedLenByteArrayValue(v.FillBytes(make([]byte, n)))
}

func isNaN(v parquet.Value) bool {
	switch v.Kind() {
	case parquet.Float:
		return math.IsNaN(float64(v.Float()))
	case parquet.Double:
		return math.IsNaN(v.Double())
	}
	return false
}

// TestDecimalBytes checks the widths the schema package gives decimals
// against the definition: the fewest bytes whose two's complement range
// holds every value of the precision.
func TestDecimalBytes(t *testing.T) {
	for p := 1; p <= schema.MaxDecimalPrecision; p++ {
		maxUnscaled := new(big.Int).Sub(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(p)), nil), big.NewInt(1))
		want := (maxUnscaled.BitLen() + 1 + 7) / 8 // one more bit for the sign
		if got := schema.DecimalBytes(p); got != want {
			t.Errorf("DecimalBytes(%d) = %d, want %d", p, got, want)
		}
	}
}
