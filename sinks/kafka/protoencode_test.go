package kafka

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/sluicehq/sluice/ingest/parse"
	"github.com/sluicehq/sluice/ingest/schema"
)

// exportProtos declare a message with a field of every kind the encoder
// writes, nested every way protobuf allows, proto2 features, and the
// well-known types it refuses.
var exportProtos = map[string]string{
	"exp.proto": `
syntax = "proto3";
package exp;

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

enum Alias {
  option allow_alias = true;
  ALIAS_ZERO = 0;
  ONE = 1;
  UNO = 1;
}

message Leaf {
  int64 x = 1;
  optional bool y = 2;
}

message Inner {
  string name = 1;
  repeated int32 nums = 2;
  Leaf leaf = 3;
  map<string, string> tags = 4;
  repeated Leaf leaves = 5;
}

message Row {
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
  repeated Status statuses = 40;
  repeated google.protobuf.Timestamp times = 41;
  map<uint64, google.protobuf.Int64Value> wmap = 42;
  repeated double dbls = 43;
  repeated fixed32 fx32s = 44;
  repeated bool bools = 45;
  repeated sint32 ss32 = 46;
  map<bool, Status> flags = 47;
  int64 event_ms = 48;
  map<sint64, google.protobuf.Timestamp> tmap = 49;
  repeated float fs = 50;
  repeated uint64 u64s = 51;
  repeated fixed64 fx64s = 52;
  repeated sfixed32 sf32s = 53;
  repeated bytes bys = 54;
  repeated google.protobuf.StringValue wstrs = 55;
  repeated google.protobuf.Duration durs = 56;
  map<fixed32, bytes> blobs = 57;
  map<string, Leaf> leaf_map = 58;
  map<uint32, double> umap = 59;
  map<fixed64, Status> fmap = 60;
  Alias alias = 61;
  optional Status opt_status = 62;
  optional double opt_d = 63;
  google.protobuf.Empty nothing = 64;
  uint64 big_number_field = 100000;
}

message Item {
  string sku = 1;
  repeated int32 qty = 2;
  map<string, string> tags = 3;
}

message Order {
  google.protobuf.Timestamp event_time = 1;
  repeated Item items = 2;
  map<string, string> attrs = 3;
  map<int32, Item> by_id = 4;
  map<bool, double> flags = 5;
  map<uint64, google.protobuf.Timestamp> stamps = 6;
}

message Json {
  google.protobuf.Timestamp event_time = 1;
  google.protobuf.Struct st = 2;
  google.protobuf.Any an = 3;
  google.protobuf.Value val = 4;
  google.protobuf.ListValue lv = 5;
}
`,
	"exp2.proto": `
syntax = "proto2";
package exp2;

enum Color {
  RED = 1;
  GREEN = 2;
}

message Sub {
  required int32 id = 1;
  optional bytes data = 2;
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
  optional Color color = 9 [default = GREEN];
  repeated sfixed64 sf = 10;
  optional string s = 11 [default = "dflt"];
  repeated Color colors = 12;
  optional Sub sub = 13;
}
`,
}

// exportTypes compiles exportProtos once per test binary, through the
// loader streams use (parse.LoadProtoFiles).
var exportTypes = sync.OnceValues(func() (*protoregistry.Files, error) {
	dir, err := os.MkdirTemp("", "protoencode")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var files []string
	for name, src := range exportProtos {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			return nil, err
		}
		files = append(files, path)
	}
	slices.Sort(files)
	return parse.LoadProtoFiles(files, []string{dir})
})

func exportType(tb testing.TB, name string) protoreflect.MessageDescriptor {
	tb.Helper()
	reg, err := exportTypes()
	if err != nil {
		tb.Fatalf("compile test protos: %v", err)
	}
	md, err := parse.FindMessage(reg, name)
	if err != nil {
		tb.Fatal(err)
	}
	return md
}

// protoCodec decodes messages of one type into rows the way streams do and
// encodes rows back.
type protoCodec struct {
	md  protoreflect.MessageDescriptor
	l   *schema.Layout
	dec *parse.Protobuf
	enc *ProtoEncoder
}

func newProtoCodec(tb testing.TB, msg string, opts parse.ProtoOptions) *protoCodec {
	tb.Helper()
	md := exportType(tb, msg)
	s, err := parse.ProtoSchema(md, opts)
	if err != nil {
		tb.Fatalf("ProtoSchema(%s): %v", msg, err)
	}
	s.AssignIDs()
	l := schema.NewLayout(s, "test")
	dec, err := parse.NewProtobuf(md, l, opts)
	if err != nil {
		tb.Fatalf("NewProtobuf(%s): %v", msg, err)
	}
	enc, err := NewProtoEncoder(l, md)
	if err != nil {
		tb.Fatalf("NewProtoEncoder(%s): %v", msg, err)
	}
	return &protoCodec{md: md, l: l, dec: dec, enc: enc}
}

