package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

var sluiceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	args := []string{"build", "-o", sluiceBin}
	if os.Getenv("SLUICE_RACE") != "" {
		// SLUICE_RACE=1 builds the daemon with the race detector; a race
		// makes it exit, which the tests report.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/sluice")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build sluice:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's world: a broker, a directory for the catalog and
// warehouse, and a pipeline config.
type env struct {
	t      *testing.T
	dir    string
	broker *kfake.Cluster
	addr   string
	topic  string
}

func newEnv(t *testing.T, partitions int32, topics ...string) *env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &env{t: t, dir: t.TempDir(), broker: c, addr: c.ListenAddrs()[0], topic: topics[0]}
}

// eventsConfig is the stream most tests use: events with unique IDs.
const eventsConfig = `
name: it
kafka:
  brokers: ["{{broker}}"]
catalog:
  uri: {{dir}}/catalog.db
  warehouse: file://{{dir}}/warehouse
checkpoint:
  interval: {{interval}}
  shutdown_timeout: 20s
dead_letter:
  file: {{dir}}/dead-letters.jsonl
writer:
  workers: 2
streams:
  - name: events
    topics: ["{{topic}}"]
    max_record_bytes: 4KiB
    event_time: ts
    columns:
      - {name: id, type: string, required: true}
      - {name: ts, type: timestamptz(ms), required: true}
      - {name: user, type: int64}
      - {name: kind, type: string}
      - {name: amount, type: "decimal(12,2)"}
      - {name: tags, type: "list<string>"}
      - {name: geo, type: "struct<country:string,lat:float64>"}
{{etl}}
    table:
      name: it.events
      partition: ["hour(ts)", "bucket(4, user)"]
`

