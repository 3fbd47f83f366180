package partition

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestNewNotifierOptions(t *testing.T) {
	ok := &recorder{name: "ok"}
	tests := []struct {
		name string
		opts Options
		want []string // substrings of the error; none = valid
	}{
		{"defaults", Options{Targets: []Target{ok}}, nil},
		{"equal backoffs", Options{Targets: []Target{ok}, MinBackoff: time.Second, MaxBackoff: time.Second}, nil},
		{"no targets", Options{}, []string{"Targets: none given"}},
		{"nil target", Options{Targets: []Target{ok, nil}}, []string{"Targets[1]: nil"}},
		{"every violation", Options{Targets: []Target{nil}, MinBackoff: -time.Second, MaxBackoff: -2 * time.Second},
			[]string{"Targets[0]: nil", "MinBackoff: -1s is negative", "MaxBackoff: -2s is below MinBackoff -1s"}},
		{"max below default min", Options{Targets: []Target{ok}, MaxBackoff: time.Millisecond},
			[]string{"MaxBackoff: 1ms is below MinBackoff 500ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewNotifier(tt.opts)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("NewNotifier: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewNotifier succeeded, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestNotifierMetricsRegistered(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	// Two tables' notifiers share the metrics, told apart by label.
	newNotifier(t, Options{Targets: []Target{&recorder{name: "a"}}, Metrics: m, Table: "db.a"})
	newNotifier(t, Options{Targets: []Target{&recorder{name: "a"}}, Metrics: m, Table: "db.b"})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	want := []string{"sluice_notice_delivery_seconds", "sluice_notices_pending", "sluice_notices_total"}
	if !slices.Equal(names, want) {
		t.Errorf("registered %v, want %v", names, want)
	}
}

// Each target gets the notices in the order they were enqueued, across
// batches and retries, whether queued before Run or while it runs.
func TestNotifierOrderPerTarget(t *testing.T) {
	steady := &recorder{name: "steady"}
	flaky := &recorder{name: "flaky", failOdd: true} // every notice fails once first
	n := newNotifier(t, Options{Targets: []Target{steady, flaky}})

	var want []string
	enqueue := func(ns []Notice) {
		n.Enqueue(ns, nil)
		want = append(want, ids(ns)...)
	}
	enqueue(notices("db.a", 5)) // before Run
	enqueue(notices("db.b", 3))
	stop := start(t, n)
	for i := range 20 { // while it runs
		enqueue(notices("db.c"+string(rune('a'+i)), 2))
	}
	waitFor(t, "every delivery", func() bool { return n.Pending() == 0 })
	stop()

	for _, r := range []*recorder{steady, flaky} {
		if got := r.ids(); !slices.Equal(got, want) {
			t.Errorf("%s got %v\nwant %v", r.name, got, want)
		}
	}
	if got, want := flaky.attempts.Load(), 2*int64(len(want)); got != want {
		t.Errorf("flaky saw %d attempts, want %d (each notice once refused, once taken)", got, want)
	}
}

// A failing target keeps its notices and retries them, while the others
// deliver; done waits for all; the failing target gets everything once it
// recovers.
func TestNotifierFailingTargetDoesNotBlockOthers(t *testing.T) {
	up := &recorder{name: "up"}
	down := &recorder{name: "down"}
	down.down.Store(true)
	var logs syncBuffer
	reg := prometheus.NewPedanticRegistry()
	n := newNotifier(t, Options{
		Targets: []Target{down, up},
		Metrics: NewMetrics(reg),
		Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	ns := notices("db.t", 3)
	var done atomic.Int32
	n.Enqueue(ns, func() { done.Add(1) })
	stop := start(t, n)

	waitFor(t, "the healthy target to take every notice", func() bool { return len(up.ids()) == len(ns) })
	waitFor(t, "several retries of the failing target", func() bool { return down.attempts.Load() >= 5 })
	if got := down.ids(); len(got) != 0 {
		t.Errorf("failing target took %v", got)
	}
	if done.Load() != 0 {
		t.Error("done called before every target delivered")
	}
	if got := n.Pending(); got != len(ns) {
		t.Errorf("Pending = %d, want %d (the failing target's)", got, len(ns))
	}
	if got := gaugeValue(t, reg, "sluice_notices_pending"); got != float64(len(ns)) {
		t.Errorf("sluice_notices_pending = %v, want %d", got, len(ns))
	}

	down.down.Store(false)
	waitFor(t, "done", func() bool { return done.Load() == 1 })
	if got := down.ids(); !slices.Equal(got, ids(ns)) {
		t.Errorf("recovered target got %v, want %v", got, ids(ns))
	}
	if n.Pending() != 0 {
		t.Errorf("Pending = %d after done, want 0", n.Pending())
	}
	stop()

	failed := counterValue(t, n.metrics.notices.WithLabelValues("down", "ready", "failed"))
	if failed < 5 {
		t.Errorf("failed attempts counted %v, want ≥ 5", failed)
	}
	for _, target := range []string{"down", "up"} {
		if got := counterValue(t, n.metrics.notices.WithLabelValues(target, "ready", "delivered")); got != 3 {
			t.Errorf("%s delivered = %v, want 3", target, got)
		}
	}
	out := logs.String()
	for _, want := range []string{
		`level=WARN msg="partition notice delivery failed" target=down notice="db.t/p=a/ready" attempt=1 retry_in=`,
		`err="target down"`,
		`level=DEBUG msg="partition notice delivered" target=up notice="db.t/p=a/ready" attempts=1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}

// done runs exactly once per Enqueue, after the last of its deliveries to
// every target, and at once for an empty batch.
func TestNotifierDone(t *testing.T) {
	targets := []*recorder{{name: "a"}, {name: "b", failOdd: true}, {name: "c"}}
	n := newNotifier(t, Options{Targets: []Target{targets[0], targets[1], targets[2]}})
	const batches = 10
	var calls [batches]atomic.Int32
	var mu sync.Mutex
	var complete [batches]bool // every target had the batch when done ran
	for b := range batches {
		ns := notices("db.b"+string(rune('a'+b)), b%3+1)
		n.Enqueue(ns, func() {
			calls[b].Add(1)
			all := true
			for _, r := range targets {
				got := r.ids()
				for _, id := range ids(ns) {
					all = all && slices.Contains(got, id)
				}
			}
			mu.Lock()
			complete[b] = all
			mu.Unlock()
		})
	}
	stop := start(t, n)
	waitFor(t, "every delivery", func() bool { return n.Pending() == 0 })
	stop()
	mu.Lock()
	defer mu.Unlock()
	for b := range batches {
		if got := calls[b].Load(); got != 1 {
			t.Errorf("batch %d: done called %d times, want 1", b, got)
		}
		if !complete[b] {
			t.Errorf("batch %d: done called before every target had it", b)
		}
	}

	var empty atomic.Int32
	n.Enqueue(nil, func() { empty.Add(1) })
	if empty.Load() != 1 {
		t.Errorf("empty Enqueue: done called %d times, want 1 at once", empty.Load())
	}
	n.Enqueue(notices("db.nil", 1), nil) // nil done is fine
}

// Cancelling Run stops every goroutine, even mid-retry, and leaves the
// undelivered notices queued for the next Run.
func TestNotifierRunStops(t *testing.T) {
	defer goleak.VerifyNone(t)
	down := &recorder{name: "down"}
	down.down.Store(true)
	up := &recorder{name: "up"}
	n, err := NewNotifier(Options{Targets: []Target{down, up}, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ns := notices("db.t", 2)
	var done atomic.Int32
	n.Enqueue(ns, func() { done.Add(1) })
	if n.Pending() != 4 {
		t.Errorf("Pending before Run = %d, want 4", n.Pending())
	}

	stop := start(t, n)
	waitFor(t, "the healthy target", func() bool { return len(up.ids()) == 2 })
	waitFor(t, "the failing target to be waiting an hour to retry", func() bool { return down.attempts.Load() == 1 })
	stop() // must not wait out the hour
	if n.Pending() != 2 || done.Load() != 0 {
		t.Errorf("after stop: Pending = %d, done %d times; want 2 and 0", n.Pending(), done.Load())
	}
	goleak.VerifyNone(t)

	// A second Run resumes where the first stopped, in order, and does
	// not deliver again what the first delivered.
	down.down.Store(false)
	stop = start(t, n)
	waitFor(t, "done", func() bool { return done.Load() == 1 })
	stop()
	if got := down.ids(); !slices.Equal(got, ids(ns)) {
		t.Errorf("resumed target got %v, want %v", got, ids(ns))
	}
	if got := up.ids(); !slices.Equal(got, ids(ns)) {
		t.Errorf("healthy target got %v, want %v once", got, ids(ns))
	}
}

func TestNotifierRunTwice(t *testing.T) {
	n := newNotifier(t, Options{Targets: []Target{&recorder{name: "a"}}})
	stop := start(t, n)
	defer stop()
	waitFor(t, "Run to start", n.running.Load)
	if err := n.Run(context.Background()); err == nil {
		t.Error("a second concurrent Run was allowed")
	}
}

func TestBackoff(t *testing.T) {
	n := newNotifier(t, Options{Targets: []Target{&recorder{name: "a"}}, MinBackoff: 500 * time.Millisecond, MaxBackoff: time.Minute})
	tests := []struct {
		attempt int
		nominal time.Duration
	}{
		{1, 500 * time.Millisecond},
		{2, time.Second},
		{3, 2 * time.Second},
		{7, 32 * time.Second},
		{8, time.Minute}, // 64s, capped
		{1000, time.Minute},
	}
	for _, tt := range tests {
		lo := time.Duration(float64(tt.nominal) * (1 - backoffJitter))
		hi := min(time.Duration(float64(tt.nominal)*(1+backoffJitter)), time.Minute)
		seen := map[time.Duration]bool{}
		for range 200 {
			d := n.backoff(tt.attempt)
			if d < lo || d > hi {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tt.attempt, d, lo, hi)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) is not jittered: always %v", tt.attempt, slices.Collect(mapsKeys(seen)))
		}
	}
}

func mapsKeys(m map[time.Duration]bool) func(func(time.Duration) bool) {
	return func(yield func(time.Duration) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the notifier's goroutines to log
// into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func gaugeValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no single-series metric %s", name)
	return 0
}