// message builds a message from its protojson form.
func (c *protoCodec) message(tb testing.TB, text string) *dynamicpb.Message {
	tb.Helper()
	m := dynamicpb.NewMessage(c.md)
	if err := protojson.Unmarshal([]byte(text), m); err != nil {
		tb.Fatalf("protojson %s: %v", text, err)
	}
	return m
}

// row decodes data with the repository's decoder.
func (c *protoCodec) row(tb testing.TB, data []byte) parquet.Row {
	tb.Helper()
	row, _, err := c.dec.Decode(nil, data)
	if err != nil {
		tb.Fatalf("decode %x: %v", data, err)
	}
	return row
}

var (
	rowOpts   = parse.ProtoOptions{EventTime: "event_time"}
	p2Opts    = parse.ProtoOptions{EventTime: "event_ms"}
	eventJSON = `"eventTime": "2026-11-23T07:00:00.123456Z"`
)

// TestProtoRoundTrip decodes messages into rows with the protobuf decoder,
// encodes the rows, and checks that the runtime reads back the message it
// started from, and that the encoding decodes to the same row.
func TestProtoRoundTrip(t *testing.T) {
	long := strings.Repeat("long text ", 40)
	tests := []struct {
		name string
		msg  string
		opts parse.ProtoOptions
		json string
	}{
		{"empty", "exp.Row", rowOpts, `{` + eventJSON + `}`},
		{"scalars", "exp.Row", rowOpts, `{` + eventJSON + `, "d": -1.25e300, "f": 3.5, "i32": -7, "i64": "-4611686018427387904",
			"u32": 4294967295, "u64": "18446744073709551615", "s32": -2147483648, "s64": "-9223372036854775808",
			"fx32": 4000000000, "fx64": "9223372036854775808", "sf32": -5, "sf64": "-6", "b": true,
			"s": "héllo, wörld", "by": "AAEC/w==", "status": "SHIPPED", "alias": "UNO", "bigNumberField": "12345", "eventMs": "1795417200123"}`},
		{"small scalars", "exp.Row", rowOpts, `{` + eventJSON + `, "d": 1, "f": -1, "i32": 1, "i64": "1", "u32": 1, "u64": "1",
			"s32": 1, "s64": "1", "fx32": 1, "fx64": "1", "sf32": 1, "sf64": "1", "status": "PENDING"}`},
		{"special floats", "exp.Row", rowOpts, `{` + eventJSON + `, "d": "-Infinity", "f": "Infinity", "dbls": ["NaN", "Infinity", -0, 0.1], "fs": [1.5, "-Infinity"]}`},
		{"zeros without presence are defaults", "exp.Row", rowOpts, `{` + eventJSON + `, "d": 0, "i32": 0, "s": "", "by": "", "b": false, "status": "STATUS_UNSPECIFIED"}`},
		{"explicit zeros", "exp.Row", rowOpts, `{` + eventJSON + `, "optI32": 0, "optS": "", "optStatus": "STATUS_UNSPECIFIED", "optD": 0}`},
		{"unknown enum number", "exp.Row", rowOpts, `{` + eventJSON + `, "status": 7, "statuses": [-3, "PENDING"], "flags": {"true": 9}}`},
		{"nested", "exp.Row", rowOpts, `{` + eventJSON + `, "inner": {"name": "in", "nums": [1, -2, 3], "leaf": {"x": "4", "y": false},
			"tags": {"k": "v", "": "empty key"}, "leaves": [{"x": "1"}, {}, {"y": true}]}}`},
		{"empty nested", "exp.Row", rowOpts, `{` + eventJSON + `, "inner": {"leaf": {}}, "cMsg": {}}`},
		{"repeated scalars", "exp.Row", rowOpts, `{` + eventJSON + `, "packed": [1, -1, "1099511627776", 0], "unpacked": [5, 0, 6],
			"strs": ["a", "", "ü"], "fx32s": [0, 4294967295], "bools": [true, false, true], "ss32": [-1, 1, 2147483647, -2147483648],
			"u64s": ["0", "18446744073709551615"], "fx64s": ["1"], "sf32s": [-1, 0], "bys": ["", "AQ=="], "statuses": ["PENDING", "SHIPPED", "STATUS_UNSPECIFIED"]}`},
		{"repeated messages", "exp.Row", rowOpts, `{` + eventJSON + `, "inners": [{"name": "x", "tags": {"a": "b"}}, {"name": "yy", "nums": [9], "leaf": {"x": "2"},
			"leaves": [{"x": "3"}, {"x": "4", "y": true}]}, {}], "times": ["1969-12-31T23:59:59.999999Z", "2026-11-23T07:00:00Z", "1970-01-01T00:00:00Z"],
			"wstrs": ["", "w"], "durs": ["0s", "-0.000001s", "3600.5s"]}`},
		{"maps", "exp.Row", rowOpts, `{` + eventJSON + `, "attrs": {"color": "blue", "size": "L", "": ""},
			"byId": {"1": {"name": "one", "nums": [1]}, "-2": {"name": "minus two", "tags": {"x": "y"}}, "0": {}},
			"wmap": {"0": "-9", "18446744073709551615": "0"}, "flags": {"true": "PENDING", "false": "STATUS_UNSPECIFIED"},
			"tmap": {"-3": "2026-11-23T07:00:00.000001Z", "4": "1970-01-01T00:00:00Z"}, "blobs": {"0": "", "7": "AQI="},
			"leafMap": {"a": {"x": "1", "y": false}, "b": {}}, "umap": {"4294967295": -0.5, "0": 0}, "fmap": {"18446744073709551615": "SHIPPED"}}`},
		{"wrappers", "exp.Row", rowOpts, `{` + eventJSON + `, "wD": 2.5, "wF": -0.5, "wI64": "0", "wU64": "18446744073709551615",
			"wI32": -1, "wU32": 4294967295, "wB": false, "wS": "wrapped", "wBy": "cmF3"}`},
		{"zero wrappers", "exp.Row", rowOpts, `{` + eventJSON + `, "wD": 0, "wF": 0, "wI64": "0", "wU64": "0", "wI32": 0, "wU32": 0, "wB": false, "wS": "", "wBy": ""}`},
		{"timestamps and durations", "exp.Row", rowOpts, `{"eventTime": "0001-01-01T00:00:00Z", "dur": "-1.5s",
			"times": ["9999-12-31T23:59:59.999999Z", "1900-06-01T12:00:00.000001Z"]}`},
		{"long duration", "exp.Row", rowOpts, `{` + eventJSON + `, "dur": "315576000000.999999s"}`},
		{"oneof string", "exp.Row", rowOpts, `{` + eventJSON + `, "cStr": ""}`},
		{"oneof number", "exp.Row", rowOpts, `{` + eventJSON + `, "cNum": "0"}`},
		{"oneof message", "exp.Row", rowOpts, `{` + eventJSON + `, "cMsg": {"x": "42", "y": false}}`},
		{"long lengths", "exp.Row", rowOpts, `{` + eventJSON + `, "s": "` + long + `", "inner": {"name": "` + long + `", "leaves": [{"x": "1"}],
			"tags": {"` + long + `": "` + long + `"}}, "packed": [` + strings.Repeat(`"-1",`, 300) + `1]}`},
		{"enums as numbers", "exp.Row", parse.ProtoOptions{EventTime: "event_time", EnumAsNumber: true},
			`{` + eventJSON + `, "status": "SHIPPED", "statuses": ["PENDING", 9], "flags": {"true": "PENDING"}, "optStatus": 0, "alias": "ONE"}`},
		{"proto2 defaults", "exp2.P2", p2Opts, `{"eventMs": "1", "req": ""}`},
		{"proto2 set", "exp2.P2", p2Opts, `{"eventMs": "1795417200123", "a": 5, "req": "r", "G": {"x": 0}, "Rep": [{"y": "a"}, {}],
			"p": [1, 2, -3], "color": "GREEN", "sf": ["-1", "2"], "s": "dflt", "colors": ["RED", "GREEN"], "sub": {"id": 0}}`},
		{"proto2 zeros", "exp2.P2", p2Opts, `{"eventMs": "0", "a": 0, "req": "x", "G": {}, "color": "RED", "s": "", "sub": {"id": 7, "data": ""}}`},
	}
	codecs := map[string]*protoCodec{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprint(tt.msg, tt.opts.EnumAsNumber)
			c := codecs[key]
			if c == nil {
				c = newProtoCodec(t, tt.msg, tt.opts)
				codecs[key] = c
			}
			want := c.message(t, tt.json)
			data := marshal(t, want)
			row := c.row(t, data)
			out, err := c.enc.Append([]byte("prefix"), row)
			if err != nil {
				t.Fatalf("Append: %v\nrow%s", err, fmtRow(row))
			}
			if !bytes.HasPrefix(out, []byte("prefix")) {
				t.Fatalf("Append did not append: %x", out)
			}
			out = out[len("prefix"):]
			got := dynamicpb.NewMessage(c.md)
			if err := proto.Unmarshal(out, got); err != nil {
				t.Fatalf("unmarshal %x: %v", out, err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("round trip\n got %v\nwant %v", prototext(got), prototext(want))
			}
			// The encoding is canonical: the runtime's own, field by field
			// in number order and map entries as they came.
			if !bytes.Equal(out, data) {
				t.Errorf("encoding differs from the runtime's\n got %x\nwant %x", out, data)
			}
			if again := c.row(t, out); !sameRow(again, row) {
				t.Errorf("re-decoded row differs\n got%s\nwant%s", fmtRow(again), fmtRow(row))
			}
			c.dec.Reset()
		})
	}
}

