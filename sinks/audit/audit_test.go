package audit

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/schema"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

// memSink keeps what it is given; it fails while down.
type memSink struct {
	mu      sync.Mutex
	down    bool
	batches [][]Row
}

func (m *memSink) Write(_ context.Context, rows []Row) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errors.New("connection refused")
	}
	m.batches = append(m.batches, rows)
	return nil
}

func (m *memSink) Close() error { return nil }

func (m *memSink) checkpoints() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int64
	for _, b := range m.batches {
		out = append(out, b[0].Checkpoint)
	}
	return out
}

// auditTable is a table whose commits carry audit properties, as the
// committer writes them.
type auditTable struct {
	tbl *table.Table
	mu  sync.Mutex
}

func newAuditTable(t *testing.T) *auditTable {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cat, closeCat, err := iceberg.OpenCatalog(ctx, config.Catalog{Type: "sql", URI: dir + "/c.db", Warehouse: "file://" + dir + "/wh", Name: "sluice"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeCat() })
	s := schema.Schema{Fields: []schema.Field{{Name: "id", Type: schema.Type{Kind: schema.KindInt64}}}}
	tbl, _, err := iceberg.EnsureTable(ctx, cat, config.Table{Name: "db.t"}, s)
	if err != nil {
		t.Fatal(err)
	}
	return &auditTable{tbl: tbl}
}

func (a *auditTable) commit(t *testing.T, cp int64, tally checkpoint.Tally) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	props := iceberggo.Properties{iceberg.PropStream: "s", iceberg.PropCheckpoint: strconv.FormatInt(cp, 10),
		iceberg.PropAudit: tally.Encode(), iceberg.PropAuditOffsets: `{"events":{"0":[` + strconv.FormatInt(cp*10, 10) + `,` + strconv.FormatInt(cp*10+10, 10) + `]}}`}
	tx := a.tbl.NewTransaction()
	if err := tx.AddFiles(context.Background(), nil, props, true); err != nil {
		t.Fatal(err)
	}
	tbl, err := tx.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a.tbl = tbl
}

func (a *auditTable) load() *table.Table {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tbl
}

func TestRowsOf(t *testing.T) {
	at := newAuditTable(t)
	tally := checkpoint.Tally{}
	hour := time.Date(2026, 11, 23, 7, 30, 0, 0, time.UTC).UnixMicro()
	for range 7 {
		tally.Add(hour, true, checkpoint.Written)
	}
	tally.Add(hour, true, checkpoint.Filtered)
	tally.Add(0, false, checkpoint.DeadParse)
	tally.Add(hour, true, checkpoint.DeadETL)
	at.commit(t, 3, tally)
	rows, err := RowsOf("p", "s", "db.t", *at.load().CurrentSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range rows {
		if r.Checkpoint != 3 || r.Table != "db.t" || r.Pipeline != "p" {
			t.Errorf("row %+v", r)
		}
		got[r.Hour.Format("2006-01-02T15")+" "+r.Stage+" "+r.Reason] = r.Records
	}
	want := map[string]int64{
		"2026-11-23T07 written ": 7, "2026-11-23T07 filtered ": 1, "1970-01-01T00 dead_lettered parse": 1,
		"2026-11-23T07 dead_lettered etl": 1, "1970-01-01T00 read ": 10,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
}

func TestTallyRoundTrip(t *testing.T) {
	tally := checkpoint.Tally{}
	tally.Add(-1, true, checkpoint.Written) // just before 1970: hour -1, not NoHour's bucket of unknown times
	tally.Add(0, false, checkpoint.Skipped)
	tally.Add(3_600_000_000*5+1, true, checkpoint.Written)
	back, err := checkpoint.DecodeTally(tally.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(tally) {
		t.Fatalf("round trip: %v, want %v", back, tally)
	}
	for k, n := range tally {
		if back[k] != n {
			t.Errorf("%+v: %d, want %d", k, back[k], n)
		}
	}
}

// TestExporterSpools: while the sink is down the trace waits in the
// spool; once it is back every checkpoint arrives once, in order, also
// across a restart of the exporter and with a spool too small to hold it
// all.
func TestExporterSpools(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spoolMax int64
	}{{"roomy spool", 1 << 20}, {"spool of one batch", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			at := newAuditTable(t)
			sink := &memSink{down: true}
			spool := filepath.Join(t.TempDir(), "spool")
			run := func(commits func()) {
				t.Helper()
				e, err := NewExporter(sink, Options{Pipeline: "p", SpoolDir: spool, SpoolMax: tc.spoolMax})
				if err != nil {
					t.Fatal(err)
				}
				e.Add("s", "db.t", at.load)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- e.Run(ctx) }()
				commits()
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			tally := checkpoint.Tally{}
			tally.Add(0, true, checkpoint.Written)
			run(func() {
				for cp := int64(1); cp <= 5; cp++ {
					at.commit(t, cp, tally)
				}
				// Wait for the derivation to spool while the sink is down.
				deadline := time.Now().Add(20 * time.Second)
				for time.Now().Before(deadline) {
					if files, _ := filepath.Glob(filepath.Join(spool, "*.batch")); len(files) > 0 {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
			if n := len(sink.checkpoints()); n != 0 {
				t.Fatalf("%d batches delivered while the sink was down", n)
			}
			sink.mu.Lock()
			sink.down = false
			sink.mu.Unlock()
			run(func() {
				at.commit(t, 6, tally)
				deadline := time.Now().Add(20 * time.Second)
				for len(sink.checkpoints()) < 6 && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
			})
			got := sink.checkpoints()
			want := []int64{1, 2, 3, 4, 5, 6}
			if len(got) != len(want) {
				t.Fatalf("delivered checkpoints %v, want %v", got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("delivered checkpoints %v, want %v", got, want)
				}
			}
		})
	}
}
