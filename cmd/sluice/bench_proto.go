package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicehq/sluice/ingest/parse"
)

// benchOrderProto is the protobuf case's message: a nested order event of
// about 20 fields (customer struct, repeated line items, a map, wrappers).
const benchOrderProto = `syntax = "proto3";
package bench;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
enum OrderStatus { ORDER_STATUS_UNSPECIFIED = 0; PLACED = 1; PAID = 2; SHIPPED = 3; }
message Customer { int64 id = 1; string name = 2; string email = 3; string country = 4; bool vip = 5; }
message LineItem { string sku = 1; int32 qty = 2; int64 price_cents = 3; double discount = 4; }
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

const protoTopic = "bench-proto"

// writeBenchProto writes the message definition into dir and loads it.
func writeBenchProto(dir string) (string, protoreflect.MessageDescriptor, error) {
	path := filepath.Join(dir, "order.proto")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(path, []byte(benchOrderProto), 0o644); err != nil {
		return "", nil, err
	}
	files, err := parse.LoadProtoFiles([]string{path}, []string{dir})
	if err != nil {
		return "", nil, err
	}
	md, err := parse.FindMessage(files, "bench.OrderEvent")
	return path, md, err
}

// benchProduceOrders produces n varied order events.
func benchProduceOrders(addr string, md protoreflect.MessageDescriptor, n int64) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(protoTopic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(10*time.Millisecond), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return err
	}
	defer cl.Close()
	f := md.Fields()
	customer, item := f.ByName("customer").Message(), f.ByName("items").Message()
	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	var perr error
	for i := range n {
		m := dynamicpb.NewMessage(md)
		set := func(name string, v protoreflect.Value) { m.Set(f.ByName(protoreflect.Name(name)), v) }
		set("order_id", protoreflect.ValueOfString(fmt.Sprintf("ord-%012d-%08x", i, rng.Uint32())))
		et := start.Add(time.Duration(float64(6*time.Hour) * float64(i) / float64(n)))
		set("event_time", protoreflect.ValueOfMessage(timestamppb.New(et).ProtoReflect()))
		set("created_at", protoreflect.ValueOfMessage(timestamppb.New(et.Add(-90*time.Second)).ProtoReflect()))
		set("status", protoreflect.ValueOfEnum(protoreflect.EnumNumber(1+rng.IntN(3))))
		c := dynamicpb.NewMessage(customer)
		c.Set(customer.Fields().ByName("id"), protoreflect.ValueOfInt64(int64(rng.IntN(1_000_000))))
		c.Set(customer.Fields().ByName("name"), protoreflect.ValueOfString("Ada Lovelace"))
		c.Set(customer.Fields().ByName("email"), protoreflect.ValueOfString("ada@example.com"))
		c.Set(customer.Fields().ByName("country"), protoreflect.ValueOfString([]string{"GB", "DE", "US", "JP"}[rng.IntN(4)]))
		c.Set(customer.Fields().ByName("vip"), protoreflect.ValueOfBool(rng.IntN(10) == 0))
		set("customer", protoreflect.ValueOfMessage(c))
		items := m.Mutable(f.ByName("items")).List()
		for j := range 1 + rng.IntN(3) {
			it := dynamicpb.NewMessage(item)
			it.Set(item.Fields().ByName("sku"), protoreflect.ValueOfString(fmt.Sprintf("SKU-%05d", rng.IntN(20000)+j)))
			it.Set(item.Fields().ByName("qty"), protoreflect.ValueOfInt32(int32(1+rng.IntN(4))))
			it.Set(item.Fields().ByName("price_cents"), protoreflect.ValueOfInt64(int64(99+rng.IntN(9000))))
			it.Set(item.Fields().ByName("discount"), protoreflect.ValueOfFloat64(0.1))
			items.Append(protoreflect.ValueOfMessage(it))
		}
		attrs := m.Mutable(f.ByName("attributes")).Map()
		attrs.Set(protoreflect.ValueOfString("utm_source").MapKey(), protoreflect.ValueOfString("newsletter"))
		attrs.Set(protoreflect.ValueOfString("device").MapKey(), protoreflect.ValueOfString("mobile"))
		set("coupon", protoreflect.ValueOfMessage(wrapperspb.String("BF2026").ProtoReflect()))
		set("loyalty_points", protoreflect.ValueOfMessage(wrapperspb.Int64(int64(rng.IntN(5000))).ProtoReflect()))
		set("currency", protoreflect.ValueOfString("EUR"))
		set("total_cents", protoreflect.ValueOfInt64(int64(rng.IntN(100000))))
		set("shipping_cents", protoreflect.ValueOfUint32(499))
		set("gift", protoreflect.ValueOfBool(rng.IntN(20) == 0))
		set("channel", protoreflect.ValueOfString("web"))
		set("store_id", protoreflect.ValueOfString("store-de-berlin-01"))
		tags := m.Mutable(f.ByName("tags")).List()
		tags.Append(protoreflect.ValueOfString("promo"))
		set("tax_rate", protoreflect.ValueOfFloat64(0.19))
		set("express", protoreflect.ValueOfMessage(wrapperspb.Bool(rng.IntN(2) == 0).ProtoReflect()))
		set("sequence", protoreflect.ValueOfUint64(uint64(i)))
		set("priority", protoreflect.ValueOfInt32(int32(rng.IntN(5)-2)))
		b, err := proto.Marshal(m)
		if err != nil {
			return err
		}
		cl.Produce(ctx, &kgo.Record{Value: b}, func(_ *kgo.Record, err error) {
			if err != nil && perr == nil {
				perr = err
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return perr
}

// benchProtoConfig is the protobuf pipeline of the bench.
func benchProtoConfig(addr, dir, protoPath string) string {
	return fmt.Sprintf(`
name: bench
kafka:
  brokers: [%q]
catalog:
  uri: %s/catalog.db
  warehouse: file://%s/warehouse
checkpoint:
  interval: 5s
dead_letter:
  file: %s/dead-letters.jsonl
streams:
  - name: orders
    topics: [%s]
    format: protobuf
    protobuf:
      message: bench.OrderEvent
      proto_files: [%s]
      import_paths: [%s]
    event_time: event_time
    table:
      name: bench.orders
      partition: ["hour(event_time)"]
`, addr, dir, dir, dir, protoTopic, protoPath, filepath.Dir(protoPath))
}
