package integration

import (
	"context"
	"fmt"
	"maps"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/go-mysql-org/go-mysql/client"

	"github.com/sluicehq/sluice/cdc/mariadbtest"
)

const cdcPipeline = `
name: it
catalog:
  uri: {{dir}}/catalog.db
  warehouse: file://{{dir}}/warehouse
checkpoint:
  interval: 300ms
  shutdown_timeout: 20s
cdc:
  - name: shop
    host: 127.0.0.1
    port: {{port}}
    user: root
    server_id: 4242
    tables: ["shop.*"]
    namespace: mirror
    max_buffered_rows: 2000
    idle_checkpoints: 1
    snapshot:
      chunk_rows: 1500
      parallelism: 2
`

// mirrorQueries read a source table's rows as text, in the form rowsOf
// gives the mirror's: one line per row, keyed by the primary key.
var mirrorQueries = map[string]string{
	"orders": "SELECT id, customer, amount, note, DATE_FORMAT(ts, '%Y-%m-%d %H:%i:%s.%f'), status, extra FROM shop.orders",
	"lines":  "SELECT order_id, line, qty, HEX(sku) FROM shop.lines",
}

// workload changes the shop's tables at random: single-row inserts,
// updates, deletes and primary-key changes, multi-statement transactions,
// now and then a big transaction, and (once, when ddl is set) column
// changes. It runs until stop is closed.
type workload struct {
	db      *mariadbtest.Server
	rng     *rand.Rand
	nextID  int64
	ops     atomic.Int64
	ddlDone atomic.Bool
}

func (w *workload) run(t *testing.T, stop <-chan struct{}, ddlAfter int64) {
	t.Helper()
	var conn *client.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		default:
		}
		if conn == nil {
			c, err := w.db.Connect()
			if err != nil {
				time.Sleep(50 * time.Millisecond) // the server restarts
				continue
			}
			conn = c
		}
		stmts := w.next(ddlAfter)
		if err := execTx(conn, stmts); err != nil {
			// A restarting server drops the connection mid-transaction;
			// the transaction rolled back whole.
			conn.Close()
			conn = nil
			continue
		}
		w.ops.Add(1)
	}
}

func execTx(conn *client.Conn, stmts []string) error {
	if len(stmts) == 1 {
		_, err := conn.Execute(stmts[0])
		return err
	}
	if _, err := conn.Execute("BEGIN"); err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := conn.Execute(s); err != nil {
			conn.Execute("ROLLBACK")
			return err
		}
	}
	_, err := conn.Execute("COMMIT")
	return err
}

// next picks the next transaction.
func (w *workload) next(ddlAfter int64) []string {
	r := w.rng
	if ddlAfter > 0 && w.ops.Load() >= ddlAfter && !w.ddlDone.Load() {
		w.ddlDone.Store(true)
		return []string{"ALTER TABLE shop.orders ADD COLUMN extra VARCHAR(20)"}
	}
	id := func() int64 { return 1 + r.Int64N(w.nextID) }
	one := func() string {
		extra := ""
		if w.ddlDone.Load() {
			extra = fmt.Sprintf(", extra = 'x%d'", r.IntN(100))
		}
		switch k := r.IntN(100); {
		case k < 35:
			w.nextID++
			return fmt.Sprintf("INSERT INTO shop.orders (id, customer, amount, note, ts, status) VALUES (%d, %d, %d.%02d, 'n%d', '2026-11-23 10:%02d:%02d.%06d', 'new')",
				w.nextID, r.IntN(1000), r.IntN(10000), r.IntN(100), r.IntN(1e6), r.IntN(60), r.IntN(60), r.IntN(1e6))
		case k < 65:
			return fmt.Sprintf("UPDATE shop.orders SET amount = amount + 1, status = 'paid', note = 'u%d'%s WHERE id = %d", r.IntN(1e6), extra, id())
		case k < 75:
			return fmt.Sprintf("DELETE FROM shop.orders WHERE id = %d", id())
		case k < 80:
			// A primary-key change, to a key not used yet.
			w.nextID++
			return fmt.Sprintf("UPDATE IGNORE shop.orders SET id = %d WHERE id = %d", w.nextID, id())
		case k < 90:
			return fmt.Sprintf("INSERT INTO shop.lines (order_id, line, qty, sku) VALUES (%d, %d, %d, UNHEX('%02x00ff%02x')) ON DUPLICATE KEY UPDATE qty = qty + 1",
				id(), r.IntN(5), r.IntN(10), r.IntN(256), r.IntN(256))
		default:
			return fmt.Sprintf("DELETE FROM shop.lines WHERE order_id = %d", id())
		}
	}
	switch k := r.IntN(200); {
	case k == 0:
		// A big transaction: thousands of rows in one.
		lo := id()
		return []string{fmt.Sprintf("UPDATE shop.orders SET customer = customer + 1 WHERE id BETWEEN %d AND %d", lo, lo+12000)}
	case k < 40:
		n := 2 + r.IntN(8)
		var stmts []string
		for range n {
			stmts = append(stmts, one())
		}
		return stmts
	}
	return []string{one()}
}

