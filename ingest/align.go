package ingest

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/watermark"
)

// alignEvery is how often the aligner looks at the partitions' progress.
const alignEvery = 200 * time.Millisecond

// aligner pauses the source partitions whose event time runs more than
// watermark.max_drift ahead of their stream's watermark, and resumes them
// once the others caught up, so a replay or a lagging partition cannot
// fill memory with, or scatter files across, hours the stream is not at
// yet. It keeps the progress the workers observe as they go, not only at
// checkpoints.
type aligner struct {
	s   *Stream
	cfg watermark.Config

	mu       sync.Mutex
	parts    map[watermark.Key]watermark.Partition
	held     map[watermark.Key]bool
	stream   int64     // the stream's watermark as last computed
	computed time.Time // when
}

// recompute bounds how often observe recomputes the stream's watermark, a
// walk over every partition.
const recompute = 10 * time.Millisecond

func newAligner(s *Stream, cfg watermark.Config) *aligner {
	return &aligner{s: s, cfg: cfg, parts: map[watermark.Key]watermark.Partition{}, held: map[watermark.Key]bool{}, stream: watermark.None}
}

// observe takes a worker's batch and pauses its partition at once if it
// ran ahead: a local broker delivers a partition's backlog faster than a
// periodic check would notice.
func (a *aligner) observe(k watermark.Key, p watermark.Partition) {
	a.mu.Lock()
	if have, ok := a.parts[k]; ok {
		p = have.Merge(p)
	}
	a.parts[k] = p
	if p.LastRecord.Sub(a.computed) > recompute {
		a.stream, a.computed = a.cfg.Stream(a.parts, p.LastRecord, watermark.None), p.LastRecord
	}
	pause := !a.held[k] && a.stream != watermark.None && p.MaxEventTime-a.cfg.OutOfOrderness.Microseconds() > a.stream+a.cfg.MaxDrift.Microseconds()
	if pause {
		a.held[k] = true
	}
	held := len(a.held)
	a.mu.Unlock()
	if pause {
		if cl := a.s.client.Load(); cl != nil {
			cl.PauseFetchPartitions(map[string][]int32{k.Topic: {k.Partition}})
		}
		a.s.opts.Metrics.held.WithLabelValues(a.s.cfg.Name).Set(float64(held))
	}
}

// holds reports whether the aligner keeps a partition paused.
func (a *aligner) holds(tp topicPartition) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.held[watermark.Key{Topic: tp.topic, Partition: tp.partition}]
}

// run checks the partitions until ctx ends.
func (a *aligner) run(ctx context.Context, cl *kgo.Client) error {
	t := time.NewTicker(alignEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.check(cl, time.Now())
		}
	}
}

// check pauses the partitions ahead and resumes those no longer ahead
// (unless their worker holds them for backpressure). Pausing again what is
// held is harmless, and undoes a worker's resume of a partition it had
// paused too.
func (a *aligner) check(cl *kgo.Client, now time.Time) {
	a.mu.Lock()
	stream := a.cfg.Stream(a.parts, now, watermark.None)
	a.stream, a.computed = stream, now
	ahead := map[watermark.Key]bool{}
	for _, k := range a.cfg.Ahead(a.parts, stream) {
		ahead[k] = true
	}
	var release []watermark.Key
	for k := range a.held {
		if !ahead[k] {
			release = append(release, k)
			delete(a.held, k)
		}
	}
	for k := range ahead {
		a.held[k] = true
	}
	held := len(a.held)
	a.mu.Unlock()

	if len(ahead) > 0 {
		m := map[string][]int32{}
		for k := range ahead {
			m[k.Topic] = append(m[k.Topic], k.Partition)
		}
		cl.PauseFetchPartitions(m)
	}
	for _, k := range release {
		w := a.s.workerFor(k.Topic, k.Partition)
		w.pmu.Lock()
		if _, paused := w.paused[topicPartition{k.Topic, k.Partition}]; !paused {
			cl.ResumeFetchPartitions(map[string][]int32{k.Topic: {k.Partition}})
		}
		w.pmu.Unlock()
	}
	a.s.opts.Metrics.held.WithLabelValues(a.s.cfg.Name).Set(float64(held))
}