// marshal encodes m as the runtime does, map entries in key order.
func marshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return b
}

func prototext(m proto.Message) string {
	b, _ := protojson.MarshalOptions{}.Marshal(m)
	return string(b)
}

func TestNewProtoEncoderErrors(t *testing.T) {
	row := exportType(t, "exp.Row")
	p2 := exportType(t, "exp2.P2")
	tests := []struct {
		name string
		md   protoreflect.MessageDescriptor
		cols [][2]string
		want []string // each must be in the error
	}{
		{"no such field", row, [][2]string{{"nope", "string"}},
			[]string{"column nope: message exp.Row has no field nope; drop or rename the column in the ETL"}},
		{"json name is not a field name", row, [][2]string{{"optI32", "int32"}}, []string{"column optI32: message exp.Row has no field optI32"}},
		{"string to int32", row, [][2]string{{"i32", "string"}},
			[]string{"column i32: string does not encode as field exp.Row.i32 (int32); cast, drop or rename the column in the ETL"}},
		{"int32 to uint32", row, [][2]string{{"u32", "int32"}}, []string{"column u32: int32 does not encode as field exp.Row.u32 (uint32)"}},
		{"int64 to int32", row, [][2]string{{"i32", "int64"}}, []string{"column i32: int64 does not encode as field exp.Row.i32 (int32)"}},
		{"float64 to float", row, [][2]string{{"f", "float64"}}, []string{"column f: float64 does not encode as field exp.Row.f (float)"}},
		{"binary to string", row, [][2]string{{"s", "binary"}}, []string{"column s: binary does not encode as field exp.Row.s (string)"}},
		{"int64 to enum", row, [][2]string{{"status", "int64"}}, []string{"column status: int64 does not encode as field exp.Row.status (enum exp.Status)"}},
		{"date", row, [][2]string{{"event_time", "date"}},
			[]string{"column event_time: date does not encode as field exp.Row.event_time (google.protobuf.Timestamp)"}},
		{"other decimal", row, [][2]string{{"u64", "decimal(19,0)"}, {"fx64", "decimal(20,2)"}}, []string{
			"column u64: decimal(19,0) does not encode as field exp.Row.u64 (uint64)",
			"column fx64: decimal(20,2) does not encode as field exp.Row.fx64 (fixed64)"}},
		{"duration of int32", row, [][2]string{{"dur", "int32"}}, []string{"column dur: int32 does not encode as field exp.Row.dur (google.protobuf.Duration)"}},
		{"wrapper of another type", row, [][2]string{{"w_i32", "string"}, {"w_u64", "int64"}}, []string{
			"column w_i32: string does not encode as field exp.Row.w_i32 (google.protobuf.Int32Value)",
			"column w_u64: int64 does not encode as field exp.Row.w_u64 (google.protobuf.UInt64Value)"}},
		{"struct to scalar", row, [][2]string{{"i64", "struct<a:int64>"}}, []string{"column i64: struct<a:int64> does not encode as field exp.Row.i64 (int64)"}},
		{"scalar to message", row, [][2]string{{"inner", "string"}}, []string{"column inner: string does not encode as field exp.Row.inner (exp.Inner)"}},
		{"list to singular", row, [][2]string{{"i64", "list<int64>"}}, []string{"column i64: list<int64> does not encode as field exp.Row.i64 (int64)"}},
		{"singular to repeated", row, [][2]string{{"packed", "int64"}}, []string{"column packed: int64 does not encode as field exp.Row.packed (repeated int64)"}},
		{"list to map", row, [][2]string{{"attrs", "list<string>"}},
			[]string{"column attrs: list<string> does not encode as field exp.Row.attrs (map<string, string>)"}},
		{"map to repeated", row, [][2]string{{"strs", "map<string,string>"}}, []string{"column strs: map<string,string> does not encode as field exp.Row.strs (repeated string)"}},
		{"map key and value", row, [][2]string{{"by_id", "map<string,struct<name:int64>>"}}, []string{
			"column by_id.key: string does not encode as field exp.Row.ByIdEntry.key (int32)",
			"column by_id.value.name: int64 does not encode as field exp.Inner.name (string)"}},
		{"nested member", row, [][2]string{{"inner", "struct<name:string,bogus:int32>"}, {"inners", "list<struct<nums:list<string>>>"}}, []string{
			"column inner.bogus: message exp.Inner has no field bogus",
			"column inners[].nums[]: string does not encode as field exp.Inner.nums (repeated int32)"}},
		{"list element", row, [][2]string{{"times", "list<int64>"}}, []string{"column times[]: int64 does not encode as field exp.Row.times (repeated google.protobuf.Timestamp)"}},
		{"json types", exportType(t, "exp.Json"), [][2]string{{"st", "string"}, {"an", "string"}, {"val", "string"}, {"lv", "string"}}, []string{
			"column st: field exp.Json.st is a google.protobuf.Struct, which the decoder renders as JSON text and the encoder cannot write; drop or rename the column in the ETL",
			"column an: field exp.Json.an is a google.protobuf.Any",
			"column val: field exp.Json.val is a google.protobuf.Value",
			"column lv: field exp.Json.lv is a google.protobuf.ListValue"}},
		{"required without a column", p2, [][2]string{{"event_ms", "int64"}, {"sub", "struct<data:binary>"}}, []string{
			"column req: field exp2.P2.req is required, but no column holds it; add the column in the ETL",
			"column sub.id: field exp2.Sub.id is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewProtoEncoder(layoutOf(t, tt.cols...), tt.md)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tt.want) {
				t.Errorf("%d errors, want %d:\n%v", n, len(tt.want), err)
			}
		})
	}
	if _, err := NewProtoEncoder(nil, row); err == nil {
		t.Error("nil layout accepted")
	}
	if _, err := NewProtoEncoder(layoutOf(t, [2]string{"i64", "int64"}), nil); err == nil {
		t.Error("nil descriptor accepted")
	}
}