// TestCDCCrashLoop mirrors a MariaDB database while a random workload runs
// and the real binary is SIGKILLed again and again, the first times while
// its initial snapshot is still reading; then, with the daemon running,
// the database server itself is restarted. Once the daemon has caught up
// with the log's end, every mirror equals its source table row by row.
// `make soak` runs a longer version (SLUICE_SOAK=1).
func TestCDCCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop runs the real binary many times")
	}
	kills, seed := 10, 30000
	if os.Getenv("SLUICE_SOAK") != "" {
		kills, seed = 40, 300000
	}
	db := mariadbtest.Start(t)
	db.Exec(t, "CREATE DATABASE shop",
		`CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, customer INT NOT NULL, amount DECIMAL(12,2), note VARCHAR(64),
			ts DATETIME(6), status ENUM('new','paid','shipped'))`,
		`CREATE TABLE shop.lines (order_id BIGINT, line INT, qty INT, sku VARBINARY(16), PRIMARY KEY (order_id, line))`,
		fmt.Sprintf(`INSERT INTO shop.orders SELECT seq, seq %% 1000, seq / 100, CONCAT('seed ', seq),
			'2026-11-23 01:02:03.456789' + INTERVAL seq SECOND, 'new' FROM shop.seq_1_to_%d`, seed),
		fmt.Sprintf(`INSERT INTO shop.lines SELECT seq, seq %% 3, seq %% 7, UNHEX(LPAD(HEX(seq), 8, '0')) FROM shop.seq_1_to_%d`, seed/3))
	e := newEnv(t, 1, "unused")
	cfg := e.writeCDCPipeline(db)

	w := &workload{db: db, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11)), nextID: int64(seed)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(t, stop, 1500) }()
	e.killLoop(cfg, kills, 500*time.Millisecond, 2500*time.Millisecond, func(k int, wait time.Duration) {
		t.Logf("kill %d after %s; %d transactions so far", k+1, wait, w.ops.Load())
	})

	d := e.start(cfg)
	d.waitReady()
	time.Sleep(time.Second) // let the running daemon read some changes before the server goes away
	db.Restart(t)
	before := w.ops.Load()
	t.Logf("database restarted; %d transactions so far", before)
	waitFor(t, 30*time.Second, "more transactions after the database restart", func() bool {
		return w.ops.Load() > before+200 && !d.exited()
	})
	close(stop)
	wg.Wait()
	if !w.ddlDone.Load() {
		t.Fatalf("the workload never reached its DDL (%d transactions)", w.ops.Load())
	}
	file, pos := db.Position(t)
	end := fmt.Sprintf("%s:%d", file, pos)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if d.exited() {
			t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		// Caught up: the log's end reached, and the snapshot finished (a
		// snapshot still reading would leave rows to come).
		orders, lines := e.mirrorPosition("mirror.shop_orders", "shop/shop.orders"), e.mirrorPosition("mirror.shop_lines", "shop/shop.lines")
		if orders == end+" done" && lines == end+" done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirrors did not reach the log's end %s: orders at %s, lines at %s; log:\n%s", end, orders, lines, d.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, took := d.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit code %d after %s; log:\n%s", code, took, d.logTail())
	}
	t.Logf("%d transactions", w.ops.Load())
	// A start removes what killed runs and interrupted merges left: no
	// file is left that no snapshot references, and none that one does
	// was deleted (the comparison below reads them all).
	d = e.start(cfg)
	d.waitReady()
	for _, name := range []string{"mirror.shop_orders", "mirror.shop_lines"} {
		waitFor(t, time.Minute, "orphans of "+name+" removed", func() bool {
			// Reloaded each time: a merge may commit meanwhile.
			tbl, done := e.loadTable(name)
			defer done()
			return len(unreferenced(t, tbl, strings.TrimPrefix(tbl.Location(), "file://"))) == 0
		})
	}
	if code, _ := d.stop(); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, d.logTail())
	}
	for tbl, q := range mirrorQueries {
		want := sourceRows(t, db, q)
		got := e.mirrorRows("mirror.shop_" + tbl)
		compareRows(t, tbl, got, want)
	}
	if t.Failed() && os.Getenv("SLUICE_KEEP") != "" {
		exec.Command("cp", "-r", e.dir, os.Getenv("SLUICE_KEEP")).Run()
	}
	// The upserts piled up delete files, which compactions applied along
	// the way (killed mid-merge too, leaving orphans the next start removed).
	if n := e.compactions("mirror.shop_orders"); n == 0 {
		t.Error("no compaction applied the orders mirror's deletes")
	} else {
		t.Logf("%d compactions of the orders mirror", n)
	}
}

