package parse

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// matchProtos declare a field of every kind a record can be selected by,
// and of every kind it cannot.
var matchProtos = map[string]string{
	"match.proto": `
syntax = "proto3";
package mt;

enum Kind {
  KIND_UNSPECIFIED = 0;
  CLICK = 1;
  VIEW = 2;
  NEG = -1;
}

message Sub { int32 x = 1; }

message Ev {
  string s = 1;
  bytes b = 2;
  Kind k = 3;
  bool t = 4;
  int32 i32 = 5;
  sint32 s32 = 6;
  sfixed32 sf32 = 7;
  int64 i64 = 8;
  sint64 s64 = 9;
  sfixed64 sf64 = 10;
  uint32 u32 = 11;
  fixed32 f32 = 12;
  uint64 u64 = 13;
  fixed64 f64 = 14;
  optional string os = 15;
  oneof choice {
    string o1 = 16;
    int32 o2 = 17;
    Sub o3 = 18;
  }
  float fl = 19;
  double db = 20;
  repeated string rs = 21;
  map<string, string> mp = 22;
  Sub sub = 23;
  optional Kind ok = 24;
}
`,
	"match2.proto": `
syntax = "proto2";
package mt2;

enum Closed {
  A = 1;
  B = 2;
}

message P {
  optional Closed c = 1 [default = B];
  optional string s = 2 [default = "x"];
  optional group G = 3 {
    optional int32 y = 4;
  }
  optional int32 n = 5;
}
`,
	"match3.proto": `
edition = "2023";
package mt3;

message E {
  string imp = 1 [features.field_presence = IMPLICIT];
  string exp = 2;
  int64 num = 3 [features.field_presence = IMPLICIT];
}
`,
}

// matchTypes compiles matchProtos once per test binary.
var matchTypes = func() func(tb testing.TB) *protoregistry.Files {
	var reg *protoregistry.Files
	return func(tb testing.TB) *protoregistry.Files {
		tb.Helper()
		if reg == nil {
			reg = compileProto(tb, matchProtos)
		}
		return reg
	}
}()

// fakeDecoder stands for the decoder a Matching wraps: it records the
// records it is given and fails them with err, if set.
type fakeDecoder struct {
	calls  int
	resets int
	err    error
}

func (f *fakeDecoder) Decode(row parquet.Row, data []byte) (parquet.Row, int64, error) {
	f.calls++
	if f.err != nil {
		return row[:0], 0, f.err
	}
	return append(row[:0], parquet.Int64Value(int64(len(data)))), 42, nil
}

func (f *fakeDecoder) Reset() { f.resets++ }

// countingDecoder also counts unknown fields, as Protobuf does.
type countingDecoder struct{ fakeDecoder }

func (c *countingDecoder) UnknownFields() int64 { return 3 }

// outcome is what Matching.Decode made of a record.
type outcome string

const (
	matched  outcome = "matched" // decoded by the inner decoder
	skipped  outcome = "skipped" // ErrNotMatched, not decoded
	deadened outcome = "dead"    // handed to the inner decoder to be dead-lettered
)

// decodeOutcome decodes data with m, whose inner decoder is inner, and
// says what became of it. A record handed over to be dead-lettered is
// decoded twice: once by a strict inner decoder, whose error must come
// back unchanged, and once by a lenient one, when Matching must fail it
// itself; reason is then Matching's own reason.
func decodeOutcome(t *testing.T, m *Matching, inner *fakeDecoder, data []byte) (o outcome, reason string) {
	t.Helper()
	row := make(parquet.Row, 0, 4)
	inner.calls, inner.err = 0, nil
	row, us, err := m.Decode(row, data)
	switch {
	case err == nil:
		if inner.calls != 1 || len(row) != 1 || us != 42 {
			t.Fatalf("Decode: inner called %d times, row %v, event time %d; want the inner decoder's", inner.calls, row, us)
		}
		return matched, ""
	case errors.Is(err, ErrNotMatched):
		if inner.calls != 0 || len(row) != 0 {
			t.Fatalf("Decode: ErrNotMatched, but inner called %d times, row %v", inner.calls, row)
		}
		return skipped, ""
	}
	var re *RecordError
	if !errors.As(err, &re) || inner.calls != 1 || len(row) != 0 {
		t.Fatalf("Decode: %v (%T), inner called %d times, row %v", err, err, inner.calls, row)
	}
	strict := &RecordError{Reason: "inner says no"}
	inner.calls, inner.err = 0, strict
	if _, _, err := m.Decode(row, data); err != strict || inner.calls != 1 {
		t.Fatalf("Decode with a strict inner decoder: %v, inner called %d times; want the inner decoder's error", err, inner.calls)
	}
	return deadened, re.Error()
}