// TestProtoWiderColumns binds columns to fields wider than the decoder
// maps them to, and columns of a message's JSON names spelled as field
// names, and checks what the runtime reads.
func TestProtoWiderColumns(t *testing.T) {
	md := exportType(t, "exp.Row")
	l := layoutOf(t, [2]string{"i64", "int32"}, [2]string{"sf64", "int32"}, [2]string{"s64", "int32"}, [2]string{"status", "int32"},
		[2]string{"d", "float32"}, [2]string{"by", "string"}, [2]string{"w_d", "float32"}, [2]string{"w_i64", "int32"},
		[2]string{"event_time", "timestamp(us)"}, [2]string{"inner", "struct<name:string>"})
	enc, err := NewProtoEncoder(l, md)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := parse.NewJSON(l, parse.Options{EventTime: "event_time"})
	if err != nil {
		t.Fatal(err)
	}
	row, _, err := dec.Decode(nil, []byte(`{"i64": -3, "sf64": -4, "s64": -5, "status": 2, "d": 1.5, "by": "raw", "w_d": 0.25, "w_i64": 7,
		"event_time": "2026-11-23T07:00:00.5Z", "inner": {"name": "n"}}`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := enc.Append(nil, row)
	if err != nil {
		t.Fatal(err)
	}
	got := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(out, got); err != nil {
		t.Fatal(err)
	}
	want := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal([]byte(`{"i64": "-3", "sf64": "-4", "s64": "-5", "status": "SHIPPED", "d": 1.5, "by": "cmF3",
		"wD": 0.25, "wI64": "7", "eventTime": "2026-11-23T07:00:00.5Z", "inner": {"name": "n"}}`), want); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("got %s\nwant %s", prototext(got), prototext(want))
	}
}

// TestProtoRowErrors corrupts decoded rows in ways the ETL could and
// checks that Append reports the column and leaves the buffer as it was.
func TestProtoRowErrors(t *testing.T) {
	tests := []struct {
		name   string
		msg    string
		json   string
		path   []string // the node whose value is replaced
		nth    int      // which of its values
		value  func(n *schema.Node) parquet.Value
		column string
		reason string
	}{
		{"unknown enum name", "exp.Row", `{"status": "PENDING"}`, []string{"status"}, 0, str("BOGUS"),
			"status", `enum exp.Status has no value "BOGUS"`},
		{"enum number out of range", "exp.Row", `{"statuses": ["PENDING"]}`, []string{"statuses", "element"}, 0, str("2147483648"),
			"statuses[]", `enum exp.Status has no value "2147483648"`},
		{"long enum name", "exp.Row", `{"flags": {"true": "PENDING"}}`, []string{"flags", "value"}, 0, str(strings.Repeat("x", 100)),
			"flags.value", `has no value "` + strings.Repeat("x", 64) + `"...`},
		{"negative uint32", "exp.Row", `{"u32": 1}`, []string{"u32"}, 0, i64(-1), "u32", "-1 is out of the range of an unsigned 32-bit field"},
		{"uint32 too large", "exp.Row", `{"wU32": 1}`, []string{"w_u32"}, 0, i64(1 << 32), "w_u32", "4294967296 is out of the range"},
		{"fixed32 map key too large", "exp.Row", `{"blobs": {"1": ""}}`, []string{"blobs", "key"}, 0, i64(1 << 40), "blobs.key", "out of the range"},
		{"negative uint64", "exp.Row", `{"u64": "1"}`, []string{"u64"}, 0, flba(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
			"u64", "negative, out of the range of an unsigned 64-bit field"},
		{"uint64 too large", "exp.Row", `{"fx64s": ["1", "2"]}`, []string{"fx64s", "element"}, 1, flba(1, 0, 0, 0, 0, 0, 0, 0, 0),
			"fx64s[]", "exceeds 18446744073709551615"},
		{"null packed element", "exp.Row", `{"packed": [1, 2, 3]}`, []string{"packed", "element"}, 1, null(1),
			"packed[]", "list element 1 is null, which protobuf cannot encode"},
		{"null unpacked element", "exp.Row", `{"strs": ["a"]}`, []string{"strs", "element"}, 0, null(1),
			"strs[]", "list element 0 is null"},
		{"null message element", "exp.Row", `{"inners": [{}, {"name": "b"}]}`, []string{"inners", "element", "leaf", "x"}, 1, null(3),
			"inners[]", "list element 1 is null"},
		{"null nested element", "exp.Row", `{"inners": [{"nums": [1, 2]}]}`, []string{"inners", "element", "nums", "element"}, 1, null(1),
			"inners[].nums[]", "list element 1 is null"},
		{"null map value", "exp.Row", `{"attrs": {"a": "b", "c": "d"}}`, []string{"attrs", "value"}, 1, null(1),
			"attrs.value", "the value of map entry 1 is null, which protobuf cannot encode"},
		{"null message map value", "exp.Row", `{"leafMap": {"a": {"x": "1"}}}`, []string{"leaf_map", "value", "x"}, 0, null(2),
			"leaf_map.value", "the value of map entry 0 is null"},
		{"timestamp after 9999", "exp.Row", `{"i32": 1}`, []string{"event_time"}, 0, i64(253402300800 * 1e6),
			"event_time", "timestamp 253402300800000000 µs is outside years 1 to 9999"},
		{"timestamp before 1", "exp.Row", `{"times": ["2026-01-01T00:00:00Z"]}`, []string{"times", "element"}, 0, i64(-62135596800*1e6 - 1),
			"times[]", "outside years 1 to 9999"},
		{"duration too long", "exp.Row", `{"dur": "1s"}`, []string{"dur"}, 0, i64(math.MinInt64), "dur", "exceeds 10,000 years"},
		{"invalid UTF-8", "exp.Row", `{"inner": {"tags": {"k": "v"}}}`, []string{"inner", "tags", "key"}, 0, str("\xff"), "inner.tags.key", "invalid UTF-8"},
		{"two oneof members", "exp.Row", `{"cStr": "x"}`, []string{"c_num"}, 0, i64(1),
			"c_num", "oneof choice is already set by column c_str; a message holds one member"},
		{"proto2 enum", "exp2.P2", `{"req": "x", "color": "RED"}`, []string{"color"}, 0, str("BLUE"), "color", `enum exp2.Color has no value "BLUE"`},
		{"wrong physical type", "exp.Row", `{"i32": 1}`, []string{"i32"}, 0, str("1"), "i32", "holds a Parquet BYTE_ARRAY value, want INT32"},
	}
	codecs := map[string]*protoCodec{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := codecs[tt.msg]
			if c == nil {
				opts := rowOpts
				if tt.msg == "exp2.P2" {
					opts = p2Opts
				}
				c = newProtoCodec(t, tt.msg, opts)
				codecs[tt.msg] = c
			}
			text := strings.Replace(tt.json, "{", "{"+eventJSON+", ", 1)
			if tt.msg == "exp2.P2" {
				text = strings.Replace(tt.json, "{", `{"eventMs": "1", `, 1)
			}
			row := c.row(t, marshal(t, c.message(t, text)))
			n := node(t, c.l, tt.path...)
			replace(t, row, n.Leaves[0], tt.nth, tt.value(n))
			out, err := c.enc.Append([]byte("prefix"), row)
			if string(out) != "prefix" {
				t.Errorf("Append returned %q, want the buffer it was given", out)
			}
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RowError", err)
			}
			if re.Column != tt.column || !strings.Contains(re.Reason, tt.reason) {
				t.Errorf("error column %q reason %q, want %q and %q", re.Column, re.Reason, tt.column, tt.reason)
			}
			if want := "column " + re.Column + ": " + re.Reason; err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
			// The encoder recovers: the next row is encoded.
			if _, err := c.enc.Append(nil, c.row(t, marshal(t, c.message(t, text)))); err != nil {
				t.Errorf("next row: %v", err)
			}
			c.dec.Reset()
		})
	}
}

