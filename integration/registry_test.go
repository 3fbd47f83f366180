package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluicehq/sluice/ingest/parse"
)

const registryConfig = `
streams:
  - name: orders
    topics: [orders]
    format: protobuf
    protobuf:
      schema_registry:
        urls: ["{{registry}}"]
    event_time: ts
    table:
      name: it.orders
`

const registryProto = `syntax = "proto3";
package acme.v1;
import "google/protobuf/timestamp.proto";
message Order {
  string id = 1;
  google.protobuf.Timestamp ts = 2;
  int64 total = 3;
%s}
`

// wireOrders encodes orders in the Confluent wire format of schema id.
func wireOrders(t *testing.T, md protoreflect.MessageDescriptor, id, from, to int) [][]byte {
	t.Helper()
	var h sr.ConfluentHeader
	f := md.Fields()
	var out [][]byte
	for i := from; i < to; i++ {
		m := dynamicpb.NewMessage(md)
		m.Set(f.ByName("id"), protoreflect.ValueOfString(fmt.Sprintf("o-%d", i)))
		m.Set(f.ByName("ts"), protoreflect.ValueOfMessage(timestamppb.New(base.Add(time.Duration(i)*time.Second)).ProtoReflect()))
		m.Set(f.ByName("total"), protoreflect.ValueOfInt64(int64(i)))
		if ch := f.ByName("channel"); ch != nil {
			m.Set(ch, protoreflect.ValueOfString("app"))
		}
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := h.AppendEncode(nil, id, []int{0})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append(hdr, b...))
	}
	return out
}

func registerOrder(t *testing.T, reg *srfake.Registry, dir, extra string) (int, protoreflect.MessageDescriptor) {
	t.Helper()
	text := fmt.Sprintf(registryProto, extra)
	id, _, err := reg.RegisterSchema("orders-value", sr.Schema{Schema: text, Type: sr.TypeProtobuf})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("v%d", id), "order.proto")
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
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
	return id, md
}

// TestSchemaRegistryEvolution reads protobuf records in the Confluent wire
// format while the producer moves to a new schema version with a new field,
// mid-stream: the stream commits up to the first record of the new version,
// rebuilds itself with the new column (evolving the table in place), and
// goes on; records of both versions keep arriving interleaved. Every record
// lands exactly once, old-version rows read NULL in the new column.
func TestSchemaRegistryEvolution(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	reg := srfake.New()
	t.Cleanup(reg.Close)
	e := newEnv(t, 2, "orders")
	id1, v1 := registerOrder(t, reg, e.dir, "")
	cfg := e.writePipeline(registryConfig, "{{registry}}", reg.URL())
	produce(t, e.addr, "orders", append(wireOrders(t, v1, id1, 0, 500), []byte("no wire header")))
	d := e.start(cfg)
	d.waitReady()
	waitFor(t, time.Minute, "v1 to commit", func() bool { return e.tableCaughtUp("it.orders", "orders", "orders") })

	id2, v2 := registerOrder(t, reg, e.dir, "  string channel = 4;\n")
	var mixed [][]byte
	for i := 500; i < 1500; i += 100 {
		mixed = append(mixed, wireOrders(t, v2, id2, i, i+50)...)
		mixed = append(mixed, wireOrders(t, v1, id1, i+50, i+100)...)
	}
	produce(t, e.addr, "orders", mixed)
	waitFor(t, time.Minute, "mixed versions to commit", func() bool {
		if d.exited() {
			t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		return e.tableCaughtUp("it.orders", "orders", "orders")
	})
	if code, _ := d.stop(); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, d.logTail())
	}
	if !strings.Contains(d.logTail(), "restarting stream with new columns") {
		t.Errorf("no restart in the log:\n%s", d.logTail())
	}
	tbl, done := e.loadTable("it.orders")
	defer done()
	ids := scanColumn(t, tbl, "id")
	if len(ids) != 1500 {
		t.Errorf("%d ids, want 1500", len(ids))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s appears %d times", id, n)
		}
	}
	if ch := scanColumn2(t, tbl, "channel"); ch["app"] != 500 || ch[""] != 1000 {
		t.Errorf("channel values %v, want 500 app and 1000 NULL", ch)
	}
}
