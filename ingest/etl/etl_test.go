package etl

import (
	"bytes"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

// newEvaluator compiles cfg against in and binds it to fresh layouts, as the
// stream does once the output schema is bound to its table.
func newEvaluator(t testing.TB, cfg Config, in schema.Schema) (e *Evaluator, inL, outL *schema.Layout) {
	t.Helper()
	p, err := New(cfg, in)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	inL, outL = layout(in), layout(p.Output())
	e, err = p.Evaluator(inL, outL)
	if err != nil {
		t.Fatalf("Evaluator: %v", err)
	}
	return e, inL, outL
}

var (
	ts0 = time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	day = time.Date(2024, 5, 6, 0, 0, 0, 0, time.UTC)
)

func TestFilter(t *testing.T) {
	in := newSchema(t, "event_type", "string", "n", "int64!", "flag", "bool", "ts", "timestamptz(us)", "tags", "list<string>")
	tests := []struct {
		name   string
		filter string
		rec    map[string]any
		keep   bool
	}{
		{"true", `event_type != "bot"`, map[string]any{"event_type": "click", "n": 1}, true},
		{"false", `event_type != "bot"`, map[string]any{"event_type": "bot", "n": 1}, false},
		{"null column is not equal to a string", `event_type != "bot"`, map[string]any{"n": 1}, true},
		{"null result is false", `flag`, map[string]any{"n": 1}, false},
		{"nullable bool true", `flag`, map[string]any{"n": 1, "flag": true}, true},
		{"null test", `event_type == null`, map[string]any{"n": 1}, true},
		{"int compared with double", `n > 1.5`, map[string]any{"n": 2}, true},
		{"timestamp", `ts < timestamp("2024-05-06T07:08:10Z")`, map[string]any{"n": 1, "ts": ts0}, true},
		{"strings extension", `event_type.lowerAscii() == "bot"`, map[string]any{"n": 1, "event_type": "BOT"}, true},
		{"short circuit over null", `event_type != null && event_type.startsWith("c")`, map[string]any{"n": 1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, inL, outL := newEvaluator(t, Config{Filter: tc.filter}, in)
			out, keep, err := e.Apply(nil, buildRow(t, inL, tc.rec))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if keep != tc.keep {
				t.Fatalf("keep = %t, want %t", keep, tc.keep)
			}
			if !keep {
				if len(out) != 0 {
					t.Fatalf("rejected record has output %v", out)
				}
				return
			}
			// A filter alone passes the record through unchanged.
			if got, want := roundTrip(t, outL, out), roundTrip(t, inL, buildRow(t, inL, tc.rec)); !reflect.DeepEqual(got, want) {
				t.Fatalf("output %v, want %v", got, want)
			}
		})
	}
}

func TestComputed(t *testing.T) {
	in := newSchema(t,
		"s", "string", "i", "int32", "l", "int64!", "f", "float32", "d", "float64",
		"dec", "decimal(10,2)", "big", "decimal(30,4)", "day", "date", "ts", "timestamptz(us)",
		"b", "binary", "ok", "bool", "none", "float32")
	rec := map[string]any{
		"s": "Hello", "i": 7, "l": 3_000_000_000, "f": 1.5, "d": 1.005,
		"dec": "12.34", "big": "-123456789012345678.5", "day": day, "ts": ts0,
		"b": []byte{1, 2}, "ok": true,
	}
	tests := []struct {
		name     string
		col      Column
		wantType string
		want     parquet.Value // physical value; NullValue for null
	}{
		// Inferred types.
		{"bool", Column{Expr: `ok && s == "Hello"`}, "bool", parquet.BooleanValue(true)},
		{"int", Column{Expr: `i * l`}, "int64", parquet.Int64Value(21_000_000_000)},
		{"uint", Column{Expr: `uint(i) + 1u`}, "int64", parquet.Int64Value(8)},
		{"double", Column{Expr: `d * 2.0`}, "float64", parquet.DoubleValue(2.01)},
		{"float32 input", Column{Expr: `f + 0.25`}, "float64", parquet.DoubleValue(1.75)},
		{"string", Column{Expr: `s + "!"`}, "string", parquet.ByteArrayValue([]byte("Hello!"))},
		{"string function", Column{Expr: `s.lowerAscii()`}, "string", parquet.ByteArrayValue([]byte("hello"))},
		{"bytes", Column{Expr: `b + b"\x03"`}, "binary", parquet.ByteArrayValue([]byte{1, 2, 3})},
		{"timestamp", Column{Expr: `ts + duration("1h")`}, "timestamptz(us)", parquet.Int64Value(ts0.Add(time.Hour).UnixMicro())},
		{"date input", Column{Expr: `day + duration("36h")`}, "timestamptz(us)", parquet.Int64Value(day.Add(36 * time.Hour).UnixMicro())},
		{"decimal input", Column{Expr: `dec * 2.0`}, "float64", parquet.DoubleValue(24.68)},
		{"wide decimal input", Column{Expr: `big`}, "float64", parquet.DoubleValue(-123456789012345678.5)},
		{"null propagation", Column{Expr: `none == null ? none : none * 2.0`}, "float64", parquet.NullValue()},

		// Explicit types.
		{"int32", Column{Expr: `i + 1`, Type: "int32"}, "int32", parquet.Int32Value(8)},
		{"float32", Column{Expr: `d`, Type: "float32"}, "float32", parquet.FloatValue(1.005)},
		{"float from int", Column{Expr: `i`, Type: "double"}, "float64", parquet.DoubleValue(7)},
		{"int to decimal32", Column{Expr: `i`, Type: "decimal(5,2)"}, "decimal(5,2)", parquet.Int32Value(700)},
		// The shortest form of the double 1.005 is "1.005", so it rounds up
		// although the binary value is slightly below.
		{"double to decimal64", Column{Expr: `d`, Type: "decimal(10,2)"}, "decimal(10,2)", parquet.Int64Value(101)},
		{"string to wide decimal", Column{Expr: `"-12345678901234567890.12345"`, Type: "decimal(30,4)"}, "decimal(30,4)",
			parquet.FixedLenByteArrayValue(twos(t, "-123456789012345678901235", schema.DecimalBytes(30)))},
		{"string with exponent to decimal", Column{Expr: `"1.5e3"`, Type: "decimal(6,1)"}, "decimal(6,1)", parquet.Int32Value(15000)},
		{"timestamp to date", Column{Expr: `timestamp("1969-12-31T23:00:00Z")`, Type: "date"}, "date", parquet.Int32Value(-1)},
		{"timestamp to timestamp", Column{Expr: `ts`, Type: "timestamp(us)"}, "timestamp(us)", parquet.Int64Value(ts0.UnixMicro())},
		{"string to binary", Column{Expr: `s`, Type: "binary"}, "binary", parquet.ByteArrayValue([]byte("Hello"))},
		{"null literal", Column{Expr: `null`, Type: "string"}, "string", parquet.NullValue()},
		{"dyn", Column{Expr: `dyn(i)`, Type: "int64"}, "int64", parquet.Int64Value(7)},
		{"required", Column{Expr: `l`, Required: true}, "int64", parquet.Int64Value(3_000_000_000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.col.Name = "c"
			e, inL, outL := newEvaluator(t, Config{Columns: []Column{tc.col}}, in)
			n := outL.ByName["c"]
			if got := n.Field.Type.String(); got != tc.wantType {
				t.Errorf("type = %s, want %s", got, tc.wantType)
			}
			if n.Field.Required != tc.col.Required {
				t.Errorf("required = %t, want %t", n.Field.Required, tc.col.Required)
			}
			out, keep, err := e.Apply(nil, buildRow(t, inL, rec))
			if err != nil || !keep {
				t.Fatalf("Apply: keep %t, %v", keep, err)
			}
			got := out[n.Column] // the output is flat
			def := n.Def
			if tc.want.IsNull() {
				def = 0
			}
			want := tc.want.Level(0, def, n.Column)
			if !sameValue(got, want) {
				t.Fatalf("value %s (%v, r%d d%d c%d), want %s (%v, r%d d%d c%d)",
					got, got.Kind(), got.RepetitionLevel(), got.DefinitionLevel(), got.Column(),
					want, want.Kind(), want.RepetitionLevel(), want.DefinitionLevel(), want.Column())
			}
			roundTrip(t, outL, out)
		})
	}
}

// twos is the big-endian two's complement of a decimal integer in n bytes.
func twos(t testing.TB, s string, n int) []byte {
	t.Helper()
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("bad integer %q", s)
	}
	if v.Sign() < 0 {
		v.Add(v, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	return v.FillBytes(make([]byte, n))
}

func sameValue(a, b parquet.Value) bool {
	return a.Kind() == b.Kind() && a.IsNull() == b.IsNull() && bytes.Equal(a.Bytes(), b.Bytes()) &&
		a.RepetitionLevel() == b.RepetitionLevel() && a.DefinitionLevel() == b.DefinitionLevel() && a.Column() == b.Column()
}

func TestApplyErrors(t *testing.T) {
	in := newSchema(t, "s", "string", "i", "int32", "l", "int64!", "d", "float64", "none", "int64")
	rec := map[string]any{"s": "Hello", "i": 0, "l": 3_000_000_000, "d": 12.5}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"division by zero", Config{Columns: []Column{{Name: "c", Expr: `l / i`}}},
			"etl: column c: division by zero"},
		{"filter error", Config{Filter: `10 / i > 1`},
			"etl: filter: division by zero"},
		{"int32 overflow", Config{Columns: []Column{{Name: "c", Expr: `l`, Type: "int32"}}},
			"etl: column c: value 3000000000 overflows int32"},
		{"uint overflows int64", Config{Columns: []Column{{Name: "c", Expr: `18446744073709551615u`}}},
			"etl: column c: value 18446744073709551615 overflows int64"},
		{"float32 overflow", Config{Columns: []Column{{Name: "c", Expr: `d * 1e300`, Type: "float32"}}},
			"etl: column c: value 1.25e+301 overflows float32"},
		{"decimal overflow", Config{Columns: []Column{{Name: "c", Expr: `d`, Type: "decimal(3,2)"}}},
			"etl: column c: 12.5 overflows decimal(3,2)"},
		{"bad decimal string", Config{Columns: []Column{{Name: "c", Expr: `s`, Type: "decimal(10,2)"}}},
			`etl: column c: "Hello": invalid decimal syntax`},
		{"dyn of the wrong type", Config{Columns: []Column{{Name: "c", Expr: `dyn(s)`, Type: "int64"}}},
			"etl: column c: result of type string cannot be stored as int64"},
		{"null input", Config{Columns: []Column{{Name: "c", Expr: `none + l`}}},
			"etl: column c: no such overload: _+_ (null inputs: none)"},
		{"required null", Config{Columns: []Column{{Name: "c", Expr: `none`, Required: true}}},
			"etl: column c: required column is null (null inputs: none)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, inL, _ := newEvaluator(t, tc.cfg, in)
			out, keep, err := e.Apply(nil, buildRow(t, inL, rec))
			if err == nil {
				t.Fatalf("Apply succeeded with %v, want error %q", out, tc.want)
			}
			if err.Error() != tc.want {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
			if keep {
				t.Fatal("keep is true with an error")
			}
		})
	}
}