func TestJSONMatch(t *testing.T) {
	for _, c := range []struct {
		value, data string
		want        outcome
		reason      string // of a dead record
	}{
		{"click", `{"kind":"click"}`, matched, ""},
		{"click", ` { "a" : 1 , "kind" : "click" , "b" : [ {"kind":"view"} ] } `, matched, ""},
		{"click", `{"kind":"view"}`, skipped, ""},
		{"click", `{"kind":"Click"}`, skipped, ""},
		{"click", `{"Kind":"click"}`, skipped, ""},
		{"click", `{"kind":"cl\u0069ck"}`, matched, ""},
		{"click", `{"\u006bind":"click"}`, matched, ""},
		{"click", `{"other":"click"}`, skipped, ""},
		{"click", `{}`, skipped, ""},
		{"click", `{"a":{"kind":"click"}}`, skipped, ""}, // top level only
		{"", `{"kind":""}`, matched, ""},
		{"", `{}`, skipped, ""},
		{"a\"b", `{"kind":"a\"b"}`, matched, ""},
		{"é", `{"kind":"\u00e9"}`, matched, ""},
		// Numbers and bools by their JSON text.
		{"7", `{"kind":7}`, matched, ""},
		{"7", `{"kind":"7"}`, matched, ""},
		{"7", `{"kind":7.0}`, skipped, ""},
		{"7", `{"kind":7e0}`, skipped, ""},
		{"7", `{"kind":70}`, skipped, ""},
		{"-1.5e3", `{"kind":-1.5e3}`, matched, ""},
		{"true", `{"kind":true}`, matched, ""},
		{"true", `{"kind":"true"}`, matched, ""},
		{"true", `{"kind":false}`, skipped, ""},
		{"false", `{"kind":false}`, matched, ""},
		{"false", `{"kind":0}`, skipped, ""},
		// Nothing to compare.
		{"null", `{"kind":null}`, skipped, ""},
		{"", `{"kind":null}`, skipped, ""},
		{"{}", `{"kind":{}}`, skipped, ""},
		{"[]", `{"kind":[]}`, skipped, ""},
		{"click", `{"kind":["click"]}`, skipped, ""},
		{"click", `{"kind":{"click":1}}`, skipped, ""},
		// Records the selection cannot place are dead-lettered.
		{"click", `{"kind":"click","kind":"view"}`, deadened, "field kind: duplicate key"},
		{"click", `{"kind":"click","kind":"click"}`, deadened, "field kind: duplicate key"},
		{"click", `{"kind":"click"`, deadened, "cannot parse JSON"},
		{"click", `{"kind":"click"} x`, deadened, "unexpected tail"},
		{"click", `{"kind":"click",}`, deadened, "cannot parse JSON"},
		{"click", ``, deadened, "cannot parse JSON"},
		{"click", `[{"kind":"click"}]`, deadened, "record is not a JSON object"},
		{"click", `"click"`, deadened, "record is not a JSON object"},
		{"null", `null`, deadened, "record is not a JSON object"},
	} {
		inner := &fakeDecoder{}
		m, err := NewJSONMatch(inner, "kind", c.value)
		if err != nil {
			t.Fatal(err)
		}
		got, reason := decodeOutcome(t, m, inner, []byte(c.data))
		if got != c.want || !strings.Contains(reason, c.reason) {
			t.Errorf("kind=%q, %s: %s %q, want %s %q", c.value, c.data, got, reason, c.want, c.reason)
		}
	}
}

