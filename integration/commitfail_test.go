package integration

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	_ "modernc.org/sqlite"
)

// sqliteBusyTimeout is the busy_timeout sinks/iceberg sets on SQLite
// catalogs: how long one commit attempt waits for a locked catalog.
const sqliteBusyTimeout = 10 * time.Second

// TestCommitFailureIsLoud locks the catalog so every commit fails: the
// daemon says so on /healthz and in its metrics, then gives up and exits
// non-zero after checkpoint.commit_failure_timeout instead of buffering
// forever. Restarted once the catalog is back, it loses and doubles nothing.
func TestCommitFailureIsLoud(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	e := newEnv(t, 3, "events")
	const failureTimeout = 3 * time.Second
	cfg := e.configWith(configOpts{Interval: "300ms", CommitFailureTimeout: failureTimeout.String()})

	const chunk = 2000
	produce(t, e.addr, e.topic, eventRange(0, chunk))
	d := e.start(cfg)
	d.waitReady()
	waitFor(t, time.Minute, "the first events to commit", func() bool {
		if d.exited() {
			t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		return e.caughtUp("events")
	})
	if n, _ := d.metric("sluice_commit_failures_total"); n != 0 {
		t.Fatalf("%v commit failures before the catalog was locked", n)
	}

	release := lockCatalog(t, e.sqliteCatalog())
	locked := time.Now()
	produce(t, e.addr, e.topic, eventRange(chunk, 2*chunk))

	// From here on the catalog is locked: the test reads only the daemon.
	// A failed attempt takes the busy timeout; the daemon gives up on the
	// first failure that ends failureTimeout after the first one.
	waitFor(t, 2*sqliteBusyTimeout, "/healthz to name the failing table", func() bool {
		if d.exited() {
			t.Fatalf("daemon exited before /healthz reported the failure; log:\n%s", d.logTail())
		}
		code, body, err := d.get("/healthz")
		if err == nil && code != 200 {
			t.Logf("/healthz after %s: %d %s", time.Since(locked).Round(time.Millisecond), code, strings.TrimSpace(body))
		}
		return err == nil && code == 503 && strings.Contains(body, "table it.events: commits failing")
	})
	failures, ok := d.metric("sluice_commit_failures_total", `table="it.events"`)
	if !ok || failures < 1 {
		t.Errorf("sluice_commit_failures_total{table=\"it.events\"} = %v (metrics answered: %v), want >= 1", failures, ok)
	}

	// The failure clock starts when the first attempt fails, one busy
	// timeout after the lock; the attempt that finds it past failureTimeout
	// ends at most another busy timeout (plus backoff) later: about 20s
	// after the lock. Stopping then must not wait checkpoint.shutdown_timeout
	// (20s) for checkpoints that can no longer commit: the slack is below it.
	deadline := locked.Add(failureTimeout + 2*sqliteBusyTimeout + 10*time.Second)
	code := d.waitExit(time.Until(deadline))
	took := time.Since(locked)
	t.Logf("daemon exited with code %d %s after the catalog was locked", code, took.Round(time.Millisecond))
	if code == 0 {
		t.Errorf("daemon exited with code 0 after giving up; want non-zero")
	}
	if log := d.logTail(); !strings.Contains(log, "commit table it.events") || !strings.Contains(log, "giving up") {
		t.Errorf("log does not say the daemon gave up on it.events:\n%s", log)
	}

	release()
	produce(t, e.addr, e.topic, eventRange(2*chunk, 3*chunk))
	d = e.start(cfg)
	d.waitReady()
	waitFor(t, time.Minute, "the table to catch up after the restart", func() bool {
		if d.exited() {
			t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		return e.caughtUp("events")
	})
	if code, took := d.stop(); code != 0 {
		t.Fatalf("exit code %d after %s; log:\n%s", code, took, d.logTail())
	}
	tbl, done := e.loadTable("it.events")
	defer done()
	checkExactlyOnce(t, tbl, 3*chunk)
}

// TestSlowTableKeepsGroupStable stalls every commit while a large backlog
// arrives. Backpressure must pause fetching rather than stop polling: the
// daemon stays the same member of the same group generation, stops reading
// once its queues are full, keeps its memory within memory_budget plus the
// runtime's own, and once the table is back every record lands exactly once.
func TestSlowTableKeepsGroupStable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary with a large backlog")
	}
	const (
		budget  = 64 << 20 // the minimum memory_budget
		total   = 300_000
		warmup  = 1000
		trickle = 100
		minHold = 15 * time.Second
	)
	e := newEnv(t, 4, "events")
	groups := watchGroup(t, e.broker)
	cfg := e.configWith(configOpts{Interval: "100ms", CommitFailureTimeout: "5m", MemoryBudget: "64MiB"})

	produce(t, e.addr, e.topic, paddedEvents(0, warmup))
	d := e.start(cfg)
	d.waitReady()
	waitFor(t, time.Minute, "the warm-up events to commit", func() bool {
		if d.exited() {
			t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		return e.caughtUp("events")
	})
	// The group before the stall: one static member, stable, heartbeating
	// with the generation it joined.
	adm := newAdmin(t, e.addr)
	var member kadm.DescribedGroupMember
	waitFor(t, time.Minute, "a stable group with one member", func() bool {
		g, ok := describeGroup(adm, "sluice.it.events")
		if !ok || g.State != "Stable" || len(g.Members) != 1 {
			return false
		}
		member = g.Members[0]
		return true
	})
	waitFor(t, 30*time.Second, "a heartbeat from the member", func() bool {
		_, hb := groups.snapshot()
		return len(hb) > 0
	})
	joins, hb := groups.snapshot()
	generation := hb[len(hb)-1].generation
	mem := watchMemory(t, d)
	// memory_budget bounds what the daemon buffers: records and open files.
	// The process's own footprint comes on top: the mapped code of a binary
	// with some 80MB of text (iceberg-go, arrow, substrait, grpc), of which
	// 55-70MiB is resident depending on the page cache, and ~25MiB of Go
	// heap that dependencies build at init (lz4 tables, substrait and
	// protobuf registries): 76-94MiB idle over our runs. That varies too
	// much for a constant, so it is measured here, idle after the warm-up
	// has run every code path of steady ingestion. The slack covers code
	// first touched later (retries, pausing) and goroutine stacks: 1-3MiB
	// measured. With this data the daemon peaks ~30MiB above idle; with
	// fetch_max_bytes at its former default (budget/4) it peaked 75-95MiB
	// above, which this bound catches.
	const slack = 8 << 20
	idle := procStatusKiB(t, d, "VmRSS") << 10
	limit := idle + budget + slack
	t.Logf("member %s, generation %d; idle: %s", member.MemberID, generation, mem.now())

	checkGroup := func() {
		g, ok := describeGroup(adm, "sluice.it.events")
		if ok && (g.State != "Stable" || len(g.Members) != 1 || g.Members[0].MemberID != member.MemberID) {
			t.Fatalf("group changed: state %s, members %+v; log:\n%s", g.State, g.Members, d.logTail())
		}
	}
	running := func() {
		if d.exited() {
			t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
	}

	// Lock the catalog and give the committer something to commit, then
	// wait until the stall has reached the workers: the committer takes a
	// bounded backlog of sealed checkpoints, and once it is full the workers
	// block and seal no more. Checkpoints come every 100ms, so 2s without a
	// seal means they are blocked.
	release := lockCatalog(t, e.sqliteCatalog())
	locked := time.Now()
	produce(t, e.addr, e.topic, paddedEvents(warmup, warmup+trickle))
	seals, lastSeal := -1.0, time.Now()
	waitFor(t, time.Minute, "the workers to stop sealing checkpoints", func() bool {
		running()
		checkGroup()
		n, _ := d.metric("sluice_checkpoint_seal_duration_seconds_count")
		if n != seals {
			seals, lastSeal = n, time.Now()
		}
		return time.Since(lastSeal) > 2*time.Second
	})
	t.Logf("workers blocked %s after the lock, after %v seals", time.Since(locked).Round(time.Millisecond), seals)

	produced := make(chan error, 1)
	go func() {
		const chunk = 10_000
		for start := warmup + trickle; start < warmup+total; start += chunk {
			if err := produceErr(e.addr, e.topic, paddedEvents(start, min(start+chunk, warmup+total))); err != nil {
				produced <- err
				return
			}
		}
		produced <- nil
	}()
	// Hold the lock until commits have stalled for minHold, the producer is
	// done and backpressure has paused fetching.
	var pausedMax float64
	producerDone := false
	waitFor(t, 2*time.Minute, "the backlog to arrive with fetching paused", func() bool {
		running()
		checkGroup()
		select {
		case err := <-produced:
			if err != nil {
				t.Fatalf("produce: %v", err)
			}
			producerDone = true
		default:
		}
		if p, ok := d.metric("sluice_paused_partitions"); ok {
			pausedMax = max(pausedMax, p)
		}
		return producerDone && pausedMax > 0 && time.Since(locked) >= minHold
	})
	read, _ := d.metric("sluice_records_total", `stage="read"`)
	failures, _ := d.metric("sluice_commit_failures_total")
	t.Logf("releasing the catalog %s after the lock: %v of %d records read, up to %v partitions paused, %v failed commits; %s",
		time.Since(locked).Round(time.Millisecond), read, warmup+total, pausedMax, failures, mem.now())
	if read >= warmup+total {
		t.Errorf("the daemon read the whole backlog while its table was stalled; backpressure should have paused fetching")
	}
	release()

	waitFor(t, 2*time.Minute, "the table to catch up after the stall", func() bool {
		running()
		checkGroup()
		return e.caughtUp("events")
	})
	peak := mem.peak()
	t.Logf("caught up %s after the lock; %s", time.Since(locked).Round(time.Millisecond), mem.summary())

	joinsAfter, hbAfter := groups.snapshot()
	if joinsAfter != joins {
		t.Errorf("%d JoinGroup requests during the stall and catch-up: the group rebalanced", joinsAfter-joins)
	}
	beats := hbAfter[len(hb):]
	for _, h := range beats {
		if h.generation != generation || h.member != member.MemberID {
			t.Errorf("heartbeat at %s: generation %d member %s, want generation %d member %s",
				h.at.Format(time.TimeOnly), h.generation, h.member, generation, member.MemberID)
		}
	}
	if len(beats) == 0 {
		t.Errorf("no heartbeats during the stall and catch-up")
	}
	if peak > limit && os.Getenv("SLUICE_RACE") == "" { // the race detector's shadow memory is not the daemon's
		t.Errorf("peak RSS %d MiB exceeds the idle daemon's %d MiB + memory_budget %d MiB + %d MiB slack",
			peak>>20, idle>>20, budget>>20, slack>>20)
	}

	if code, took := d.stop(); code != 0 {
		t.Fatalf("exit code %d after %s; log:\n%s", code, took, d.logTail())
	}
	tbl, done := e.loadTable("it.events")
	defer done()
	checkExactlyOnce(t, tbl, warmup+total)
}

// paddedEvents are event(i) for i in [from, to), padded to about 300 bytes
// with a key the stream ignores: heavy on the wire and in the fetch buffers,
// light in the table. The padding is random, like the tokens and hashes of
// real events, so the batches compress about as much as real JSON does;
// runs of one letter would compress many times over, and memory follows
// decompressed bytes while fetch sizes count compressed ones.
func paddedEvents(from, to int) [][]byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	vals := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		v := event(i)
		pad := max(300-len(v)-len(`,"pad":""`), 0)
		v = append(v[:len(v)-1], `,"pad":"`...)
		for range pad {
			v = append(v, alphabet[rand.IntN(len(alphabet))])
		}
		vals = append(vals, append(v, `"}`...))
	}
	return vals
}

