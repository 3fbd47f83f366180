package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/sluicehq/sluice/ingest/parse"
)

// exportConfig re-exports a stream's ETL output; {{export}} is the
// format's part of the export section and {{drop}} what the ETL leaves out.
const exportConfig = `
writer:
  workers: 2
streams:
  - name: events
    topics: [events]
    event_time: ts
    columns:
      - {name: id, type: string, required: true}
      - {name: ts, type: timestamptz(ms), required: true}
      - {name: user, type: int64}
      - {name: kind, type: string}
      - {name: amount, type: "decimal(12,2)"}
      - {name: tags, type: "list<string>"}
      - {name: geo, type: "struct<country:string,lat:float64>"}
    etl:
      filter: kind != "buy"
      drop: {{drop}}
      columns:
        - {name: big, expr: "user > 500"}
    export:
      topic: events-clean
      key: id
{{export}}
`

const cleanProto = `syntax = "proto3";
package acme.v1;
import "google/protobuf/timestamp.proto";
message CleanEvent {
  string id = 1;
  google.protobuf.Timestamp ts = 2;
  optional int64 user = 3;
  string kind = 4;
  repeated string tags = 5;
  message Geo { string country = 1; double lat = 2; }
  Geo geo = 6;
  bool big = 7;
  string note = 8; // no column: left unset
}
`

// exportProto exports the rows as protobuf; amount, a decimal the message
// has no field for, is dropped.
var exportProto = []string{"{{drop}}", "[amount]", "{{export}}", `      format: protobuf
      protobuf:
        message: acme.v1.CleanEvent
        proto_files: [{{dir}}/clean.proto]
        import_paths: [{{dir}}]`}

var exportJSON = []string{"{{drop}}", "[]", "{{export}}", ""}

// exportedJSON reads the id of a row exported as JSON.
func exportedJSON(t *testing.T, _ *env, value []byte) string {
	t.Helper()
	var row struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(value, &row); err != nil {
		t.Fatalf("bad exported value %q: %v", value, err)
	}
	return row.ID
}

// cleanEvents holds the compiled exported message type per test directory.
var cleanEvents sync.Map

// exportedProto reads the id of a row exported as protobuf, checking the
// rest of the message is what the ETL made of the event.
func exportedProto(t *testing.T, e *env, value []byte) string {
	t.Helper()
	md, ok := cleanEvents.Load(e.dir)
	if !ok {
		files, err := parse.LoadProtoFiles([]string{filepath.Join(e.dir, "clean.proto")}, []string{e.dir})
		if err != nil {
			t.Fatal(err)
		}
		if md, err = parse.FindMessage(files, "acme.v1.CleanEvent"); err != nil {
			t.Fatal(err)
		}
		cleanEvents.Store(e.dir, md)
	}
	m := dynamicpb.NewMessage(md.(protoreflect.MessageDescriptor))
	if err := proto.Unmarshal(value, m); err != nil {
		t.Fatalf("bad exported value %x: %v", value, err)
	}
	f := m.Descriptor().Fields()
	id := m.Get(f.ByName("id")).String()
	if !m.Has(f.ByName("ts")) || m.Get(f.ByName("kind")).String() == "" || m.Has(f.ByName("note")) {
		t.Fatalf("exported %s is incomplete: %v", id, m)
	}
	return id
}

// TestExportCrashLoop re-exports a stream's ETL output to a Kafka topic
// while the daemon is SIGKILLed again and again: a read_committed consumer
// of the output sees every surviving record exactly once, and the group's
// offsets (committed in the same transactions) end at the log end.
func TestExportCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary many times")
	}
	tests := []struct {
		name   string
		format []string // replacements in exportConfig
		kills  int
		id     func(t *testing.T, e *env, value []byte) string
	}{
		{"json", exportJSON, 10, exportedJSON},
		{"protobuf", exportProto, 5, exportedProto},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { exportCrashLoop(t, tt.format, tt.kills, tt.id) })
	}
}

func exportCrashLoop(t *testing.T, format []string, kills int, exportedID func(t *testing.T, e *env, value []byte) string) {
	total := 30_000
	if os.Getenv("SLUICE_SOAK") != "" {
		total, kills = 500_000, 40
	}
	e := newEnv(t, 4, "events", "events-clean")
	if err := os.WriteFile(filepath.Join(e.dir, "clean.proto"), []byte(cleanProto), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := e.writePipeline(exportConfig, format...)

	produced := produceDuring(t, e.addr, "events", total, 1000, 50*time.Millisecond, 150*time.Millisecond)
	e.killLoop(cfg, kills, 300*time.Millisecond, 2500*time.Millisecond, nil)
	produced()

	d := e.start(cfg)
	d.waitReady()
	adm := newAdmin(t, e.addr)
	waitFor(t, 3*time.Minute, "the group's offsets to reach the log end", func() bool {
		if d.exited() {
			t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		offs, err := adm.FetchOffsets(context.Background(), "sluice.it.events")
		if err != nil {
			return false
		}
		for p, end := range endOffsets(t, e.addr, "events") {
			o, ok := offs.Lookup("events", p)
			if !ok || o.At != end {
				return false
			}
		}
		return true
	})
	if code, took := d.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit code %d after %s; log:\n%s", code, took, d.logTail())
	}

	// Read the output with read_committed from the start to its end.
	ends := endOffsets(t, e.addr, "events-clean")
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addr), kgo.ConsumeTopics("events-clean"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	lastStable := map[int32]int64{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := func() bool {
		for p, end := range ends {
			// Control records (commit markers) take offsets too: done once the
			// consumer's position passed the last data record before the end.
			if lastStable[p] < end-1 && end > 0 {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading the export timed out; positions %v, ends %v", lastStable, ends)
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				id := exportedID(t, e, r.Value)
				if string(r.Key) != id {
					t.Fatalf("key %q for row %s", r.Key, id)
				}
				seen[id]++
			}
			// The last stable offset bounds what read_committed can see.
			lastStable[p.Partition] = max(lastStable[p.Partition], p.LastStableOffset-1)
		})
	}
	want, dup, missing := 0, 0, 0
	for i := range total {
		id := fmt.Sprintf("e-%d", i)
		if i%3 == 2 { // kind "buy" is filtered
			if seen[id] != 0 {
				t.Errorf("filtered %s was exported", id)
			}
			continue
		}
		want++
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	if missing > 0 || dup > 0 || len(seen) != want {
		t.Fatalf("export: %d distinct ids, want %d; %d missing, %d duplicated", len(seen), want, missing, dup)
	}
	_ = kadm.NewClient
}
