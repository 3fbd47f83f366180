package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/sluicehq/sluice/sinks/audit/clickhousetest"
)

// auditReport is what `sluice audit --json` prints.
type auditReport struct {
	Hours []struct {
		Table     string `json:"table"`
		Hour      string `json:"hour"`
		Written   int64  `json:"written"`
		Filtered  int64  `json:"filtered"`
		Dead      int64  `json:"dead_lettered"`
		TableRows *int64 `json:"table_rows"`
		Mismatch  bool   `json:"mismatch"`
	} `json:"hours"`
	Streams []struct {
		Read     int64 `json:"read_by_offsets"`
		Counted  int64 `json:"records_counted"`
		Mismatch bool  `json:"mismatch"`
	} `json:"streams"`
	Mismatch bool `json:"mismatch"`
}

// runAudit runs `sluice audit --json` and returns its report and exit code.
func runAudit(t *testing.T, cfg string, extra ...string) (auditReport, int) {
	t.Helper()
	cmd := exec.Command(sluiceBin, append([]string{"audit", "-c", cfg, "--json"}, extra...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep auditReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("sluice audit: %v\nstdout: %s\nstderr: %s", err, out.String(), errOut.String())
	}
	return rep, code
}

// auditTotals sums a report's hours.
func auditTotals(rep auditReport) (written, filtered, dead, rows int64) {
	for _, h := range rep.Hours {
		written += h.Written
		filtered += h.Filtered
		dead += h.Dead
		if h.TableRows != nil {
			rows += *h.TableRows
		}
	}
	return
}

// TestAuditTrace runs a pipeline with bad records and a filter whose audit
// trace goes to a private ClickHouse server; `sluice audit` must report the
// exact counts and no mismatch after a normal run, after ClickHouse was
// down for a while mid-run, and after a SIGKILL loop; deleting an hour's
// rows behind Sluice's back must show as that hour's mismatch.
func TestAuditTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary and a ClickHouse server")
	}
	ch := clickhousetest.Start(t)
	e := newEnv(t, 4, "events")
	cfg := e.writePipeline(`
audit:
  clickhouse: {addrs: ["` + ch.Addr + `"], timeout: 2s}
  spool_dir: {{dir}}/spool
streams:
  - name: events
    topics: ["events"]
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
      filter: kind != "view"
    table:
      name: it.events
      partition: ["hour(ts)"]
`)
	written, filtered, dead := int64(0), int64(0), int64(0)
	// batch produces n events from `from` (a third are views, filtered)
	// and a bad record every 50.
	batch := func(from, n int) {
		var vals [][]byte
		for i := from; i < from+n; i++ {
			vals = append(vals, event(i))
			if i%3 == 0 {
				filtered++
			} else {
				written++
			}
			if i%50 == 0 {
				vals = append(vals, []byte(`{"id":"broken`))
				dead++
			}
		}
		produce(t, e.addr, "events", vals)
	}
	check := func(when string) {
		t.Helper()
		var rep auditReport
		var code int
		waitFor(t, time.Minute, "the audit to see every record "+when, func() bool {
			rep, code = runAudit(t, cfg)
			w, f, d, _ := auditTotals(rep)
			return w == written && f == filtered && d == dead
		})
		w, f, d, rows := auditTotals(rep)
		if code != 0 || rep.Mismatch || rows != written {
			t.Fatalf("%s: audit exit %d, mismatch %v; written %d filtered %d dead %d rows %d (want %d, %d, %d, %d)\n%+v",
				when, code, rep.Mismatch, w, f, d, rows, written, filtered, dead, written, rep)
		}
		for _, s := range rep.Streams {
			if s.Read != written+filtered+dead || s.Counted != s.Read {
				t.Fatalf("%s: read by offsets %d, counted %d, want %d", when, s.Read, s.Counted, written+filtered+dead)
			}
		}
	}

	batch(0, 6000)
	d := e.start(cfg)
	d.waitReady()
	check("after a normal run")

	// ClickHouse goes away mid-run: ingestion goes on, the trace waits in
	// the spool and arrives once the server is back.
	ch.Stop()
	batch(6000, 6000)
	waitFor(t, time.Minute, "the table to catch up without ClickHouse", func() bool { return e.caughtUp("events") })
	waitFor(t, 30*time.Second, "the trace to wait in the spool while ClickHouse is down", func() bool {
		n, _ := d.metric("sluice_audit_spool_bytes")
		return n > 0
	})
	ch.Restart()
	check("after ClickHouse was down")

	// A SIGKILL loop: the trace of each commit is derived from the commit
	// itself, so none is lost or doubled.
	d.kill()
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for k := range 4 {
			batch(12000+k*3000, 3000)
			time.Sleep(300 * time.Millisecond)
		}
	}()
	e.killLoop(cfg, 5, 300*time.Millisecond, 1500*time.Millisecond, nil)
	<-produced
	d = e.start(cfg)
	d.waitReady()
	check("after a crash loop")

	// Tampering: one hour's rows deleted behind Sluice's back.
	tbl, done := e.loadTable("it.events")
	hour := base.Add(time.Hour)
	tx := tbl.NewTransaction()
	filter := iceberg.NewAnd(iceberg.GreaterThanEqual(iceberg.Reference("ts"), hour.UnixMicro()),
		iceberg.LessThan(iceberg.Reference("ts"), hour.Add(10*time.Minute).UnixMicro()))
	if err := tx.Delete(context.Background(), filter, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	done()
	rep, code := runAudit(t, cfg)
	if code == 0 || !rep.Mismatch {
		t.Fatalf("tampered table: audit exit %d, mismatch %v", code, rep.Mismatch)
	}
	for _, h := range rep.Hours {
		want := h.Hour == hour.Format("2006-01-02T15")
		if h.Mismatch != want {
			t.Errorf("hour %s: mismatch %v, want %v (written %d, table rows %v)", h.Hour, h.Mismatch, want, h.Written, h.TableRows)
		}
	}
	if code, _ := d.stop(); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, d.logTail())
	}
	var human bytes.Buffer
	cmd := exec.Command(sluiceBin, "audit", "-c", cfg)
	cmd.Stdout = &human
	cmd.Run()
	if !strings.Contains(human.String(), "MISMATCH") || !strings.Contains(human.String(), hour.Format("2006-01-02T15")) {
		t.Errorf("human report does not mark the hour:\n%s", human.String())
	}
}