// lockCatalog takes SQLite's write lock on the catalog database and holds
// it until release (or cleanup): every commit then fails with "database is
// locked" after the busy timeout, while readers still read.
func lockCatalog(t *testing.T, path string) (release func()) {
	t.Helper()
	// Our busy timeout outlasts a commit the daemon may be making.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		conn.Close()
		db.Close()
		t.Fatalf("lock catalog: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Errorf("unlock catalog: %v", err)
			}
			conn.Close()
			db.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// groupWatch records the consumer-group requests the broker receives.
type groupWatch struct {
	mu         sync.Mutex
	joins      int
	heartbeats []heartbeat
}

type heartbeat struct {
	at         time.Time
	generation int32
	member     string
}

// watchGroup observes JoinGroup and Heartbeat requests on the broker
// without changing how it answers them. Classic DescribeGroups does not
// report the group generation; the heartbeats of a member do.
func watchGroup(t *testing.T, c *kfake.Cluster) *groupWatch {
	t.Helper()
	w := &groupWatch{}
	c.ControlKey(int16(kmsg.JoinGroup), func(kmsg.Request) (kmsg.Response, error, bool) {
		w.mu.Lock()
		w.joins++
		w.mu.Unlock()
		return nil, nil, false
	})
	c.ControlKey(int16(kmsg.Heartbeat), func(r kmsg.Request) (kmsg.Response, error, bool) {
		hb := r.(*kmsg.HeartbeatRequest)
		w.mu.Lock()
		w.heartbeats = append(w.heartbeats, heartbeat{at: time.Now(), generation: hb.Generation, member: hb.MemberID})
		w.mu.Unlock()
		return nil, nil, false
	})
	return w
}

func (w *groupWatch) snapshot() (joins int, heartbeats []heartbeat) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.joins, append([]heartbeat(nil), w.heartbeats...)
}