// TestJSONMatchDecoder selects records for the JSON decoder itself.
func TestJSONMatchDecoder(t *testing.T) {
	d := newDecoder(t, newLayout(t, clickColumns...), Options{EventTime: "event_time"})
	m, err := NewJSONMatch(d, "event_type", "page_view")
	if err != nil {
		t.Fatal(err)
	}
	row, us, err := m.Decode(nil, []byte(clickEvent))
	if err != nil || len(row) != len(clickColumns) || us == 0 {
		t.Fatalf("Decode(clickEvent) = %v, %d, %v", row, us, err)
	}
	other := strings.Replace(clickEvent, `"page_view"`, `"purchase"`, 1)
	if _, _, err := m.Decode(row, []byte(other)); !errors.Is(err, ErrNotMatched) {
		t.Errorf("Decode(purchase) = %v, want ErrNotMatched", err)
	}
	// Not JSON: dead-lettered with the decoder's reason.
	_, _, err = m.Decode(row, []byte(clickEvent[:40]))
	var re *RecordError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "cannot parse JSON") {
		t.Errorf("Decode(truncated) = %v, want the decoder's *RecordError", err)
	}
	// A repeated event_type is a column's duplicate key to the decoder.
	dup := strings.Replace(clickEvent, `"page":`, `"event_type":"purchase","page":`, 1)
	if _, _, err = m.Decode(row, []byte(dup)); !errors.As(err, &re) || re.Error() != "field event_type: duplicate key" {
		t.Errorf("Decode(duplicate) = %v, want field event_type: duplicate key", err)
	}
	m.Reset()
}

