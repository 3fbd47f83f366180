package partition

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// waitTimeout bounds every wait on a condition; conditions normally hold
// within milliseconds.
const waitTimeout = 10 * time.Second

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // a poll interval, not a guess at timing
	}
}

// recorder is a Target that records the ids it took, in order. While down
// is set every attempt fails; failOdd makes every odd attempt fail.
type recorder struct {
	name     string
	failOdd  bool
	down     atomic.Bool
	attempts atomic.Int64

	mu  sync.Mutex
	got []string
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) Deliver(ctx context.Context, n Notice) error {
	a := r.attempts.Add(1)
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.down.Load() {
		return errors.New("target down")
	}
	if r.failOdd && a%2 == 1 {
		return errors.New("flaky")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, n.ID)
	return nil
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// newNotifier creates a notifier with a tiny backoff, so retries take
// microseconds.
func newNotifier(t *testing.T, opts Options) *Notifier {
	t.Helper()
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = 100*time.Microsecond, time.Millisecond
	}
	n, err := NewNotifier(opts)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// start runs n until the returned stop is called (or the test ends); stop
// cancels Run, waits for it and checks that it returned nil.
func start(t *testing.T, n *Notifier) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Run returned %v on cancel, want nil", err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("Run did not return within %v of cancel", waitTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// notices returns count notices of table t, partitions p0, p1, ….
func notices(table string, count int) []Notice {
	var ns []Notice
	for i := range count {
		path := "p=" + string(rune('a'+i))
		ns = append(ns, Notice{ID: NoticeID(table, path, Ready, 0), Kind: Ready, Table: table, Path: path})
	}
	return ns
}

func ids(ns []Notice) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.ID)
	}
	return out
}

// counterValue reads a counter without going through a registry.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
