package parse

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/sluicehq/sluice/ingest/schema"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// testProtos declare a message with a field of every kind, nested every
// way protobuf allows, a recursive message and proto2 features.
var testProtos = map[string]string{
	"every.proto": `
syntax = "proto3";
package test;

import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Status {
  STATUS_UNSPECIFIED = 0;
  PENDING = 1;
  SHIPPED = 2;
}

message Inner {
  string name = 1;
  repeated int32 nums = 2;
  Leaf leaf = 3;
  map<string, string> tags = 4;
}

message Leaf {
  int64 x = 1;
  optional bool y = 2;
}

message Every {
  google.protobuf.Timestamp event_time = 1;
  double d = 2;
  float f = 3;
  int32 i32 = 4;
  int64 i64 = 5;
  uint32 u32 = 6;
  uint64 u64 = 7;
  sint32 s32 = 8;
  sint64 s64 = 9;
  fixed32 fx32 = 10;
  fixed64 fx64 = 11;
  sfixed32 sf32 = 12;
  sfixed64 sf64 = 13;
  bool b = 14;
  string s = 15;
  bytes by = 16;
  Status status = 17;
  optional int32 opt_i32 = 18;
  optional string opt_s = 19;
  Inner inner = 20;
  repeated int64 packed = 21;
  repeated int64 unpacked = 22 [packed = false];
  repeated string strs = 23;
  repeated Inner inners = 24;
  map<string, string> attrs = 25;
  map<int32, Inner> by_id = 26;
  oneof choice {
    string c_str = 27;
    int64 c_num = 28;
    Leaf c_msg = 29;
  }
  google.protobuf.Duration dur = 30;
  google.protobuf.DoubleValue w_d = 31;
  google.protobuf.FloatValue w_f = 32;
  google.protobuf.Int64Value w_i64 = 33;
  google.protobuf.UInt64Value w_u64 = 34;
  google.protobuf.Int32Value w_i32 = 35;
  google.protobuf.UInt32Value w_u32 = 36;
  google.protobuf.BoolValue w_b = 37;
  google.protobuf.StringValue w_s = 38;
  google.protobuf.BytesValue w_by = 39;
  google.protobuf.Struct st = 40;
  google.protobuf.Value val = 41;
  google.protobuf.ListValue lv = 42;
  google.protobuf.Any an = 43;
  google.protobuf.Empty nothing = 44;
  repeated Status statuses = 45;
  repeated google.protobuf.Timestamp times = 46;
  map<uint64, google.protobuf.Int64Value> wmap = 47;
  repeated double dbls = 48;
  repeated fixed32 fx32s = 49;
  repeated bool bools = 50;
  repeated sint32 ss32 = 51;
  map<bool, Status> flags = 52;
  int64 event_ms = 53;
  repeated google.protobuf.Struct structs = 54;
  map<sint64, google.protobuf.Timestamp> tmap = 55;
  uint64 big_number_field = 100000;
}

message Tree {
  google.protobuf.Timestamp event_time = 1;
  string name = 2;
  repeated Tree children = 3;
  Tree next = 4;
}
`,
	"proto2.proto": `
syntax = "proto2";
package test2;

enum Color {
  RED = 1;
  GREEN = 2;
}

message P2 {
  optional int64 event_ms = 1;
  optional int32 a = 2 [default = 5];
  required string req = 3;
  optional group G = 4 {
    optional int32 x = 5;
  }
  repeated group Rep = 6 {
    optional string y = 7;
  }
  repeated int32 p = 8 [packed = true];
  optional Color color = 9;
  repeated sfixed64 sf = 10;
}
`,
}

// testTypes compiles testProtos once per test binary.
var testTypes = func() func(tb testing.TB) *protoregistry.Files {
	var reg *protoregistry.Files
	return func(tb testing.TB) *protoregistry.Files {
		tb.Helper()
		if reg == nil {
			reg = compileProto(tb, testProtos)
		}
		return reg
	}
}()

// everyOpts decodes test.Every; Any values resolve through the test types.
func everyOpts(tb testing.TB) ProtoOptions {
	return ProtoOptions{EventTime: "event_time", Resolver: dynamicpb.NewTypes(testTypes(tb))}
}