func TestProtoMatch(t *testing.T) {
	reg := matchTypes(t)
	ev := messageType(t, reg, "mt.Ev")
	p := messageType(t, reg, "mt2.P")
	e := messageType(t, reg, "mt3.E")
	// Negative int32s and int64s are sent sign-extended, in 10 bytes.
	n5, n2 := int64(-5), int64(-2)
	neg, neg5, neg2 := uint64(math.MaxUint64), uint64(n5), uint64(n2)
	for _, c := range []struct {
		name         string
		md           protoreflect.MessageDescriptor
		field, value string
		data         wire
		want         outcome
		reason       string // of a dead record
	}{
		{"string", ev, "s", "click", wire{}.str(1, "click"), matched, ""},
		{"string other", ev, "s", "click", wire{}.str(1, "view"), skipped, ""},
		{"string prefix", ev, "s", "click", wire{}.str(1, "clicks"), skipped, ""},
		{"string absent", ev, "s", "click", wire{}, skipped, ""},
		{"string among others", ev, "s", "click", wire{}.varint(99, 5).str(2, "x").str(1, "click").group(100, wire{}.varint(1, 1)).fixed32(5, 3), matched, ""},
		{"string in a message is not top-level", ev, "s", "click", wire{}.bytes(23, wire{}.str(1, "click")), skipped, ""},
		{"string empty", ev, "s", "", wire{}.str(1, ""), matched, ""},
		{"string empty absent", ev, "s", "", wire{}, matched, ""},
		{"string empty absent among others", ev, "s", "", wire{}.str(2, "x").varint(3, 1), matched, ""},
		{"string empty other", ev, "s", "", wire{}.str(1, "x"), skipped, ""},
		{"bytes", ev, "b", "\x00\xff", wire{}.bytes(2, []byte{0, 0xff}), matched, ""},
		{"bytes other", ev, "b", "\x00\xff", wire{}.bytes(2, []byte{0xff}), skipped, ""},
		{"enum name", ev, "k", "CLICK", wire{}.varint(3, 1), matched, ""},
		{"enum number", ev, "k", "1", wire{}.varint(3, 1), matched, ""},
		{"enum other", ev, "k", "VIEW", wire{}.varint(3, 1), skipped, ""},
		{"enum negative", ev, "k", "NEG", wire{}.varint(3, neg), matched, ""},
		{"enum negative in 5 bytes", ev, "k", "-1", wire{}.varint(3, math.MaxUint32), matched, ""},
		{"enum undeclared number", ev, "k", "99", wire{}.varint(3, 99), matched, ""},
		{"enum zero absent", ev, "k", "KIND_UNSPECIFIED", wire{}, matched, ""},
		{"enum zero number absent", ev, "k", "0", wire{}, matched, ""},
		{"enum zero sent", ev, "k", "KIND_UNSPECIFIED", wire{}.varint(3, 0), matched, ""},
		{"enum absent", ev, "k", "CLICK", wire{}, skipped, ""},
		{"optional enum zero absent", ev, "ok", "KIND_UNSPECIFIED", wire{}, skipped, ""},
		{"optional enum zero sent", ev, "ok", "KIND_UNSPECIFIED", wire{}.varint(24, 0), matched, ""},
		{"bool", ev, "t", "true", wire{}.varint(4, 1), matched, ""},
		{"bool any nonzero", ev, "t", "true", wire{}.varint(4, 1<<40), matched, ""},
		{"bool false sent", ev, "t", "true", wire{}.varint(4, 0), skipped, ""},
		{"bool false", ev, "t", "false", wire{}.varint(4, 0), matched, ""},
		{"bool false absent", ev, "t", "false", wire{}, matched, ""},
		{"bool true absent", ev, "t", "true", wire{}, skipped, ""},
		{"int32", ev, "i32", "-5", wire{}.varint(5, neg5), matched, ""},
		{"int32 in 5 bytes", ev, "i32", "-5", wire{}.varint(5, uint64(uint32(neg5))), matched, ""},
		{"int32 other", ev, "i32", "5", wire{}.varint(5, neg5), skipped, ""},
		{"int32 zero absent", ev, "i32", "0", wire{}, matched, ""},
		{"int32 leading zeros", ev, "i32", "+007", wire{}.varint(5, 7), matched, ""},
		{"sint32", ev, "s32", "-5", wire{}.varint(6, protowire.EncodeZigZag(-5)), matched, ""},
		{"sint32 not zigzag", ev, "s32", "-5", wire{}.varint(6, neg5), skipped, ""},
		{"sint32 min", ev, "s32", "-2147483648", wire{}.varint(6, protowire.EncodeZigZag(math.MinInt32)), matched, ""},
		{"sint32 max", ev, "s32", "2147483647", wire{}.varint(6, protowire.EncodeZigZag(math.MaxInt32)), matched, ""},
		{"sfixed32", ev, "sf32", "-5", wire{}.fixed32(7, uint32(neg5)), matched, ""},
		{"sfixed32 other", ev, "sf32", "5", wire{}.fixed32(7, uint32(neg5)), skipped, ""},
		{"int64", ev, "i64", "-9223372036854775808", wire{}.varint(8, 1<<63), matched, ""},
		{"int64 low bits", ev, "i64", "1", wire{}.varint(8, 1<<32|1), skipped, ""},
		{"sint64", ev, "s64", "-1", wire{}.varint(9, 1), matched, ""},
		{"sint64 max", ev, "s64", "9223372036854775807", wire{}.varint(9, math.MaxUint64-1), matched, ""},
		{"sfixed64", ev, "sf64", "-2", wire{}.fixed64(10, neg2), matched, ""},
		{"uint32", ev, "u32", "4294967295", wire{}.varint(11, math.MaxUint32), matched, ""},
		{"uint32 read as 32 bits", ev, "u32", "1", wire{}.varint(11, 1<<32|1), matched, ""},
		{"fixed32", ev, "f32", "4294967295", wire{}.fixed32(12, math.MaxUint32), matched, ""},
		{"fixed32 other", ev, "f32", "1", wire{}.fixed32(12, 2), skipped, ""},
		{"uint64", ev, "u64", "18446744073709551615", wire{}.varint(13, math.MaxUint64), matched, ""},
		{"fixed64", ev, "f64", "1", wire{}.fixed64(14, 1), matched, ""},
		{"fixed64 zero absent", ev, "f64", "0", wire{}, matched, ""},
		// The last occurrence wins.
		{"last wins", ev, "s", "view", wire{}.str(1, "click").str(1, "view"), matched, ""},
		{"last wins not first", ev, "s", "click", wire{}.str(1, "click").varint(5, 1).str(1, "view"), skipped, ""},
		{"last wins int", ev, "i64", "2", wire{}.varint(8, 2).varint(8, 3).varint(8, 2), matched, ""},
		{"last wins zero", ev, "i64", "0", wire{}.varint(8, 2).varint(8, 0), matched, ""},
		// Presence: an absent field with presence holds nothing.
		{"optional absent", ev, "os", "", wire{}, skipped, ""},
		{"optional empty", ev, "os", "", wire{}.str(15, ""), matched, ""},
		{"oneof", ev, "o1", "x", wire{}.str(16, "x"), matched, ""},
		{"oneof absent", ev, "o1", "", wire{}, skipped, ""},
		{"oneof cleared", ev, "o1", "x", wire{}.str(16, "x").varint(17, 1), skipped, ""},
		{"oneof cleared by a message", ev, "o1", "x", wire{}.str(16, "x").bytes(18, nil), skipped, ""},
		{"oneof set again", ev, "o1", "x", wire{}.varint(17, 1).str(16, "x"), matched, ""},
		{"oneof int cleared", ev, "o2", "0", wire{}.varint(17, 0).str(16, "x"), skipped, ""},
		{"proto2 default absent", p, "c", "B", wire{}, skipped, ""},
		{"proto2 default sent", p, "c", "B", wire{}.varint(1, 2), matched, ""},
		{"proto2 string default absent", p, "s", "x", wire{}, skipped, ""},
		{"proto2 zero absent", p, "n", "0", wire{}, skipped, ""},
		{"proto2 zero sent", p, "n", "0", wire{}.varint(5, 0), matched, ""},
		{"proto2 after a group", p, "n", "1", wire{}.group(3, wire{}.varint(4, 2).varint(5, 2)).varint(5, 1), matched, ""},
		{"editions implicit absent", e, "imp", "", wire{}, matched, ""},
		{"editions implicit int absent", e, "num", "0", wire{}, matched, ""},
		{"editions explicit absent", e, "exp", "", wire{}, skipped, ""},
		{"editions explicit", e, "exp", "a", wire{}.str(2, "a"), matched, ""},
		// Records the selection cannot place are dead-lettered.
		{"wrong wire type", ev, "s", "click", wire{}.varint(1, 5), deadened, "field s: wire type varint, want length-delimited"},
		{"wrong wire type last", ev, "s", "click", wire{}.str(1, "click").varint(1, 5), deadened, "field s: wire type varint"},
		{"wrong wire type fixed", ev, "i32", "1", wire{}.fixed64(5, 1), deadened, "field i32: wire type fixed64, want varint"},
		{"wrong wire type fixed32", ev, "f32", "1", wire{}.varint(12, 1), deadened, "field f32: wire type varint, want fixed32"},
		{"wrong wire type group", ev, "s", "", wire{}.group(1, nil), deadened, "field s: wire type start-group"},
		{"wrong wire type oneof", ev, "o1", "x", wire{}.str(16, "x").fixed32(17, 1), deadened, "field o2: wire type fixed32, want varint"},
		{"end group", ev, "s", "", wire{}.tag(1, protowire.EndGroupType), deadened, "field s: invalid wire format"},
		{"end group elsewhere", ev, "s", "", wire{}.tag(5, protowire.EndGroupType), deadened, "invalid wire format"},
		{"truncated value", ev, "s", "click", wire{}.raw(0x0a, 5, 'c', 'l'), deadened, "field s: invalid wire format: unexpected EOF"},
		{"truncated tag", ev, "s", "click", wire{}.str(1, "click").raw(0x80), deadened, "invalid wire format"},
		{"tag without a value", ev, "s", "click", wire{}.str(1, "click").raw(0x28), deadened, "invalid wire format"},
		{"field number zero", ev, "s", "click", wire{}.str(1, "click").raw(0x00), deadened, "invalid wire format"},
		{"reserved wire type", ev, "s", "click", wire{}.tag(2, 6).str(1, "click"), deadened, "invalid wire format"},
		{"unterminated group", ev, "s", "click", wire{}.str(1, "click").tag(9, protowire.StartGroupType), deadened, "invalid wire format"},
		{"truncated elsewhere", ev, "s", "click", wire{}.str(1, "click").raw(0x12, 9, 'x'), deadened, "invalid wire format"},
	} {
		t.Run(c.name, func(t *testing.T) {
			inner := &fakeDecoder{}
			m, err := NewProtoMatch(inner, c.md, c.field, c.value)
			if err != nil {
				t.Fatal(err)
			}
			got, reason := decodeOutcome(t, m, inner, c.data)
			if got != c.want || !strings.Contains(reason, c.reason) {
				t.Errorf("%s=%q, % x: %s %q, want %s %q", c.field, c.value, []byte(c.data), got, reason, c.want, c.reason)
			}
		})
	}
}

