package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the retry backoff.
const (
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = time.Minute

	backoffFactor = 2
	backoffJitter = 0.2 // each delay is the nominal one ±20%, so targets that failed together do not retry together
)

// Options configure a Notifier.
type Options struct {
	// Targets receive every notice; at least one.
	Targets []Target
	// Logger logs failed attempts (warn) and deliveries (debug); nil
	// discards.
	Logger *slog.Logger
	// Metrics are shared by the notifiers of a process (see NewMetrics);
	// nil: unregistered metrics of its own.
	Metrics *Metrics
	// Table labels the notifier's metrics.
	Table string
	// MinBackoff is the delay after a target's first failed attempt at a
	// notice, DefaultMinBackoff when zero; each further failure doubles
	// it, up to MaxBackoff (DefaultMaxBackoff when zero), jitter included.
	MinBackoff, MaxBackoff time.Duration
}

// Notifier delivers notices to every target, in order per target. It
// retries each target with exponential backoff until it succeeds: a notice
// is never skipped, so a target that keeps failing keeps its queue until it
// recovers. A slow or failing target does not hold back the others: each
// has its own queue and goroutine, all owned by Run.
type Notifier struct {
	log        *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration
	metrics    notifierMetrics
	queues     []*queue

	pending atomic.Int64
	running atomic.Bool
}

// queue holds one target's undelivered notices, oldest first.
type queue struct {
	target Target
	wake   chan struct{} // capacity 1: a send means "items may have grown"

	mu    sync.Mutex
	items []delivery
}

type delivery struct {
	notice Notice
	batch  *batch
}

// batch is one Enqueue call: done runs once left, its deliveries not yet
// made over all targets, reaches zero.
type batch struct {
	left atomic.Int64
	done func()
}

// Metrics are the notifiers' metrics, labelled by table.
type Metrics struct {
	notices *prometheus.CounterVec
	latency *prometheus.HistogramVec
	pending *prometheus.GaugeVec
}

// NewMetrics creates the notifiers' metrics and registers them with reg
// (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_notices_total",
			Help: "Partition notice delivery attempts, by table, target, kind and result (delivered, failed: each failed attempt counts).",
		}, []string{"table", "target", "kind", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_notice_delivery_seconds",
			Help:    "Time from a partition notice's emission to its delivery to a target, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 18), // 5ms .. ~11min
		}, []string{"table", "target"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_notices_pending",
			Help: "Partition notice deliveries (one per notice and target) not yet made.",
		}, []string{"table"}),
	}
	if reg != nil {
		reg.MustRegister(m.notices, m.latency, m.pending)
	}
	return m
}

type notifierMetrics struct {
	notices  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	pending  prometheus.Gauge
	attempts map[string]map[Kind][2]prometheus.Counter // target → kind → delivered, failed
}

