package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/ingest/config"
)

// The notices case measures how soon a partition-ready notice follows the
// watermark passing the partition's end, with many streams on one daemon:
// each round produces, to every partition of every stream, a record that
// moves the watermark past the next hour, and times each table's notice
// of that hour from then until a consumer of the notice topic reads it.

const (
	noticeStreams    = 100
	noticePartitions = 4
	noticeRounds     = 5
	noticeInterval   = 2 * time.Second
	noticeTopic      = "bench-notices"
)

type noticeLatency struct {
	Streams, Partitions, Rounds int
	Interval                    time.Duration
	Latencies                   []time.Duration // one per table and round
	Missing                     int
}

func benchNotices(addr, dir string) (noticeLatency, error) {
	res := noticeLatency{Streams: noticeStreams, Partitions: noticePartitions, Rounds: noticeRounds, Interval: noticeInterval}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		return res, err
	}
	defer cl.Close()
	topics := make([]string, noticeStreams)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench-n-%03d", i)
	}
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopics(ctx, noticePartitions, 1, nil, append(slices.Clone(topics), noticeTopic)...); err != nil {
		return res, err
	}

	var b strings.Builder
	fmt.Fprintf(&b, `name: bench-notices
kafka: {brokers: [%q]}
catalog: {uri: %s/catalog.db, warehouse: "file://%s/warehouse"}
checkpoint: {interval: %s}
dead_letter: {file: %s/dead-letters.jsonl}
writer: {workers: 1}
memory_budget: 1GiB
streams:
`, addr, dir, dir, noticeInterval, dir)
	for i, t := range topics {
		fmt.Fprintf(&b, `  - name: s%03d
    topics: [%s]
    event_time: ts
    watermark: {out_of_orderness: 1m, idle_timeout: 1h}
    columns: [{name: id, type: string, required: true}, {name: ts, type: "timestamptz(ms)", required: true}]
    table:
      name: bench.n%03d
      partition: ["hour(ts)"]
      notify: {targets: [{type: kafka, topic: %s}]}
`, i, t, i, noticeTopic)
	}
	if err := os.WriteFile(filepath.Join(dir, "pipeline.yaml"), []byte(b.String()), 0o644); err != nil {
		return res, err
	}
	cfg, err := config.ParseIn([]byte(b.String()), dir)
	if err != nil {
		return res, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := newPipeline(ctx, cfg, log)
	if err != nil {
		return res, err
	}
	done := make(chan error, 1)
	go func() { done <- p.run(ctx, "", nil) }()
	defer func() { cancel(); <-done }()

	// The scheduler's side: when each notice arrived.
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(noticeTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		return res, err
	}
	defer consumer.Close()
	go func() {
		for ctx.Err() == nil {
			fs := consumer.PollFetches(ctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				var n struct {
					ID string `json:"id"`
				}
				if json.Unmarshal(r.Value, &n) == nil {
					mu.Lock()
					if _, ok := arrived[n.ID]; !ok {
						arrived[n.ID] = now
					}
					mu.Unlock()
				}
			})
		}
	}()

	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	produce := func(ts time.Time, tag string) error {
		var recs []*kgo.Record
		for i, t := range topics {
			for part := range int32(noticePartitions) {
				recs = append(recs, &kgo.Record{Topic: t, Partition: part,
					Value: fmt.Appendf(nil, `{"id":"%s-%d-%d","ts":%d}`, tag, i, part, ts.UnixMilli())})
			}
		}
		return cl.ProduceSync(ctx, recs...).FirstErr()
	}
	// Data in hour 0 first: the tables start there.
	if err := produce(t0.Add(30*time.Minute), "seed"); err != nil {
		return res, err
	}
	for r := range noticeRounds {
		hour := t0.Add(time.Duration(r) * time.Hour).Format("2006-01-02-15")
		// A minute and a second past the next hour: past the end of this
		// one by more than the out-of-orderness.
		pushed := time.Now()
		if err := produce(t0.Add(time.Duration(r+1)*time.Hour+61*time.Second), fmt.Sprint("r", r)); err != nil {
			return res, err
		}
		deadline := pushed.Add(noticeInterval + time.Minute)
		for {
			mu.Lock()
			got := 0
			for i := range noticeStreams {
				if _, ok := arrived[fmt.Sprintf("bench.n%03d/ts_hour=%s/ready", i, hour)]; ok {
					got++
				}
			}
			mu.Unlock()
			if got == noticeStreams || time.Now().After(deadline) {
				break
			}
			select {
			case err := <-done:
				return res, fmt.Errorf("pipeline stopped: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
		}
		mu.Lock()
		for i := range noticeStreams {
			if at, ok := arrived[fmt.Sprintf("bench.n%03d/ts_hour=%s/ready", i, hour)]; ok {
				res.Latencies = append(res.Latencies, at.Sub(pushed))
			} else {
				res.Missing++
			}
		}
		mu.Unlock()
		fmt.Fprintf(os.Stderr, "notices: round %d of %d\n", r+1, noticeRounds)
	}
	return res, nil
}

func (n noticeLatency) print(out io.Writer) {
	l := slices.Clone(n.Latencies)
	slices.Sort(l)
	q := func(f float64) time.Duration {
		if len(l) == 0 {
			return 0
		}
		return l[min(len(l)-1, int(f*float64(len(l))))]
	}
	bound := n.Interval + 5*time.Second
	within := 0
	for _, d := range l {
		if d <= bound {
			within++
		}
	}
	fmt.Fprintf(out, "notices: %d streams x %d partitions, checkpoint %s, %d rounds: latency from the watermark passing to the notice read: p50 %.2fs p90 %.2fs p99 %.2fs max %.2fs; %d of %d within interval+5s (%s), %d missing\n",
		n.Streams, n.Partitions, n.Interval, n.Rounds, q(0.5).Seconds(), q(0.9).Seconds(), q(0.99).Seconds(), q(1).Seconds(),
		within, len(l)+n.Missing, bound, n.Missing)
}
