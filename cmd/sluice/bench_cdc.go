package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/sluicehq/sluice/cdc"
	"github.com/sluicehq/sluice/cdc/mariadbtest"
	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/schema"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

// The CDC cases run against a private MariaDB server the benchmark starts:
// cdc-snapshot mirrors a 10-column table of `rows` rows from scratch; then
// a stream of row changes (updates, inserts and deletes in transactions of
// 500 rows) is written while no daemon runs, read raw with go-mysql alone
// (binlog), and applied by the daemon into the mirror (cdc-apply), each in
// its own process.

// cdcBenchState is what the parent tells the CDC children, in the case's
// work directory.
type cdcBenchState struct {
	Port     uint16 `json:"port"`
	From, To string // the change stream: binlog file:offset
	Changes  int64  `json:"changes"`
}

const cdcBenchTable = `CREATE TABLE bench.orders (
	id BIGINT PRIMARY KEY, customer INT NOT NULL, amount DECIMAL(12,2), status ENUM('new','paid','shipped','returned'),
	note VARCHAR(64), created DATETIME(3), updated TIMESTAMP(3) NULL, qty SMALLINT, weight DOUBLE, flags BIT(8))`

func benchCDC(work string, rows int64) ([]benchResult, error) {
	dbDir := filepath.Join(work, "mariadb")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		return nil, err
	}
	srv, err := mariadbtest.Launch(dbDir)
	if err != nil {
		return nil, fmt.Errorf("start MariaDB (the CDC cases need mariadbd; `make test` installs it): %w", err)
	}
	defer srv.Stop()
	conn, err := srv.Connect()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	fmt.Fprintf(os.Stderr, "loading %d rows into a 10-column MariaDB table...\n", rows)
	for _, q := range []string{"CREATE DATABASE bench", cdcBenchTable,
		fmt.Sprintf(`INSERT INTO bench.orders SELECT seq, seq %% 10007, (seq %% 100000) / 100, ELT(1 + seq %% 4, 'new','paid','shipped','returned'),
			CONCAT('order note ', seq), '2026-11-23 00:00:00' + INTERVAL seq SECOND, '2026-11-23 00:00:00' + INTERVAL seq SECOND,
			seq %% 300, seq / 7, seq %% 256 FROM bench.seq_1_to_%d`, rows)} {
		if _, err := conn.Execute(q); err != nil {
			return nil, fmt.Errorf("%.60s: %w", q, err)
		}
	}
	dir := filepath.Join(work, "cdc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	st := cdcBenchState{Port: srv.Port}
	if err := writeCDCState(dir, st); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "case cdc-snapshot...\n")
	snap, err := runBenchChild("cdc-snapshot", "", dir, rows)
	if err != nil {
		return nil, fmt.Errorf("case cdc-snapshot: %w", err)
	}

	from, err := cdc.MasterPosition(conn)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "writing row changes...\n")
	changes, err := writeBenchChanges(conn, rows)
	if err != nil {
		return nil, err
	}
	to, err := cdc.MasterPosition(conn)
	if err != nil {
		return nil, err
	}
	st.From, st.To, st.Changes = from.String(), to.String(), changes
	if err := writeCDCState(dir, st); err != nil {
		return nil, err
	}
	results := []benchResult{snap}
	for _, c := range []string{"binlog", "cdc-apply"} {
		fmt.Fprintf(os.Stderr, "case %s...\n", c)
		r, err := runBenchChild(c, "", dir, changes)
		if err != nil {
			return nil, fmt.Errorf("case %s: %w", c, err)
		}
		results = append(results, r)
	}
	fmt.Fprintf(os.Stderr, "case cdc-scan...\n")
	scan, err := benchUpsertScan(dir)
	if err != nil {
		return nil, fmt.Errorf("case cdc-scan: %w", err)
	}
	return append(results, scan...), nil
}