func str(s string) func(*schema.Node) parquet.Value {
	return func(n *schema.Node) parquet.Value { return parquet.ByteArrayValue([]byte(s)).Level(0, n.Def, n.Column) }
}

func i64(v int64) func(*schema.Node) parquet.Value {
	return func(n *schema.Node) parquet.Value { return parquet.Int64Value(v).Level(0, n.Def, n.Column) }
}

func flba(b ...byte) func(*schema.Node) parquet.Value {
	return func(n *schema.Node) parquet.Value { return parquet.FixedLenByteArrayValue(b).Level(0, n.Def, n.Column) }
}

// null is a null of the leaf of n, defined up to levels above it.
func null(levels int) func(*schema.Node) parquet.Value {
	return func(n *schema.Node) parquet.Value { return parquet.NullValue().Level(0, n.Def-levels, n.Leaves[0]) }
}

// node finds a node by the names of its fields ("element", "key" and
// "value" below lists and maps).
func node(tb testing.TB, l *schema.Layout, path ...string) *schema.Node {
	tb.Helper()
	n := l.ByName[path[0]]
	for _, name := range path[1:] {
		var next *schema.Node
		for _, c := range n.Children {
			if c.Field.Name == name {
				next = c
			}
		}
		if next == nil {
			tb.Fatalf("no node %v", path)
		}
		n = next
	}
	if n == nil {
		tb.Fatalf("no node %v", path)
	}
	return n
}

