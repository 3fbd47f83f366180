package parse

import (
	"testing"

	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// orderProto is the benchmark's record: an order event of 20 fields with a
// nested customer, line items, attributes and wrappers.
const orderProto = `
syntax = "proto3";
package bench;

import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum OrderStatus {
  ORDER_STATUS_UNSPECIFIED = 0;
  PLACED = 1;
  PAID = 2;
  SHIPPED = 3;
}

message Customer {
  int64 id = 1;
  string name = 2;
  string email = 3;
  string country = 4;
  bool vip = 5;
}

message LineItem {
  string sku = 1;
  int32 qty = 2;
  int64 price_cents = 3;
  double discount = 4;
}

message OrderEvent {
  string order_id = 1;
  google.protobuf.Timestamp event_time = 2;
  google.protobuf.Timestamp created_at = 3;
  OrderStatus status = 4;
  Customer customer = 5;
  repeated LineItem items = 6;
  map<string, string> attributes = 7;
  google.protobuf.StringValue coupon = 8;
  google.protobuf.Int64Value loyalty_points = 9;
  string currency = 10;
  int64 total_cents = 11;
  uint32 shipping_cents = 12;
  bool gift = 13;
  string channel = 14;
  string store_id = 15;
  repeated string tags = 16;
  double tax_rate = 17;
  google.protobuf.BoolValue express = 18;
  uint64 sequence = 19;
  sint32 priority = 20;
}
`

// orderRecord returns the benchmark's message type and one encoded record
// (399 bytes).
func orderRecord(tb testing.TB) (protoreflect.MessageDescriptor, []byte) {
	tb.Helper()
	md := messageType(tb, compileProto(tb, map[string]string{"order.proto": orderProto}), "bench.OrderEvent")
	item := func(sku string, qty, price int) map[string]any {
		return map[string]any{"sku": sku, "qty": qty, "price_cents": price, "discount": 0.1}
	}
	m := newMessage(tb, md, map[string]any{
		"order_id":   "ord-7f9c2ba4-e88f-4a2b-9b7e-3c1d5f8a9e01",
		"event_time": timestamppb.New(time1),
		"created_at": timestamppb.New(time1.Add(-90e9)),
		"status":     "PAID",
		"customer": map[string]any{"id": 18446744, "name": "Ada Lovelace", "email": "ada@example.com",
			"country": "GB", "vip": true},
		"items": []any{item("WIDGET-BLUE-2000", 2, 1999), item("GADGET-RED-7", 1, 4550), item("GIZMO-GREEN-12", 3, 325)},
		"attributes": map[any]any{"utm_source": "newsletter", "utm_campaign": "black-friday",
			"device": "mobile", "ab_bucket": "B"},
		"coupon":         wrapperspb.String("BF2026"),
		"loyalty_points": wrapperspb.Int64(1250),
		"currency":       "EUR",
		"total_cents":    9523,
		"shipping_cents": 499,
		"gift":           false,
		"channel":        "web",
		"store_id":       "store-de-berlin-01",
		"tags":           []any{"first-order", "promo"},
		"tax_rate":       0.19,
		"express":        wrapperspb.Bool(true),
		"sequence":       uint64(98127366123),
		"priority":       -2,
	})
	return md, marshal(tb, m)
}

// BenchmarkProtobufDecode compares the two ways to turn a protobuf record
// into a row of its ProtoSchema layout, one record per op:
//
//	decoder=dynamicpb:           proto.Unmarshal into a new dynamicpb
//	                             message, then a walk of its fields through
//	                             protoreflect (reflectConverter)
//	decoder=dynamicpb/step=unmarshal: the proto.Unmarshal alone, a floor
//	                             for any converter built on dynamicpb
//	decoder=wire:                Protobuf, from the wire format
//
// Reset runs once per batchRows records, as the writer would after writing
// a batch. Quote ns/op (per record), B/s and allocs/op.
func BenchmarkProtobufDecode(b *testing.B) {
	const batchRows = 1024
	md, data := orderRecord(b)
	opts := ProtoOptions{EventTime: "event_time"}
	l := newProtoLayout(b, md, opts)

	b.Run("decoder=dynamicpb", func(b *testing.B) {
		c := newReflectConverter(l, opts, false)
		var row parquet.Row
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			m := dynamicpb.NewMessage(md)
			if err := proto.Unmarshal(data, m); err != nil {
				b.Fatal(err)
			}
			row = c.row(row, m)
		}
		b.ReportMetric(float64(len(row)), "values/row")
	})
	b.Run("decoder=dynamicpb/step=unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if err := proto.Unmarshal(data, dynamicpb.NewMessage(md)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decoder=wire", func(b *testing.B) {
		d := newProtoDecoder(b, md, l, opts)
		var row parquet.Row
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			var err error
			if row, _, err = d.Decode(row, data); err != nil {
				b.Fatal(err)
			}
			if n++; n == batchRows {
				d.Reset()
				n = 0
			}
		}
		b.ReportMetric(float64(len(row)), "values/row")
	})
}

// TestProtobufOrderRecord checks the benchmark's record: both decoders
// agree on it, and parquet-go writes it.
func TestProtobufOrderRecord(t *testing.T) {
	md, data := orderRecord(t)
	opts := ProtoOptions{EventTime: "event_time"}
	l := newProtoLayout(t, md, opts)
	d := newProtoDecoder(t, md, l, opts)
	row := mustDecode(t, d, data)
	m := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(data, m); err != nil {
		t.Fatal(err)
	}
	if want := newReflectConverter(l, opts, true).row(nil, m); !sameRow(row, want) {
		t.Fatalf("Decode and reflection disagree:\ndecoded%s\nreflect%s", fmtRow(row), fmtRow(want))
	}
	writeReadRows(t, l, row)
	if len(data) != 399 || len(l.Schema.Fields) != 20 {
		t.Errorf("the record has %d bytes and %d fields, want 399 and 20", len(data), len(l.Schema.Fields))
	}
}
