package parse

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/sluicehq/sluice/ingest/schema"
)

func TestNewJSON(t *testing.T) {
	l := newLayout(t, req("id", "int64"), opt("name", "string"), opt("ts", "timestamp"),
		opt("day", "date"), opt("s", "struct<t:timestamp>"))
	for _, tc := range []struct {
		name string
		opts Options
		err  string // "" when valid
	}{
		{"timestamp", Options{EventTime: "ts"}, ""},
		{"int64", Options{EventTime: "id", MaxRecordBytes: 1 << 20}, ""},
		{"date", Options{EventTime: "day"}, ""},
		{"no event time", Options{}, ""}, // change events: their envelope has the time
		{"unknown column", Options{EventTime: "nope"}, `event_time: column "nope" is not in the schema`},
		{"nested column", Options{EventTime: "s.t"}, `event_time: column "s.t" is not in the schema`},
		{"string column", Options{EventTime: "name"}, `event_time: column "name" is string, not a timestamp, timestamptz, int64 or date`},
		{"struct column", Options{EventTime: "s"}, `event_time: column "s" is struct<t:timestamp(ms)>, not a timestamp, timestamptz, int64 or date`},
		{"every problem", Options{EventTime: "name", MaxRecordBytes: -1},
			"max_record_bytes: -1 is negative\n" + `event_time: column "name" is string, not a timestamp, timestamptz, int64 or date`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewJSON(l, tc.opts)
			if got := fmt.Sprint(err); tc.err == "" && err != nil || tc.err != "" && got != tc.err {
				t.Fatalf("got error %v, want %q", err, tc.err)
			}
		})
	}
	if _, err := NewJSON(nil, Options{EventTime: "ts"}); err == nil {
		t.Fatal("NewJSON accepted a nil layout")
	}
}

// TestDecodeRecordError checks the error for each way a record can be bad.
func TestDecodeRecordError(t *testing.T) {
	nested := []col{req("id", "int64"), opt("ts", "timestamptz"),
		opt("items", "list<struct<sku:string,qty:int32>>"),
		opt("customer", "struct<name:string,tags:list<string>>")}
	const ts = `"ts":"2026-11-23T07:00:00Z"`
	for _, tc := range []struct {
		name   string
		cols   []col
		opts   Options
		record string
		want   RecordError
	}{
		{name: "invalid JSON", record: `{"id":`,
			want: RecordError{Reason: `cannot parse JSON: cannot parse object: cannot parse object value: cannot parse empty string; unparsed tail: ""`}},
		{name: "trailing data", record: `{"id":1} {}`, want: RecordError{Reason: `unexpected tail: "{}"`}},
		{name: "empty", record: ``, want: RecordError{Reason: `cannot parse JSON: cannot parse empty string; unparsed tail: ""`}},
		{name: "array", record: `[{"id":1}]`, want: RecordError{Reason: "record is not a JSON object"}},
		{name: "null", record: `null`, want: RecordError{Reason: "record is not a JSON object"}},
		{name: "string", record: `"{}"`, want: RecordError{Reason: "record is not a JSON object"}},
		{name: "too large", opts: Options{EventTime: "ts", MaxRecordBytes: 10}, record: `{"id":1,"ts":1}`,
			want: RecordError{Reason: "record of 15 bytes exceeds max_record_bytes 10"}},
		{name: "no event time", record: `{"id":1}`, want: RecordError{Field: "ts", Reason: "missing event time"}},
		{name: "null event time", record: `{"id":1,"ts":null}`, want: RecordError{Field: "ts", Reason: "missing event time"}},
		{name: "required event time", cols: []col{req("ts", "timestamp")}, record: `{}`,
			want: RecordError{Field: "ts", Reason: "missing event time"}},
		{name: "event time first", record: `{"id":"x"}`, want: RecordError{Field: "ts", Reason: "missing event time"}},
		{name: "missing required", record: `{` + ts + `}`, want: RecordError{Field: "id", Reason: "missing required field"}},
		{name: "null required", record: `{"id":null,` + ts + `}`, want: RecordError{Field: "id", Reason: "missing required field"}},
		{name: "duplicate key", record: `{"id":1,"id":1,` + ts + `}`, want: RecordError{Field: "id", Reason: "duplicate key"}},
		{name: "duplicate escaped key", record: `{"id":1,"\u0069d":2,` + ts + `}`, want: RecordError{Field: "id", Reason: "duplicate key"}},
		{name: "bad value", record: `{"id":1.5,` + ts + `}`, want: RecordError{Field: "id", Reason: "1.5 is not an integer"}},
		{name: "list element", record: `{"id":1,` + ts + `,"items":[{"sku":"a"},{"sku":"b"},{"sku":7}]}`,
			want: RecordError{Field: "items[2].sku", Reason: "expected a string, got number"}},
		{name: "list element type", record: `{"id":1,` + ts + `,"items":[{},[]]}`,
			want: RecordError{Field: "items[1]", Reason: "expected an object, got array"}},
		{name: "nested list", record: `{"id":1,` + ts + `,"customer":{"tags":["a",null,1]}}`,
			want: RecordError{Field: "customer.tags[2]", Reason: "expected a string, got number"}},
		{name: "nested duplicate", record: `{"id":1,` + ts + `,"items":[{"qty":1,"qty":2}]}`,
			want: RecordError{Field: "items[0].qty", Reason: "duplicate key"}},
		{name: "nested type", record: `{"id":1,` + ts + `,"customer":"Ada"}`,
			want: RecordError{Field: "customer", Reason: "expected an object, got string"}},
		{name: "int64 event time overflows", cols: []col{req("ts", "int64")}, record: `{"ts":9223372036854775807}`,
			want: RecordError{Field: "ts", Reason: "event time 9223372036854775807 ms is out of range"}},
		{name: "date event time overflows", cols: []col{req("ts", "date")}, record: `{"ts":2000000000}`,
			want: RecordError{Field: "ts", Reason: "event time 2000000000 days is out of range"}},
		{name: "long value", record: `{"id":"` + strings.Repeat("x", 100) + `",` + ts + `}`,
			want: RecordError{Field: "id", Reason: `invalid integer "` + strings.Repeat("x", 64) + `"...`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cols := tc.cols
			if cols == nil {
				cols = nested
			}
			opts := tc.opts
			if opts.EventTime == "" {
				opts.EventTime = "ts"
			}
			d := newDecoder(t, newLayout(t, cols...), opts)
			row, us, err := d.Decode(make(parquet.Row, 3), []byte(tc.record))
			var re *RecordError
			if !errors.As(err, &re) || *re != tc.want {
				t.Fatalf("got error %#v, want %#v", err, &tc.want)
			}
			if len(row) != 0 || us != 0 {
				t.Fatalf("got row %v and event time %d with an error", row, us)
			}
		})
	}
}

func TestRecordErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		err  RecordError
		want string
	}{
		{RecordError{Field: "amount", Reason: "expected a number, got string"}, "field amount: expected a number, got string"},
		{RecordError{Field: "items[2].sku", Reason: "missing required field"}, "field items[2].sku: missing required field"},
		{RecordError{Reason: "record is not a JSON object"}, "record is not a JSON object"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// TestDecodeNested checks Dremel shredding by writing the rows with
// parquet-go and reading them back as maps: the library, not this package,
// decides what the levels mean.
func TestDecodeNested(t *testing.T) {
	cols := []col{
		req("id", "int64"),
		req("ts", "timestamp(us)"),
		opt("customer", "struct<name:string,tags:list<string>,address:struct<city:string,zip:int32>>"),
		opt("items", "list<struct<sku:string,qty:int32,flags:list<bool>>>"),
		opt("scores", "list<float64>"),
	}
	l := newLayout(t, cols...)
	d := newDecoder(t, l, Options{EventTime: "ts"})
	type m = map[string]any
	type a = []any
	for _, tc := range []struct {
		name   string
		record string
		want   m
	}{
		{"all present", `{"id":1,"ts":5,"customer":{"name":"Ada","tags":["a","b"],"address":{"city":"Oslo","zip":150}},` +
			`"items":[{"sku":"x","qty":2,"flags":[true,false]},{"sku":"y","qty":1,"flags":[false]}],"scores":[1.5,2]}`,
			m{"id": int64(1), "ts": int64(5),
				"customer": m{"name": "Ada", "tags": a{"a", "b"}, "address": m{"city": "Oslo", "zip": int32(150)}},
				"items":    a{m{"sku": "x", "qty": int32(2), "flags": a{true, false}}, m{"sku": "y", "qty": int32(1), "flags": a{false}}},
				"scores":   a{1.5, 2.0}}},
		{"all missing", `{"id":2,"ts":5}`,
			m{"id": int64(2), "ts": int64(5), "customer": nil, "items": nil, "scores": nil}},
		{"all null", `{"id":3,"ts":5,"customer":null,"items":null,"scores":null}`,
			m{"id": int64(3), "ts": int64(5), "customer": nil, "items": nil, "scores": nil}},
		{"empty", `{"id":4,"ts":5,"customer":{},"items":[],"scores":[]}`,
			m{"id": int64(4), "ts": int64(5),
				"customer": m{"name": nil, "tags": nil, "address": nil},
				"items":    a{}, "scores": a{}}},
		{"null elements", `{"id":5,"ts":5,"customer":{"tags":[null,"b",null],"address":{}},"items":[null,{},{"flags":[]},{"flags":[null,true]}],"scores":[null]}`,
			m{"id": int64(5), "ts": int64(5),
				"customer": m{"name": nil, "tags": a{nil, "b", nil}, "address": m{"city": nil, "zip": nil}},
				"items": a{nil, m{"sku": nil, "qty": nil, "flags": nil}, m{"sku": nil, "qty": nil, "flags": a{}},
					m{"sku": nil, "qty": nil, "flags": a{nil, true}}},
				"scores": a{nil}}},
		{"keys out of order and unknown", `{"items":[{"flags":[true],"extra":{"x":[1]},"sku":"z"}],"zzz":1,"ts":5,"id":6}`,
			m{"id": int64(6), "ts": int64(5), "customer": nil, "items": a{m{"sku": "z", "qty": nil, "flags": a{true}}}, "scores": nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row, _, err := d.Decode(nil, []byte(tc.record))
			if err != nil {
				t.Fatal(err)
			}
			got := roundTrip(t, l, row)[0]
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("read back %#v\nwant %#v\nrow:%s", got, tc.want, fmtRow(row))
			}
		})
	}
}

// TestDecodeNestedLevels pins the levels of one record, worked out by hand
// from the Dremel rules, so that a regression shows which value moved.
func TestDecodeNestedLevels(t *testing.T) {
	l := newLayout(t, req("ts", "timestamp(us)"), opt("items", "list<struct<sku:string,tags:list<string>>>"))
	d := newDecoder(t, l, Options{EventTime: "ts"})
	row, _, err := d.Decode(nil, []byte(`{"ts":1,"items":[{"sku":"a","tags":["x","y"]},null,{"tags":[]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// Columns by name: items.sku 0, items.tags 1, ts 2. items is optional
	// (def 1), its repeated group adds 1, the element is optional (3), and
	// so are sku (4) and tags (4); tags' group and element make 5 and 6.
	s := func(v string) parquet.Value { return parquet.ByteArrayValue([]byte(v)) }
	null := parquet.NullValue()
	want := parquet.Row{
		s("a").Level(0, 4, 0), null.Level(1, 2, 0), null.Level(1, 3, 0),
		s("x").Level(0, 6, 1), s("y").Level(2, 6, 1), null.Level(1, 2, 1), null.Level(1, 4, 1),
		parquet.Int64Value(1).Level(0, 0, 2),
	}
	if !row.Equal(want) {
		t.Fatalf("got%s\nwant%s", fmtRow(row), fmtRow(want))
	}
	roundTrip(t, l, row)
}

// TestDecodeRequiredNested covers required struct members, which config
// cannot declare but an existing Iceberg table can have.
func TestDecodeRequiredNested(t *testing.T) {
	s := schema.Schema{Fields: []schema.Field{
		{Name: "ts", Type: schema.Type{Kind: schema.KindTimestamp}, Required: true},
		{Name: "s", Type: schema.Type{Kind: schema.KindStruct, Fields: []schema.Field{
			{Name: "a", Type: schema.Type{Kind: schema.KindInt64}, Required: true},
			{Name: "b", Type: schema.Type{Kind: schema.KindString}},
		}}},
	}}
	s.AssignIDs()
	l := schema.NewLayout(s, "test")
	d := newDecoder(t, l, Options{EventTime: "ts"})
	for _, tc := range []struct {
		record string
		want   map[string]any
		err    string
	}{
		{record: `{"ts":1,"s":{"a":1,"b":"x"}}`, want: map[string]any{"ts": int64(1000), "s": map[string]any{"a": int64(1), "b": "x"}}},
		{record: `{"ts":1,"s":null}`, want: map[string]any{"ts": int64(1000), "s": nil}},
		{record: `{"ts":1,"s":{"b":"x"}}`, err: "field s.a: missing required field"},
		{record: `{"ts":1,"s":{"a":null}}`, err: "field s.a: missing required field"},
	} {
		row, _, err := d.Decode(nil, []byte(tc.record))
		if tc.err != "" {
			if fmt.Sprint(err) != tc.err {
				t.Errorf("%s: got error %v, want %q", tc.record, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.record, err)
		}
		if got := roundTrip(t, l, row)[0]; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: read back %#v, want %#v", tc.record, got, tc.want)
		}
	}
}

func TestEventTime(t *testing.T) {
	for _, tc := range []struct {
		typ, json string
		want      int64
	}{
		{"timestamptz", `"1970-01-01T00:00:01.5Z"`, 1_500_000},
		{"timestamptz(ms)", `1500`, 1_500_000},
		{"timestamp(us)", `1500`, 1500},
		{"timestamp(us)", `"1969-12-31T23:59:59Z"`, -1_000_000},
		{"int64", `1500`, 1_500_000},
		{"int64", `"-1500"`, -1_500_000},
		{"date", `"1970-01-02"`, 86_400_000_000},
		{"date", `-1`, -86_400_000_000},
	} {
		t.Run(tc.typ+"/"+tc.json, func(t *testing.T) {
			for _, c := range []col{req("et", tc.typ), opt("et", tc.typ)} {
				// The struct column makes the layout nested, so both
				// decoding paths are covered.
				for _, cols := range [][]col{{c}, {c, opt("s", "struct<x:int32>")}} {
					d := newDecoder(t, newLayout(t, cols...), Options{EventTime: "et"})
					_, got, err := d.Decode(nil, []byte(`{"et":`+tc.json+`}`))
					if err != nil || got != tc.want {
						t.Fatalf("%v: got %d, %v; want %d", cols, got, err, tc.want)
					}
				}
			}
		})
	}
}

// TestFlatMatchesNested decodes flat records on both paths: the fast path
// must produce exactly the rows general shredding does.
func TestFlatMatchesNested(t *testing.T) {
	l := newLayout(t, clickColumns...)
	flat := newDecoder(t, l, Options{EventTime: "event_time"})
	nested := newDecoder(t, l, Options{EventTime: "event_time"})
	nested.flat = false
	for _, record := range []string{
		clickEvent,
		`{"event_id":"a","user_id":"7","event_time":1795417200123,"event_type":"click"}`,
		`{"event_id":"a","user_id":7,"event_time":1795417200123,"event_type":"click","page":null,"amount":"-0.5","is_new_user":true}`,
	} {
		want, wus, werr := nested.Decode(nil, []byte(record))
		got, gus, gerr := flat.Decode(nil, []byte(record))
		if werr != nil || gerr != nil || !got.Equal(want) || gus != wus {
			t.Fatalf("%s:\nflat%s %d %v\nnested%s %d %v", record, fmtRow(got), gus, gerr, fmtRow(want), wus, werr)
		}
		roundTrip(t, l, got)
	}
}

// TestRowsValidUntilReset decodes more string data than an arena chunk holds
// and checks every row still reads back correctly before Reset, then that
// Reset makes the memory reusable.
func TestRowsValidUntilReset(t *testing.T) {
	l := newLayout(t, req("ts", "int64"), opt("s", "string"), opt("b", "binary"), opt("l", "list<string>"))
	d := newDecoder(t, l, Options{EventTime: "ts"})
	big := strings.Repeat("B", arenaLarge+1)
	record := func(i int) string {
		s := fmt.Sprintf("%d-%s", i, strings.Repeat("x", i%200))
		if i%97 == 0 {
			s = big // allocated outside the chunks
		}
		return fmt.Sprintf(`{"ts":%d,"s":%q,"b":"aGVsbG8=","l":[%q,"y"]}`, i, s, s)
	}
	decodeBatch := func() []parquet.Row {
		var rows []parquet.Row
		for i := range 2000 {
			row, _, err := d.Decode(nil, []byte(record(i)))
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, row)
			// A failure after a string was copied must give the memory back.
			mark := d.arena.mark()
			if _, _, err := d.Decode(nil, []byte(`{"ts":1,"s":"lost","b":"!"}`)); err == nil {
				t.Fatal("bad record decoded")
			}
			if d.arena.mark() != mark {
				t.Fatalf("failed record kept arena memory: %v, was %v", d.arena.mark(), mark)
			}
		}
		return rows
	}
	check := func(rows []parquet.Row) {
		t.Helper()
		for i, row := range rows {
			want, _, err := newDecoder(t, l, Options{EventTime: "ts"}).Decode(nil, []byte(record(i)))
			if err != nil {
				t.Fatal(err)
			}
			if !row.Equal(want) {
				t.Fatalf("row %d changed before Reset:%s\nwant%s", i, fmtRow(row), fmtRow(want))
			}
		}
	}
	rows := decodeBatch()
	if len(d.arena.chunks) < 2 {
		t.Fatalf("batch used %d arena chunks; the test needs more than one", len(d.arena.chunks))
	}
	check(rows)
	roundTrip(t, l, rows...)
	chunks := len(d.arena.chunks)
	d.Reset()
	check(decodeBatch())
	if len(d.arena.chunks) != chunks {
		t.Fatalf("arena grew from %d to %d chunks after Reset", chunks, len(d.arena.chunks))
	}
}

// TestNewJSONBadLayout checks that a layout disagreeing with its Parquet
// schema is refused up front: parquet-go would panic on, or silently
// misfile, the rows decoded for it.
func TestNewJSONBadLayout(t *testing.T) {
	cols := []col{req("ts", "timestamp"), opt("a", "int32"), opt("s", "struct<x:string,y:list<bool>>")}
	for _, tc := range []struct {
		name   string
		tamper func(l *schema.Layout)
		err    string
	}{
		{"top out of order", func(l *schema.Layout) { l.Top[0], l.Top[1] = l.Top[1], l.Top[0] }, "parse: column s.x is leaf 1, want 0"},
		{"wrong definition level", func(l *schema.Layout) { l.Top[1].Children[0].Def = 1 }, "parse: column s.x: layout has BYTE_ARRAY def 1 rep 0, parquet schema BYTE_ARRAY def 2 rep 0"},
		{"wrong type", func(l *schema.Layout) { l.Top[0].Field.Type.Kind = schema.KindInt64 }, "parse: column a: layout has INT64 def 1 rep 0, parquet schema INT32 def 1 rep 0"},
		{"not flat", func(l *schema.Layout) { l.Flat = true }, "parse: flat layout has column s at 1"},
		{"missing column", func(l *schema.Layout) { l.Top = l.Top[:2]; l.Top[1] = l.Top[0] }, "parse: column a is leaf 0, want 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLayout(t, cols...)
			tc.tamper(l)
			_, err := NewJSON(l, Options{EventTime: "ts"})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

// TestKeyOrderChanges decodes records whose keys move around, with one
// decoder that remembers key positions and a fresh one for each record,
// which must agree.
func TestKeyOrderChanges(t *testing.T) {
	l := newLayout(t, req("ts", "int64"), opt("a", "int32"), opt("b", "string"), opt("s", "struct<x:int32,y:int32>"))
	d := newDecoder(t, l, Options{EventTime: "ts"})
	for _, record := range []string{
		`{"ts":1,"a":1,"b":"x","s":{"x":1,"y":2}}`,
		`{"ts":1,"a":1,"b":"x","s":{"x":1,"y":2}}`,
		`{"b":"x","a":2,"ts":1,"s":{"y":1,"x":2}}`,
		`{"ts":1,"zz":0,"a":3,"s":{"q":0,"y":3}}`,
		`{"ts":1,"a":4,"zz":0,"s":{"y":4,"q":0}}`,
		`{"ts":1,"zz":5,"a":5}`,
		`{"ts":1,"a":6,"b":"x","zz":6}`,
		`{"ts":1,"\u0061":7,"b":"x"}`,
		`{"ts":1,"a":8,"b":"y","zz":6,"zzz":7,"a2":9}`,
		`{"ts":1}`,
		`{"ts":1,"a":10,"b":"z","s":{"x":10,"y":10,"x":11}}`, // duplicate
		`{"ts":1,"a":11,"b":"x","s":{"x":1,"y":2}}`,
	} {
		got, _, gerr := d.Decode(nil, []byte(record))
		want, _, werr := newDecoder(t, l, Options{EventTime: "ts"}).Decode(nil, []byte(record))
		if fmt.Sprint(gerr) != fmt.Sprint(werr) || !got.Equal(want) {
			t.Fatalf("%s: decoder with history gives%s %v\nfresh decoder gives%s %v", record, fmtRow(got), gerr, fmtRow(want), werr)
		}
	}
}
