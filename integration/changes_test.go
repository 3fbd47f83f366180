package integration

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

const changesPipeline = `
streams:
  - name: users
    topics: ["{{topic}}"]
    format: {{format}}
    source_table: shop.users
    columns:
      - {name: id, type: int64, required: true}
      - {name: name, type: string}
      - {name: amount, type: "decimal(10,2)"}
    table:
      name: it.users
      primary_key: [id]
`

// change is one row change of shop.users as the test applies it.
type change struct {
	op     string // insert, update, delete
	id     int64
	name   string
	amount string
	old    string // the name before an update
	ts     int64  // source time, ms
	seq    int64  // source position
}

func (c change) canal() []byte {
	typ := map[string]string{"insert": "INSERT", "update": "UPDATE", "delete": "DELETE"}[c.op]
	old := "null"
	if c.op == "update" {
		old = fmt.Sprintf(`[{"name":%q}]`, c.old)
	}
	// Canal sends every value as a string.
	return fmt.Appendf(nil, `{"id":%d,"database":"shop","table":"users","pkNames":["id"],"isDdl":false,"type":%q,"es":%d,"ts":%d,"data":[{"id":"%d","name":%q,"amount":%q}],"old":%s}`,
		c.seq, typ, c.ts, c.ts+5, c.id, c.name, c.amount, old)
}

func (c change) debezium() []byte {
	row := fmt.Sprintf(`{"id":%d,"name":%q,"amount":%q}`, c.id, c.name, c.amount)
	before, after, op := "null", row, "c"
	switch c.op {
	case "update":
		before, op = fmt.Sprintf(`{"id":%d,"name":%q,"amount":"0.00"}`, c.id, c.old), "u"
	case "delete":
		before, after, op = row, "null", "d"
	}
	return fmt.Appendf(nil, `{"before":%s,"after":%s,"op":%q,"ts_ms":%d,"source":{"db":"shop","table":"users","ts_ms":%d,"file":"bin.000003","pos":%d,"row":0}}`,
		before, after, op, c.ts+7, c.ts, 1000+c.seq)
}

// TestChangeEvents keeps a table upserted from Canal and Debezium change
// events that arrive out of order within a checkpoint, some delivered twice
// (also in a later checkpoint), mixed with another table's changes and a
// DDL event; after each phase the table holds the source's rows exactly.
func TestChangeEvents(t *testing.T) {
	for _, format := range []string{"canal", "debezium"} {
		t.Run(format, func(t *testing.T) {
			e := newEnv(t, 1, "changes")
			cfg := e.writePipeline(changesPipeline, "{{topic}}", "changes", "{{format}}", format, "interval: 300ms", "interval: 2s")
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
			encode := func(c change) []byte {
				if format == "canal" {
					return c.canal()
				}
				return c.debezium()
			}
			var sent [][]byte
			// phase sends changes shuffled within windows of 8, each tenth
			// sent twice, plus noise, before the daemon reads them.
			phase := func(changes []change) {
				var batch [][]byte
				for i := 0; i < len(changes); i += 8 {
					w := changes[i:min(i+8, len(changes))]
					for _, j := range rng.Perm(len(w)) {
						v := encode(w[j])
						batch = append(batch, v)
						sent = append(sent, v)
						if rng.IntN(10) == 0 {
							batch = append(batch, v)
						}
					}
				}
				other := change{op: "insert", id: 1, name: "x", amount: "1.00", ts: 1, seq: 1}
				noise := strings.Replace(string(encode(other)), `users`, `orders`, 1)
				batch = append(batch, []byte(noise))
				if format == "canal" {
					batch = append(batch, []byte(`{"id":5,"database":"shop","table":"users","isDdl":true,"type":"ALTER","es":1,"ts":1,"sql":"ALTER TABLE users ADD x INT","data":null}`))
				} else {
					batch = append(batch, []byte(`null`)) // a tombstone
				}
				produce(t, e.addr, "changes", batch)
			}
			first := continueStream(rng, map[int64]string{}, 3000, 300, 0, 1_795_400_000_000)
			phase(first.changes)
			d := e.start(cfg)
			d.waitReady()
			waitFor(t, time.Minute, "phase 1 committed", func() bool { return e.usersCaughtUp() })
			e.checkUsers(first.rows, "after phase 1")

			// Phase 2 continues the source, and a producer re-delivers some
			// of phase 1's events, already applied in an earlier checkpoint.
			last := first.changes[len(first.changes)-1]
			second := continueStream(rng, first.rows, 2000, 300, last.seq+1, last.ts)
			var redelivered [][]byte
			for range 100 {
				redelivered = append(redelivered, sent[rng.IntN(len(sent))])
			}
			produce(t, e.addr, "changes", redelivered)
			phase(second.changes)
			waitFor(t, time.Minute, "phase 2 committed", func() bool { return e.usersCaughtUp() })
			e.checkUsers(second.rows, "after phase 2")
			if n, _ := d.metric("sluice_records_total", `stage="duplicate"`); n == 0 {
				t.Error("no duplicate counted")
			}
			if code, _ := d.stop(); code != 0 {
				t.Fatalf("exit code %d; log:\n%s", code, d.logTail())
			}
		})
	}
}

// changeStream is a run of changes in source order and the rows they
// leave.
type changeStream struct {
	changes []change
	rows    map[int64]string
}

// continueStream makes n random changes of keys 1..keys to rows, from
// source position seq and time ts (ms) on.
func continueStream(rng *rand.Rand, rows map[int64]string, n, keys int, seq, ts int64) changeStream {
	rows = maps.Clone(rows)
	var out []change
	for i := range n {
		id := 1 + rng.Int64N(int64(keys))
		ts += rng.Int64N(2)
		c := change{id: id, ts: ts, seq: seq + int64(i), name: fmt.Sprintf("m%d", i), amount: fmt.Sprintf("%d.%02d", rng.IntN(1000), rng.IntN(100))}
		old, exists := rows[id]
		switch {
		case !exists:
			c.op = "insert"
		case rng.IntN(3) == 0:
			c.op, c.name, c.amount = "delete", old[:strings.IndexByte(old, '|')], old[strings.IndexByte(old, '|')+1:]
		default:
			c.op, c.old = "update", old[:strings.IndexByte(old, '|')]
		}
		if c.op == "delete" {
			delete(rows, id)
		} else {
			rows[id] = c.name + "|" + c.amount
		}
		out = append(out, c)
	}
	return changeStream{out, rows}
}

func (e *env) usersCaughtUp() bool {
	return e.reached(e.topic, e.tablePositions(e.sqliteCatalog(), "it.users", "users", e.topic))
}

// checkUsers compares it.users with the rows the changes leave.
func (e *env) checkUsers(want map[int64]string, when string) {
	e.t.Helper()
	got := e.mirrorRows("it.users")
	wantRows := map[string]int{}
	for id, v := range want {
		wantRows[fmt.Sprintf("%d|%s", id, v)]++
	}
	compareRows(e.t, "it.users "+when, got, wantRows)
}
