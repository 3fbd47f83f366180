package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/config"
)

const demoTopic = "clicks"

// demoConfig is the pipeline the demo runs; it is written to DIR/pipeline.yaml
// so it can be read, changed and run with `sluice run`.
const demoConfig = `# Written by "sluice demo". Runs as is with: sluice run -c {{dir}}/pipeline.yaml
# while the demo's embedded broker is up; point kafka.brokers at a real cluster otherwise.
name: demo
kafka:
  brokers: ["{{broker}}"]
catalog:
  uri: {{dir}}/catalog.db
  warehouse: file://{{dir}}/warehouse
checkpoint:
  interval: {{interval}}
dead_letter:
  file: {{dir}}/dead-letters.jsonl
memory_budget: 512MiB
streams:
  - name: clicks
    topics: [clicks]
    max_record_bytes: 64KiB
    event_time: event_time
    columns:
      - {name: event_id, type: string, required: true}
      - {name: user_id, type: int64, required: true}
      - {name: event_time, type: timestamptz(ms), required: true}
      - {name: event_type, type: string}
      - {name: page, type: string}
      - {name: referrer, type: string}
      - {name: device, type: string}
      - {name: country, type: string}
      - {name: duration_ms, type: int32}
      - {name: amount, type: "decimal(12,2)"}
      - {name: session_id, type: string}
      - {name: is_new_user, type: bool}
    etl:
      filter: event_type != "bot"
      columns:
        - {name: is_purchase, expr: event_type == "purchase"}
    table:
      name: demo.events
      partition: ["hour(event_time)"]
`

func demoCmd(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dir := fs.String("dir", "./sluice-demo", "directory for the broker data, catalog, warehouse, logs and dead letters")
	events := fs.Int64("events", 0, "stop once this many events are produced and committed (0: run until Ctrl-C)")
	rate := fs.Int("rate", 20000, "events per second to produce when --events is 0")
	badShare := fs.Float64("bad-share", 0.005, "share of deliberately bad records, to show the dead-letter path")
	interval := fs.Duration("checkpoint-interval", 5*time.Second, "checkpoint interval (how fresh the table is)")
	metricsAddr := fs.String("metrics-addr", "", "serve /metrics and /healthz here (empty: off)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(abs, "sluice.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))

	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(filepath.Join(abs, "broker")),
		kfake.SeedTopics(8, demoTopic), kfake.SeedTopics(1, "clicks-dead-letters"))
	if err != nil {
		return fmt.Errorf("start embedded broker: %w", err)
	}
	defer broker.Close()
	addr := broker.ListenAddrs()[0]

	text := strings.NewReplacer("{{dir}}", abs, "{{broker}}", addr, "{{interval}}", interval.String()).Replace(demoConfig)
	cfgPath := filepath.Join(abs, "pipeline.yaml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		return err
	}
	cfg, err := config.ParseIn([]byte(text), abs)
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	setMemoryLimit(cfg.MemoryBudget)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	p, err := newPipeline(ctx, cfg, log)
	if err != nil {
		return err
	}
	stream := p.streams[0]
	start := stream.Stats()
	startOffsets := sumPositions(start)

	producer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(demoTopic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		return err
	}
	defer producer.Close()

	fmt.Printf("Sluice demo: embedded Kafka at %s, topic %q (8 partitions) -> Iceberg table demo.events in %s\n", addr, demoTopic, abs)
	fmt.Printf("  config %s, logs %s, dead letters %s\n", cfgPath, filepath.Join(abs, "sluice.log"), cfg.DeadLetter.File)
	if *events > 0 {
		fmt.Printf("  producing %d click events spread over the last 6 hours; a checkpoint every %s\n\n", *events, interval)
	} else {
		fmt.Printf("  producing %d click events/s; a checkpoint every %s; Ctrl-C stops after a last checkpoint\n\n", *rate, interval)
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	done := make(chan error, 1)
	go func() { done <- p.run(runCtx, *metricsAddr, nil) }()

	var badEvery int64
	if *badShare > 0 {
		badEvery = max(1, int64(1 / *badShare))
	}
	now := time.Now().UTC()
	gen := newClickGen(uint64(now.UnixNano()), newRunID(), now.Add(-6*time.Hour).Truncate(time.Hour), 6*time.Hour, *events, badEvery)
	produced := make(chan int64, 1)
	prodErr := make(chan error, 1)
	go func() { prodErr <- produce(runCtx, producer, gen, *events, *rate, produced) }()

	var target int64 = -1
	progress := newProgress(os.Stdout, stream)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var runErr error
loop:
	for {
		select {
		case n := <-produced:
			target = startOffsets + n
		case err := <-prodErr:
			if err != nil && !errors.Is(err, context.Canceled) {
				runErr = err
				stopRun()
			}
		case err := <-done:
			runErr = err
			break loop
		case <-tick.C:
			st := progress.update()
			if target >= 0 && sumPositions(st) >= target {
				stopRun() // every produced event is committed
			}
		case <-ctx.Done():
			stopRun()
			ctx = context.Background() // wait for the last checkpoint
		}
	}
	st := progress.finish()
	if runErr != nil {
		return runErr
	}
	fmt.Printf("\nDone: %d records read, %d rows committed in %d files, %d dead-lettered, %d filtered by the ETL.\n",
		st.Read-start.Read, st.Committed, st.CommittedFiles, st.DeadLettered, st.Filtered)
	fmt.Printf("Look at the table:\n  %s inspect --dir %s demo.events\n", selfName(), *dir)
	fmt.Printf("Dead letters, with reasons: %s\n", cfg.DeadLetter.File)
	fmt.Printf("The audit trace (every record accounted for, by hour): %s\n  %s audit -c %s\n", cfg.Audit.File, selfName(), cfgPath)
	return nil
}