func TestMalformedRows(t *testing.T) {
	flat := newSchema(t, "a", "string", "b", "int64")
	nested := newSchema(t, "a", "string", "tags", "list<string>")
	tests := []struct {
		name string
		in   schema.Schema
		row  parquet.Row
		want string
	}{
		{"flat too short", flat, parquet.Row{parquet.NullValue().Level(0, 0, 0)},
			"etl: row has 1 values, want one per column (2)"},
		{"column out of range", nested, parquet.Row{parquet.NullValue().Level(0, 0, 0), parquet.NullValue().Level(0, 0, 5)},
			"etl: row value 1 has column 5, want < 2"},
		{"missing column", nested, parquet.Row{parquet.NullValue().Level(0, 0, 0)},
			"etl: row has values for 1 of 2 top-level columns"},
		{"out of order", nested, parquet.Row{parquet.NullValue().Level(0, 0, 1), parquet.NullValue().Level(0, 0, 0)},
			"etl: row value 0 has column 1 out of order or after a column without values"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _, _ := newEvaluator(t, Config{Filter: `a != "x"`}, tc.in)
			_, _, err := e.Apply(nil, tc.row)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRenameDrop(t *testing.T) {
	in := newSchema(t, "id", "int64!", "event_type", "string", "amount", "float64", "secret", "string", "zeta", "bool")
	cfg := Config{
		Rename: map[string]string{"event_type": "kind", "zeta": "alpha"},
		Drop:   []string{"secret"},
		Columns: []Column{
			{Name: "amount_cents", Expr: `int(amount * 100.0)`},
			{Name: "secret_len", Expr: `size(secret)`}, // dropped columns stay readable
		},
	}
	p, err := New(cfg, in)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range p.Output().Fields {
		names = append(names, f.Name)
	}
	if want := []string{"id", "kind", "amount", "alpha", "amount_cents", "secret_len"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("output columns %v, want %v", names, want)
	}

	e, inL, outL := newEvaluator(t, cfg, in)
	rec := map[string]any{"id": 1, "event_type": "click", "amount": 12.34, "secret": "abc", "zeta": true}
	out, keep, err := e.Apply(nil, buildRow(t, inL, rec))
	if err != nil || !keep {
		t.Fatalf("Apply: keep %t, %v", keep, err)
	}
	// Output columns are in Parquet (name) order: alpha, amount,
	// amount_cents, id, kind, secret_len.
	want := parquet.Row{
		parquet.BooleanValue(true).Level(0, 1, 0),
		parquet.DoubleValue(12.34).Level(0, 1, 1),
		parquet.Int64Value(1234).Level(0, 1, 2),
		parquet.Int64Value(1).Level(0, 0, 3),
		parquet.ByteArrayValue([]byte("click")).Level(0, 1, 4),
		parquet.Int64Value(3).Level(0, 1, 5),
	}
	if len(out) != len(want) {
		t.Fatalf("output %v, want %v", out, want)
	}
	for i := range want {
		if !sameValue(out[i], want[i]) {
			t.Fatalf("value %d is %v (d%d c%d), want %v (d%d c%d)", i, out[i], out[i].DefinitionLevel(), out[i].Column(), want[i], want[i].DefinitionLevel(), want[i].Column())
		}
	}
	got := roundTrip(t, outL, out)[0]
	wantMap := map[string]any{"id": int64(1), "kind": "click", "amount": 12.34, "alpha": true, "amount_cents": int64(1234), "secret_len": int64(3)}
	if !reflect.DeepEqual(got, wantMap) {
		t.Fatalf("read back %v, want %v", got, wantMap)
	}
}

// TestNested checks pass-through of list and struct columns, which move to
// other column indexes in the output, by writing the output with parquet-go
// and comparing what it reads back with the input read back.
func TestNested(t *testing.T) {
	in := newSchema(t,
		"id", "int64!",
		"tags", "list<string>",
		"meta", "struct<name:string,n:int64,l:list<int32>>",
		"secret", "string",
		"amount", "float64",
		"items", "list<struct<sku:string,qty:int32>>")
	cfg := Config{
		Filter:  `id != 3`,
		Rename:  map[string]string{"tags": "labels", "meta": "info"},
		Drop:    []string{"secret"},
		Columns: []Column{{Name: "double", Expr: `amount == null ? amount : amount * 2.0`}},
	}
	recs := []map[string]any{
		{"id": 1, "tags": []any{"a", nil, "b"}, "meta": map[string]any{"name": "x", "n": 5, "l": []any{1, 2}}, "secret": "s", "amount": 1.5,
			"items": []any{map[string]any{"sku": "k1", "qty": 2}, nil, map[string]any{"qty": 1}}},
		{"id": 2, "tags": []any{}, "meta": map[string]any{"l": []any{}}},
		{"id": 3, "tags": []any{"filtered"}},
		{"id": 4, "tags": nil, "meta": nil, "amount": 2.0},
		{"id": 5, "tags": []any{"only"}, "meta": map[string]any{"name": "y", "l": []any{nil, 3}}, "secret": "t"},
	}
	e, inL, outL := newEvaluator(t, cfg, in)
	if inL.Flat || outL.Flat {
		t.Fatal("layouts are flat")
	}
	var inRows, outRows []parquet.Row
	for _, rec := range recs {
		src := buildRow(t, inL, rec)
		out, keep, err := e.Apply(nil, src)
		if err != nil {
			t.Fatalf("Apply(id %v): %v", rec["id"], err)
		}
		if keep {
			inRows = append(inRows, src)
			outRows = append(outRows, out)
		}
	}
	if len(outRows) != 4 {
		t.Fatalf("kept %d records, want 4", len(outRows))
	}
	ins, outs := roundTrip(t, inL, inRows...), roundTrip(t, outL, outRows...)
	for i, m := range ins {
		want := map[string]any{"id": m["id"], "labels": m["tags"], "info": m["meta"], "amount": m["amount"], "items": m["items"], "double": nil}
		if a, ok := m["amount"].(float64); ok {
			want["double"] = a * 2
		}
		if !reflect.DeepEqual(outs[i], want) {
			t.Errorf("record %d: output %v, want %v", i, outs[i], want)
		}
	}
	// The fixtures must themselves be what they claim.
	if got := ins[0]["tags"]; !reflect.DeepEqual(got, []any{"a", nil, "b"}) {
		t.Fatalf("input tags read back as %#v", got)
	}
	if got := ins[0]["items"]; !reflect.DeepEqual(got, []any{map[string]any{"sku": "k1", "qty": int32(2)}, nil, map[string]any{"sku": nil, "qty": int32(1)}}) {
		t.Fatalf("input items read back as %#v", got)
	}
}

func TestPassThrough(t *testing.T) {
	// The caller skips etl when nothing is configured, but an Evaluator of
	// the zero Config must still copy rows.
	in := newSchema(t, "b", "string", "a", "list<int64>")
	if !(Config{}).IsZero() || (Config{Drop: []string{"b"}}).IsZero() {
		t.Fatal("IsZero is wrong")
	}
	e, inL, outL := newEvaluator(t, Config{}, in)
	src := buildRow(t, inL, map[string]any{"b": "x", "a": []any{1, 2}})
	out, keep, err := e.Apply(make(parquet.Row, 0, 8), src)
	if err != nil || !keep {
		t.Fatalf("Apply: keep %t, %v", keep, err)
	}
	if got, want := roundTrip(t, outL, out), roundTrip(t, inL, src); !reflect.DeepEqual(got, want) {
		t.Fatalf("output %v, want %v", got, want)
	}
}

func TestNewErrors(t *testing.T) {
	in := newSchema(t, "id", "int64!", "event_type", "string", "amount", "float64", "tags", "list<string>", "meta", "struct<a:string>")
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{
			name: "everything at once",
			cfg: Config{
				Filter: `amount`,
				Columns: []Column{
					{Name: "", Expr: `1`},
					{Name: "x", Expr: `nope + 1`},
					{Name: "y", Expr: `1`, Type: "int128"},
					{Name: "event_type", Expr: `1`},
					{Name: "z", Expr: `size(tags) + size(meta.a)`},
					{Name: "w", Expr: `event_type`, Type: "int32"},
					{Name: "v", Expr: `dyn(amount)`},
					{Name: "u"},
					{Name: "t", Expr: `1`, Type: "list<int64>"},
					{Name: "x", Expr: `2`},
				},
				Rename: map[string]string{"nope": "a", "amount": "event_type", "meta": "", "tags": "t2"},
				Drop:   []string{"missing", "tags", "tags"},
			},
			want: []string{
				"filter: must be a bool expression, not wrapper(double)",
				`drop[0]: no such column "missing"`,
				`drop[2]: column "tags" is listed twice`,
				"rename.meta: new name must not be empty",
				"rename.nope: no such column",
				"rename.tags: column is also dropped",
				`rename.amount: output column "event_type" is already input column event_type`,
				"columns[0].name: must not be empty",
				"columns[1].expr: undeclared reference to 'nope' (at 1:1)",
				`columns[2].type: unknown type "int128" (want one of string, bool, int32, int64, float32, float64, decimal(p,s), date, timestamp, timestamptz, binary, list<T>, struct<name:T,...>)`,
				`columns[3].name: output column "event_type" is already input column event_type (drop or rename it)`,
				"columns[4].expr: column tags is list<string>; only top-level primitive columns can be used in expressions (at 1:6)",
				"columns[4].expr: column meta is struct<a:string>; only top-level primitive columns can be used in expressions (at 1:19)",
				"columns[5].type: an expression of type wrapper(string) cannot be stored as int32",
				"columns[6].type: needed: no column type is inferred for an expression of type dyn",
				"columns[7].expr: must not be empty",
				"columns[8].type: computed columns must have a primitive type, not list<int64>",
				`columns[9].name: output column "x" is already computed by columns[1]`,
			},
		},
		{
			name: "filter syntax",
			cfg:  Config{Filter: `amount >`},
			want: []string{"filter: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER} (at 1:9)"},
		},
		{
			name: "required column compared with null",
			cfg:  Config{Filter: `id != null`},
			want: []string{"filter: found no matching overload for '_!=_' applied to '(int, null)' (at 1:4)"},
		},
		{
			name: "rename clash between two renames",
			cfg:  Config{Rename: map[string]string{"id": "k", "amount": "k"}},
			want: []string{`rename.amount: output column "k" is already input column id renamed by rename.id`},
		},
		{
			name: "rename onto a kept column that comes later",
			cfg:  Config{Rename: map[string]string{"id": "amount"}},
			want: []string{`rename.id: output column "amount" is already input column amount`},
		},
		{
			name: "comprehension variable shadowing a nested column",
			cfg:  Config{Filter: `[1, 2].exists(tags, tags > 1)`},
			want: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, in)
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestEvaluatorLayoutMismatch(t *testing.T) {
	in := newSchema(t, "a", "string", "b", "int64")
	p, err := New(Config{Columns: []Column{{Name: "c", Expr: `b + 1`}}}, in)
	if err != nil {
		t.Fatal(err)
	}
	wrongOut := p.Output()
	wrongOut.Fields[2].Type = schema.Type{Kind: schema.KindInt32}
	swapped := newSchema(t, "b", "int64", "a", "string")
	tests := []struct {
		name    string
		in, out schema.Schema
		want    string
	}{
		{"output type", in, wrongOut, "etl: output layout column c is int32 (required false), want int64 (required false)"},
		{"input order", swapped, p.Output(),
			"etl: input layout has no column a at position 0\netl: input layout has no column b at position 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Evaluator(layout(tc.in), layout(tc.out))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestOutputIsACopy(t *testing.T) {
	in := newSchema(t, "s", "struct<a:string>", "b", "int64")
	p, err := New(Config{}, in)
	if err != nil {
		t.Fatal(err)
	}
	in.Fields[0].Type.Fields[0].Name = "changed" // the caller's schema is not the program's
	out := p.Output()
	out.AssignIDs()
	again := p.Output()
	if again.Fields[0].ID != 0 || again.Fields[0].Type.Fields[0].ID != 0 {
		t.Fatalf("Output has field IDs after a caller assigned them to a copy: %+v", again)
	}
	if name := again.Fields[0].Type.Fields[0].Name; name != "a" {
		t.Fatalf("struct member is %q, want a", name)
	}
}

// TestConcurrentEvaluators shares one Program between goroutines, each with
// its own Evaluator, as the stream does; run with -race.
func TestConcurrentEvaluators(t *testing.T) {
	in := newSchema(t, "s", "string", "n", "int64")
	p, err := New(Config{Filter: `s != "bot"`, Columns: []Column{{Name: "m", Expr: `n * 2`}}}, in)
	if err != nil {
		t.Fatal(err)
	}
	inL, outL := layout(in), layout(p.Output())
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		e, err := p.Evaluator(inL, outL)
		if err != nil {
			t.Fatal(err)
		}
		rows := make([]parquet.Row, 100)
		for i := range rows {
			rows[i] = buildRow(t, inL, map[string]any{"s": "x", "n": g*1000 + i})
		}
		wg.Go(func() {
			var dst parquet.Row
			for i, src := range rows {
				out, keep, err := e.Apply(dst, src)
				if err != nil || !keep {
					errs <- fmt.Errorf("row %d: keep %t, %v", i, keep, err)
					return
				}
				if got, want := out[outL.ByName["m"].Column].Int64(), int64(2*(g*1000+i)); got != want {
					errs <- fmt.Errorf("row %d: m = %d, want %d", i, got, want)
					return
				}
				dst = out
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