// replace sets the nth value of column col in row to v, keeping its
// repetition level.
func replace(tb testing.TB, row parquet.Row, col, nth int, v parquet.Value) {
	tb.Helper()
	for i := range row {
		if row[i].Column() != col {
			continue
		}
		if nth > 0 {
			nth--
			continue
		}
		row[i] = v.Level(row[i].RepetitionLevel(), v.DefinitionLevel(), col)
		return
	}
	tb.Fatalf("row has no such value of column %d%s", col, fmtRow(row))
}

// TestProtoEncodeClone encodes with clones from several goroutines.
func TestProtoEncodeClone(t *testing.T) {
	c := newProtoCodec(t, "exp.Row", rowOpts)
	msgs := []string{
		`{` + eventJSON + `, "inners": [{"name": "a", "nums": [1, 2]}, {"leaves": [{"x": "1"}]}], "attrs": {"k": "v"}}`,
		`{` + eventJSON + `, "cNum": "5", "byId": {"3": {"name": "three"}}, "packed": [1, 2, 3]}`,
	}
	var rows []parquet.Row
	var want [][]byte
	for _, m := range msgs {
		data := marshal(t, c.message(t, m))
		rows = append(rows, c.row(t, data))
		want = append(want, data)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		enc := c.enc.Clone()
		wg.Go(func() {
			var out []byte
			for i := range 200 {
				k := (i + g) % len(rows)
				var err error
				if out, err = enc.Append(out[:0], rows[k]); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(out, want[k]) {
					errs <- fmt.Errorf("goroutine %d row %d: got %x, want %x", g, k, out, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// everyRowJSON sets most fields of exp.Row.
const everyRowJSON = `{"eventTime": "2026-11-23T07:00:00.123456Z", "d": 2.5, "f": 1.5, "i32": -7, "i64": "123456789012", "u32": 7,
	"u64": "18446744073709551615", "s32": -3, "s64": "-4", "fx32": 5, "fx64": "6", "sf32": -8, "sf64": "-9", "b": true,
	"s": "order-12345", "by": "AAEC", "status": "SHIPPED", "optI32": 0,
	"inner": {"name": "in", "nums": [1, 2, 3], "leaf": {"x": "4", "y": true}, "tags": {"a": "b"}},
	"packed": [1, 2, 3, 4, 5, 6, 7, 8], "strs": ["red", "green", "blue"],
	"inners": [{"name": "x", "nums": [1]}, {"name": "y", "leaves": [{"x": "1"}, {"x": "2"}]}],
	"attrs": {"color": "blue", "size": "L"}, "byId": {"1": {"name": "one"}, "2": {"name": "two"}},
	"cStr": "chosen", "dur": "1.5s", "wI64": "42", "wS": "wrapped",
	"times": ["2026-11-23T07:00:00Z", "2026-11-23T08:00:00Z"], "wmap": {"1": "2"}, "tmap": {"3": "2026-11-23T07:00:00Z"}}`

// flatRowJSON sets the scalar fields only.
const flatRowJSON = `{"eventTime": "2026-11-23T07:00:00.123456Z", "d": 2.5, "i64": "123456789012", "u32": 7, "s": "order-12345",
	"status": "SHIPPED", "b": true, "wI64": "42"}`

// TestProtoEncodeAllocs checks that encoding allocates nothing once the
// output buffer has grown.
func TestProtoEncodeAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("measures allocations")
	}
	c := newProtoCodec(t, "exp.Row", rowOpts)
	row := c.row(t, marshal(t, c.message(t, everyRowJSON)))
	buf := make([]byte, 0, 4096)
	var err error
	if n := testing.AllocsPerRun(100, func() { buf, err = c.enc.Append(buf[:0], row) }); n != 0 || err != nil {
		t.Errorf("Append allocates %v times per row (error %v)", n, err)
	}
}

func BenchmarkProtoEncode(b *testing.B) {
	for _, bc := range []struct{ name, json string }{{"flat", flatRowJSON}, {"nested", everyRowJSON}} {
		b.Run("msg="+bc.name, func(b *testing.B) {
			c := newProtoCodec(b, "exp.Row", rowOpts)
			data := marshal(b, c.message(b, bc.json))
			row := c.row(b, data)
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = c.enc.Append(buf[:0], row); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf)), "bytes/row")
		})
	}
}

// FuzzProtoEncode decodes arbitrary bytes with the protobuf decoder; when
// that succeeds, the row must encode, and decoding the encoding must give
// the same row.
func FuzzProtoEncode(f *testing.F) {
	codecs := []*protoCodec{
		newProtoCodec(f, "exp.Row", rowOpts),
		newProtoCodec(f, "exp.Row", parse.ProtoOptions{EventTime: "event_time", EnumAsNumber: true}),
		newProtoCodec(f, "exp2.P2", p2Opts),
	}
	row := codecs[0]
	for _, text := range []string{everyRowJSON, flatRowJSON, `{` + eventJSON + `, "status": 7, "cMsg": {}, "inner": {"leaf": {}}}`,
		`{` + eventJSON + `, "dbls": ["NaN", -0], "leafMap": {"": {}}, "blobs": {"0": ""}, "fmap": {"1": 5}}`} {
		f.Add(marshal(f, row.message(f, text)))
	}
	p2 := codecs[2]
	f.Add(marshal(f, p2.message(f,
		`{"eventMs": "1", "req": "r", "G": {"x": 1}, "Rep": [{"y": "a"}, {}], "p": [1, -2], "color": "RED", "colors": [1, 2], "sub": {"id": 1}}`)))
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x30}) // a P2 without its required field: null, written back absent
	var again parquet.Row
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range codecs {
			row, _, err := c.dec.Decode(nil, data)
			if err != nil {
				continue
			}
			out, err := c.enc.Append(nil, row)
			if err != nil {
				t.Fatalf("%s: decoded %x but cannot encode it: %v\nrow%s", c.md.FullName(), data, err, fmtRow(row))
			}
			if again, _, err = c.dec.Decode(again, out); err != nil {
				t.Fatalf("%s: cannot decode the encoding %x of %x: %v", c.md.FullName(), out, data, err)
			}
			if !sameRow(again, row) {
				t.Fatalf("%s: %x encodes as %x, which decodes differently\n got%s\nwant%s", c.md.FullName(), data, out, fmtRow(again), fmtRow(row))
			}
			c.dec.Reset()
		}
	})
}

// sameRow is Row.Equal, except that a NaN equals a NaN of the same bits.
func sameRow(a, b parquet.Row) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Column() != y.Column() || x.RepetitionLevel() != y.RepetitionLevel() ||
			x.DefinitionLevel() != y.DefinitionLevel() || x.Kind() != y.Kind() || x.IsNull() != y.IsNull() {
			return false
		}
		switch {
		case x.IsNull():
		case x.Kind() == parquet.Double:
			if math.Float64bits(x.Double()) != math.Float64bits(y.Double()) {
				return false
			}
		case x.Kind() == parquet.Float:
			if math.Float32bits(x.Float()) != math.Float32bits(y.Float()) {
				return false
			}
		case !parquet.Equal(x, y):
			return false
		}
	}
	return true
}

func fmtRow(row parquet.Row) string {
	var b strings.Builder
	for _, v := range row {
		fmt.Fprintf(&b, "\n  col %d rep %d def %d %v", v.Column(), v.RepetitionLevel(), v.DefinitionLevel(), v)
	}
	return b.String()
}
