package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluicehq/sluice/ingest/parse"
)

const orderProtoV1 = `syntax = "proto3";
package acme.v1;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Order {
  string id = 1;
  google.protobuf.Timestamp ts = 2;
  enum Status { UNKNOWN = 0; NEW = 1; PAID = 2; }
  Status status = 3;
  message Item { string sku = 1; int32 qty = 2; double price = 3; }
  repeated Item items = 4;
  map<string, string> attrs = 5;
  google.protobuf.Int64Value discount = 6;
  optional string note = 7;
%s}
`

const protoConfig = `
streams:
  - name: orders
    topics: [orders]
    format: protobuf
    compression: zstd
    protobuf:
      message: acme.v1.Order
      proto_files: [{{dir}}/protos/order.proto]
      import_paths: [{{dir}}/protos]
    event_time: ts
    table:
      name: it.orders
      partition: ["day(ts)"]
`

func writeOrderProto(t *testing.T, dir, extra string) protoreflect.MessageDescriptor {
	t.Helper()
	path := filepath.Join(dir, "protos", "order.proto")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fmt.Appendf(nil, orderProtoV1, extra), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := parse.LoadProtoFiles([]string{path}, []string{filepath.Dir(path)})
	if err != nil {
		t.Fatal(err)
	}
	md, err := parse.FindMessage(files, "acme.v1.Order")
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// orders builds zstd-compressed protobuf orders with ids from..to.
func orders(t *testing.T, md protoreflect.MessageDescriptor, from, to int) [][]byte {
	t.Helper()
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	fields := md.Fields()
	item := fields.ByName("items").Message()
	var out [][]byte
	for i := from; i < to; i++ {
		m := dynamicpb.NewMessage(md)
		m.Set(fields.ByName("id"), protoreflect.ValueOfString(fmt.Sprintf("o-%d", i)))
		ts := timestamppb.New(base.Add(time.Duration(i) * time.Minute))
		m.Set(fields.ByName("ts"), protoreflect.ValueOfMessage(ts.ProtoReflect()))
		m.Set(fields.ByName("status"), protoreflect.ValueOfEnum(protoreflect.EnumNumber(1+i%2)))
		list := m.Mutable(fields.ByName("items")).List()
		for j := range i%3 + 1 {
			it := dynamicpb.NewMessage(item)
			it.Set(item.Fields().ByName("sku"), protoreflect.ValueOfString(fmt.Sprintf("sku-%d", j)))
			it.Set(item.Fields().ByName("qty"), protoreflect.ValueOfInt32(int32(j+1)))
			list.Append(protoreflect.ValueOfMessage(it))
		}
		m.Mutable(fields.ByName("attrs")).Map().Set(protoreflect.ValueOfString("src").MapKey(), protoreflect.ValueOfString("web"))
		for _, name := range []protoreflect.Name{"channel", "source"} {
			if ch := fields.ByName(name); ch != nil {
				m.Set(ch, protoreflect.ValueOfString("app"))
			}
		}
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, enc.EncodeAll(b, nil))
	}
	return out
}

// TestProtobufEvolves ingests zstd-compressed protobuf records compiled
// from a .proto file, then changes the .proto (a new field) and reloads on
// SIGHUP: the table gains the column in place, rows before read NULL, rows
// after carry it, and every record lands exactly once. Then the field is
// renamed: its column is renamed with it and keeps its values.
func TestProtobufEvolves(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	e := newEnv(t, 3, "orders")
	v1 := writeOrderProto(t, e.dir, "")
	cfg := e.writePipeline(protoConfig)
	produce(t, e.addr, "orders", append(orders(t, v1, 0, 1000), []byte("not zstd at all")))
	d := e.start(cfg, "--watch-interval", "0")
	d.waitReady()
	waitFor(t, time.Minute, "v1 orders to commit", func() bool { return e.tableCaughtUp("it.orders", "orders", "orders") })

	v2 := writeOrderProto(t, e.dir, "  string channel = 8;\n")
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, time.Minute, "the new message type to apply", func() bool {
		n, _ := d.metric("sluice_config_reloads_total", `result="applied"`)
		return n >= 1
	})
	produce(t, e.addr, "orders", orders(t, v2, 1000, 1500))
	waitFor(t, time.Minute, "v2 orders to commit", func() bool { return e.tableCaughtUp("it.orders", "orders", "orders") })

	v3 := writeOrderProto(t, e.dir, "  string source = 8;\n")
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, time.Minute, "the renamed field to apply", func() bool {
		n, _ := d.metric("sluice_config_reloads_total", `result="applied"`)
		return n >= 2
	})
	produce(t, e.addr, "orders", orders(t, v3, 1500, 2000))
	waitFor(t, time.Minute, "v3 orders to commit", func() bool { return e.tableCaughtUp("it.orders", "orders", "orders") })
	if code, _ := d.stop(); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, d.logTail())
	}

	tbl, done := e.loadTable("it.orders")
	defer done()
	ids := scanColumn(t, tbl, "id")
	if len(ids) != 2000 {
		t.Errorf("%d ids, want 2000", len(ids))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s appears %d times", id, n)
		}
	}
	statuses := scanColumn(t, tbl, "status")
	if statuses["NEW"] != 1000 || statuses["PAID"] != 1000 {
		t.Errorf("statuses %v, want 1000 NEW and 1000 PAID", statuses)
	}
	if _, ok := tbl.Schema().FindFieldByName("channel"); ok {
		t.Error("the table still has a column channel")
	}
	sources := scanColumn2(t, tbl, "source")
	if sources["app"] != 1000 || sources[""] != 1000 {
		t.Errorf("source values %v, want 1000 app (500 written as channel) and 1000 NULL", sources)
	}
	dl, _ := os.ReadFile(filepath.Join(e.dir, "dead-letters.jsonl"))
	if !strings.Contains(string(dl), "zstd decompression failed") || strings.Count(string(dl), "\n") != 1 {
		t.Errorf("dead letters: %s", dl)
	}
}

// scanColumn2 counts the values of a string column, NULL as "". It selects
// id too: iceberg-go cannot project only a column that older files lack.
func scanColumn2(t *testing.T, tbl *table.Table, column string) map[string]int {
	t.Helper()
	_, it, err := tbl.Scan(table.WithSelectedFields("id", column)).ToArrowRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for rec, err := range it {
		if err != nil {
			t.Fatal(err)
		}
		idx := rec.Schema().FieldIndices(column)
		col := rec.Column(idx[0]).(*array.String)
		for i := range col.Len() {
			if col.IsNull(i) {
				counts[""]++
			} else {
				counts[col.Value(i)]++
			}
		}
		rec.Release()
	}
	return counts
}
