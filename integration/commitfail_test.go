package integration

import (
	"context"
	"database/sql"
	"fmt"
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
	// ends at most another busy timeout (plus backoff) later. Stopping then
	// must not wait checkpoint.shutdown_timeout (20s) for checkpoints that
	// can no longer commit: the slack is below that.
	code := d.waitExit(failureTimeout + 2*sqliteBusyTimeout + 10*time.Second)
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

// TestSlowTableKeepsGroupStable stalls every commit for a while as a large
// backlog arrives. Backpressure must pause fetching rather than stop
// polling: the daemon stays the same member of the same group generation,
// its memory stays within memory_budget plus the runtime's own, and once
// the table is back every record lands exactly once.
func TestSlowTableKeepsGroupStable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary with a large backlog")
	}
	const (
		budget  = 64 << 20 // the minimum memory_budget
		total   = 300_000
		warmup  = 1000
		minHold = 15 * time.Second
	)
	e := newEnv(t, 4, "events")
	groups := watchGroup(t, e.broker)
	cfg := e.configWith(configOpts{Interval: "200ms", CommitFailureTimeout: "5m", MemoryBudget: "64MiB"})

	produce(t, e.addr, e.topic, paddedEvents(0, warmup))
	d := e.start(cfg)
	d.waitReady()
	waitFor(t, time.Minute, "the warm-up events to commit", func() bool {
		if d.exited() {
			t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		return e.caughtUp("events")
	})
	// The group's state before the stall: one static member, stable, and
	// heartbeating with the generation it joined.
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
	t.Logf("member %s (instance %v), generation %d, %d joins; idle VmRSS %d MiB", member.MemberID,
		member.InstanceID, generation, joins, procStatusKiB(t, d, "VmRSS")>>10)

	release := lockCatalog(t, e.sqliteCatalog())
	locked := time.Now()
	produced := make(chan error, 1)
	go func() {
		const chunk = 10_000
		for start := warmup; start < warmup+total; start += chunk {
			if err := produceErr(e.addr, e.topic, paddedEvents(start, min(start+chunk, warmup+total))); err != nil {
				produced <- err
				return
			}
		}
		produced <- nil
	}()

	// Hold the lock until commits have stalled for minHold, the producer is
	// done and backpressure has paused fetching; watch the group throughout.
	var (
		pausedMax   float64
		producerOK  bool
		describes   int
		checkGroups = func() {
			g, ok := describeGroup(adm, "sluice.it.events")
			if !ok {
				return
			}
			describes++
			if g.State != "Stable" || len(g.Members) != 1 || g.Members[0].MemberID != member.MemberID {
				t.Fatalf("group changed during the stall: state %s, members %+v; log:\n%s", g.State, g.Members, d.logTail())
			}
		}
	)
	waitFor(t, 2*time.Minute, "commits to stall with fetching paused", func() bool {
		if d.exited() {
			t.Fatalf("daemon exited during the stall; log:\n%s", d.logTail())
		}
		select {
		case err := <-produced:
			if err != nil {
				t.Fatalf("produce: %v", err)
			}
			producerOK = true
			t.Logf("producer done %s after the lock", time.Since(locked).Round(time.Millisecond))
		default:
		}
		checkGroups()
		if p, ok := d.metric("sluice_paused_partitions"); ok && p > pausedMax {
			pausedMax = p
		}
		return producerOK && pausedMax > 0 && time.Since(locked) >= minHold
	})
	failing, _ := d.metric("sluice_commit_failing_seconds")
	peakLocked := procStatusKiB(t, d, "VmHWM")
	t.Logf("released the catalog %s after locking it: %d describes, up to %v partitions paused, commits failing for %.1fs, VmHWM %d MiB",
		time.Since(locked).Round(time.Millisecond), describes, pausedMax, failing, peakLocked>>10)
	release()

	waitFor(t, 2*time.Minute, "the table to catch up after the stall", func() bool {
		if d.exited() {
			t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		checkGroups()
		return e.caughtUp("events")
	})
	peak := procStatusKiB(t, d, "VmHWM") << 10
	t.Logf("caught up %s after locking; peak RSS %d MiB", time.Since(locked).Round(time.Millisecond), peak>>20)

	joinsAfter, hbAfter := groups.snapshot()
	if joinsAfter != joins {
		t.Errorf("%d JoinGroup requests during the stall and catch-up: the group rebalanced", joinsAfter-joins)
	}
	beats := 0
	for _, h := range hbAfter[len(hb):] {
		beats++
		if h.generation != generation || h.member != member.MemberID {
			t.Errorf("heartbeat at %s: generation %d member %s, want generation %d member %s",
				h.at.Format(time.TimeOnly), h.generation, h.member, generation, member.MemberID)
		}
	}
	if beats == 0 {
		t.Errorf("no heartbeats during the stall and catch-up")
	}
	// TODO allowance
	if limit := int64(budget + runtimeAllowance); peak > limit {
		t.Errorf("peak RSS %d MiB exceeds memory_budget %d MiB + %d MiB for the runtime", peak>>20, budget>>20, runtimeAllowance>>20)
	}

	if code, took := d.stop(); code != 0 {
		t.Fatalf("exit code %d after %s; log:\n%s", code, took, d.logTail())
	}
	tbl, done := e.loadTable("it.events")
	defer done()
	checkExactlyOnce(t, tbl, warmup+total)
}

const runtimeAllowance = 64 << 20

// paddedEvents are event(i) for i in [from, to), padded with a key the
// stream ignores to about 300 bytes: heavy on the wire and in the fetch
// buffers, light in the table.
func paddedEvents(from, to int) [][]byte {
	vals := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		v := event(i)
		pad := max(300-len(v)-len(`,"pad":""`), 0)
		v = append(v[:len(v)-1], `,"pad":"`...)
		v = append(v, strings.Repeat("p", pad)...)
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

// procStatusKiB reads a field of /proc/PID/status of the daemon, in KiB.
func procStatusKiB(t *testing.T, d *daemon, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("/proc status %s: %q", field, line)
			}
			return n
		}
	}
	t.Fatalf("/proc status has no %s", field)
	return 0
}