// NewNotifier validates opts and creates a notifier; it starts nothing.
func NewNotifier(opts Options) (*Notifier, error) {
	if opts.MinBackoff == 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	var errs []error
	if len(opts.Targets) == 0 {
		errs = append(errs, errors.New("Targets: none given"))
	}
	for i, t := range opts.Targets {
		if t == nil {
			errs = append(errs, fmt.Errorf("Targets[%d]: nil", i))
		}
	}
	if opts.MinBackoff < 0 {
		errs = append(errs, fmt.Errorf("MinBackoff: %v is negative", opts.MinBackoff))
	}
	if opts.MaxBackoff < opts.MinBackoff {
		errs = append(errs, fmt.Errorf("MaxBackoff: %v is below MinBackoff %v", opts.MaxBackoff, opts.MinBackoff))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("partition notifier options: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	shared := opts.Metrics
	if shared == nil {
		shared = NewMetrics(nil)
	}
	table := prometheus.Labels{"table": opts.Table}
	m := notifierMetrics{
		notices:  shared.notices.MustCurryWith(table),
		latency:  shared.latency.MustCurryWith(table).(*prometheus.HistogramVec),
		pending:  shared.pending.With(table),
		attempts: map[string]map[Kind][2]prometheus.Counter{},
	}
	// Create every known series up front so that a failure shows as an
	// increase from zero rather than as a new series.
	for _, t := range opts.Targets {
		byKind := map[Kind][2]prometheus.Counter{}
		for _, k := range []Kind{Ready, Empty, Updated} {
			byKind[k] = [2]prometheus.Counter{
				m.notices.WithLabelValues(t.Name(), string(k), "delivered"),
				m.notices.WithLabelValues(t.Name(), string(k), "failed"),
			}
		}
		m.attempts[t.Name()] = byKind
		m.latency.WithLabelValues(t.Name())
	}
	n := &Notifier{log: opts.Logger, minBackoff: opts.MinBackoff, maxBackoff: opts.MaxBackoff, metrics: m}
	for _, t := range opts.Targets {
		n.queues = append(n.queues, &queue{target: t, wake: make(chan struct{}, 1)})
	}
	return n, nil
}

// Enqueue queues notices for every target, before or while Run runs; it
// never waits for a delivery. done, which may be nil, is called once, after
// every target delivered all of ns, from a goroutine of Run (so it must not
// wait for the notifier); with no notices it is called at once.
func (n *Notifier) Enqueue(ns []Notice, done func()) {
	if len(ns) == 0 {
		if done != nil {
			done()
		}
		return
	}
	total := len(ns) * len(n.queues)
	b := &batch{done: done}
	b.left.Store(int64(total))
	n.pending.Add(int64(total))
	n.metrics.pending.Add(float64(total))
	for _, q := range n.queues {
		q.mu.Lock()
		for _, notice := range ns {
			q.items = append(q.items, delivery{notice: notice, batch: b})
		}
		q.mu.Unlock()
		select {
		case q.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// Pending is the number of (notice, target) deliveries not yet made.
func (n *Notifier) Pending() int { return int(n.pending.Load()) }

// Run delivers until ctx ends, then returns nil once its goroutines have
// stopped. Notices still queued stay queued (a later Run resumes them);
// after a restart the caller re-sends them from its durable record. Only
// one Run may run at a time.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("partition notifier: Run is already running")
	}
	defer n.running.Store(false)
	var wg sync.WaitGroup
	for _, q := range n.queues {
		wg.Go(func() { n.serve(ctx, q) })
	}
	wg.Wait()
	return nil
}

// serve delivers q's notices in order until ctx ends.
func (n *Notifier) serve(ctx context.Context, q *queue) {
	for {
		d, ok := q.head()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		if !n.deliver(ctx, q.target, d.notice) {
			return // ctx ended; d stays at the head of the queue
		}
		q.pop()
		n.pending.Add(-1)
		n.metrics.pending.Dec()
		if d.batch.left.Add(-1) == 0 && d.batch.done != nil {
			d.batch.done()
		}
	}
}

// deliver tries t until it takes notice, and reports false if ctx ended
// first.
func (n *Notifier) deliver(ctx context.Context, t Target, notice Notice) bool {
	counters := n.counters(t.Name(), notice.Kind)
	for attempt := 1; ; attempt++ {
		err := t.Deliver(ctx, notice)
		if err == nil {
			counters[0].Inc()
			if !notice.EmittedAt.IsZero() {
				n.metrics.latency.WithLabelValues(t.Name()).Observe(time.Since(notice.EmittedAt).Seconds())
			}
			n.log.Debug("partition notice delivered", "target", t.Name(), "notice", notice.ID, "attempts", attempt)
			return true
		}
		if ctx.Err() != nil {
			return false // the failure is, most likely, the cancellation: not the target's
		}
		delay := n.backoff(attempt)
		counters[1].Inc()
		n.log.Warn("partition notice delivery failed", "target", t.Name(), "notice", notice.ID,
			"attempt", attempt, "retry_in", delay, "err", err)
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
	}
}

// counters returns the delivered and failed counters of a target and kind.
func (n *Notifier) counters(target string, kind Kind) [2]prometheus.Counter {
	if c, ok := n.metrics.attempts[target][kind]; ok {
		return c
	}
	return [2]prometheus.Counter{ // a kind this version does not know
		n.metrics.notices.WithLabelValues(target, string(kind), "delivered"),
		n.metrics.notices.WithLabelValues(target, string(kind), "failed"),
	}
}

// backoff is the delay after the attempt-th failed attempt:
// MinBackoff·2^(attempt-1), jittered by ±20%, at most MaxBackoff.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := float64(n.minBackoff)
	for i := 1; i < attempt && d < float64(n.maxBackoff); i++ {
		d *= backoffFactor
	}
	d *= 1 + backoffJitter*(2*rand.Float64()-1)
	return time.Duration(min(d, float64(n.maxBackoff)))
}

func (q *queue) head() (delivery, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return delivery{}, false
	}
	return q.items[0], true
}

func (q *queue) pop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items[0] = delivery{} // release the notice
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil // let the backing array go
	}
}