// TestProtoMatchDecoder selects records for the protobuf decoder itself.
func TestProtoMatchDecoder(t *testing.T) {
	reg := testTypes(t)
	every := messageType(t, reg, "test.Every")
	opts := everyOpts(t)
	d := newProtoDecoder(t, every, newProtoLayout(t, every, opts), opts)
	m, err := NewProtoMatch(d, every, "status", "SHIPPED")
	if err != nil {
		t.Fatal(err)
	}
	row, us, err := m.Decode(nil, eventTime().varint(17, 2).varint(99, 1))
	if err != nil || us == 0 || len(row) == 0 {
		t.Fatalf("Decode(SHIPPED) = %v, %d, %v", row, us, err)
	}
	if n := m.UnknownFields(); n != 1 {
		t.Errorf("UnknownFields() = %d, want 1", n)
	}
	if _, _, err := m.Decode(row, eventTime().varint(17, 1).varint(99, 1)); !errors.Is(err, ErrNotMatched) {
		t.Errorf("Decode(PENDING) = %v, want ErrNotMatched", err)
	}
	if n := m.UnknownFields(); n != 1 {
		t.Errorf("UnknownFields() = %d after a record not selected, want 1", n)
	}
	// Dead-lettered with the decoder's reasons.
	var re *RecordError
	if _, _, err := m.Decode(row, eventTime().str(17, "SHIPPED")); !errors.As(err, &re) || re.Error() != "field status: wire type length-delimited, want varint" {
		t.Errorf("Decode(status as a string) = %v, want the decoder's wire type error", err)
	}
	if _, _, err := m.Decode(row, eventTime().varint(17, 2).raw(0x0a)); !errors.As(err, &re) || !strings.Contains(re.Reason, "invalid wire format") {
		t.Errorf("Decode(truncated) = %v, want the decoder's wire format error", err)
	}
	if _, _, err := m.Decode(row, wire{}.varint(17, 2)); !errors.As(err, &re) || re.Reason != "missing event time" {
		t.Errorf("Decode(no event time) = %v, want missing event time", err)
	}
	m.Reset()
}

