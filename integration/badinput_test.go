package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadInput mixes every kind of bad record with good ones: the good ones
// all land, the filtered ones are counted, and every bad one is
// dead-lettered with its reason and source position — none lost, none
// doubled — while the pipeline keeps running.
func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	e := newEnv(t, 3, "events")
	cfg := e.config("500ms", `    etl:
      filter: kind != "drop"
      columns:
        - {name: per_user, expr: "1000 / user"}`)

	const good = 3000
	bad := map[string]string{ // id-ish marker -> record
		"malformed":     `{"id":"bad-malformed","ts":`,
		"wrong_type":    `{"id":"bad-wrong-type","ts":"2026-11-23T05:00:00Z","user":"abc"}`,
		"decimal_scale": `{"id":"bad-scale","ts":"2026-11-23T05:00:00Z","user":1,"amount":"1.234"}`,
		"not_list":      `{"id":"bad-list","ts":"2026-11-23T05:00:00Z","user":1,"tags":"x"}`,
		"missing_id":    `{"ts":"2026-11-23T05:00:00Z","user":1}`,
		"null_id":       `{"id":null,"ts":"2026-11-23T05:00:00Z","user":1}`,
		"no_time":       `{"id":"bad-no-time","user":1}`,
		"null_time":     `{"id":"bad-null-time","ts":null,"user":1}`,
		"bad_time":      `{"id":"bad-time","ts":"yesterday","user":1}`,
		"oversized":     `{"id":"bad-big","ts":"2026-11-23T05:00:00Z","user":1,"kind":"` + strings.Repeat("x", 5000) + `"}`,
		"garbage":       "\x00\xff\xfe binary \x01\x02\x03",
		"array":         `[1,2,3]`,
		"empty":         ``,
		"etl_div_zero":  `{"id":"bad-div","ts":"2026-11-23T05:00:00Z","user":0}`,
	}
	var vals [][]byte
	filtered := 0
	for i := range good {
		v := event(i + 1)
		if i%10 == 0 {
			v = []byte(strings.Replace(string(v), `"kind":"view"`, `"kind":"drop"`, 1))
			if strings.Contains(string(v), `"drop"`) {
				filtered++
			}
		}
		// user 0 would divide by zero in per_user; event() gives user = i%977.
		vals = append(vals, v)
		if i%200 == 0 {
			for _, b := range bad {
				vals = append(vals, []byte(b))
			}
		}
	}
	rounds := (good + 199) / 200
	wantDead := rounds*len(bad) + zeroUsersNotFiltered(good)
	produce(t, e.addr, e.topic, vals)

	d := e.start(cfg)
	waitFor(t, 2*time.Minute, "the table to catch up", func() bool {
		if d.exited() {
			t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		return e.caughtUp("events")
	})
	_, metrics, err := d.get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	code, body, err := d.get("/healthz")
	if err != nil || code != 200 {
		t.Fatalf("/healthz: %d %q %v", code, body, err)
	}
	if code, took := d.stop(); code != 0 {
		t.Fatalf("exit code %d after %s; log:\n%s", code, took, d.logTail())
	}

	tbl, done := e.loadTable("it.events")
	defer done()
	ids := scanColumn(t, tbl, "id")
	wantRows := good - filtered - zeroUsersNotFiltered(good)
	if len(ids) != wantRows {
		t.Errorf("table has %d ids, want %d", len(ids), wantRows)
	}
	for id, n := range ids {
		if n != 1 || strings.HasPrefix(id, "bad-") {
			t.Errorf("id %s appears %d times", id, n)
		}
	}

	f, err := os.Open(filepath.Join(e.dir, "dead-letters.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	seen := map[string]bool{}
	dead := 0
	for sc.Scan() {
		var entry struct {
			Reason    string `json:"reason"`
			Stage     string `json:"stage"`
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
			Offset    int64  `json:"offset"`
			Value     string `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
			t.Fatalf("dead-letter line %q: %v", sc.Text(), err)
		}
		key := fmt.Sprintf("%d@%d", entry.Partition, entry.Offset)
		if seen[key] {
			t.Errorf("record %s dead-lettered twice", key)
		}
		seen[key] = true
		if entry.Reason == "" || entry.Topic != "events" || (entry.Stage != "parse" && entry.Stage != "etl") {
			t.Errorf("incomplete dead-letter entry %+v", entry)
		}
		dead++
	}
	if dead != wantDead {
		t.Errorf("%d dead letters, want %d", dead, wantDead)
	}
	for _, want := range []string{
		fmt.Sprintf(`sluice_records_total{stage="dead_lettered",stream="events"} %d`, wantDead),
		fmt.Sprintf(`sluice_records_total{stage="filtered",stream="events"} %d`, filtered),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// zeroUsersNotFiltered counts good events whose user is 0 (per_user divides
// by zero) and that the filter does not drop first.
func zeroUsersNotFiltered(good int) int {
	n := 0
	for i := range good {
		id := i + 1
		if id%977 != 0 {
			continue
		}
		if i%10 == 0 && id%3 == 0 { // kind "view" replaced by "drop"
			continue
		}
		n++
	}
	return n
}