func (e *env) config(interval, etl string) string {
	e.t.Helper()
	text := strings.NewReplacer("{{broker}}", e.addr, "{{dir}}", e.dir, "{{interval}}", interval,
		"{{topic}}", e.topic, "{{etl}}", etl).Replace(eventsConfig)
	path := filepath.Join(e.dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if _, err := config.Parse([]byte(text)); err != nil {
		e.t.Fatalf("test config invalid: %v", err)
	}
	return path
}

// pipelineHeader is the pipeline-wide part of the test configs that take
// the defaults; each test appends its streams.
const pipelineHeader = `
name: it
kafka:
  brokers: ["{{broker}}"]
catalog:
  uri: {{dir}}/catalog.db
  warehouse: file://{{dir}}/warehouse
checkpoint:
  interval: 300ms
  shutdown_timeout: 20s
dead_letter:
  file: {{dir}}/dead-letters.jsonl
`

// writePipeline writes pipelineHeader followed by body, with {{broker}},
// {{dir}} and the extra old, new pairs replaced, as the test's pipeline.yaml.
func (e *env) writePipeline(body string, replace ...string) string {
	e.t.Helper()
	// The extra pairs first: their new text may hold {{dir}} too.
	text := strings.NewReplacer(replace...).Replace(pipelineHeader + body)
	text = strings.NewReplacer("{{broker}}", e.addr, "{{dir}}", e.dir).Replace(text)
	path := filepath.Join(e.dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// daemon is a running sluice process.
type daemon struct {
	t       *testing.T
	cmd     *exec.Cmd
	done    chan struct{}
	metrics string
	log     string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (e *env) start(cfgPath string, extraArgs ...string) *daemon {
	e.t.Helper()
	addr := freeAddr(e.t)
	logPath := filepath.Join(e.dir, fmt.Sprintf("sluice-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(sluiceBin, append([]string{"run", "-c", cfgPath, "--metrics-addr", addr, "--log-level", "info"}, extraArgs...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	d := &daemon{t: e.t, cmd: cmd, done: make(chan struct{}), metrics: addr, log: logPath}
	go func() {
		cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	e.t.Cleanup(func() {
		cmd.Process.Kill()
		<-d.done
	})
	return d
}

// waitReady waits until the daemon serves /healthz, i.e. it finished
// starting and handles signals.
func (d *daemon) waitReady() {
	d.t.Helper()
	waitFor(d.t, time.Minute, "the daemon to be ready", func() bool {
		if d.exited() {
			d.t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		code, _, err := d.get("/healthz")
		return err == nil && code == 200
	})
}

func (d *daemon) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// stop sends SIGTERM and returns the exit code and how long the exit took.
func (d *daemon) stop() (int, time.Duration) {
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		d.t.Fatalf("daemon did not exit within 60s of SIGTERM; log:\n%s", d.logTail())
	}
	return d.cmd.ProcessState.ExitCode(), time.Since(start)
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.log)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

func (d *daemon) get(path string) (int, string, error) {
	resp, err := http.Get("http://" + d.metrics + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String(), nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func produce(t *testing.T, addr, topic string, values [][]byte) {
	t.Helper()
	if err := produceErr(addr, topic, values); err != nil {
		t.Fatal(err)
	}
}

// produceErr spreads values round-robin over the topic's partitions; it is
// safe to call from any goroutine.
func produceErr(addr, topic string, values [][]byte) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Value: v}
	}
	return cl.ProduceSync(context.Background(), recs...).FirstErr()
}

// endOffsets returns the log end offset of every partition of topic.
func endOffsets(t *testing.T, addr, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func (e *env) loadTable(name string) (*table.Table, func()) {
	e.t.Helper()
	cat, closeCat, err := iceberg.OpenCatalog(context.Background(), config.Catalog{
		Type: "sql", URI: filepath.Join(e.dir, "catalog.db"), Warehouse: "file://" + e.dir + "/warehouse", Name: "sluice",
	})
	if err != nil {
		e.t.Fatal(err)
	}
	tbl, err := cat.LoadTable(context.Background(), iceberg.Identifier(name))
	if err != nil {
		closeCat()
		e.t.Fatal(err)
	}
	return tbl, func() { closeCat() }
}

// positions reads the committed positions of the stream from the table, or
// nil when the table does not exist yet.
func (e *env) positions(stream string) map[int32]int64 {
	e.t.Helper()
	if _, err := os.Stat(e.sqliteCatalog()); err != nil {
		return nil // opening would create the catalog before the daemon does
	}
	return e.positionsFrom(e.sqliteCatalog(), stream)
}

func (e *env) caughtUp(stream string) bool {
	return e.reached(e.topic, e.positions(stream))
}

// scanColumn reads one string column of the table through iceberg-go's own
// scan: a reader independent of Sluice's write path (manifests, stats,
// Parquet decoding all by iceberg-go and arrow-go).
func scanColumn(t *testing.T, tbl *table.Table, column string, opts ...table.ScanOption) map[string]int {
	t.Helper()
	opts = append(opts, table.WithSelectedFields(column))
	_, it, err := tbl.Scan(opts...).ToArrowRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for rec, err := range it {
		if err != nil {
			t.Fatal(err)
		}
		col := rec.Column(0)
		for i := range col.Len() {
			switch c := col.(type) {
			case *array.String:
				counts[c.Value(i)]++
			case *array.LargeString:
				counts[c.Value(i)]++
			case *array.StringView:
				counts[c.Value(i)]++
			default:
				t.Fatalf("column %s is %T", column, col)
			}
		}
		rec.Release()
	}
	return counts
}

// configOpts vary the events pipeline beyond what config takes. Empty
// fields keep what config writes.
type configOpts struct {
	Interval string // checkpoint.interval (required)
	ETL      string
	// CatalogURI replaces the SQLite catalog in the test directory, e.g.
	// with a postgres:// URL.
	CatalogURI           string
	CommitFailureTimeout string // checkpoint.commit_failure_timeout
	MemoryBudget         string // memory_budget
}

// configWith is config with the settings of o; it writes the same file.
func (e *env) configWith(o configOpts) string {
	e.t.Helper()
	text := eventsConfig
	edit := func(old, new string) {
		if !strings.Contains(text, old) {
			e.t.Fatalf("configWith: eventsConfig no longer holds %q", old)
		}
		text = strings.Replace(text, old, new, 1)
	}
	if o.CatalogURI != "" {
		edit("uri: {{dir}}/catalog.db", "uri: "+strconv.Quote(o.CatalogURI))
	}
	if o.CommitFailureTimeout != "" {
		edit("  shutdown_timeout: 20s\n", "  shutdown_timeout: 20s\n  commit_failure_timeout: "+o.CommitFailureTimeout+"\n")
	}
	if o.MemoryBudget != "" {
		edit("name: it\n", "name: it\nmemory_budget: "+o.MemoryBudget+"\n")
	}
	text = strings.NewReplacer("{{broker}}", e.addr, "{{dir}}", e.dir, "{{interval}}", o.Interval,
		"{{topic}}", e.topic, "{{etl}}", o.ETL).Replace(text)
	path := filepath.Join(e.dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if _, err := config.Parse([]byte(text)); err != nil {
		e.t.Fatalf("test config invalid: %v", err)
	}
	return path
}

// sqliteCatalog is the catalog URI config writes.
func (e *env) sqliteCatalog() string { return filepath.Join(e.dir, "catalog.db") }

// openCatalog opens the catalog at uri (a SQLite path or a postgres:// URL)
// as the daemon does; the returned func closes it.
func (e *env) openCatalog(uri string) (catalog.Catalog, func()) {
	e.t.Helper()
	cat, closeCat, err := iceberg.OpenCatalog(context.Background(), config.Catalog{
		Type: "sql", URI: uri, Warehouse: "file://" + e.dir + "/warehouse", Name: "sluice",
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return cat, func() { closeCat() }
}

// loadTableFrom is loadTable through the catalog at uri.
func (e *env) loadTableFrom(uri, name string) (*table.Table, func()) {
	e.t.Helper()
	cat, closeCat := e.openCatalog(uri)
	tbl, err := cat.LoadTable(context.Background(), iceberg.Identifier(name))
	if err != nil {
		closeCat()
		e.t.Fatal(err)
	}
	return tbl, closeCat
}

// positionsFrom is positions read through the catalog at uri: nil until the
// table exists. Opening a catalog creates its SQL tables, so with a server
// catalog call it only once the daemon has started (waitReady).
func (e *env) positionsFrom(uri, stream string) map[int32]int64 {
	e.t.Helper()
	return e.tablePositions(uri, "it.events", stream, e.topic)
}

// tablePositions reads the positions a stream committed to a table for one
// topic: nil until the catalog or the table exists.
func (e *env) tablePositions(uri, tableName, stream, topic string) map[int32]int64 {
	e.t.Helper()
	cat, closeCat, err := iceberg.OpenCatalog(context.Background(), config.Catalog{
		Type: "sql", URI: uri, Warehouse: "file://" + e.dir + "/warehouse", Name: "sluice",
	})
	if err != nil {
		return nil
	}
	defer closeCat()
	tbl, err := cat.LoadTable(context.Background(), iceberg.Identifier(tableName))
	if err != nil {
		return nil
	}
	st, err := iceberg.LoadState(tbl, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	return st.Positions[topic]
}

// reached reports whether positions equal the log end of every non-empty
// partition of topic.
func (e *env) reached(topic string, pos map[int32]int64) bool {
	e.t.Helper()
	for p, end := range endOffsets(e.t, e.addr, topic) {
		if end > 0 && pos[p] != end {
			return false
		}
	}
	return true
}

// caughtUpIn is caughtUp through the catalog at uri.
func (e *env) caughtUpIn(uri, stream string) bool {
	e.t.Helper()
	return e.reached(e.topic, e.positionsFrom(uri, stream))
}

// checkExactlyOnce fails the test unless the table's ids are exactly
// e-0 .. e-(total-1), each once.
func checkExactlyOnce(t *testing.T, tbl *table.Table, total int) {
	t.Helper()
	checkIDs(t, scanColumn(t, tbl, "id"), total)
}

// checkIDs fails the test unless ids counts exactly e-0 .. e-(total-1),
// each once.
func checkIDs(t *testing.T, ids map[string]int, total int) {
	t.Helper()
	missing, dup := 0, 0
	for i := range total {
		switch n := ids[fmt.Sprintf("e-%d", i)]; {
		case n == 0:
			missing++
		case n > 1:
			dup++
		}
	}
	if missing > 0 || dup > 0 || len(ids) != total {
		t.Fatalf("table holds %d distinct ids, want %d: %d missing, %d duplicated", len(ids), total, missing, dup)
	}
}

// catchUp starts the daemon, waits until reached reports the table at the
// log end, and stops it, which must be clean and quick.
func (e *env) catchUp(cfg string, reached func() bool) {
	e.t.Helper()
	d := e.start(cfg)
	waitFor(e.t, 3*time.Minute, "the table to catch up with the log end", func() bool {
		if d.exited() {
			e.t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		return reached()
	})
	d.waitReady()
	if code, took := d.stop(); code != 0 || took > 30*time.Second {
		e.t.Fatalf("SIGTERM: exit code %d after %s; log:\n%s", code, took, d.logTail())
	}
}

// metric sums the samples of a metric family on /metrics whose labels hold
// every one of match (e.g. `table="it.events"`); ok is false when /metrics
// does not answer.
func (d *daemon) metric(name string, match ...string) (sum float64, ok bool) {
	code, body, err := d.get("/metrics")
	if err != nil || code != 200 {
		return 0, false
	}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		rest, found := strings.CutPrefix(line, name)
		if !found || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		labels, value := "", rest
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			labels, value = rest[:end+1], rest[end+1:]
		}
		matched := true
		for _, m := range match {
			matched = matched && strings.Contains(labels, m)
		}
		if !matched {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			sum += v
		}
	}
	return sum, true
}

// waitExit waits up to timeout for the daemon to exit by itself and returns
// its exit code.
func (d *daemon) waitExit(timeout time.Duration) int {
	d.t.Helper()
	select {
	case <-d.done:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		d.t.Fatalf("daemon did not exit within %s; log:\n%s", timeout, d.logTail())
		return 0
	}
}
