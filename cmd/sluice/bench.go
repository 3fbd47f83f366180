package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/parse"
	"github.com/sluicehq/sluice/ingest/schema"
	pq "github.com/sluicehq/sluice/sinks/parquet"
)

// The benchmark measures three cases on the same generated data in one run,
// each in its own child process so CPU time and peak RSS are its own:
// (a) raw fetch from the embedded broker, (b) JSON decode + Parquet encode
// only, (c) the full pipeline through Iceberg commits. A fourth case spreads
// the events over 10,000 daily partitions to show the memory bound.

type benchResult struct {
	Case   string  `json:"case"`
	Events int64   `json:"events"`
	Wall   float64 `json:"wall_seconds"`
	CPU    float64 `json:"cpu_seconds"`
	RSS    int64   `json:"peak_rss_bytes"` // VmHWM of the case's own process
	Files  int64   `json:"files,omitempty"`
	Parts  int64   `json:"partitions,omitempty"`
	Note   string  `json:"note,omitempty"`
	// ChildCPU is set when the child measured CPU around its loop alone.
	ChildCPU bool `json:"cpu_measured_by_case,omitempty"`
}

func (r benchResult) perCPU() float64 { return float64(r.Events) / r.CPU }

const benchTopic, wideTopic = "bench", "bench-wide"

func benchCmd(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	events := fs.Int64("events", 2_000_000, "events per case")
	partitions := fs.Int("partitions", 8, "Kafka partitions")
	cases := fs.String("cases", "fetch,encode,pipeline,compact,wide,proto,notices,cdc,hdfs", "cases to run")
	cdcRows := fs.Int64("cdc-rows", 1_000_000, "rows of the CDC snapshot case (the change stream is half as many)")
	child := fs.String("child", "", "internal: run one case in this process")
	broker := fs.String("broker", "", "internal: broker address for -child")
	dir := fs.String("dir", "", "internal: work directory for -child")
	jsonOut := fs.Bool("json", false, "print results as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *child != "" {
		return benchChild(*child, *broker, *dir, *events)
	}
	work, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(*partitions), benchTopic, wideTopic, protoTopic))
	if err != nil {
		return err
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	want := strings.Split(*cases, ",")
	has := func(c string) bool {
		for _, w := range want {
			if w == c {
				return true
			}
		}
		return false
	}
	start := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	if has("fetch") || has("encode") || has("pipeline") || has("compact") || has("notices") {
		fmt.Fprintf(os.Stderr, "producing %d events (~300-byte JSON) to %d partitions...\n", *events, *partitions)
		if err := benchProduce(addr, benchTopic, newClickGen(1, "b", start, 6*time.Hour, *events, 0), *events); err != nil {
			return err
		}
	}
	if has("proto") {
		_, md, err := writeBenchProto(filepath.Join(work, "protos"))
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "producing %d protobuf order events...\n", *events)
		if err := benchProduceOrders(addr, md, *events); err != nil {
			return err
		}
	}
	if has("wide") {
		// Daily partitions over 10,000 days, produced in time order like a backfill.
		wide := newClickGen(2, "w", start.AddDate(0, 0, -10000), 10000*24*time.Hour, *events, 0)
		if err := benchProduce(addr, wideTopic, wide, *events); err != nil {
			return err
		}
	}
	var results []benchResult
	for _, c := range []string{"fetch", "encode", "pipeline", "compact", "wide", "proto"} {
		if !has(c) {
			continue
		}
		fmt.Fprintf(os.Stderr, "case %s...\n", c)
		r, err := runBenchChild(c, addr, filepath.Join(work, c), *events)
		if err != nil {
			return fmt.Errorf("case %s: %w", c, err)
		}
		results = append(results, r)
	}
	var live *liveHour
	if has("compact") {
		fmt.Fprintf(os.Stderr, "case compact: reading a live hour...\n")
		ldir := filepath.Join(work, "live")
		if err := os.MkdirAll(ldir, 0o755); err != nil {
			return err
		}
		l, err := benchLiveHour(ldir)
		if err != nil {
			return fmt.Errorf("case compact: live hour: %w", err)
		}
		live = &l
	}
	if has("cdc") {
		rs, err := benchCDC(filepath.Join(work, "cdc"), *cdcRows)
		if err != nil {
			return fmt.Errorf("case cdc: %w", err)
		}
		results = append(results, rs...)
	}
	var hdfsCP *hdfsCheckpoint
	if has("hdfs") {
		fmt.Fprintf(os.Stderr, "case hdfs...\n")
		h, err := benchHDFS(100, 200*time.Millisecond)
		if err != nil {
			return fmt.Errorf("case hdfs: %w", err)
		}
		hdfsCP = &h
	}
	var notices *noticeLatency
	if has("notices") {
		fmt.Fprintf(os.Stderr, "case notices...\n")
		ndir := filepath.Join(work, "notices")
		if err := os.MkdirAll(ndir, 0o755); err != nil {
			return err
		}
		n, err := benchNotices(addr, ndir)
		if err != nil {
			return fmt.Errorf("case notices: %w", err)
		}
		notices = &n
	}
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Cases   []benchResult   `json:"cases"`
			Notices *noticeLatency  `json:"notices,omitempty"`
			HDFS    *hdfsCheckpoint `json:"hdfs,omitempty"`
		}{results, notices, hdfsCP})
	}
	if len(results) > 0 {
		printBench(os.Stdout, results, *partitions)
	}
	if live != nil {
		live.print(os.Stdout)
	}
	if notices != nil {
		notices.print(os.Stdout)
	}
	if hdfsCP != nil {
		hdfsCP.print(os.Stdout)
	}
	return nil
}

