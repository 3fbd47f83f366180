package integration

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/colinmarc/hdfs/v2"

	"github.com/sluicehq/sluice/integration/hdfstest"
	_ "github.com/sluicehq/sluice/sinks/hdfs" // the hdfs:// file IO for iceberg-go scans
)

// hdfsLake reads the HDFS test double through the HDFS client, as any
// other reader of the cluster would: a new connection per look, so a
// NameNode restart between two looks does not fail the test.
type hdfsLake struct {
	c *hdfstest.Cluster
}

func newHDFSLake(t *testing.T, c *hdfstest.Cluster) hdfsLake {
	t.Helper()
	return hdfsLake{c: c}
}

func (l hdfsLake) client(t *testing.T) *hdfs.Client {
	t.Helper()
	cl, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: []string{l.c.Addr()}, User: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func (l hdfsLake) url(root string) string { return "hdfs://" + l.c.Addr() + root }

func (l hdfsLake) files(t *testing.T, root string) map[string]int64 {
	t.Helper()
	cl := l.client(t)
	defer cl.Close()
	out := map[string]int64{}
	err := cl.Walk(root, func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !fi.IsDir() {
			out[strings.TrimPrefix(p, root+"/")] = fi.Size()
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

func (l hdfsLake) read(t *testing.T, p string) []byte {
	t.Helper()
	cl := l.client(t)
	defer cl.Close()
	b, err := cl.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hdfsSection is the hdfs section that points the daemon at the double.
func hdfsSection(namenodes ...string) string {
	return fmt.Sprintf("hdfs:\n  namenodes: [%s]\n  user: sluice\n  close_timeout: 30s\n", strings.Join(namenodes, ", "))
}

// noUnderConstruction fails the test if a file of the cluster is still
// being written: after a clean stop, every file Sluice wrote is complete.
func noUnderConstruction(t *testing.T, c *hdfstest.Cluster, prefix string) {
	t.Helper()
	for p, fi := range c.Files() {
		if strings.HasPrefix(p, prefix) && fi.UnderConstruction {
			t.Errorf("file under construction after a clean stop: %s", p)
		}
	}
}

// TestHiveHDFSCrashLoop SIGKILLs the daemon writing a hive table on HDFS
// at random moments and at chosen ones: while files close (the NameNode's
// complete is slow), while the checkpoint record is written, and while
// files are renamed into place. Every record must end up exactly once in
// the visible files, no staged or half-written file may ever be visible,
// and nothing may be left behind.
func TestHiveHDFSCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop runs the real binary many times")
	}
	total, rounds := 60_000, 1
	if os.Getenv("SLUICE_SOAK") != "" {
		total, rounds = 400_000, 8
	}
	c := hdfstest.Start(t, hdfstest.Options{DataNodes: 3})
	lk := newHDFSLake(t, c)
	e := newEnv(t, 4, "events")
	root := "/lake/events"
	cfg := e.hiveConfig(lk.url(root), hdfsSection(`"`+c.Addr()+`"`))
	// Notices of complete hours write _SUCCESS into their directories.
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	withNotify := strings.Replace(string(text), "      format: hive\n", "      format: hive\n      notify:\n        targets: [{type: success_file}]\n", 1)
	if err := os.WriteFile(cfg, []byte(withNotify), 0o644); err != nil {
		t.Fatal(err)
	}
	produced := produceDuring(t, e.addr, e.topic, total, 2000, 100*time.Millisecond, 200*time.Millisecond)

	// While the daemon runs, a reader lists the table again and again: a
	// visible file must always be complete Parquet.
	stopReader := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stopReader:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for p, fi := range c.Files() {
				if strings.HasPrefix(p, root+"/dt=") && !hiddenPath(strings.TrimPrefix(p, root+"/")) && fi.UnderConstruction {
					t.Errorf("a visible file is still being written: %s", p)
				}
			}
		}
	}()

	// during waits until the daemon is inside a call of method on a path
	// holding substr (the double holds each such call for hold), then
	// kills it there.
	during := func(method, substr string, hold time.Duration) func(d *daemon) string {
		return func(d *daemon) string {
			d.waitReady()
			c.SetPathDelay(method, substr, hold)
			defer c.SetPathDelay(method, substr, 0)
			before := c.PathCalls(method, substr)
			deadline := time.Now().Add(20 * time.Second)
			for c.PathCalls(method, substr) == before && time.Now().Before(deadline) && !d.exited() {
				time.Sleep(5 * time.Millisecond)
			}
			d.kill()
			return fmt.Sprintf("during %s of %s", method, substr)
		}
	}
	random := func(d *daemon) string {
		time.Sleep(time.Duration(200+time.Now().UnixNano()%2000) * time.Millisecond)
		d.kill()
		return "at random"
	}
	kills := []func(*daemon) string{
		random,
		during("addBlock", "/_sluice/inprogress/", 300*time.Millisecond), // writing data
		during("complete", "/_sluice/inprogress/", 400*time.Millisecond), // closing data files
		during("create", "checkpoint.json", 400*time.Millisecond),        // writing the record
		during("rename2", "checkpoint.json", 400*time.Millisecond),       // the commit point
		during("rename2", "/_sluice/inprogress/", 400*time.Millisecond),  // making files visible
	}
	k := 0
	for range rounds {
		for _, kill := range kills {
			d := e.start(cfg)
			if d.exited() {
				t.Fatalf("daemon exited on its own; log:\n%s", d.logTail())
			}
			k++
			t.Logf("kill %d %s; recorded positions %v", k, kill(d), hivePositions(t, lk, root, e.topic))
		}
	}
	produced()
	e.catchUp(cfg, func() bool { return e.reached(e.topic, hivePositions(t, lk, root, e.topic)) })
	close(stopReader)
	<-readerDone
	checkHive(t, e, lk, root, total)
	noUnderConstruction(t, c, root+"/")
	// The events span hours 05 to 07: the first two are complete.
	files := lk.files(t, root)
	for hour, want := range map[string]bool{"05": true, "06": true, "07": false} {
		if _, ok := files["dt=2026-11-23/hour="+hour+"/_SUCCESS"]; ok != want {
			t.Errorf("_SUCCESS in hour %s: %t, want %t", hour, ok, want)
		}
	}
}

// TestHiveHDFSFaults runs a hive table on HDFS through injected faults —
// slow closes, failing calls, a DataNode dropping mid-block, a NameNode
// restart — restarting the daemon whenever it exits, as a supervisor
// would. Nothing may be lost or duplicated, and the NameNode must not be
// asked to list directories while the daemon runs.
func TestHiveHDFSFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	total := 40_000
	c := hdfstest.Start(t, hdfstest.Options{DataNodes: 3})
	lk := newHDFSLake(t, c)
	e := newEnv(t, 4, "events")
	root := "/lake/events"
	extra := hdfsSection(`"` + c.Addr() + `"`)
	cfg := e.hiveConfig(lk.url(root), extra)
	produced := produceDuring(t, e.addr, e.topic, total, 1000, 100*time.Millisecond, 100*time.Millisecond)

	var d *daemon
	starts := 0
	ensure := func() {
		if d == nil || d.exited() {
			if d != nil {
				t.Logf("daemon exited (code %d); restarting", d.cmd.ProcessState.ExitCode())
			}
			d = e.start(cfg)
			starts++
		}
	}
	// committed waits for a checkpoint recorded after now, restarting the
	// daemon as often as it exits meanwhile.
	committed := func(what string) {
		t.Helper()
		rec := hiveRecord(t, lk, root)
		before := float64(0)
		if rec != nil {
			before = rec["checkpoint"].(float64)
		}
		seen := 0
		for deadline := time.Now().Add(2 * time.Minute); seen < 2; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint within 2m after %s; log:\n%s", what, d.logTail())
			}
			ensure()
			if r := hiveRecord(t, lk, root); r != nil && r["checkpoint"].(float64) > before {
				seen++
			}
		}
	}
	ensure()
	committed("start")
	faults := []struct {
		name   string
		inject func()
	}{
		{"slow closes", func() { c.SetReplicationDelay(300 * time.Millisecond) }},
		{"slow completes", func() { c.SetReplicationDelay(0); c.SetCompleteDelay(200 * time.Millisecond) }},
		{"failing renames", func() { c.SetCompleteDelay(0); c.FailNext("rename2", 3) }},
		{"failing completes", func() { c.FailNext("complete", 2) }},
		{"failing creates", func() { c.FailNext("create", 2) }},
		{"a DataNode dropping mid-block", func() { c.DropWriteAfter(5000) }},
		{"a NameNode restart", func() { c.RestartNameNode() }},
	}
	for _, f := range faults {
		t.Logf("fault: %s", f.name)
		f.inject()
		committed(f.name)
	}
	produced()
	e.catchUp(cfg, func() bool {
		ensure()
		return e.reached(e.topic, hivePositions(t, lk, root, e.topic))
	})
	if code, _ := d.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit code %d; log:\n%s", code, d.logTail())
	}

	// Steady state: a fresh daemon takes more events; its NameNode calls
	// are what the double served it, and they hold no listing but the
	// start's recovery.
	c.ResetCalls()
	d = e.start(cfg)
	more := 10_000
	for start := total; start < total+more; start += 1000 {
		vals := make([][]byte, 0, 1000)
		for i := start; i < start+1000; i++ {
			vals = append(vals, event(i))
		}
		produce(t, e.addr, e.topic, vals)
		time.Sleep(150 * time.Millisecond)
	}
	waitFor(t, 2*time.Minute, "the table to catch up with the log end", func() bool {
		if d.exited() {
			t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		return e.reached(e.topic, hivePositions(t, lk, root, e.topic))
	})
	served := c.UserCalls("sluice")
	for method, n := range served {
		if got, _ := d.metric("sluice_hdfs_namenode_calls_total", `method="`+method+`"`); got != float64(n) {
			t.Errorf("sluice_hdfs_namenode_calls_total{method=%q} = %.0f, the NameNode served %d", method, got, n)
		}
	}
	if n := served["getListing"]; n > 4 {
		t.Errorf("%d getListing calls: a running daemon must not list", n)
	}
	checkpoints := c.PathCalls("rename2", "checkpoint.json")
	var all int64
	for _, n := range served {
		all += n
	}
	t.Logf("steady state: %d checkpoints, %d NameNode calls: %v", checkpoints, all, served)
	if code, took := d.stop(); code != 0 || took > 30*time.Second {
		t.Fatalf("SIGTERM: exit code %d after %s; log:\n%s", code, took, d.logTail())
	}
	checkHive(t, e, lk, root, total+more)
	noUnderConstruction(t, c, root+"/dt=")
	t.Logf("daemon started %d times", starts+1)
}

