package etl

import (
	"strconv"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

func TestDecimalValue(t *testing.T) {
	tests := []struct {
		in   string
		typ  string
		want string // unscaled value, or the error
	}{
		{"0", "decimal(5,2)", "0"},
		{"+5", "decimal(5,2)", "500"},
		{"-0.001", "decimal(5,2)", "0"},
		{"1.005", "decimal(5,2)", "101"},
		{"-1.005", "decimal(5,2)", "-101"},
		{"0.004", "decimal(5,2)", "0"},
		{"0.005", "decimal(5,2)", "1"},
		{".5", "decimal(3,0)", "1"},
		{"5.", "decimal(3,0)", "5"},
		{"99.994", "decimal(4,2)", "9999"},
		{"99.995", "decimal(4,2)", "99.995 overflows decimal(4,2)"},
		{"1e2", "decimal(5,2)", "10000"},
		{"1E-2", "decimal(5,2)", "1"},
		{"1.2e-1", "decimal(3,2)", "12"},
		{"1e-1000", "decimal(3,2)", "0"},
		{"1e1000", "decimal(3,2)", "1e1000 overflows decimal(3,2)"},
		{"000123.4500", "decimal(5,2)", "12345"},
		{"123456789", "decimal(9,0)", "123456789"},
		{"-999999999999999999", "decimal(18,0)", "-999999999999999999"},
		{"12345678901234567890.5", "decimal(38,0)", "12345678901234567891"},
		{"-99999999999999999999999999999999999999", "decimal(38,0)", "-99999999999999999999999999999999999999"},
		{"-1", "decimal(20,0)", "-1"},
		{"", "decimal(5,2)", `"": invalid decimal syntax`},
		{".", "decimal(5,2)", `".": invalid decimal syntax`},
		{"-", "decimal(5,2)", `"-": invalid decimal syntax`},
		{"1.2.3", "decimal(5,2)", `"1.2.3": invalid decimal syntax`},
		{"1e", "decimal(5,2)", `"1e": invalid decimal syntax`},
		{"1 ", "decimal(5,2)", `"1 ": invalid decimal syntax`},
		{"0x10", "decimal(5,2)", `"0x10": invalid decimal syntax`},
	}
	for _, tc := range tests {
		t.Run(tc.in+"/"+tc.typ, func(t *testing.T) {
			typ, err := schema.ParseType(tc.typ)
			if err != nil {
				t.Fatal(err)
			}
			v, _, err := schema.DecimalValue(tc.in, typ, nil)
			var got string
			switch {
			case err != nil:
				got = err.Error()
			case v.Kind() == parquet.Int32 && typ.Precision <= 9:
				got = strconv.FormatInt(int64(v.Int32()), 10)
			case v.Kind() == parquet.Int64 && typ.Precision > 9 && typ.Precision <= 18:
				got = strconv.FormatInt(v.Int64(), 10)
			case v.Kind() == parquet.FixedLenByteArray && len(v.ByteArray()) == schema.DecimalBytes(typ.Precision):
				got = twosComplement(v.ByteArray()).String()
			default:
				t.Fatalf("value %v has physical type %v for %s", v, v.Kind(), typ)
			}
			if got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDecimalToFloat(t *testing.T) {
	tests := []struct {
		in, typ string
		want    float64
	}{
		{"12.34", "decimal(9,2)", 12.34},
		{"-0.01", "decimal(18,2)", -0.01},
		{"123456789012.345678", "decimal(18,6)", 123456789012.345678},
		{"-12345678901234567890.123456789", "decimal(38,9)", -12345678901234567890.123456789},
		{"0.000000000000000000000000000001", "decimal(38,30)", 1e-30},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			typ, err := schema.ParseType(tc.typ)
			if err != nil {
				t.Fatal(err)
			}
			v, _, err := schema.DecimalValue(tc.in, typ, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := decimalToFloat(v, typ.Scale); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