func newAdmin(t *testing.T, addr string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func describeGroup(adm *kadm.Client, group string) (kadm.DescribedGroup, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return kadm.DescribedGroup{}, false
	}
	g, ok := gs[group]
	return g, ok && g.Err == nil
}

// memWatch samples the daemon's memory every 50ms until the test ends.
type memWatch struct {
	t *testing.T
	d *daemon

	mu       sync.Mutex
	peakAnon int64 // KiB
	peakHeap float64
}

func watchMemory(t *testing.T, d *daemon) *memWatch {
	t.Helper()
	m := &memWatch{t: t, d: d}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			anon, err := procStatus(d, "RssAnon")
			if err != nil {
				return // exited
			}
			heap, _ := d.metric("go_memstats_heap_inuse_bytes")
			m.mu.Lock()
			m.peakAnon, m.peakHeap = max(m.peakAnon, anon), max(m.peakHeap, heap)
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	return m
}

// peak is the daemon's peak RSS (VmHWM) in bytes.
func (m *memWatch) peak() int64 {
	m.t.Helper()
	return procStatusKiB(m.t, m.d, "VmHWM") << 10
}

func (m *memWatch) now() string {
	m.t.Helper()
	heap, _ := m.d.metric("go_memstats_heap_inuse_bytes")
	return fmt.Sprintf("RSS %d MiB (anonymous %d, file %d), peak %d MiB, Go heap in use %.0f MiB",
		procStatusKiB(m.t, m.d, "VmRSS")>>10, procStatusKiB(m.t, m.d, "RssAnon")>>10,
		procStatusKiB(m.t, m.d, "RssFile")>>10, procStatusKiB(m.t, m.d, "VmHWM")>>10, heap/(1<<20))
}

func (m *memWatch) summary() string {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprintf("%s; sampled peaks: anonymous %d MiB, Go heap in use %.0f MiB", m.now(), m.peakAnon>>10, m.peakHeap/(1<<20))
}

// procStatusKiB reads a field of /proc/PID/status of the daemon, in KiB.
func procStatusKiB(t *testing.T, d *daemon, field string) int64 {
	t.Helper()
	n, err := procStatus(d, field)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func procStatus(d *daemon, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc status %s: %q", field, line)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("/proc status has no %s", field)
}
