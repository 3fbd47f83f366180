package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluicehq/sluice/ingest/parse"
)

const routeJSONConfig = `
streams:
  - name: clicks
    topics: [mixed]
    match: {%[1]s: type, value: click}
    event_time: ts
    columns:
      - {name: id, type: string, required: true}
      - {name: ts, type: timestamptz(ms), required: true}
      - {name: page, type: string, required: true}
    table: {name: it.clicks}
  - name: orders
    topics: [mixed]
    match: {%[1]s: type, value: order}
    event_time: ts
    columns:
      - {name: id, type: string, required: true}
      - {name: ts, type: timestamptz(ms), required: true}
      - {name: total, type: "decimal(10,2)", required: true}
    table: {name: it.orders}
`

// Two message types that share field 1, the routing field. Field 4 differs
// in wire type, so decoding the other type's records would fail.
const routeProto = `syntax = "proto3";
package acme.v1;
import "google/protobuf/timestamp.proto";
enum Type { TYPE_UNSPECIFIED = 0; CLICK = 1; ORDER = 2; }
message Click { Type type = 1; string id = 2; google.protobuf.Timestamp ts = 3; string page = 4; }
message Order { Type type = 1; string id = 2; google.protobuf.Timestamp ts = 3; double total = 4; }
`

const routeProtoConfig = `
streams:
  - name: clicks
    topics: [mixed]
    format: protobuf
    protobuf: {message: acme.v1.Click, proto_files: [{{dir}}/route.proto], import_paths: [{{dir}}]}
    match: {field: type, value: CLICK}
    event_time: ts
    table: {name: it.clicks}
  - name: orders
    topics: [mixed]
    format: protobuf
    protobuf: {message: acme.v1.Order, proto_files: [{{dir}}/route.proto], import_paths: [{{dir}}]}
    match: {field: type, value: "2"}
    event_time: ts
    table: {name: it.orders}
`

// TestRoute sends two message types over one topic into two tables, told
// apart by a header, by a JSON field and by a protobuf field: each record
// lands once, in its own table, and neither stream dead-letters the other's
// records.
func TestRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	tests := []struct {
		name   string
		config string
		record func(t *testing.T, e *env, i int, order bool) *kgo.Record
	}{
		{"header", fmt.Sprintf(routeJSONConfig, "header"), func(_ *testing.T, _ *env, i int, order bool) *kgo.Record {
			if order {
				return &kgo.Record{Value: fmt.Appendf(nil, `{"id":"o-%d","ts":"2026-11-23T05:00:00Z","total":"%d.50"}`, i, i),
					Headers: []kgo.RecordHeader{{Key: "type", Value: []byte("order")}}}
			}
			return &kgo.Record{Value: fmt.Appendf(nil, `{"id":"c-%d","ts":"2026-11-23T05:00:00Z","page":"/p"}`, i),
				Headers: []kgo.RecordHeader{{Key: "type", Value: []byte("click")}}}
		}},
		{"json field", fmt.Sprintf(routeJSONConfig, "field"), func(_ *testing.T, _ *env, i int, order bool) *kgo.Record {
			if order {
				return &kgo.Record{Value: fmt.Appendf(nil, `{"type":"order","id":"o-%d","ts":"2026-11-23T05:00:00Z","total":"%d.50"}`, i, i)}
			}
			return &kgo.Record{Value: fmt.Appendf(nil, `{"id":"c-%d","ts":"2026-11-23T05:00:00Z","page":"/p","type":"click"}`, i)}
		}},
		{"protobuf field", routeProtoConfig, protoRouteRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 3, "mixed")
			if err := os.WriteFile(filepath.Join(e.dir, "route.proto"), []byte(routeProto), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := e.writePipeline(tt.config)
			cl, err := kgo.NewClient(kgo.SeedBrokers(e.addr), kgo.DefaultProduceTopic("mixed"))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			var recs []*kgo.Record
			for i := range 900 {
				recs = append(recs, tt.record(t, e, i, i%3 == 0))
			}
			if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			d := e.start(cfg)
			waitFor(t, time.Minute, "both tables to catch up", func() bool {
				return e.tableCaughtUp("it.clicks", "clicks", "mixed") && e.tableCaughtUp("it.orders", "orders", "mixed")
			})
			skipped, _ := d.metric("sluice_records_total", `stage="skipped"`)
			if code, _ := d.stop(); code != 0 {
				t.Fatalf("exit code %d; log:\n%s", code, d.logTail())
			}
			if skipped != 900 {
				t.Errorf("%v records skipped in total, want 900 (each stream skips the other's)", skipped)
			}
			for name, want := range map[string]int{"it.clicks": 600, "it.orders": 300} {
				tbl, done := e.loadTable(name)
				ids := scanColumn(t, tbl, "id")
				done()
				if len(ids) != want {
					t.Errorf("%s has %d ids, want %d", name, len(ids), want)
				}
				for id, n := range ids {
					if n != 1 || (name == "it.clicks") != strings.HasPrefix(id, "c-") {
						t.Errorf("%s: id %s appears %d times", name, id, n)
					}
				}
			}
			if b, _ := os.ReadFile(filepath.Join(e.dir, "dead-letters.jsonl")); len(b) > 0 {
				t.Errorf("dead letters: %s", b)
			}
		})
	}
}

func protoRouteRecord(t *testing.T, e *env, i int, order bool) *kgo.Record {
	t.Helper()
	files, err := parse.LoadProtoFiles([]string{filepath.Join(e.dir, "route.proto")}, []string{e.dir})
	if err != nil {
		t.Fatal(err)
	}
	name, id, typ := "acme.v1.Click", fmt.Sprintf("c-%d", i), protoreflect.EnumNumber(1)
	if order {
		name, id, typ = "acme.v1.Order", fmt.Sprintf("o-%d", i), 2
	}
	md, err := parse.FindMessage(files, name)
	if err != nil {
		t.Fatal(err)
	}
	m := dynamicpb.NewMessage(md)
	f := md.Fields()
	m.Set(f.ByName("type"), protoreflect.ValueOfEnum(typ))
	m.Set(f.ByName("id"), protoreflect.ValueOfString(id))
	m.Set(f.ByName("ts"), protoreflect.ValueOfMessage(timestamppb.New(base).ProtoReflect()))
	if order {
		m.Set(f.ByName("total"), protoreflect.ValueOfFloat64(float64(i)+0.5))
	} else {
		m.Set(f.ByName("page"), protoreflect.ValueOfString("/p"))
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Value: b}
}