// compactions counts the rewrite snapshots in a table's history.
func (e *env) compactions(table string) int {
	e.t.Helper()
	tbl, done := e.loadTable(table)
	defer done()
	n := 0
	for _, snap := range tbl.Metadata().Snapshots() {
		if snap.Summary != nil && snap.Summary.Properties["sluice.compaction"] != "" {
			n++
		}
	}
	return n
}

// writeCDCPipeline writes cdcPipeline for the server as the test's
// pipeline.yaml.
func (e *env) writeCDCPipeline(db *mariadbtest.Server) string {
	e.t.Helper()
	text := strings.NewReplacer("{{dir}}", e.dir, "{{port}}", strconv.Itoa(int(db.Port))).Replace(cdcPipeline)
	path := filepath.Join(e.dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// mirrorPosition is the log position a mirror's last commit reached,
// followed by " done" once its snapshot finished.
func (e *env) mirrorPosition(table, stream string) string {
	e.t.Helper()
	if _, err := os.Stat(e.sqliteCatalog()); err != nil {
		return ""
	}
	cat, done := e.openCatalog(e.sqliteCatalog())
	defer done()
	tbl, err := cat.LoadTable(context.Background(), strings.Split(table, "."))
	if err != nil {
		return ""
	}
	for snap := tbl.CurrentSnapshot(); snap != nil; {
		if snap.Summary != nil && snap.Summary.Properties["sluice.stream"] == stream {
			pos := snap.Summary.Properties["sluice.source.cdc-position"]
			if strings.Contains(snap.Summary.Properties["sluice.source.cdc-snapshot"], `"done":true`) {
				pos += " done"
			}
			return pos
		}
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = tbl.SnapshotByID(*snap.ParentSnapshotID)
	}
	return ""
}

// sourceRows reads a query's rows as lines of text, keyed by the first
// column(s) up to the primary key's width (the whole line is compared).
func sourceRows(t *testing.T, db *mariadbtest.Server, q string) map[string]int {
	t.Helper()
	conn, err := db.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := conn.Execute(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out := map[string]int{}
	for i := range res.RowNumber() {
		var cells []string
		for j := range res.ColumnNumber() {
			v, err := res.GetValue(i, j)
			if err != nil {
				t.Fatal(err)
			}
			switch x := v.(type) {
			case nil:
				cells = append(cells, "∅")
			case []byte:
				cells = append(cells, string(x))
			default:
				cells = append(cells, fmt.Sprint(x))
			}
		}
		out[strings.Join(cells, "|")]++
	}
	return out
}

// mirrorRows reads a mirror through iceberg-go's scan, equality deletes
// applied by iceberg-go, each row in sourceRows' form.
func (e *env) mirrorRows(name string) map[string]int {
	e.t.Helper()
	tbl, done := e.loadTable(name)
	defer done()
	_, it, err := tbl.Scan().ToArrowRecords(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int{}
	for rec, err := range it {
		if err != nil {
			e.t.Fatal(err)
		}
		for i := range int(rec.NumRows()) {
			var cells []string
			for j := range int(rec.NumCols()) {
				cells = append(cells, cellText(rec.Column(j), i))
			}
			out[strings.Join(cells, "|")]++
		}
		rec.Release()
	}
	return out
}

func cellText(col arrow.Array, i int) string {
	if col.IsNull(i) {
		return "∅"
	}
	switch c := col.(type) {
	case *array.Int32:
		return strconv.Itoa(int(c.Value(i)))
	case *array.Int64:
		return strconv.FormatInt(c.Value(i), 10)
	case *array.String:
		return c.Value(i)
	case *array.LargeString:
		return c.Value(i)
	case *array.Binary:
		return strings.ToUpper(fmt.Sprintf("%x", c.Value(i)))
	case *array.LargeBinary:
		return strings.ToUpper(fmt.Sprintf("%x", c.Value(i)))
	case *array.Decimal128:
		scale := c.DataType().(*arrow.Decimal128Type).Scale
		v := c.Value(i)
		return new(big.Rat).SetFrac(v.BigInt(), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)).FloatString(int(scale))
	case *array.Timestamp:
		return time.UnixMicro(int64(c.Value(i))).UTC().Format("2006-01-02 15:04:05.000000")
	}
	return fmt.Sprintf("<%T>", col)
}

func compareRows(t *testing.T, table string, got, want map[string]int) {
	t.Helper()
	var missing, extra []string
	for r, n := range want {
		if got[r] != n {
			missing = append(missing, r)
		}
	}
	for r, n := range got {
		if want[r] != n {
			extra = append(extra, fmt.Sprintf("%s (×%d)", r, n))
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		slices.Sort(missing)
		slices.Sort(extra)
		t.Errorf("mirror of %s: %d rows, source %d; %d source rows missing or different, e.g. %v; %d mirror rows not in the source, e.g. %v",
			table, total(got), total(want), len(missing), missing[:min(5, len(missing))], len(extra), extra[:min(5, len(extra))])
	}
}

func total(m map[string]int) int {
	n := 0
	for _, c := range maps.All(m) {
		n += c
	}
	return n
}
