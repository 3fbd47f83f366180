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
	"github.com/twmb/franz-go/pkg/kgo"
)

const reloadBase = `
name: it
kafka:
  brokers: ["{{broker}}"]
catalog:
  uri: {{dir}}/catalog.db
  warehouse: file://{{dir}}/warehouse
checkpoint:
  interval: 300ms
dead_letter:
  file: {{dir}}/dead-letters.jsonl
writer:
  workers: 2
streams:
  - name: events
    topics: [events]
    event_time: ts
    columns:
      - {name: id, type: string, required: true}
      - {name: ts, type: timestamptz(ms), required: true}
      - {name: n, type: int32}
{{more_events_columns}}
    table:
      name: it.events
      partition: ["hour(ts)"]
{{orders}}`

const ordersStream = `
  - name: orders
    topics: [orders]
    event_time: ts
    columns:
      - {name: id, type: string, required: true}
      - {name: ts, type: timestamptz(ms), required: true}
    table:
      name: it.orders
`

func writeReloadConfig(t *testing.T, e *env, moreColumns, orders string) string {
	t.Helper()
	text := strings.NewReplacer("{{broker}}", e.addr, "{{dir}}", e.dir, "{{more_events_columns}}", moreColumns,
		"{{orders}}", orders).Replace(reloadBase)
	path := filepath.Join(e.dir, "pipeline.yaml")
	// Write then rename, as config management tools do, so the watcher never
	// reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// reloadEvents always carry a score; it is an unknown key, ignored, until
// the config declares the column.
func reloadEvents(from, to int) [][]byte {
	var out [][]byte
	for i := from; i < to; i++ {
		ts := base.Add(time.Duration(i) * time.Second).Format(time.RFC3339)
		out = append(out, fmt.Appendf(nil, `{"id":"e-%d","ts":"%s","n":%d,"score":%d.5}`, i, ts, i%1000, i))
	}
	return out
}

// tableCaughtUp reports whether a stream's committed positions in its table
// reached the log end of its topic.
func (e *env) tableCaughtUp(tableName, stream, topic string) bool {
	e.t.Helper()
	return e.reached(topic, e.tablePositions(e.sqliteCatalog(), tableName, stream, topic))
}

// TestHotReload changes the config of a running daemon: a column is added
// to a stream (its table evolves in place, old rows read NULL), a stream is
// added and later removed, and invalid updates are refused while the
// running config stays. Every record lands exactly once throughout.
func TestHotReload(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	e := newEnv(t, 3, "events", "orders")
	cfg := writeReloadConfig(t, e, "", "")
	d := e.start(cfg, "--watch-interval", "100ms")
	d.waitReady()
	produce(t, e.addr, "events", reloadEvents(0, 1000))
	waitFor(t, time.Minute, "v1 to commit", func() bool { return e.tableCaughtUp("it.events", "events", "events") })

	// v2: a new column and a new stream, picked up by the file watcher.
	writeReloadConfig(t, e, "      - {name: score, type: float64}", ordersStream)
	waitFor(t, time.Minute, "the reload to apply", func() bool {
		n, _ := d.metric("sluice_config_reloads_total", `result="applied"`)
		return n >= 1
	})
	produce(t, e.addr, "events", reloadEvents(1000, 2000))
	var orders [][]byte
	for i := range 500 {
		orders = append(orders, fmt.Appendf(nil, `{"id":"o-%d","ts":"2026-11-23T05:00:00Z"}`, i))
	}
	produce(t, e.addr, "orders", orders)
	waitFor(t, time.Minute, "v2 to commit", func() bool {
		return e.tableCaughtUp("it.events", "events", "events") && e.tableCaughtUp("it.orders", "orders", "orders")
	})

	// Invalid updates are refused and change nothing: bad YAML through the
	// watcher, then a narrowing type change on SIGHUP.
	path := filepath.Join(e.dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte("name: [unclosed"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the bad YAML to be refused", func() bool {
		n, _ := d.metric("sluice_config_reloads_total", `result="refused"`)
		return n >= 1
	})
	writeReloadConfig(t, e, "      - {name: score, type: float32}", ordersStream)
	waitFor(t, time.Minute, "the narrowing change to be refused", func() bool {
		d.cmd.Process.Signal(syscall.SIGHUP)
		n, _ := d.metric("sluice_config_reloads_total", `result="refused"`)
		return n >= 2
	})
	if d.exited() {
		t.Fatalf("daemon exited on a refused config; log:\n%s", d.logTail())
	}

	// v3: the orders stream is removed; events keep flowing.
	writeReloadConfig(t, e, "      - {name: score, type: float64}", "")
	waitFor(t, time.Minute, "the removal to apply", func() bool {
		n, _ := d.metric("sluice_config_reloads_total", `result="applied"`)
		return n >= 2
	})
	produce(t, e.addr, "events", reloadEvents(2000, 2500))
	produce(t, e.addr, "orders", orders[:10])
	waitFor(t, time.Minute, "v3 to commit", func() bool { return e.tableCaughtUp("it.events", "events", "events") })
	if code, _ := d.stop(); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, d.logTail())
	}

	events, done := e.loadTable("it.events")
	defer done()
	checkExactlyOnce(t, events, 2500)
	// Rows written before the column existed read NULL; later ones carry it.
	withScore, nullScore := scoreCounts(t, events)
	if nullScore != 1000 || withScore != 1500 {
		t.Errorf("score: %d rows with a value, %d NULL; want 1500 and 1000", withScore, nullScore)
	}
	ordersTbl, done2 := e.loadTable("it.orders")
	defer done2()
	if ids := scanColumn(t, ordersTbl, "id"); len(ids) != 500 {
		t.Errorf("orders table has %d ids, want 500 (the 10 produced after removal stay unread)", len(ids))
	}
	if !strings.Contains(d.logTail(), "config reload refused") {
		t.Errorf("log does not mention the refused reloads")
	}
}