// benchUpsertScan times full scans of the mirror (iceberg-go's reader):
// as cdc-apply left it (its changes as data and equality-delete files),
// after a compaction applied the deletes, and of the same rows written to
// a table of their own without deletes.
func benchUpsertScan(dir string) ([]benchResult, error) {
	ctx := context.Background()
	cat, closeCat, err := iceberg.OpenCatalog(ctx, config.Catalog{Type: "sql", Name: "sluice",
		URI: filepath.Join(dir, "catalog.db"), Warehouse: "file://" + filepath.Join(dir, "warehouse")})
	if err != nil {
		return nil, err
	}
	defer closeCat()
	tbl, err := cat.LoadTable(ctx, iceberg.Identifier("mirror.bench_orders"))
	if err != nil {
		return nil, err
	}
	scan := func(name string, tbl *table.Table) (benchResult, error) {
		r, err := bestScan(ctx, tbl)
		if err != nil {
			return benchResult{}, err
		}
		var bytes int64
		for _, t := range r.files {
			bytes += t.File.FileSizeBytes()
		}
		deletes := tbl.CurrentSnapshot().Summary.Properties["total-delete-files"]
		return benchResult{Case: name, Events: r.rows, Wall: r.wall.Seconds(), CPU: r.cpu.Seconds(), ChildCPU: true, Files: int64(len(r.files)),
			Note: fmt.Sprintf("%d data files (%.0f MiB), %s delete files", len(r.files), float64(bytes)/(1<<20), deletes)}, nil
	}
	before, err := scan("scan-upserts", tbl)
	if err != nil {
		return nil, err
	}
	// The same rows, appended to a table without deletes.
	rows, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		return nil, err
	}
	sch, err := schema.FromIceberg(tbl.Schema())
	if err != nil {
		return nil, err
	}
	plain, _, err := iceberg.EnsureTable(ctx, cat, config.Table{Name: "mirror.plain_orders"}, sch)
	if err != nil {
		return nil, err
	}
	tx := plain.NewTransaction()
	if err := tx.AppendTable(ctx, rows, 1<<20, nil); err != nil {
		return nil, err
	}
	rows.Release()
	plainTbl, err := tx.Commit(ctx)
	if err != nil {
		return nil, err
	}
	u, err := iceberg.CompactUpserts(ctx, tbl, 256<<20)
	if err != nil {
		return nil, err
	}
	rw := tbl.NewTransaction()
	rewrite := rw.NewRewrite(nil).DataSequenceNumber(u.Seq).ApplyResult(u.Result)
	for _, d := range u.Deletes {
		rewrite.DeleteFile(d)
	}
	if err := rewrite.Commit(ctx); err != nil {
		return nil, err
	}
	if tbl, err = rw.Commit(ctx); err != nil {
		return nil, err
	}
	// As the daemon does after a compaction.
	mtx := tbl.NewTransaction()
	if _, err := mtx.RewriteManifests(ctx); err != nil {
		return nil, err
	}
	if tbl, err = mtx.Commit(ctx); err != nil {
		return nil, err
	}
	after, err := scan("scan-compacted", tbl)
	if err != nil {
		return nil, err
	}
	without, err := scan("scan-no-deletes", plainTbl)
	if err != nil {
		return nil, err
	}
	return []benchResult{before, after, without}, nil
}

// writeBenchChanges updates, inserts and deletes rows in transactions of
// 500 row changes each, and returns how many row changes it made.
func writeBenchChanges(conn *client.Conn, rows int64) (int64, error) {
	var n int64
	next := rows
	for i := int64(0); n < rows/2; i++ {
		lo := 1 + (i*500)%rows
		var q string
		switch i % 4 {
		case 0, 1:
			q = fmt.Sprintf("UPDATE bench.orders SET amount = amount + 1, status = 'paid', updated = NOW(3), note = CONCAT('updated ', id) WHERE id BETWEEN %d AND %d", lo, lo+499)
		case 2:
			q = fmt.Sprintf(`INSERT INTO bench.orders SELECT %d + seq, seq %% 10007, 1.5, 'new', 'inserted', NOW(3), NOW(3), 1, 2.5, 1 FROM bench.seq_1_to_500`, next)
			next += 500
		default:
			q = fmt.Sprintf("DELETE FROM bench.orders WHERE id BETWEEN %d AND %d", lo+250, lo+749)
		}
		res, err := conn.Execute(q)
		if err != nil {
			return 0, fmt.Errorf("%.60s: %w", q, err)
		}
		n += int64(res.AffectedRows)
	}
	return n, nil
}

func writeCDCState(dir string, st cdcBenchState) error {
	b, _ := json.Marshal(st)
	return os.WriteFile(filepath.Join(dir, "state.json"), b, 0o644)
}