func printBench(out io.Writer, results []benchResult, partitions int) {
	fmt.Fprintf(out, "machine: %s/%s, %d CPUs (GOMAXPROCS %d), %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tevents\twall s\tevents/s\tCPU s\tevents/CPU-s\tpeak RSS MiB\tnote\t")
	byCase := map[string]benchResult{}
	for _, r := range results {
		byCase[r.Case] = r
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f\t%.1f\t%.0f\t%.0f\t%s\t\n", r.Case, r.Events, r.Wall, float64(r.Events)/r.Wall,
			r.CPU, r.perCPU(), float64(r.RSS)/(1<<20), r.Note)
	}
	tw.Flush()
	if b, ok := byCase["encode"]; ok {
		if c, ok := byCase["pipeline"]; ok {
			fmt.Fprintf(out, "ratio pipeline/encode (events per CPU-second): %.2f\n", c.perCPU()/b.perCPU())
		}
	}
	if a, ok := byCase["pipeline"]; ok {
		if c, ok := byCase["compact"]; ok {
			fmt.Fprintf(out, "compaction CPU overhead (compact vs pipeline CPU seconds, same data): %+.0f%%\n", 100*(c.CPU-a.CPU)/a.CPU)
		}
	}
	if a, ok := byCase["fetch"]; ok {
		if c, ok := byCase["pipeline"]; ok {
			fmt.Fprintf(out, "ratio pipeline/fetch (events per CPU-second): %.2f\n", c.perCPU()/a.perCPU())
		}
	}
	printCDCBench(out, byCase)
	if w, ok := byCase["wide"]; ok && w.Parts > 0 {
		fmt.Fprintf(out, "wide: %d partitions, %d files, %.2f files per partition, peak RSS %.0f MiB\n",
			w.Parts, w.Files, float64(w.Files)/float64(w.Parts), float64(w.RSS)/(1<<20))
	}
	_ = partitions
}