// TestIcebergOnHDFS writes an Iceberg table to an hdfs:// warehouse through
// an HA pair whose first NameNode is a standby, under a SIGKILL loop, with
// success_file markers on HDFS, and reads it back with iceberg-go's scan.
func TestIcebergOnHDFS(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop runs the real binary")
	}
	total, kills := 40_000, 3
	c := hdfstest.Start(t, hdfstest.Options{DataNodes: 3})
	lk := newHDFSLake(t, c)
	e := newEnv(t, 4, "events")
	cfg := e.config("300ms", "")
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	warehouse := "hdfs://" + c.Addr() + "/warehouse"
	out := strings.Replace(string(text), "warehouse: file://"+e.dir+"/warehouse", "warehouse: "+warehouse, 1)
	out = strings.Replace(out, "dead_letter:", hdfsSection(`"`+c.StandbyAddr()+`"`, `"`+c.Addr()+`"`)+"dead_letter:", 1)
	out = strings.Replace(out, "      partition: [\"hour(ts)\", \"bucket(4, user)\"]\n",
		"      partition: [\"hour(ts)\", \"bucket(4, user)\"]\n      notify:\n        targets: [{type: success_file}]\n", 1)
	if err := os.WriteFile(cfg, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	produced := produceDuring(t, e.addr, e.topic, total, 2000, 100*time.Millisecond, 200*time.Millisecond)
	e.killLoop(cfg, kills, 500*time.Millisecond, 2500*time.Millisecond, nil)
	produced()
	e.catchUp(cfg, func() bool { return e.caughtUp("events") })
	tbl, done := e.loadTable("it.events")
	defer done()
	if !strings.HasPrefix(tbl.Location(), warehouse) {
		t.Fatalf("table location %s is not under %s", tbl.Location(), warehouse)
	}
	checkExactlyOnce(t, tbl, total)
	// The first two hours are complete (the events span three): their
	// markers are on HDFS.
	data := path.Join(strings.TrimPrefix(tbl.Location(), "hdfs://"+c.Addr()), "data")
	files := lk.files(t, data)
	for _, hour := range []string{"ts_hour=2026-11-23-05", "ts_hour=2026-11-23-06"} {
		if _, ok := files[hour+"/_SUCCESS"]; !ok {
			t.Errorf("no _SUCCESS in %s/%s", data, hour)
		}
	}
	noUnderConstruction(t, c, "/warehouse/")
}