func scoreCounts(t *testing.T, tbl *table.Table) (withValue, null int) {
	t.Helper()
	// id is selected too: iceberg-go cannot project only a column that older
	// files lack ("no leaf column readers matched").
	_, it, err := tbl.Scan(table.WithSelectedFields("id", "score")).ToArrowRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for rec, err := range it {
		if err != nil {
			t.Fatal(err)
		}
		idx := rec.Schema().FieldIndices("score")
		if len(idx) != 1 {
			t.Fatalf("no score column in %s", rec.Schema())
		}
		col := rec.Column(idx[0]).(*array.Float64)
		for i := range col.Len() {
			if col.IsNull(i) {
				null++
			} else {
				withValue++
			}
		}
		rec.Release()
	}
	return withValue, null
}

// TestConfigTopic distributes the config over a compacted Kafka topic: the
// daemon starts from the newest published config and applies a new one.
func TestConfigTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	e := newEnv(t, 3, "events", "orders", "sluice-config")
	cfg := writeReloadConfig(t, e, "", "")
	publish := func(text string) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.addr))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "sluice-config", Key: []byte("it"), Value: []byte(text)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := os.ReadFile(writeReloadConfig(t, e, "", ordersStream))
	publish(string(raw)) // the published config has the orders stream, the file does not
	writeReloadConfig(t, e, "", "")
	d := e.start(cfg, "--config-topic", "sluice-config")
	d.waitReady()
	produce(t, e.addr, "orders", [][]byte{[]byte(`{"id":"o-1","ts":"2026-11-23T05:00:00Z"}`)})
	waitFor(t, time.Minute, "the published config's stream to run", func() bool {
		return e.tableCaughtUp("it.orders", "orders", "orders")
	})
	raw, _ = os.ReadFile(writeReloadConfig(t, e, "      - {name: score, type: float64}", ordersStream))
	publish(string(raw))
	waitFor(t, time.Minute, "the new published config to apply", func() bool {
		n, _ := d.metric("sluice_config_reloads_total", `result="applied"`)
		return n >= 1
	})
	produce(t, e.addr, "events", reloadEvents(0, 100))
	waitFor(t, time.Minute, "events to commit", func() bool { return e.tableCaughtUp("it.events", "events", "events") })
	events, done := e.loadTable("it.events")
	defer done()
	if withScore, _ := scoreCounts(t, events); withScore != 100 {
		t.Errorf("%d rows with score, want 100", withScore)
	}
	if code, _ := d.stop(); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, d.logTail())
	}
}