func TestProtoSchema(t *testing.T) {
	reg := testTypes(t)
	every := messageType(t, reg, "test.Every")
	s, err := ProtoSchema(every, ProtoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := schema.Type{Kind: schema.KindStruct, Fields: s.Fields}.String()
	// Field by field, in declaration order; "nothing" (Empty) has no column.
	want := "struct<" + strings.Join([]string{
		"event_time:timestamptz(us)", "d:float64", "f:float32", "i32:int32", "i64:int64", "u32:int64",
		"u64:decimal(20,0)", "s32:int32", "s64:int64", "fx32:int64", "fx64:decimal(20,0)", "sf32:int32",
		"sf64:int64", "b:bool", "s:string", "by:binary", "status:string", "opt_i32:int32", "opt_s:string",
		"inner:struct<name:string,nums:list<int32>,leaf:struct<x:int64,y:bool>,tags:map<string,string>>",
		"packed:list<int64>", "unpacked:list<int64>", "strs:list<string>",
		"inners:list<struct<name:string,nums:list<int32>,leaf:struct<x:int64,y:bool>,tags:map<string,string>>>",
		"attrs:map<string,string>",
		"by_id:map<int32,struct<name:string,nums:list<int32>,leaf:struct<x:int64,y:bool>,tags:map<string,string>>>",
		"c_str:string", "c_num:int64", "c_msg:struct<x:int64,y:bool>", "dur:int64",
		"w_d:float64", "w_f:float32", "w_i64:int64", "w_u64:decimal(20,0)", "w_i32:int32", "w_u32:int64",
		"w_b:bool", "w_s:string", "w_by:binary", "st:string", "val:string", "lv:string", "an:string",
		"statuses:list<string>", "times:list<timestamptz(us)>", "wmap:map<decimal(20,0),int64>",
		"dbls:list<float64>", "fx32s:list<int64>", "bools:list<bool>", "ss32:list<int32>",
		"flags:map<bool,string>", "event_ms:int64", "structs:list<string>",
		"tmap:map<int64,timestamptz(us)>", "big_number_field:decimal(20,0)",
	}, ",") + ">"
	if got != want {
		t.Errorf("ProtoSchema(Every) =\n%s\nwant\n%s", got, want)
	}
	for _, f := range s.Fields {
		if f.Required || f.ID != 0 {
			t.Errorf("column %s: required %t, ID %d; want optional, no ID", f.Name, f.Required, f.ID)
		}
	}

	// Enums as numbers.
	s, err = ProtoSchema(every, ProtoOptions{EnumAsNumber: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"status": "int32", "statuses": "list<int32>", "flags": "map<bool,int32>"} {
		if f, _ := s.Field(name); f.Type.String() != want {
			t.Errorf("with EnumAsNumber, %s is %s, want %s", name, f.Type, want)
		}
	}

	// The schema's Iceberg and Parquet forms build.
	s.AssignIDs()
	if _, err := s.Iceberg(); err != nil {
		t.Errorf("Iceberg: %v", err)
	}
	if l := schema.NewLayout(s, "every"); l.NumColumns < len(s.Fields) {
		t.Errorf("layout has %d columns for %d fields", l.NumColumns, len(s.Fields))
	}

	// Proto2: groups are structs, named as protoc names their fields.
	s, err = ProtoSchema(messageType(t, reg, "test2.P2"), ProtoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got = schema.Type{Kind: schema.KindStruct, Fields: s.Fields}.String()
	want = "struct<event_ms:int64,a:int32,req:string,g:struct<x:int32>,rep:list<struct<y:string>>,p:list<int32>,color:string,sf:list<int64>>"
	if got != want {
		t.Errorf("ProtoSchema(P2) = %s, want %s", got, want)
	}
}

func TestProtoSchemaDepth(t *testing.T) {
	tree := messageType(t, testTypes(t), "test.Tree")
	tests := []struct {
		depth int
		want  string
	}{
		{1, "struct<event_time:timestamptz(us),name:string>"},
		{2, "struct<event_time:timestamptz(us),name:string,children:list<struct<event_time:timestamptz(us),name:string>>," +
			"next:struct<event_time:timestamptz(us),name:string>>"},
	}
	for _, tt := range tests {
		s, err := ProtoSchema(tree, ProtoOptions{MaxDepth: tt.depth})
		if err != nil {
			t.Fatal(err)
		}
		if got := (schema.Type{Kind: schema.KindStruct, Fields: s.Fields}).String(); got != tt.want {
			t.Errorf("MaxDepth %d: %s, want %s", tt.depth, got, tt.want)
		}
	}
	// The default depth: 8 levels of Tree.
	s, err := ProtoSchema(tree, ProtoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	depth := 1
	for f, ok := s.Field("next"); ok; f, ok = fieldOf(f.Type.Fields, "next") {
		depth++
	}
	if depth != DefaultProtoMaxDepth {
		t.Errorf("default schema nests Tree %d levels deep, want %d", depth, DefaultProtoMaxDepth)
	}
}

func fieldOf(fs []schema.Field, name string) (schema.Field, bool) {
	return schema.Schema{Fields: fs}.Field(name)
}

func TestProtoSchemaErrors(t *testing.T) {
	reg := compileProto(t, map[string]string{"e.proto": `
syntax = "proto3";
package e;
import "google/protobuf/empty.proto";
message Nothing {}
message OnlyEmpty { google.protobuf.Empty e = 1; Nothing n = 2; }
message Wide { Wide a = 1; Wide b = 2; Wide c = 3; Wide d = 4; int32 x = 5; }
`})
	tests := []struct {
		msg     string
		opts    ProtoOptions
		wantErr string
	}{
		{"e.Nothing", ProtoOptions{}, "message e.Nothing has no fields that map to columns"},
		{"e.OnlyEmpty", ProtoOptions{}, "message e.OnlyEmpty has no fields that map to columns"},
		{"e.Wide", ProtoOptions{MaxDepth: -1}, "max_depth: -1 is out of range 0..64"},
		{"e.Wide", ProtoOptions{MaxDepth: 65, MaxRecordBytes: -1}, "max_depth: 65 is out of range 0..64\nmax_record_bytes: -1 is negative"},
		// 4^11 leaves: stopped at Parquet's limit, not built.
		{"e.Wide", ProtoOptions{MaxDepth: 12}, "message maps to more than 65535 columns (at field e.Wide."},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			_, err := ProtoSchema(messageType(t, reg, tt.msg), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ProtoSchema error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if _, err := ProtoSchema(messageType(t, reg, "e.Wide"), ProtoOptions{MaxDepth: 4}); err != nil {
		t.Errorf("4 levels of Wide: %v", err)
	}
}

// everyFull sets every field of test.Every.
func everyFull(tb testing.TB) map[string]any {
	leaf := func(x int, y bool) map[string]any { return map[string]any{"x": x, "y": y} }
	inner := func(name string, nums ...any) map[string]any {
		return map[string]any{"name": name, "nums": nums, "leaf": leaf(len(name), true),
			"tags": map[any]any{"k": name, "": "empty key"}}
	}
	anyVal, err := anypb.New(timestamppb.New(time1))
	if err != nil {
		tb.Fatal(err)
	}
	st, err := structpb.NewStruct(map[string]any{"a": 1.5, "b": []any{"x", true, nil}, "c": map[string]any{"d": "é"}})
	if err != nil {
		tb.Fatal(err)
	}
	return map[string]any{
		"event_time": timestamppb.New(time1),
		"d":          -1.25e300, "f": 3.5, "i32": -7, "i64": -1 << 62, "u32": math.MaxUint32,
		"u64": uint64(math.MaxUint64), "s32": math.MinInt32, "s64": math.MinInt64,
		"fx32": 4000000000, "fx64": uint64(1 << 63), "sf32": -5, "sf64": -6,
		"b": true, "s": "héllo, wörld", "by": []byte{0, 1, 2, 0xff}, "status": "SHIPPED",
		"opt_i32": 0, "opt_s": "",
		"inner":    inner("in", 1, -2, 3),
		"packed":   []any{1, -1, 1 << 40},
		"unpacked": []any{5, 6},
		"strs":     []any{"a", "", "ü"},
		"inners":   []any{inner("x"), inner("yy", 9), map[string]any{}},
		"attrs":    map[any]any{"color": "blue", "size": "L", "": ""},
		"by_id":    map[any]any{1: inner("one", 1), -2: inner("minus two"), 0: map[string]any{}},
		"c_msg":    leaf(42, false),
		"dur":      durationpb.New(-1500 * 1e6), // -1.5s
		"w_d":      wrapperspb.Double(2.5), "w_f": wrapperspb.Float(-0.5), "w_i64": wrapperspb.Int64(0),
		"w_u64": wrapperspb.UInt64(math.MaxUint64), "w_i32": wrapperspb.Int32(-1), "w_u32": wrapperspb.UInt32(math.MaxUint32),
		"w_b": wrapperspb.Bool(false), "w_s": wrapperspb.String("wrapped"), "w_by": wrapperspb.Bytes([]byte("raw")),
		"st":               st,
		"val":              structpb.NewNumberValue(7),
		"lv":               &structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("a"), structpb.NewNullValue()}},
		"an":               anyVal,
		"nothing":          map[string]any{},
		"statuses":         []any{"PENDING", "SHIPPED", "STATUS_UNSPECIFIED"},
		"times":            []any{timestamppb.New(time1), &timestamppb.Timestamp{Seconds: -1, Nanos: 999_999_999}},
		"wmap":             map[any]any{uint64(0): wrapperspb.Int64(-9), uint64(math.MaxUint64): map[string]any{}},
		"dbls":             []any{math.Inf(1), math.Inf(-1), 0.1},
		"fx32s":            []any{0, math.MaxUint32},
		"bools":            []any{true, false, true},
		"ss32":             []any{-1, 1, math.MaxInt32},
		"flags":            map[any]any{true: "PENDING", false: "STATUS_UNSPECIFIED"},
		"event_ms":         1795417200123,
		"structs":          []any{st, &structpb.Struct{}},
		"tmap":             map[any]any{int64(-3): timestamppb.New(time1), int64(4): &timestamppb.Timestamp{}},
		"big_number_field": uint64(12345),
	}
}

var time1 = time.Date(2026, 11, 23, 7, 0, 0, 123456789, time.UTC)

// checkAgainstReflect decodes data with d and checks the row against
// reflectConverter's from the same bytes unmarshalled by the protobuf
// runtime, and that parquet-go writes and reads it back unchanged.
func checkAgainstReflect(t *testing.T, d *Protobuf, l *schema.Layout, md protoreflect.MessageDescriptor, opts ProtoOptions, data []byte) parquet.Row {
	t.Helper()
	row, us, err := d.Decode(nil, data)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	m := dynamicpb.NewMessage(md)
	if err := (proto.UnmarshalOptions{Resolver: dynamicpb.NewTypes(testTypes(t))}).Unmarshal(data, m); err != nil {
		t.Fatalf("proto.Unmarshal: %v", err)
	}
	c := newReflectConverter(l, opts, true)
	want := c.row(nil, m)
	if c.err != nil {
		t.Fatalf("reflection: %v", c.err)
	}
	if !sameRow(row, want) {
		t.Fatalf("Decode and reflection disagree:\ndecoded%s\nreflect%s", fmtRow(row), fmtRow(want))
	}
	if et := md.Fields().ByName("event_time"); et != nil && opts.EventTime == "event_time" {
		ts := m.Get(et).Message()
		wantUs := ts.Get(ts.Descriptor().Fields().ByNumber(1)).Int()*1e6 + ts.Get(ts.Descriptor().Fields().ByNumber(2)).Int()/1000
		if us != wantUs {
			t.Errorf("event time %d, want %d", us, wantUs)
		}
	}
	writeReadRows(t, l, row)
	return row
}

// writeReadRows is roundTrip without reading rows back as Go maps, which
// parquet-go cannot do for maps of other than string keys.
func writeReadRows(tb testing.TB, l *schema.Layout, rows ...parquet.Row) {
	tb.Helper()
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, l.Parquet)
	if _, err := w.WriteRows(rows); err != nil {
		tb.Fatalf("write rows: %v", err)
	}
	if err := w.Close(); err != nil {
		tb.Fatalf("close writer: %v", err)
	}
	rr := parquet.NewReader(bytes.NewReader(buf.Bytes()))
	defer rr.Close()
	got := make([]parquet.Row, len(rows))
	n, err := rr.ReadRows(got)
	if err != nil && !errors.Is(err, io.EOF) || n != len(rows) {
		tb.Fatalf("read rows: got %d of %d: %v", n, len(rows), err)
	}
	for i := range rows {
		if !sameRow(got[i], rows[i]) {
			tb.Fatalf("row %d changed in a round trip through parquet-go:\nwrote %s\nread  %s", i, fmtRow(rows[i]), fmtRow(got[i]))
		}
	}
}

// readableLayout is a layout of the fields of md that parquet-go can read
// back as Go maps: all but maps of other than string keys.
func readableLayout(t *testing.T, md protoreflect.MessageDescriptor, opts ProtoOptions) *schema.Layout {
	t.Helper()
	s, err := ProtoSchema(md, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Fields = slices.DeleteFunc(s.Fields, func(f schema.Field) bool {
		return f.Type.Kind == schema.KindMap && f.Type.Key.Kind != schema.KindString
	})
	s.AssignIDs()
	return schema.NewLayout(s, "readable")
}

// readable decodes data into a Go map as a reader sees it: with Go values
// rather than pointers and []byte.
func readable(t *testing.T, md protoreflect.MessageDescriptor, opts ProtoOptions, data []byte) map[string]any {
	t.Helper()
	l := readableLayout(t, md, opts)
	return plain(roundTrip(t, l, mustDecode(t, newProtoDecoder(t, md, l, opts), data))[0]).(map[string]any)
}

// plain replaces the pointers and byte slices parquet-go reads optional
// values and strings as with values and strings.
func plain(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plain(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		return plain(rv.Elem().Interface())
	}
	return v
}

// checkUnordered is checkAgainstReflect for records whose maps the decoder
// lists in another order than the reflection (which sorts keys): it
// compares them as a reader sees them.
func checkUnordered(t *testing.T, md protoreflect.MessageDescriptor, opts ProtoOptions, data []byte) {
	t.Helper()
	m := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(data, m); err != nil {
		t.Fatalf("proto.Unmarshal: %v", err)
	}
	l := readableLayout(t, md, opts)
	want := plain(roundTrip(t, l, newReflectConverter(l, opts, true).row(nil, m))[0])
	if got := readable(t, md, opts, data); !reflect.DeepEqual(got, want) {
		t.Errorf("Decode and reflection disagree:\ndecoded %v\nreflect %v", got, want)
	}
}

func TestProtobufRoundTrip(t *testing.T) {
	reg := testTypes(t)
	every := messageType(t, reg, "test.Every")
	opts := everyOpts(t)
	l := newProtoLayout(t, every, opts)
	d := newProtoDecoder(t, every, l, opts)

	many := make([]any, 10_000)
	manyInners := make([]any, 10_000)
	for i := range many {
		many[i] = i * 7919
		manyInners[i] = map[string]any{"name": "n", "nums": []any{i}}
	}
	ts := timestamppb.New(time1)
	tests := []struct {
		name   string
		fields map[string]any
	}{
		{"every field", everyFull(t)},
		{"only event time", map[string]any{"event_time": ts}},
		// Explicit defaults are not on the wire in proto3: the same row.
		{"defaults", map[string]any{"event_time": ts, "i32": 0, "s": "", "b": false, "status": "STATUS_UNSPECIFIED", "d": 0.0}},
		// With presence, explicit defaults are values, not nulls.
		{"present defaults", map[string]any{"event_time": ts, "opt_i32": 0, "opt_s": "", "inner": map[string]any{},
			"w_i32": wrapperspb.Int32(0), "w_s": wrapperspb.String(""), "c_num": 0, "dur": durationpb.New(0)}},
		{"oneof string", map[string]any{"event_time": ts, "c_str": "picked"}},
		{"oneof number", map[string]any{"event_time": ts, "c_num": -3}},
		{"unknown enum numbers", map[string]any{"event_time": ts, "status": 99, "statuses": []any{-1, 1, 7}}},
		{"large repeated", map[string]any{"event_time": ts, "packed": many, "unpacked": many, "inners": manyInners}},
		{"empty collections", map[string]any{"event_time": ts, "inner": map[string]any{"nums": []any{}, "tags": map[any]any{}}}},
		{"deep", map[string]any{"event_time": ts, "by_id": map[any]any{5: map[string]any{
			"leaf": map[string]any{"y": false}, "tags": map[any]any{"a": "b"}, "nums": []any{1, 2}}}}},
		{"json kinds", map[string]any{"event_time": ts, "val": structpb.NewStringValue(`"quoted"`),
			"lv": &structpb.ListValue{}, "st": &structpb.Struct{}, "structs": []any{&structpb.Struct{}}}},
		{"extremes", map[string]any{
			"event_time": &timestamppb.Timestamp{Seconds: -62135596800},
			"times":      []any{&timestamppb.Timestamp{Seconds: 253402300799, Nanos: 999_999_999}},
			"dur":        &durationpb.Duration{Seconds: -315576000000, Nanos: -999_999_999},
			"d":          math.SmallestNonzeroFloat64, "f": math.MaxFloat32, "i64": math.MaxInt64,
			"s64": math.MaxInt64, "sf64": math.MinInt64, "sf32": math.MinInt32, "fx64": uint64(math.MaxUint64),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMessage(t, every, tt.fields)
			before := d.UnknownFields()
			checkAgainstReflect(t, d, l, every, opts, marshal(t, m))
			if n := d.UnknownFields() - before; n != 0 {
				t.Errorf("%d unknown fields in a message of known fields", n)
			}
			d.Reset()
		})
	}

	// A few values as a reader sees them, against the message's values.
	got := readable(t, every, opts, marshal(t, newMessage(t, every, everyFull(t))))
	for name, want := range map[string]any{
		"status":     "SHIPPED",
		"u32":        int64(math.MaxUint32),
		"s32":        int32(math.MinInt32),
		"s":          "héllo, wörld",
		"event_time": time1.UnixMicro(),
		"dur":        int64(-1_500_000),
		"w_s":        "wrapped",
		"w_i64":      int64(0),
		"opt_s":      "",
		"c_str":      nil,
		"c_num":      nil,
		"val":        "7",
		"lv":         `["a",null]`,
		"st":         `{"a":1.5,"b":["x",true,null],"c":{"d":"é"}}`,
		"an":         `{"@type":"type.googleapis.com/google.protobuf.Timestamp","value":"2026-11-23T07:00:00.123456789Z"}`,
	} {
		if g := got[name]; !reflect.DeepEqual(normalise(g), normalise(want)) {
			t.Errorf("%s = %#v, want %#v", name, g, want)
		}
	}
	if want := map[string]any{"color": "blue", "size": "L", "": ""}; !reflect.DeepEqual(got["attrs"], want) {
		t.Errorf("attrs = %#v, want %#v", got["attrs"], want)
	}
	in := got["inner"].(map[string]any)
	if want := []any{int32(1), int32(-2), int32(3)}; !reflect.DeepEqual(in["nums"], want) {
		t.Errorf("inner.nums = %#v, want %#v", in["nums"], want)
	}
}

// normalise makes values read back through parquet-go comparable with Go
// values: byte slices become strings.
func normalise(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// wire builds protobuf wire format by hand, for inputs a message cannot
// produce: repeated scalars, split messages, duplicate map keys.
type wire []byte

func (w wire) varint(num protowire.Number, v uint64) wire {
	return protowire.AppendVarint(protowire.AppendTag(w, num, protowire.VarintType), v)
}

func (w wire) bytes(num protowire.Number, b []byte) wire {
	return protowire.AppendBytes(protowire.AppendTag(w, num, protowire.BytesType), b)
}

func (w wire) str(num protowire.Number, s string) wire { return w.bytes(num, []byte(s)) }

func (w wire) fixed64(num protowire.Number, v uint64) wire {
	return protowire.AppendFixed64(protowire.AppendTag(w, num, protowire.Fixed64Type), v)
}

func (w wire) fixed32(num protowire.Number, v uint32) wire {
	return protowire.AppendFixed32(protowire.AppendTag(w, num, protowire.Fixed32Type), v)
}

func (w wire) group(num protowire.Number, body wire) wire {
	w = append(protowire.AppendTag(w, num, protowire.StartGroupType), body...)
	return protowire.AppendTag(w, num, protowire.EndGroupType)
}

func (w wire) raw(b ...byte) wire { return append(w, b...) }

func (w wire) tag(num protowire.Number, typ protowire.Type) wire {
	return protowire.AppendTag(w, num, typ)
}

// eventTime is a test.Every event_time of time1.
func eventTime() wire {
	return wire{}.bytes(1, marshalPlain(timestamppb.New(time1)))
}

func marshalPlain(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// TestProtobufWire checks the protobuf runtime's semantics on inputs that
// only hand-built wire format has: the decoder must agree with it.
func TestProtobufWire(t *testing.T) {
	reg := testTypes(t)
	every := messageType(t, reg, "test.Every")
	opts := everyOpts(t)
	l := newProtoLayout(t, every, opts)
	d := newProtoDecoder(t, every, l, opts)

	entry := func(k string, v string) []byte { return wire{}.str(1, k).str(2, v) }
	manyKeys := eventTime()
	for i := range 40 {
		manyKeys = manyKeys.bytes(25, entry(string(rune('a'+i%7)), strings.Repeat("v", i)))
	}
	tests := []struct {
		name      string
		data      wire
		unknown   int64
		unordered bool // maps with duplicate keys: see checkUnordered
		check     func(t *testing.T, got map[string]any)
	}{
		{name: "last scalar wins", data: eventTime().varint(4, 1).str(15, "first").varint(4, 2).str(15, "second"),
			check: func(t *testing.T, got map[string]any) {
				if got["i32"] != int32(2) || normalise(got["s"]) != "second" {
					t.Errorf("i32, s = %v, %v; want the last values", got["i32"], got["s"])
				}
			}},
		{name: "messages merge", data: eventTime().
			bytes(20, wire{}.str(1, "a").varint(2, 1).bytes(3, wire{}.varint(1, 7))).
			bytes(20, wire{}.varint(2, 2).bytes(3, wire{}.varint(2, 1))),
			check: func(t *testing.T, got map[string]any) {
				in := got["inner"].(map[string]any)
				if normalise(in["name"]) != "a" || !reflect.DeepEqual(in["nums"], []any{int32(1), int32(2)}) ||
					!reflect.DeepEqual(in["leaf"], map[string]any{"x": int64(7), "y": true}) {
					t.Errorf("inner = %#v, want both chunks merged", in)
				}
			}},
		{name: "packed and unpacked mixed", data: eventTime().
			varint(21, 1).bytes(21, protowire.AppendVarint(protowire.AppendVarint(nil, 2), 3)).varint(21, 4).
			bytes(22, protowire.AppendVarint(nil, 9)).varint(22, 10).bytes(21, nil).
			bytes(48, protowire.AppendFixed64(nil, math.Float64bits(0.5))).fixed64(48, math.Float64bits(-2)).
			bytes(49, protowire.AppendFixed32(nil, 7)).fixed32(49, 8).
			bytes(51, protowire.AppendVarint(nil, protowire.EncodeZigZag(-5))),
			check: func(t *testing.T, got map[string]any) {
				if !reflect.DeepEqual(got["packed"], []any{int64(1), int64(2), int64(3), int64(4)}) ||
					!reflect.DeepEqual(got["unpacked"], []any{int64(9), int64(10)}) {
					t.Errorf("packed, unpacked = %v, %v", got["packed"], got["unpacked"])
				}
			}},
		{name: "only empty packed runs", data: eventTime().bytes(21, nil).bytes(50, nil)},
		{name: "oneof last member wins", data: eventTime().str(27, "s").varint(28, 5)},
		{name: "oneof message set again starts afresh", data: eventTime().
			bytes(29, wire{}.varint(1, 1)).str(27, "s").bytes(29, wire{}.varint(2, 1))},
		{name: "oneof message merges", data: eventTime().bytes(29, wire{}.varint(1, 1)).bytes(29, wire{}.varint(2, 1))},
		{name: "duplicate map keys", unordered: true, data: eventTime().bytes(25, entry("a", "1")).bytes(25, entry("b", "2")).bytes(25, entry("a", "3")),
			check: func(t *testing.T, got map[string]any) {
				if !reflect.DeepEqual(got["attrs"], map[string]any{"a": "3", "b": "2"}) {
					t.Errorf("attrs = %v, want the last a", got["attrs"])
				}
			}},
		{name: "many duplicate map keys", unordered: true, data: manyKeys},
		{name: "map keys encoded differently", data: eventTime().
			bytes(26, wire{}.varint(1, math.MaxUint64).bytes(2, wire{}.str(1, "ten bytes"))).
			bytes(26, wire{}.varint(1, math.MaxUint32).bytes(2, wire{}.str(1, "five bytes"))).
			bytes(52, wire{}.varint(1, 1).varint(2, 1)).bytes(52, wire{}.varint(1, 300).varint(2, 2))},
		{name: "map entries without key or value", data: eventTime().bytes(25, nil).bytes(26, wire{}.varint(1, 3)).
			bytes(47, wire{}.varint(1, 1)).bytes(55, wire{}.bytes(2, nil)).bytes(52, nil)},
		{name: "map entry fields reversed and repeated", data: eventTime().
			bytes(25, wire{}.str(2, "v1").str(1, "k").str(2, "v2")).
			bytes(26, wire{}.bytes(2, wire{}.str(1, "a")).varint(1, 1).bytes(2, wire{}.varint(2, 4)))},
		{name: "split wrappers and timestamps", data: wire{}.bytes(1, wire{}.varint(1, 100)).bytes(1, wire{}.varint(2, 5000)).
			bytes(35, wire{}.varint(1, 1)).bytes(35, wire{}.varint(1, 2)).bytes(38, nil),
			check: func(t *testing.T, got map[string]any) {
				if got["w_i32"] != int32(2) || normalise(got["w_s"]) != "" {
					t.Errorf("w_i32, w_s = %v, %v; want 2 and an empty string", got["w_i32"], got["w_s"])
				}
			}},
		// 3 at the top, 2 in inner (a group counts as one), 1 in a Duration,
		// 1 in a wrapper, 1 with the largest field number.
		{name: "unknown fields", unknown: 8, data: eventTime().varint(999, 1).str(1000, "x").fixed32(2000, 1).
			bytes(20, wire{}.varint(99, 1).group(98, wire{}.varint(1, 1))).
			bytes(30, wire{}.varint(3, 1)).bytes(31, wire{}.fixed64(2, 1)).
			varint(protowire.MaxValidNumber, 1)},
		{name: "field numbers beyond the direct table", data: eventTime().varint(100000, 77)},
		{name: "non-canonical varints", data: eventTime().raw(4<<3, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00).
			raw(14<<3, 0x80, 0x01)},
		{name: "int32 from a 64-bit varint", data: eventTime().varint(4, math.MaxUint64-5).varint(8, math.MaxUint64).varint(6, math.MaxUint64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := d.UnknownFields()
			if tt.unordered {
				checkUnordered(t, every, opts, tt.data)
				writeReadRows(t, l, mustDecode(t, d, tt.data))
			} else {
				checkAgainstReflect(t, d, l, every, opts, tt.data)
			}
			if tt.check != nil {
				tt.check(t, readable(t, every, opts, tt.data))
			}
			if n := d.UnknownFields() - before; n != tt.unknown {
				t.Errorf("%d unknown fields counted, want %d", n, tt.unknown)
			}
			d.Reset()
		})
	}
}

func TestProtobufProto2(t *testing.T) {
	p2 := messageType(t, testTypes(t), "test2.P2")
	opts := ProtoOptions{EventTime: "event_ms"}
	l := newProtoLayout(t, p2, opts)
	d := newProtoDecoder(t, p2, l, opts)
	tests := []struct {
		name string
		data wire
	}{
		{"groups", wire{}.varint(1, 1795417200123).str(3, "req").
			group(4, wire{}.varint(5, 1)).group(4, wire{}.varint(5, 2)).
			group(6, wire{}.str(7, "a")).group(6, nil).group(6, wire{}.str(7, "c"))},
		// Proto2 fields have presence: absent is null, even with a default.
		{"absent", wire{}.varint(1, 1)},
		{"packed and not", wire{}.varint(1, 1).varint(8, 1).bytes(8, protowire.AppendVarint(nil, 2)).
			fixed64(10, 3).bytes(10, protowire.AppendFixed64(nil, math.MaxUint64)).varint(9, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := dynamicpb.NewMessage(p2)
			if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(tt.data, m); err != nil {
				t.Fatal(err)
			}
			row, _, err := d.Decode(nil, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if want := newReflectConverter(l, opts, true).row(nil, m); !sameRow(row, want) {
				t.Fatalf("Decode and reflection disagree:\ndecoded%s\nreflect%s", fmtRow(row), fmtRow(want))
			}
			writeReadRows(t, l, row)
		})
	}
}

func TestProtobufDepth(t *testing.T) {
	tree := messageType(t, testTypes(t), "test.Tree")
	opts := ProtoOptions{EventTime: "event_time", MaxDepth: 3}
	l := newProtoLayout(t, tree, opts)
	d := newProtoDecoder(t, tree, l, opts)
	node := func(name string, children ...wire) wire {
		w := wire{}.str(2, name)
		for _, c := range children {
			w = w.bytes(3, c)
		}
		return w
	}
	ok := eventTime().str(2, "root").bytes(3, node("a", node("a1"), node("a2"))).bytes(4, node("n", node("n1")))
	checkAgainstReflect(t, d, l, tree, opts, ok)

	tests := []struct {
		data  wire
		field string
	}{
		{eventTime().bytes(3, node("a", node("a1", node("too deep")))), "children[0].children[0].children"},
		{eventTime().bytes(4, wire{}.bytes(4, wire{}.bytes(4, nil))), "next.next.next"},
		// Even an empty message is content that cannot be stored.
		{eventTime().bytes(3, node("a")).bytes(3, node("b", node("b1", wire{}))), "children[1].children[0].children"},
	}
	for _, tt := range tests {
		_, _, err := d.Decode(nil, tt.data)
		var re *RecordError
		if !errors.As(err, &re) || re.Field != tt.field || !strings.Contains(re.Reason, "deeper than max_depth 3") {
			t.Errorf("Decode = %v, want a depth error at %s", err, tt.field)
		}
	}
}

func TestProtobufErrors(t *testing.T) {
	reg := testTypes(t)
	every := messageType(t, reg, "test.Every")
	opts := everyOpts(t)
	opts.MaxRecordBytes = 1 << 20
	l := newProtoLayout(t, every, opts)
	d := newProtoDecoder(t, every, l, opts)
	tests := []struct {
		name   string
		data   wire
		field  string
		reason string
	}{
		{"empty record", nil, "event_time", "missing event time"},
		{"no event time", wire{}.varint(4, 1).bytes(20, nil), "event_time", "missing event time"},
		{"truncated varint", eventTime().raw(4<<3, 0x80), "i32", "invalid wire format: unexpected EOF"},
		{"truncated tag", eventTime().raw(0x80), "", "invalid wire format: unexpected EOF"},
		{"varint overflow", eventTime().raw(4<<3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), "i32", "variable length integer overflow"},
		{"truncated bytes", eventTime().raw(15<<3|2, 5, 'a'), "s", "unexpected EOF"},
		{"field number zero", eventTime().raw(0x00, 0x01), "", "invalid field number"},
		{"end group at top", eventTime().tag(99, protowire.EndGroupType), "", "invalid wire format"},
		{"mismatched group", eventTime().tag(99, protowire.StartGroupType).tag(98, protowire.EndGroupType), "", "invalid wire format"},
		{"reserved wire type", eventTime().tag(99, 6), "", "invalid wire format"},
		{"bad wire type", eventTime().fixed32(4, 1), "i32", "wire type fixed32, want varint"},
		{"bytes for a message", eventTime().varint(20, 1), "inner", "wire type varint, want length-delimited"},
		{"packed strings", eventTime().bytes(23, []byte("a")).varint(23, 1), "strs", "wire type varint, want length-delimited"},
		{"invalid UTF-8", eventTime().bytes(15, []byte{0xff}), "s", "invalid UTF-8"},
		{"invalid UTF-8 in a list", eventTime().str(23, "ok").bytes(23, []byte{0xc3}), "strs[1]", "invalid UTF-8"},
		{"invalid UTF-8 in a map key", eventTime().bytes(25, wire{}.bytes(1, []byte{0xff})), "attrs[0].key", "invalid UTF-8"},
		{"invalid UTF-8 in a nested message", eventTime().bytes(24, nil).bytes(24, wire{}.bytes(1, []byte{0x80})), "inners[1].name", "invalid UTF-8"},
		{"invalid UTF-8 in a wrapper", eventTime().bytes(38, wire{}.bytes(1, []byte{0xfe})), "w_s", "invalid UTF-8"},
		{"truncated packed", eventTime().bytes(21, []byte{0x80}), "packed[0]", "unexpected EOF"},
		{"ragged packed fixed32", eventTime().bytes(49, []byte{1, 2, 3, 4, 5}), "fx32s[1]", "unexpected EOF"},
		{"truncated nested", eventTime().bytes(20, []byte{1 << 3}), "inner.name", "unexpected EOF"},
		{"truncated map entry", eventTime().bytes(25, wire{}.str(1, "a")).bytes(25, []byte{1<<3 | 2, 9}), "attrs[1].key", "unexpected EOF"},
		{"map key wire type", eventTime().bytes(25, wire{}.varint(1, 1)).bytes(25, nil), "attrs[0].key", "wire type varint"},
		{"timestamp out of range", eventTime().bytes(46, wire{}.varint(1, uint64(253402300800))), "times[0]", "invalid google.protobuf.Timestamp"},
		{"negative timestamp nanos", wire{}.bytes(1, wire{}.varint(2, math.MaxUint64)), "event_time", "invalid google.protobuf.Timestamp"},
		{"duration signs differ", eventTime().bytes(30, wire{}.varint(1, 1).varint(2, math.MaxUint64)), "dur", "invalid google.protobuf.Duration"},
		{"timestamp seconds wire type", eventTime().bytes(46, wire{}.fixed64(1, 1)), "times[0].seconds", "wire type fixed64"},
		{"wrapper wire type", eventTime().bytes(31, wire{}.varint(1, 1)), "w_d.value", "wire type varint, want fixed64"},
		{"invalid struct", eventTime().bytes(40, wire{}.bytes(1, wire{}.str(1, "k").bytes(2, []byte{0xff}))), "st", "invalid google.protobuf.Struct"},
		{"too large", append(eventTime(), make([]byte, 1<<20)...), "", "exceeds max_record_bytes 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := d.UnknownFields()
			row, us, err := d.Decode(parquet.Row{parquet.Int32Value(1)}, tt.data)
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("Decode error = %#v, want a *RecordError", err)
			}
			if re.Field != tt.field || !strings.Contains(re.Reason, tt.reason) {
				t.Errorf("Decode error = field %q reason %q, want field %q reason containing %q", re.Field, re.Reason, tt.field, tt.reason)
			}
			if len(row) != 0 || us != 0 {
				t.Errorf("Decode returned row %v and event time %d with its error", row, us)
			}
			if d.UnknownFields() != before {
				t.Errorf("unknown fields of a failed record were counted")
			}
		})
	}
	// The decoder is fine after errors.
	checkAgainstReflect(t, d, l, every, opts, marshal(t, newMessage(t, every, everyFull(t))))
}

func TestProtobufEventTime(t *testing.T) {
	reg := testTypes(t)
	every := messageType(t, reg, "test.Every")
	opts := ProtoOptions{EventTime: "event_ms"}
	l := newProtoLayout(t, every, opts)
	d := newProtoDecoder(t, every, l, opts)
	if _, us, err := d.Decode(nil, wire{}.varint(53, 1795417200123)); err != nil || us != 1795417200123000 {
		t.Errorf("Decode = %d, %v; want 1795417200123000", us, err)
	}
	if _, _, err := d.Decode(nil, wire{}.varint(53, math.MaxInt64)); err == nil || !strings.Contains(err.Error(), "field event_ms: event time 9223372036854775807 ms is out of range") {
		t.Errorf("Decode of a huge event time: %v", err)
	}
	// Not on the wire is missing, even without presence.
	if _, _, err := d.Decode(nil, wire{}.varint(4, 1)); err == nil || err.Error() != "field event_ms: missing event time" {
		t.Errorf("Decode without an event time: %v", err)
	}
	for _, name := range []string{"w_i64", "u32"} {
		o := ProtoOptions{EventTime: name}
		if _, err := NewProtobuf(every, newProtoLayout(t, every, o), o); err != nil {
			t.Errorf("event time %s: %v", name, err)
		}
	}
}

func TestNewProtobufErrors(t *testing.T) {
	reg := testTypes(t)
	every := messageType(t, reg, "test.Every")
	l := newProtoLayout(t, every, ProtoOptions{})
	custom := func(cols ...col) *schema.Layout { return newLayout(t, cols...) }
	tests := []struct {
		name     string
		l        *schema.Layout
		opts     ProtoOptions
		wantErrs []string
	}{
		{"no event time", l, ProtoOptions{}, []string{"event_time: must name a field"}},
		{"unknown event time", l, ProtoOptions{EventTime: "nope"}, []string{`event_time: field "nope" is not a column`}},
		{"event time of the wrong type", l, ProtoOptions{EventTime: "dur"}, []string{`event_time: field "dur" is int64, not a google.protobuf.Timestamp`}},
		{"event time a list", l, ProtoOptions{EventTime: "times"}, []string{`field "times" is list<timestamptz(us)>`}},
		{"event time a string", l, ProtoOptions{EventTime: "s"}, []string{`field "s" is string`}},
		{"bad options", l, ProtoOptions{EventTime: "event_time", MaxDepth: 100, MaxRecordBytes: -1},
			[]string{"max_depth: 100 is out of range", "max_record_bytes: -1 is negative"}},
		{"enum mode differs", l, ProtoOptions{EventTime: "event_time", EnumAsNumber: true},
			[]string{"column status is string, but field test.Every.status maps to int32", "column flags.value is string"}},
		// An optional column the message lacks is null (an older version of
		// the message read into a newer one's columns); a required one cannot be.
		{"not a field", custom(opt("event_time", "timestamptz(us)"), req("zz", "int64")), ProtoOptions{EventTime: "event_time"},
			[]string{"column zz: message test.Every has no field zz"}},
		{"wrong types", custom(opt("event_time", "timestamptz(us)"), opt("i32", "int64"), opt("inner", "string"),
			opt("attrs", "list<string>"), opt("strs", "string"), opt("u64", "int64")), ProtoOptions{EventTime: "event_time"},
			[]string{"column i32 is int64, but field test.Every.i32 maps to int32", "column inner is string, but field test.Every.inner is a message",
				"column attrs is list<string>, but field test.Every.attrs is a map", "column strs is string, but field test.Every.strs is repeated",
				"column u64 is int64, but field test.Every.u64 maps to decimal(20,0)"}},
		{"nested wrong type", custom(opt("event_time", "timestamptz(us)"), opt("inner", "struct<leaf:struct<x:int32>>"),
			opt("by_id", "map<int64,struct<name:string>>")), ProtoOptions{EventTime: "event_time"},
			[]string{"column inner.leaf.x is int32, but field test.Leaf.x maps to int64", "column by_id.key is int64, but field test.Every.ByIdEntry.key maps to int32"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewProtobuf(every, tt.l, tt.opts)
			if err == nil {
				t.Fatalf("NewProtobuf succeeded, want %q", tt.wantErrs)
			}
			for _, want := range tt.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q:\n%v", want, err)
				}
			}
		})
	}
	if _, err := NewProtobuf(nil, l, ProtoOptions{EventTime: "event_time"}); err == nil {
		t.Error("NewProtobuf without a descriptor succeeded")
	}
	if _, err := NewProtobuf(every, nil, ProtoOptions{EventTime: "event_time"}); err == nil {
		t.Error("NewProtobuf without a layout succeeded")
	}
}

// TestProtobufProjection: a layout may hold some of the message's fields,
// at any level; the others are skipped and not counted as unknown.
func TestProtobufProjection(t *testing.T) {
	reg := testTypes(t)
	every := messageType(t, reg, "test.Every")
	l := newLayout(t,
		opt("event_time", "timestamptz(us)"),
		opt("inner", "struct<leaf:struct<y:bool>,tags:map<string,string>>"),
		opt("inners", "list<struct<nums:list<int32>>>"),
		opt("c_num", "int64"),
	)
	opts := ProtoOptions{EventTime: "event_time"}
	d := newProtoDecoder(t, every, l, opts)
	data := marshal(t, newMessage(t, every, everyFull(t)))
	checkAgainstReflect(t, d, l, every, opts, data)
	// c_msg, not a column, was set last: c_num is null.
	data = eventTime().varint(28, 1).bytes(29, nil)
	checkAgainstReflect(t, d, l, every, opts, data)
	if got := roundTrip(t, l, mustDecode(t, d, data))[0]; got["c_num"] != nil {
		t.Errorf("c_num = %v after another member of its oneof", got["c_num"])
	}
	if d.UnknownFields() != 0 {
		t.Errorf("%d unknown fields counted, want 0", d.UnknownFields())
	}
}

func TestProtobufAnyUnresolved(t *testing.T) {
	reg := testTypes(t)
	every := messageType(t, reg, "test.Every")
	opts := ProtoOptions{EventTime: "event_time", Resolver: new(protoregistry.Types)}
	l := newProtoLayout(t, every, opts)
	d := newProtoDecoder(t, every, l, opts)
	an := marshalPlain(&anypb.Any{TypeUrl: "example.com/x.Y", Value: []byte{1, 2, 0xff}})
	row, _, err := d.Decode(nil, eventTime().bytes(43, an))
	if err != nil {
		t.Fatal(err)
	}
	got := readable(t, every, opts, eventTime().bytes(43, an))["an"]
	writeReadRows(t, l, row)
	if want := `{"@type":"example.com/x.Y","value":"AQL/"}`; normalise(got) != want {
		t.Errorf("an = %v, want %s", got, want)
	}
}

func mustDecode(tb testing.TB, d *Protobuf, data []byte) parquet.Row {
	tb.Helper()
	row, _, err := d.Decode(nil, data)
	if err != nil {
		tb.Fatalf("Decode: %v", err)
	}
	return row
}

// TestProtobufAllocs: decoding allocates nothing once warm, as long as the
// record has no JSON-mapped fields.
func TestProtobufAllocs(t *testing.T) {
	reg := testTypes(t)
	every := messageType(t, reg, "test.Every")
	opts := everyOpts(t)
	l := newProtoLayout(t, every, opts)
	d := newProtoDecoder(t, every, l, opts)
	fields := everyFull(t)
	for _, name := range []string{"st", "val", "lv", "an", "structs"} {
		delete(fields, name)
	}
	// Large maps are sorted to find equal keys, large lists sorted by column.
	large := eventTime()
	for i := range 100 {
		large = large.bytes(25, wire{}.str(1, strings.Repeat("k", i%40)).str(2, "v")).
			bytes(24, wire{}.str(1, "n").varint(2, uint64(i)))
	}
	for _, data := range [][]byte{marshal(t, newMessage(t, every, fields)), large} {
		var row parquet.Row
		allocs := testing.AllocsPerRun(100, func() {
			var err error
			if row, _, err = d.Decode(row, data); err != nil {
				t.Fatal(err)
			}
			d.Reset()
		})
		if allocs != 0 {
			t.Errorf("Decode allocates %.1f times per record, want 0", allocs)
		}
	}
}

// TestProtobufMissingColumns reads a message into the columns of a newer
// version of it: columns the message lacks, scalar and nested, are null,
// and the row writes cleanly.
func TestProtobufMissingColumns(t *testing.T) {
	reg := compileProto(t, map[string]string{"m.proto": `syntax = "proto3";
package m;
message M { int64 id = 1; int64 ts = 2; }`})
	md := messageType(t, reg, "m.M")
	l := newLayout(t, opt("id", "int64"), opt("ts", "int64"), opt("label", "string"), opt("tags", "list<string>"),
		opt("geo", "struct<lat:float64,lon:float64>"))
	d, err := NewProtobuf(md, l, ProtoOptions{EventTime: "ts"})
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 42)
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, 1795410000000)
	row, _, err := d.Decode(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, l.Parquet)
	if _, err := w.WriteRows([]parquet.Row{row}); err != nil {
		t.Fatalf("row %v does not write: %v", row, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	nulls := 0
	for _, v := range row {
		if v.IsNull() {
			nulls++
		}
	}
	if len(row) != 6 || nulls != 4 {
		t.Errorf("row %v: want id, ts and 4 null leaves", row)
	}
}
