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
)

const routeConfig = `
streams:
  - name: clicks
    topics: [mixed]
    match: {header: type, value: click}
    event_time: ts
    columns:
      - {name: id, type: string, required: true}
      - {name: ts, type: timestamptz(ms), required: true}
      - {name: page, type: string, required: true}
    table: {name: it.clicks}
  - name: orders
    topics: [mixed]
    match: {header: type, value: order}
    event_time: ts
    columns:
      - {name: id, type: string, required: true}
      - {name: ts, type: timestamptz(ms), required: true}
      - {name: total, type: "decimal(10,2)", required: true}
    table: {name: it.orders}
`

// TestRouteByHeader sends two message types over one topic, told apart by a
// header, into two tables: each record lands once, in its own table, and
// neither stream dead-letters the other's records.
func TestRouteByHeader(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	e := newEnv(t, 3, "mixed")
	cfg := e.writePipeline(routeConfig)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addr), kgo.DefaultProduceTopic("mixed"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range 900 {
		if i%3 == 0 {
			recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"id":"o-%d","ts":"2026-11-23T05:00:00Z","total":"%d.50"}`, i, i),
				Headers: []kgo.RecordHeader{{Key: "type", Value: []byte("order")}}})
		} else {
			recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"id":"c-%d","ts":"2026-11-23T05:00:00Z","page":"/p"}`, i),
				Headers: []kgo.RecordHeader{{Key: "type", Value: []byte("click")}}})
		}
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
}