func selfName() string {
	if strings.Contains(os.Args[0], "/") {
		return os.Args[0]
	}
	return "sluice"
}

func sumPositions(st ingest.Stats) int64 {
	var n int64
	for _, parts := range st.Positions {
		for _, off := range parts {
			n += off
		}
	}
	return n
}

// produce writes total events (or runs at rate until ctx ends when total is
// 0), then reports the count on produced once all are acknowledged.
func produce(ctx context.Context, cl *kgo.Client, gen *clickGen, total int64, rate int, produced chan<- int64) error {
	var errOnce error
	promise := func(_ *kgo.Record, err error) {
		if err != nil && errOnce == nil {
			errOnce = err
		}
	}
	if total > 0 {
		for i := int64(0); i < total; i++ {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			v, _ := gen.next()
			cl.Produce(ctx, &kgo.Record{Value: append([]byte(nil), v...)}, promise)
		}
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		produced <- total
		return errOnce
	}
	perTick := max(1, rate/20)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			for range perTick {
				v, _ := gen.next()
				cl.Produce(ctx, &kgo.Record{Value: append([]byte(nil), v...)}, promise)
			}
		}
	}
}

// progress shows live counters: one redrawn line on a terminal, a plain line
// per checkpoint otherwise.
type progress struct {
	w        io.Writer
	s        *ingest.Stream
	tty      bool
	last     ingest.Stats
	lastTime time.Time
	rate     float64
	lastCP   int64
	start    time.Time
	first    int64
}

func newProgress(w *os.File, s *ingest.Stream) *progress {
	fi, err := w.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0
	st := s.Stats()
	now := time.Now()
	return &progress{w: w, s: s, tty: tty, last: st, lastTime: now, lastCP: st.Checkpoint, start: now, first: st.Read}
}

func (p *progress) update() ingest.Stats {
	st := p.s.Stats()
	now := time.Now()
	if dt := now.Sub(p.lastTime).Seconds(); dt > 0 {
		p.rate = 0.5*p.rate + 0.5*float64(st.Read-p.last.Read)/dt
	}
	p.last, p.lastTime = st, now
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", p.line(st))
	} else if st.Checkpoint != p.lastCP {
		fmt.Fprintln(p.w, p.line(st))
	}
	p.lastCP = st.Checkpoint
	return st
}

func (p *progress) line(st ingest.Stats) string {
	ago := "-"
	if !st.LastCommit.IsZero() {
		ago = time.Since(st.LastCommit).Round(time.Second).String() + " ago"
	}
	return fmt.Sprintf("events/s %8.0f | read %d | lag %d | committed %d rows, %d files | dead-lettered %d | filtered %d | checkpoint #%d %s | tables 1",
		p.rate, st.Read, st.Lag, st.Committed, st.CommittedFiles, st.DeadLettered, st.Filtered, st.Checkpoint, ago)
}

// finish prints the last line, with the average rate of the whole run.
func (p *progress) finish() ingest.Stats {
	st := p.s.Stats()
	if dt := time.Since(p.start).Seconds(); dt > 0 {
		p.rate = float64(st.Read-p.first) / dt
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s\n", p.line(st))
	} else {
		fmt.Fprintln(p.w, p.line(st))
	}
	return st
}