func benchProduce(addr, topic string, gen *clickGen, n int64) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(10*time.Millisecond),
		kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	var perr error
	for range n {
		v, _ := gen.next()
		cl.Produce(ctx, &kgo.Record{Value: append([]byte(nil), v...)}, func(_ *kgo.Record, err error) {
			if err != nil && perr == nil {
				perr = err
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return perr
}

// runBenchChild runs one case in a child process and reads its CPU time and
// peak RSS from the kernel's accounting of that process.
func runBenchChild(c, addr, dir string, events int64) (benchResult, error) {
	self, err := os.Executable()
	if err != nil {
		return benchResult{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return benchResult{}, err
	}
	cmd := exec.Command(self, "bench", "-child", c, "-broker", addr, "-dir", dir, "-events", fmt.Sprint(events))
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return benchResult{}, err
	}
	var r benchResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return benchResult{}, fmt.Errorf("child output %q: %w", stdout.String(), err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !r.ChildCPU {
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return r, nil
}

// peakRSS reads VmHWM, the peak resident set of this process since exec.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb)
			return kb << 10
		}
	}
	return 0
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchChild(c, addr, dir string, events int64) error {
	// SLUICE_BENCH_PROFILE=DIR writes a CPU profile of each case there.
	if pdir := os.Getenv("SLUICE_BENCH_PROFILE"); pdir != "" {
		f, err := os.Create(filepath.Join(pdir, c+".cpu.pprof"))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var r benchResult
	var err error
	switch c {
	case "fetch":
		r, err = benchFetch(addr, events)
	case "encode":
		r, err = benchEncode(addr, events)
	case "pipeline", "wide", "proto", "compact":
		r, err = benchPipeline(c, addr, dir, events)
	case "binlog":
		r, err = benchBinlogRaw(dir)
	case "cdc-snapshot", "cdc-apply":
		r, err = benchMirror(c, dir, events)
	default:
		return fmt.Errorf("unknown case %q", c)
	}
	if err != nil {
		return err
	}
	r.Case = c
	// The kernel's rusage maxrss of a child also counts the parent's memory
	// at fork time (here the broker holding every event); the high-water
	// mark of this process's own address space is in /proc.
	r.RSS = peakRSS()
	return json.NewEncoder(os.Stdout).Encode(r)
}

func fetchAll(addr, topic string, n int64, each func(*kgo.Record)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(32<<20))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var got int64
	for got < n {
		f := cl.PollFetches(ctx)
		if err := f.Err0(); err != nil {
			return err
		}
		f.EachRecord(func(r *kgo.Record) {
			if got < n {
				each(r)
			}
			got++
		})
	}
	return nil
}

func benchFetch(addr string, n int64) (benchResult, error) {
	start := time.Now()
	var bytes int64
	err := fetchAll(addr, benchTopic, n, func(r *kgo.Record) { bytes += int64(len(r.Value)) })
	return benchResult{Events: n, Wall: time.Since(start).Seconds(), Note: fmt.Sprintf("%.0f B/event", float64(bytes)/float64(n))}, err
}

// benchEncode decodes and encodes without Kafka: it fetches a sample of the
// same events first (not measured), then decodes them and writes Parquet
// until n events were processed, measuring only that. It runs as many
// goroutines as the pipeline has workers (GOMAXPROCS), each with its own
// decoder and file, so both cases run in the same conditions (on a 2-vCPU
// machine the two threads share one core's caches).
func benchEncode(addr string, n int64) (benchResult, error) {
	sample := min(n, 200_000)
	vals := make([][]byte, 0, sample)
	if err := fetchAll(addr, benchTopic, sample, func(r *kgo.Record) { vals = append(vals, r.Value) }); err != nil {
		return benchResult{}, err
	}
	cfg, err := config.Parse([]byte(benchConfig("127.0.0.1:1", "/tmp/x", benchTopic, "hour(event_time)", "1m")))
	if err != nil {
		return benchResult{}, err
	}
	in, _ := cfg.Streams[0].InputSchema()
	in.AssignIDs()
	l := schema.NewLayout(in, "bench")
	workers := int64(cfg.Writer.Workers)
	runtime.GC()
	cpu0, t0 := cpuNow(), time.Now()
	var g errgroup.Group
	for w := range workers {
		g.Go(func() error { return encodeShare(l, vals, w, workers, n) })
	}
	if err := g.Wait(); err != nil {
		return benchResult{}, err
	}
	return benchResult{Events: n, Wall: time.Since(t0).Seconds(), CPU: (cpuNow() - cpu0).Seconds(), ChildCPU: true,
		Note: fmt.Sprintf("decode+encode only, %d goroutines", workers)}, nil
}

// encodeShare decodes and writes every workers-th event from w on.
func encodeShare(l *schema.Layout, vals [][]byte, w, workers, n int64) error {
	dec, err := parse.NewJSON(l, parse.Options{EventTime: "event_time"})
	if err != nil {
		return err
	}
	f := pq.Create(io.Discard, l, pq.WriterOptions{})
	rows := make([]parquet.Row, 0, 256)
	slab := make([]parquet.Value, 0, 256*len(l.Schema.Fields))
	sample := int64(len(vals))
	for i := w; i < n; i += workers {
		s := len(slab)
		row, _, err := dec.Decode(slab[s:s], vals[i%sample])
		if err != nil {
			return err
		}
		slab = slab[:s+len(row)]
		rows = append(rows, slab[s:len(slab):len(slab)])
		if len(rows) == cap(rows) {
			if err := f.WriteRows(rows); err != nil {
				return err
			}
			rows, slab = rows[:0], slab[:0]
			dec.Reset()
		}
	}
	if err := f.WriteRows(rows); err != nil {
		return err
	}
	_, _, err = f.Close()
	return err
}

func benchConfig(addr, dir, topic, partition, interval string) string {
	return strings.NewReplacer("{{broker}}", addr, "{{dir}}", dir, "{{interval}}", interval, "clicks]", topic+"]",
		`["hour(event_time)"]`, `["`+partition+`"]`, "filter: event_type != \"bot\"", "filter: \"\"",
		"      columns:\n        - {name: is_purchase, expr: event_type == \"purchase\"}\n", "").Replace(demoConfig)
}

func benchPipeline(c, addr, dir string, n int64) (benchResult, error) {
	topic, part := benchTopic, "hour(event_time)"
	if c == "wide" {
		topic, part = wideTopic, "day(event_time)"
	}
	// The wide case is a backfill and runs at the production default
	// checkpoint interval: every checkpoint seals a file per partition
	// touched since the last one, so a 5s interval over 10,000 partitions
	// measures file churn, not the memory bound.
	interval := "5s"
	if c == "wide" {
		interval = "1m"
	}
	text := benchConfig(addr, dir, topic, part, interval)
	if c == "proto" {
		protoPath, _, err := writeBenchProto(filepath.Join(dir, "protos"))
		if err != nil {
			return benchResult{}, err
		}
		text = benchProtoConfig(addr, dir, protoPath)
	}
	cfg, err := config.ParseIn([]byte(text), dir)
	if err != nil {
		return benchResult{}, err
	}
	if c == "compact" {
		cfg.Streams[0].Table.Compaction = &config.Compaction{}
	}
	if w := os.Getenv("SLUICE_BENCH_WORKERS"); w != "" {
		fmt.Sscan(w, &cfg.Writer.Workers)
	}
	if m := os.Getenv("SLUICE_BENCH_MAX_OPEN"); m != "" {
		fmt.Sscan(m, &cfg.Writer.MaxOpenFiles)
	}
	setMemoryLimit(cfg.MemoryBudget)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := newPipeline(ctx, cfg, log)
	if err != nil {
		return benchResult{}, err
	}
	t0 := time.Now()
	done := make(chan error, 1)
	go func() { done <- p.run(ctx, "", nil) }()
	s := p.streams[0]
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastHeap time.Time
	heaps := 0
	for {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("pipeline stopped early")
			}
			return benchResult{}, err
		case <-tick.C:
		}
		if pdir := os.Getenv("SLUICE_BENCH_PROFILE"); pdir != "" && time.Since(lastHeap) > 10*time.Second {
			// A heap profile every 10s: the peak is rarely at a planned moment.
			lastHeap = time.Now()
			heaps++
			if f, err := os.Create(filepath.Join(pdir, fmt.Sprintf("%s.heap.%02d.pprof", c, heaps))); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
		if st := s.Stats(); sumPositions(st) >= n {
			var q compactFigures
			if c == "compact" {
				if q, err = benchCompacted(ctx, p, cfg.Writer.Workers); err != nil {
					return benchResult{}, err
				}
			}
			cancel()
			if err := <-done; err != nil {
				return benchResult{}, err
			}
			st = s.Stats()
			r := benchResult{Events: n, Wall: time.Since(t0).Seconds(), Files: st.CommittedFiles}
			switch c {
			case "wide":
				r.Parts = countPartitionDirs(filepath.Join(dir, "warehouse"))
				r.Note = fmt.Sprintf("%d partitions, %.1f files/partition, checkpoint 1m", r.Parts, float64(r.Files)/float64(max(r.Parts, 1)))
			case "compact":
				r.Note = q.String()
			default:
				r.Note = fmt.Sprintf("%d files, checkpoint 5s", r.Files)
			}
			return r, nil
		}
	}
}

func countPartitionDirs(root string) int64 {
	dirs := map[string]bool{}
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".parquet") {
			dirs[filepath.Dir(path)] = true
		}
		return nil
	})
	return int64(len(dirs))
}
