// Command sluice is the Sluice daemon and its tools: run a pipeline,
// validate a config, run the self-contained demo, inspect tables and
// measure throughput.
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
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/ingest/config"
)

const usage = `sluice — incremental ingestion from Kafka into Apache Iceberg tables

Usage:
  sluice run -c pipeline.yaml [--metrics-addr :9464]   run a pipeline until SIGTERM/SIGINT
  sluice validate -c pipeline.yaml                      check a config without running it
  sluice demo [--dir ./sluice-demo] [--events N]        run everything locally with generated click events
  sluice inspect (--dir DIR | -c pipeline.yaml) [table] show tables, snapshots and partitions
  sluice partitions (--dir DIR | -c pipeline.yaml) [table]
                                                        show time partitions: open, ready, empty, updated
  sluice compact (--dir DIR | -c pipeline.yaml) table   merge a table's small files
  sluice audit -c pipeline.yaml [--table T]             reconcile the audit trace with the tables
  sluice bench [--events N]                             measure fetch, decode+encode and the full pipeline

Run "sluice <command> -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "run":
		err = runCmd(args)
	case "validate":
		err = validateCmd(args, os.Stdout)
	case "demo":
		err = demoCmd(args)
	case "inspect":
		err = inspectCmd(args, os.Stdout)
	case "partitions":
		err = partitionsCmd(args, os.Stdout)
	case "compact":
		err = compactCmd(args, os.Stdout)
	case "audit":
		err = auditCmd(args, os.Stdout)
	case "bench":
		err = benchCmd(args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "sluice: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "sluice %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q is not text or json", format)
}

// setMemoryLimit makes the garbage collector work harder as the heap nears
// the memory budget, unless GOMEMLIMIT says otherwise. The limit leaves 30%
// of the budget for what the Go heap does not count — the binary's own
// resident code (tens of MiB), stacks, runtime structures, fragmentation —
// so the process's RSS stays within the budget.
func setMemoryLimit(budget config.ByteSize) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(budget) * 7 / 10)
	}
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("c", "", "pipeline config file (required)")
	metricsAddr := fs.String("metrics-addr", ":9464", "address serving /metrics and /healthz (empty disables)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	watch := fs.Duration("watch-interval", 5*time.Second, "how often to check the config file for changes (0: only on SIGHUP)")
	cfgTopic := fs.String("config-topic", "", "compacted Kafka topic holding the pipeline config under the pipeline's name; its newest value overrides -c and is applied when it changes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("-c pipeline.yaml is required")
	}
	log, err := newLogger(os.Stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	// Signals are caught before anything starts, so a SIGTERM during start-up
	// still ends in an orderly stop.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	reload := make(chan []byte)
	var topic configTopic
	if *cfgTopic != "" {
		kopts, err := kafkaOpts(cfg.Kafka)
		if err != nil {
			return err
		}
		topic = configTopic{opts: kopts, topic: *cfgTopic, key: cfg.Name}
		raw, _, err := topic.latest(ctx)
		if err != nil {
			return err
		}
		if raw != nil {
			if cfg, err = config.ParseIn(raw, cfg.Dir); err != nil {
				return fmt.Errorf("config from topic %s: %w", *cfgTopic, err)
			}
			log.Info("using the config published on the config topic", "topic", *cfgTopic)
		}
	}
	setMemoryLimit(cfg.MemoryBudget)
	p, err := newPipeline(ctx, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped during start-up")
			return nil
		}
		return err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if *cfgTopic != "" {
		go func() {
			if err := topic.watch(watchCtx, log, reload); err != nil {
				log.Error("config topic watch stopped", "err", err)
			}
		}()
	} else {
		go watchFile(watchCtx, *path, *watch, log, reload)
	}
	log.Info("sluice running", "pipeline", cfg.Name, "streams", len(cfg.Streams), "metrics", *metricsAddr)
	if err := p.run(ctx, *metricsAddr, reload); err != nil {
		return err
	}
	log.Info("sluice stopped", "pipeline", cfg.Name)
	return nil
}

func validateCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	path := fs.String("c", "", "pipeline config file (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("-c pipeline.yaml is required")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return fmt.Errorf("%s is invalid:\n  %s", *path, strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	fmt.Fprintf(out, "%s is valid: pipeline %q, %d stream(s)\n", *path, cfg.Name, len(cfg.Streams))
	return nil
}