func readCDCState(dir string) (cdcBenchState, error) {
	var st cdcBenchState
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// benchBinlogRaw reads the change stream with go-mysql alone, decoding
// every row event, as the baseline of cdc-apply.
func benchBinlogRaw(dir string) (benchResult, error) {
	st, err := readCDCState(dir)
	if err != nil {
		return benchResult{}, err
	}
	from, err := parsePosition(st.From)
	if err != nil {
		return benchResult{}, err
	}
	to, err := parsePosition(st.To)
	if err != nil {
		return benchResult{}, err
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: 9001, Flavor: "mariadb", Host: "127.0.0.1", Port: st.Port, User: "root",
		Logger: slog.New(slog.DiscardHandler), TimestampStringLocation: time.UTC,
	})
	defer syncer.Close()
	start, cpu := time.Now(), cpuNow()
	stream, err := syncer.StartSync(mysql.Position{Name: from.File, Pos: from.Pos})
	if err != nil {
		return benchResult{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var changes int64
	file := from.File
	for {
		ev, err := stream.GetEvent(ctx)
		if err != nil {
			return benchResult{}, err
		}
		switch e := ev.Event.(type) {
		case *replication.RotateEvent:
			file = string(e.NextLogName)
		case *replication.RowsEvent:
			n := int64(len(e.Rows))
			if ev.Header.EventType == replication.UPDATE_ROWS_EVENTv1 || ev.Header.EventType == replication.UPDATE_ROWS_EVENTv2 {
				n /= 2
			}
			changes += n
		}
		if (cdc.Position{File: file, Pos: ev.Header.LogPos}).Compare(to) >= 0 {
			break
		}
	}
	return benchResult{Events: changes, Wall: time.Since(start).Seconds(), CPU: (cpuNow() - cpu).Seconds(), ChildCPU: true,
		Note: "go-mysql alone"}, nil
}

// benchMirror runs the daemon's pipeline with the benchmark's CDC source
// until the mirror holds the whole table (cdc-snapshot) or the whole change
// stream (cdc-apply).
func benchMirror(c, dir string, events int64) (benchResult, error) {
	st, err := readCDCState(dir)
	if err != nil {
		return benchResult{}, err
	}
	cfg, err := config.ParseIn(fmt.Appendf(nil, `
name: bench
catalog: {uri: %q, warehouse: %q}
checkpoint: {interval: 200ms}
cdc:
  - {name: db, host: 127.0.0.1, port: %d, user: root, server_id: 9002, tables: [bench.orders], namespace: mirror,
     compaction: {delete_files: -1}}
`, filepath.Join(dir, "catalog.db"), "file://"+filepath.Join(dir, "warehouse"), st.Port), dir)
	if err != nil {
		return benchResult{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start, cpu := time.Now(), cpuNow()
	p, err := newPipeline(ctx, cfg, log)
	if err != nil {
		return benchResult{}, err
	}
	done := make(chan error, 1)
	go func() { done <- p.run(ctx, "", nil) }()
	want := st.To
	reached := func(props map[string]string) bool {
		if c == "cdc-snapshot" {
			return strings.Contains(props[propCDCSnapshot], `"done":true`)
		}
		return props[propCDCPosition] == want
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return benchResult{}, fmt.Errorf("pipeline stopped: %w", err)
		case <-tick.C:
		}
		tbl := p.committer.Table("db/bench.orders")
		if tbl == nil {
			continue
		}
		state, err := iceberg.LoadState(tbl, "db/bench.orders")
		if err != nil {
			return benchResult{}, err
		}
		if reached(state.Summary) {
			break
		}
	}
	wall, used := time.Since(start).Seconds(), (cpuNow() - cpu).Seconds()
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return benchResult{}, err
	}
	note := "rows read, upserted, committed"
	if c == "cdc-apply" {
		note = "changes applied, committed"
	}
	return benchResult{Events: events, Wall: wall, CPU: used, ChildCPU: true, Note: note}, nil
}

func printCDCBench(out io.Writer, byCase map[string]benchResult) {
	raw, okRaw := byCase["binlog"]
	apply, okApply := byCase["cdc-apply"]
	if okRaw && okApply {
		fmt.Fprintf(out, "cdc apply/raw binlog read: %.2f (changes/s, wall), %.2f (changes per CPU-second); apply %.0f changes/s\n",
			(float64(apply.Events)/apply.Wall)/(float64(raw.Events)/raw.Wall), apply.perCPU()/raw.perCPU(), float64(apply.Events)/apply.Wall)
	}
	if b, ok := byCase["scan-upserts"]; ok {
		a, c := byCase["scan-compacted"], byCase["scan-no-deletes"]
		fmt.Fprintf(out, "scan of the mirror (%d rows): %.2f s with its deletes, %.2f s compacted, %.2f s for the same rows without deletes: compacted/no-deletes %.2f\n",
			b.Events, b.Wall, a.Wall, c.Wall, a.Wall/c.Wall)
	}
	if s, ok := byCase["cdc-snapshot"]; ok {
		fmt.Fprintf(out, "cdc snapshot: %.0f rows/s (10 columns)\n", float64(s.Events)/s.Wall)
	}
}
