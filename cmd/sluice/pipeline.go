package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/deadletter"
	"github.com/sluicehq/sluice/ingest/etl"
	"github.com/sluicehq/sluice/ingest/schema"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

// pipeline is a wired pipeline: catalog, committer and streams.
type pipeline struct {
	cfg       *config.Pipeline
	log       *slog.Logger
	reg       *prometheus.Registry
	committer *iceberg.Committer
	streams   []*ingest.Stream
	byName    map[string]*ingest.Stream
	closers   []func() error
}

// kafkaOpts turns the kafka section into client options.
func kafkaOpts(k config.Kafka) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.ClientID(k.ClientID)}
	switch k.SASL.Mechanism {
	case "plain":
		opts = append(opts, kgo.SASL(plain.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsMechanism()))
	case "scram-sha-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsSha256Mechanism()))
	case "scram-sha-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsSha512Mechanism()))
	}
	if k.TLS.Enabled || k.TLS.CAFile != "" || k.TLS.CertFile != "" {
		tc := &tls.Config{ServerName: k.TLS.ServerName, MinVersion: tls.VersionTLS12}
		if k.TLS.CAFile != "" {
			pem, err := os.ReadFile(k.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka.tls.ca_file: no certificates in %s", k.TLS.CAFile)
			}
			tc.RootCAs = pool
		}
		if k.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(k.TLS.CertFile, k.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls.cert_file: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	return opts, nil
}

// newRunID names this run's files; with the worker and a sequence number it
// keeps every data file name unique, so it is long enough that two runs
// never collide.
func newRunID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// instanceID names this daemon's static group membership: stable across
// restarts on one host, so a restarted daemon takes its partitions back at
// once instead of waiting for the old session to expire.
func instanceID(cfg *config.Pipeline, stream string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return cfg.Name + "." + stream + "@" + host
}

// newPipeline opens the catalog, prepares every table (creating missing ones
// and deleting files a crashed run left uncommitted) and wires the streams.
func newPipeline(ctx context.Context, cfg *config.Pipeline, log *slog.Logger) (*pipeline, error) {
	p := &pipeline{cfg: cfg, log: log, reg: prometheus.NewRegistry(), byName: map[string]*ingest.Stream{}}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ok := false
	defer func() {
		if !ok {
			p.close()
		}
	}()
	kopts, err := kafkaOpts(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	cat, closeCat, err := iceberg.OpenCatalog(ctx, cfg.Catalog)
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, closeCat)

	var dl ingest.DeadLetters
	if cfg.DeadLetter.File != "" {
		f, err := deadletter.OpenFile(cfg.DeadLetter.File, int(cfg.DeadLetter.MaxValueBytes))
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, f.Close)
		dl = f
	} else {
		cl, err := kgo.NewClient(append(kopts, kgo.ProducerBatchMaxBytes(int32(min(cfg.DeadLetter.MaxValueBytes+64<<10, 16<<20))))...)
		if err != nil {
			return nil, fmt.Errorf("dead_letter.topic: %w", err)
		}
		p.closers = append(p.closers, func() error { cl.Close(); return nil })
		dl = deadletter.NewTopic(cl, cfg.DeadLetter.Topic, int(cfg.DeadLetter.MaxValueBytes))
	}

	runID := newRunID()
	p.committer = iceberg.NewCommitter(cat, p, iceberg.CommitterOptions{
		Pipeline: cfg.Name, RunID: runID, FailureTimeout: cfg.Checkpoint.CommitFailureTimeout.D(),
		Logger: log, Registerer: p.reg,
	})
	metrics := ingest.NewMetrics(p.reg)
	for i, sc := range cfg.Streams {
		in, err := sc.InputSchema()
		if err != nil {
			return nil, err
		}
		var prog *etl.Program
		out := in
		if !sc.ETL.IsZero() {
			if prog, err = etl.New(sc.ETL, in); err != nil {
				return nil, fmt.Errorf("streams[%d].etl: %w", i, err)
			}
			out = prog.Output()
		}
		tbl, bound, err := iceberg.EnsureTable(ctx, cat, sc.Table, out)
		if err != nil {
			return nil, fmt.Errorf("streams[%d]: %w", i, err)
		}
		outLayout := schema.NewLayout(bound, sc.Table.Name)
		inLayout := outLayout
		if prog != nil {
			inLayout = schema.NewLayout(in, sc.Name)
		}
		part, err := iceberg.NewPartitioner(sc.Table.Partition, outLayout)
		if err != nil {
			return nil, fmt.Errorf("streams[%d]: %w", i, err)
		}
		state, err := iceberg.LoadState(tbl, sc.Name)
		if err != nil {
			return nil, fmt.Errorf("streams[%d]: table %s: %w", i, sc.Table.Name, err)
		}
		orphans, err := iceberg.RemoveOrphans(ctx, tbl)
		if err != nil {
			return nil, err
		}
		if len(orphans) > 0 {
			log.Info("removed uncommitted files of an earlier run", "table", sc.Table.Name, "files", len(orphans))
		}
		log.Info("stream resumes", "stream", sc.Name, "table", sc.Table.Name, "checkpoint", state.Checkpoint,
			"partitions", state.Positions.Count())
		p.committer.AddTable(sc.Name, tbl, cfg.Writer.Workers, state)
		// Open files get 3/8 of the memory budget; fetched and queued records
		// 1/4 (see ingest); the rest is headroom for the garbage collector.
		budget := int64(cfg.MemoryBudget) * 3 / 8 / int64(cfg.Writer.Workers) / int64(len(cfg.Streams))
		s, err := ingest.NewStream(ingest.Options{
			Pipeline: cfg, Stream: sc, Input: inLayout, Output: outLayout, Program: prog, Partitioner: part,
			NewWriter: func(worker int) (ingest.TableWriter, error) {
				return iceberg.NewWriter(ctx, tbl, outLayout, part, iceberg.WriterOptions{
					Worker: worker, RunID: runID, TargetFileSize: int64(cfg.Writer.TargetFileSize),
					RowGroupSize: int64(cfg.Writer.RowGroupSize), Compression: cfg.Writer.Compression,
					MaxOpenFiles: cfg.Writer.MaxOpenFiles, MemoryBudget: budget,
				})
			},
			StartPositions: state.Positions, StartCheckpoint: state.Checkpoint,
			Committer: p.committer, DeadLetters: dl, KafkaOpts: kopts, InstanceID: instanceID(cfg, sc.Name),
			Logger: log, Metrics: metrics,
		})
		if err != nil {
			return nil, err
		}
		p.streams = append(p.streams, s)
		p.byName[sc.Name] = s
	}
	ok = true
	return p, nil
}