func TestMatchErrNotMatched(t *testing.T) {
	inner := &fakeDecoder{}
	m, err := NewJSONMatch(inner, "kind", "click")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = m.Decode(nil, []byte(`{"kind":"view"}`))
	if !errors.Is(err, ErrNotMatched) {
		t.Fatalf("Decode = %v, want ErrNotMatched", err)
	}
	// Not a record to dead-letter.
	var re *RecordError
	if errors.As(err, &re) {
		t.Errorf("ErrNotMatched is a *RecordError")
	}
	if wrapped := errors.Join(errors.New("x"), err); !errors.Is(wrapped, ErrNotMatched) {
		t.Errorf("errors.Is does not see ErrNotMatched through a wrap")
	}
}

func TestMatchForwards(t *testing.T) {
	md := messageType(t, matchTypes(t), "mt.Ev")
	plain := &fakeDecoder{}
	counting := &countingDecoder{}
	for _, c := range []struct {
		inner   RowDecoder
		resets  *int
		unknown int64
	}{
		{plain, &plain.resets, 0},
		{counting, &counting.resets, 3},
	} {
		j, err := NewJSONMatch(c.inner, "kind", "click")
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewProtoMatch(c.inner, md, "s", "click")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []*Matching{j, p} {
			before := *c.resets
			m.Reset()
			if *c.resets != before+1 {
				t.Errorf("%T: Reset not passed on", c.inner)
			}
			if n := m.UnknownFields(); n != c.unknown {
				t.Errorf("%T: UnknownFields() = %d, want %d", c.inner, n, c.unknown)
			}
		}
	}
	// A Decompressing decoder passes on the count through a Matching.
	j, _ := NewJSONMatch(counting, "kind", "click")
	d, err := NewDecompressing(j, "gzip", 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := d.UnknownFields(); n != 3 {
		t.Errorf("Decompressing(Matching).UnknownFields() = %d, want 3", n)
	}
}

func TestNewMatchErrors(t *testing.T) {
	reg := matchTypes(t)
	ev := messageType(t, reg, "mt.Ev")
	p := messageType(t, reg, "mt2.P")
	for _, c := range []struct {
		md           protoreflect.MessageDescriptor
		field, value string
		want         string
	}{
		{ev, "nope", "x", `match.field "nope": message mt.Ev has no field "nope"`},
		{ev, "", "x", `match.field "": message mt.Ev has no field ""`},
		{ev, "S", "x", `match.field "S": message mt.Ev has no field "S"`},
		{ev, "rs", "x", `match.field "rs": is repeated; only a singular scalar field can select records`},
		{ev, "mp", "x", `match.field "mp": is a map; only a singular scalar field can select records`},
		{ev, "sub", "x", `match.field "sub": is a message (mt.Sub); only a singular scalar field can select records`},
		{ev, "o3", "x", `match.field "o3": is a message (mt.Sub); only a singular scalar field can select records`},
		{p, "g", "x", `match.field "g": is a message (mt2.P.G); only a singular scalar field can select records`},
		{ev, "fl", "1", `match.field "fl": is a float; floating-point equality cannot select records`},
		{ev, "db", "1", `match.field "db": is a double; floating-point equality cannot select records`},
		{ev, "k", "CLIK", `match.field "k": enum mt.Kind has no value "CLIK"`},
		{ev, "k", "click", `match.field "k": enum mt.Kind has no value "click"`},
		{ev, "k", "", `match.field "k": enum mt.Kind has no value ""`},
		{ev, "k", "2147483648", `match.field "k": enum mt.Kind has no value "2147483648"`},
		{ev, "k", "1.0", `match.field "k": enum mt.Kind has no value "1.0"`},
		{p, "c", "C", `match.field "c": enum mt2.Closed has no value "C"`},
		{ev, "t", "yes", `match.field "t": value "yes" is not a bool: want true or false`},
		{ev, "t", "1", `match.field "t": value "1" is not a bool: want true or false`},
		{ev, "t", "True", `match.field "t": value "True" is not a bool: want true or false`},
		{ev, "i32", "2147483648", `match.field "i32": value "2147483648" is out of range for int32`},
		{ev, "i32", "-2147483649", `match.field "i32": value "-2147483649" is out of range for int32`},
		{ev, "i32", "1.0", `match.field "i32": value "1.0" is not a decimal int32`},
		{ev, "i32", "0x10", `match.field "i32": value "0x10" is not a decimal int32`},
		{ev, "i32", "", `match.field "i32": value "" is not a decimal int32`},
		{ev, "s32", "2147483648", `match.field "s32": value "2147483648" is out of range for sint32`},
		{ev, "sf32", "-2147483649", `match.field "sf32": value "-2147483649" is out of range for sfixed32`},
		{ev, "i64", "9223372036854775808", `match.field "i64": value "9223372036854775808" is out of range for int64`},
		{ev, "s64", "-9223372036854775809", `match.field "s64": value "-9223372036854775809" is out of range for sint64`},
		{ev, "sf64", "one", `match.field "sf64": value "one" is not a decimal sfixed64`},
		{ev, "u32", "4294967296", `match.field "u32": value "4294967296" is out of range for uint32`},
		{ev, "u32", "-1", `match.field "u32": value "-1" is not a decimal uint32`},
		{ev, "f32", "4294967296", `match.field "f32": value "4294967296" is out of range for fixed32`},
		{ev, "u64", "18446744073709551616", `match.field "u64": value "18446744073709551616" is out of range for uint64`},
		{ev, "f64", "-1", `match.field "f64": value "-1" is not a decimal fixed64`},
		{ev, "f64", " 1", `match.field "f64": value " 1" is not a decimal fixed64`},
	} {
		_, err := NewProtoMatch(&fakeDecoder{}, c.md, c.field, c.value)
		if err == nil || err.Error() != c.want {
			t.Errorf("NewProtoMatch(%s, %q, %q) = %v, want %s", c.md.FullName(), c.field, c.value, err, c.want)
		}
	}
	for _, c := range []struct {
		inner RowDecoder
		md    protoreflect.MessageDescriptor
		want  string
	}{
		{nil, ev, "parse: no decoder to match for"},
		{&fakeDecoder{}, nil, "parse: no message type to match in"},
	} {
		if _, err := NewProtoMatch(c.inner, c.md, "s", "x"); err == nil || err.Error() != c.want {
			t.Errorf("NewProtoMatch(%v, %v) = %v, want %s", c.inner, c.md, err, c.want)
		}
	}
	if _, err := NewJSONMatch(&fakeDecoder{}, "", "x"); err == nil || err.Error() != "match.field: must name a top-level key" {
		t.Errorf("NewJSONMatch(field \"\") = %v", err)
	}
	if _, err := NewJSONMatch(nil, "kind", "x"); err == nil || err.Error() != "parse: no decoder to match for" {
		t.Errorf("NewJSONMatch(nil) = %v", err)
	}
}

// matchCase is a record for a Matching in the allocation test and the
// benchmark.
type matchCase struct {
	name string
	new  func(RowDecoder) (*Matching, error)
	data []byte
	want error
}

func matchCases(tb testing.TB) []matchCase {
	md := messageType(tb, matchTypes(tb), "mt.Ev")
	click := strings.Replace(clickEvent, `"event_type":"page_view"`, `"kind":"cl\u0069ck","event_type":"page_view"`, 1)
	msg := wire{}.varint(99, 1).str(2, "7f9c2ba4-e88f-4a2b-9b7e-3c1d5f8a9e01").varint(8, 18446744).str(1, "click").
		bytes(23, wire{}.varint(1, 5)).str(15, "/products/widgets/blue-widget-2000").varint(4, 1)
	return []matchCase{
		{"format=json/record=matched", newJSONMatcher("kind", "click"), []byte(click), nil},
		{"format=json/record=skipped", newJSONMatcher("kind", "view"), []byte(click), ErrNotMatched},
		{"format=json/record=number", newJSONMatcher("user_id", "18446744"), []byte(click), nil},
		{"format=json/record=missing", newJSONMatcher("nope", "x"), []byte(click), ErrNotMatched},
		{"format=proto/record=matched", newProtoMatcher(md, "s", "click"), msg, nil},
		{"format=proto/record=skipped", newProtoMatcher(md, "s", "view"), msg, ErrNotMatched},
		{"format=proto/record=int", newProtoMatcher(md, "i64", "18446744"), msg, nil},
		{"format=proto/record=enum", newProtoMatcher(md, "k", "NEG"), wire{}.varint(3, math.MaxUint64), nil},
		{"format=proto/record=oneof", newProtoMatcher(md, "o1", "x"), wire{}.str(16, "x").varint(17, 1), ErrNotMatched},
		{"format=proto/record=absent", newProtoMatcher(md, "i32", "0"), msg, nil},
	}
}

// TestMatchAllocs checks that selecting a record, or not, allocates
// nothing once warm.
func TestMatchAllocs(t *testing.T) {
	for _, c := range matchCases(t) {
		t.Run(c.name, func(t *testing.T) {
			m, err := c.new(&fakeDecoder{})
			if err != nil {
				t.Fatal(err)
			}
			row := make(parquet.Row, 0, 1)
			decode := func() {
				if _, _, err := m.Decode(row, c.data); err != c.want {
					t.Fatalf("Decode = %v, want %v", err, c.want)
				}
			}
			decode()
			if n := testing.AllocsPerRun(100, decode); n != 0 {
				t.Errorf("%v allocations per record, want 0", n)
			}
		})
	}
}

// BenchmarkMatch measures what selecting a record costs on top of decoding
// it (the inner decoder here does nothing).
func BenchmarkMatch(b *testing.B) {
	for _, c := range matchCases(b) {
		b.Run(c.name, func(b *testing.B) {
			m, err := c.new(&fakeDecoder{})
			if err != nil {
				b.Fatal(err)
			}
			row := make(parquet.Row, 0, 1)
			b.ReportAllocs()
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				if _, _, err := m.Decode(row, c.data); err != c.want {
					b.Fatalf("Decode = %v, want %v", err, c.want)
				}
			}
		})
	}
}

func newJSONMatcher(field, value string) func(RowDecoder) (*Matching, error) {
	return func(inner RowDecoder) (*Matching, error) { return NewJSONMatch(inner, field, value) }
}

func newProtoMatcher(md protoreflect.MessageDescriptor, field, value string) func(RowDecoder) (*Matching, error) {
	return func(inner RowDecoder) (*Matching, error) { return NewProtoMatch(inner, md, field, value) }
}