// Committed routes the committer's acknowledgements to the streams.
func (p *pipeline) Committed(stream string, cp checkpoint.DataWritten, snapshotID int64) {
	if s := p.byName[stream]; s != nil {
		s.Committed(cp, snapshotID)
	}
}

func (p *pipeline) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// run runs every stream and the committer until ctx ends, then lets the
// streams take their last checkpoint before stopping the committer. The
// first error stops everything.
func (p *pipeline) run(ctx context.Context, metricsAddr string) error {
	defer p.close()
	commitCtx, stopCommit := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCommit()
	g, gctx := errgroup.WithContext(commitCtx)
	streamsCtx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	go func() {
		// An error anywhere stops the streams too.
		<-gctx.Done()
		stopStreams()
	}()
	var sg errgroup.Group
	for _, s := range p.streams {
		sg.Go(func() error { return s.Run(streamsCtx) })
	}
	g.Go(func() error {
		err := sg.Wait()
		stopCommit()
		return err
	})
	g.Go(func() error {
		err := p.committer.Run(gctx)
		if err != nil {
			// No checkpoint can commit any more: streams stop without one.
			for _, s := range p.streams {
				s.Abort(err)
			}
		}
		return err
	})
	if metricsAddr != "" {
		srv := &http.Server{Addr: metricsAddr, Handler: p.handler(), ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			err := srv.ListenAndServe()
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("metrics server: %w", err)
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	return g.Wait()
}

func (p *pipeline) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := p.committer.Health(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
