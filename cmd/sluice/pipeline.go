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
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/cdc"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/deadletter"
	"github.com/sluicehq/sluice/ingest/etl"
	"github.com/sluicehq/sluice/ingest/parse"
	"github.com/sluicehq/sluice/ingest/schema"
	"github.com/sluicehq/sluice/partition"
	"github.com/sluicehq/sluice/sinks/audit"
	"github.com/sluicehq/sluice/sinks/hdfs"
	"github.com/sluicehq/sluice/sinks/iceberg"
	kafkasink "github.com/sluicehq/sluice/sinks/kafka"
)

// pipeline is a wired pipeline: catalog, committer and streams. Streams
// come and go while it runs when the config is reloaded; the pipeline-wide
// parts (Kafka connection, catalog, dead letters, committer) stay.
type pipeline struct {
	cfg       *config.Pipeline
	log       *slog.Logger
	reg       *prometheus.Registry
	cat       catalog.Catalog
	kopts     []kgo.Opt
	dl        ingest.DeadLetters
	runID     string
	committer *iceberg.Committer
	metrics   *ingest.Metrics
	reloads   *prometheus.CounterVec
	closers   []func() error

	// noticeMetrics are shared by every table's notifier.
	noticeMetrics *partition.Metrics

	mu      sync.Mutex
	streams []*ingest.Stream // in config order, for progress displays
	byName  map[string]*streamRun
	// audit exports the trace of every commit; nil when disabled.
	audit *audit.Exporter
	// mirrors are the CDC sources and their tables by commit stream.
	sources []*cdc.Mirror
	mirrors map[string]*mirrorTarget
	notices *kgo.Client // producer of notice topics; nil until needed
	hdfs    *hdfs.Clients
}

// streamRun is a running stream and how to stop it.
type streamRun struct {
	cfg      config.Stream
	in       schema.Schema // decoded columns; for protobuf they come from the message type
	s        *ingest.Stream
	notifier *partition.Notifier // nil without notice targets
	cancel   context.CancelFunc
	done     chan error
}

// newAudit makes the exporter of the audit trace: to ClickHouse when
// configured, else to a local file, through the spool either way.
func newAudit(cfg *config.Pipeline, reg prometheus.Registerer, log *slog.Logger) (*audit.Exporter, error) {
	a := cfg.Audit
	if a.Disabled {
		return nil, nil
	}
	var sink audit.Sink = audit.NewFile(a.File)
	if ch := a.ClickHouse; ch != nil {
		c, err := audit.NewClickHouse(audit.ClickHouseOptions{Addr: ch.Addrs, Database: ch.Database, Table: ch.Table,
			User: ch.User, Password: ch.Password, Timeout: ch.Timeout.D()})
		if err != nil {
			return nil, err
		}
		sink = c
	}
	return audit.NewExporter(sink, audit.Options{Pipeline: cfg.Name, SpoolDir: a.SpoolDir, SpoolMax: int64(a.SpoolMaxBytes),
		Logger: log, Registerer: reg})
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

// newPipeline opens the catalog and the dead-letter destination, then
// prepares every stream's table (creating missing ones, evolving compatible
// schema changes, deleting files a crashed run left uncommitted).
func newPipeline(ctx context.Context, cfg *config.Pipeline, log *slog.Logger) (*pipeline, error) {
	p := &pipeline{cfg: cfg, log: log, reg: prometheus.NewRegistry(), byName: map[string]*streamRun{}, runID: newRunID(),
		mirrors: map[string]*mirrorTarget{}}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_config_reloads_total", Help: "Config reloads by result: applied, unchanged, refused.",
	}, []string{"result"})
	p.reg.MustRegister(p.reloads)
	ok := false
	defer func() {
		if !ok {
			p.close()
		}
	}()
	var err error
	if p.kopts, err = kafkaOpts(cfg.Kafka); err != nil {
		return nil, err
	}
	var closeHDFS func() error
	p.hdfs, closeHDFS = installHDFS(cfg.HDFS, log, p.reg)
	p.closers = append(p.closers, closeHDFS)
	if cfg.Catalog.URI != "" {
		cat, closeCat, err := iceberg.OpenCatalog(ctx, cfg.Catalog)
		if err != nil {
			return nil, err
		}
		p.cat = cat
		p.closers = append(p.closers, closeCat)
	}
	if cfg.DeadLetter.File != "" {
		f, err := deadletter.OpenFile(cfg.DeadLetter.File, int(cfg.DeadLetter.MaxValueBytes))
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, f.Close)
		p.dl = f
	} else if cfg.DeadLetter.Topic != "" {
		cl, err := kgo.NewClient(append(p.kopts, kgo.ProducerBatchMaxBytes(int32(min(cfg.DeadLetter.MaxValueBytes+64<<10, 16<<20))))...)
		if err != nil {
			return nil, fmt.Errorf("dead_letter.topic: %w", err)
		}
		p.closers = append(p.closers, func() error { cl.Close(); return nil })
		p.dl = deadletter.NewTopic(cl, cfg.DeadLetter.Topic, int(cfg.DeadLetter.MaxValueBytes))
	}
	p.committer = iceberg.NewCommitter(p.cat, p, iceberg.CommitterOptions{
		Pipeline: cfg.Name, RunID: p.runID, FailureTimeout: cfg.Checkpoint.CommitFailureTimeout.D(),
		Logger: log, Registerer: p.reg,
	})
	if p.audit, err = newAudit(cfg, p.reg, log); err != nil {
		return nil, err
	}
	p.metrics = ingest.NewMetrics(p.reg)
	p.noticeMetrics = partition.NewMetrics(p.reg)
	for i, sc := range cfg.Streams {
		r, err := p.prepare(ctx, cfg, sc)
		if err != nil {
			return nil, fmt.Errorf("streams[%d]: %w", i, err)
		}
		p.streams = append(p.streams, r.s)
		p.byName[sc.Name] = r
	}
	for i, c := range cfg.CDC {
		m, err := p.newMirror(c)
		if err != nil {
			return nil, fmt.Errorf("cdc[%d]: %w", i, err)
		}
		p.sources = append(p.sources, m)
	}
	ok = true
	return p, nil
}

// prepare readies one stream: its table, its state and its wiring. The
// stream must not be running.
func (p *pipeline) prepare(ctx context.Context, cfg *config.Pipeline, sc config.Stream) (*streamRun, error) {
	in, err := sc.InputSchema()
	if err != nil {
		return nil, err
	}
	r := &streamRun{cfg: sc, in: in}
	var prog *etl.Program
	out := in
	if !sc.ETL.IsZero() {
		if prog, err = etl.New(sc.ETL, in); err != nil {
			return nil, fmt.Errorf("etl: %w", err)
		}
		out = prog.Output()
	}
	if sc.Export != nil {
		r.s, err = p.prepareExport(cfg, sc, in, out, prog)
		return r, err
	}
	if sc.Hive() {
		return r, p.prepareHive(ctx, cfg, sc, r, in, out, prog)
	}
	if p.cat == nil {
		return nil, fmt.Errorf("table %s: an Iceberg table needs the catalog section, which the daemon started without: restart it", sc.Table.Name)
	}
	tbl, bound, err := iceberg.EnsureTable(ctx, p.cat, sc.Table, out)
	if err != nil {
		return nil, err
	}
	outLayout := schema.NewLayout(bound, sc.Table.Name)
	inLayout := outLayout
	if prog != nil {
		inLayout = schema.NewLayout(in, sc.Name)
	}
	part, err := iceberg.NewPartitioner(sc.Table.Partition, outLayout)
	if err != nil {
		return nil, err
	}
	newDecoder, err := decoderFactory(sc, inLayout)
	if err != nil {
		return nil, err
	}
	state, err := iceberg.LoadState(tbl, sc.Name)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", sc.Table.Name, err)
	}
	orphans, err := iceberg.RemoveOrphans(ctx, tbl)
	if err != nil {
		return nil, err
	}
	if len(orphans) > 0 {
		p.log.Info("removed uncommitted files of an earlier run", "table", sc.Table.Name, "files", len(orphans))
	}
	p.log.Info("stream resumes", "stream", sc.Name, "table", sc.Table.Name, "checkpoint", state.Checkpoint,
		"partitions", state.Positions.Count())
	ann, notifier, err := p.announcing(sc, p.icebergNotices(tbl), outLayout)
	if err != nil {
		return nil, err
	}
	r.notifier = notifier
	var newLateWriter func(int) (ingest.TableWriter, error)
	if sc.Late.Policy == "table" {
		if ann.LateTable, newLateWriter, err = p.lateTable(ctx, cfg, sc, out, state.Checkpoint); err != nil {
			return nil, err
		}
	}
	p.committer.AddTable(sc.Name, tbl, cfg.Writer.Workers, state, ann)
	if p.audit != nil {
		name := sc.Name
		p.audit.Add(name, sc.Table.Name, func() *table.Table { return p.committer.Table(name) })
	}
	writerOpts := p.writerOptions(cfg)
	newWriter := func(worker int) (ingest.TableWriter, error) {
		return iceberg.NewWriter(ctx, tbl, outLayout, part, writerOpts(worker))
	}
	var newChangeWriter func(int) (ingest.ChangeWriter, error)
	if sc.Format == "canal" || sc.Format == "debezium" {
		newWriter, newChangeWriter = nil, func(worker int) (ingest.ChangeWriter, error) {
			return iceberg.NewUpserts(tbl, outLayout, sc.Table.PrimaryKey, writerOpts(worker))
		}
	}
	r.s, err = p.newStream(ingest.Options{
		Pipeline: cfg, Stream: sc, Input: inLayout, Output: outLayout, Program: prog, Partitioner: part,
		NewDecoder: newDecoder, NewWriter: newWriter, NewChangeWriter: newChangeWriter,
		NewLateWriter: newLateWriter,
	}, state, ann)
	return r, err
}

// writerOptions are the options of one worker's table writer.
func (p *pipeline) writerOptions(cfg *config.Pipeline) func(worker int) iceberg.WriterOptions {
	budget, runID := writerBudget(cfg), p.runID
	return func(worker int) iceberg.WriterOptions {
		return iceberg.WriterOptions{
			Worker: worker, RunID: runID, TargetFileSize: int64(cfg.Writer.TargetFileSize),
			RowGroupSize: int64(cfg.Writer.RowGroupSize), Compression: cfg.Writer.Compression,
			MaxOpenFiles: cfg.Writer.MaxOpenFiles, MemoryBudget: budget,
		}
	}
}

// newStream completes a stream's options with what every stream shares
// and where its table left off, and makes it.
func (p *pipeline) newStream(o ingest.Options, state iceberg.State, ann iceberg.Announcing) (*ingest.Stream, error) {
	o.RunID, o.StartPositions, o.StartCheckpoint = p.runID, state.Positions, state.Checkpoint
	o.Committer, o.DeadLetters, o.KafkaOpts = p.committer, p.dl, p.kopts
	o.InstanceID, o.Logger, o.Metrics = instanceID(p.cfg, o.Stream.Name), p.log, p.metrics
	s, err := ingest.NewStream(o)
	if err != nil {
		return nil, err
	}
	if ann.Slicing.Unit != "" {
		s.SetLateBefore(ann.Slicing.LateBefore(&state.Notify))
	}
	return s, nil
}

// prepareHive readies a stream whose table is a hive directory table:
// recovered, its state read from its checkpoint record, its writers
// putting files in its staging directory.
func (p *pipeline) prepareHive(ctx context.Context, cfg *config.Pipeline, sc config.Stream, r *streamRun, in, out schema.Schema, prog *etl.Program) error {
	out.AssignIDs()
	outLayout := schema.NewLayout(out, sc.Table.Name)
	inLayout := outLayout
	if prog != nil {
		inLayout = schema.NewLayout(in, sc.Name)
	}
	part, err := iceberg.NewPartitioner(sc.Table.Partition, outLayout)
	if err != nil {
		return err
	}
	part = part.Hive()
	newDecoder, err := decoderFactory(sc, inLayout)
	if err != nil {
		return err
	}
	tbl, fio, nt, err := p.hiveTable(ctx, sc, part.Spec())
	if err != nil {
		return err
	}
	state := iceberg.State{Positions: checkpoint.Positions{}}
	if rec := tbl.Last(); rec != nil {
		if state, err = iceberg.StateFromProps(rec.Properties, rec.Checkpoint); err != nil {
			return fmt.Errorf("table %s: checkpoint record: %w", sc.Table.Name, err)
		}
	}
	p.log.Info("stream resumes", "stream", sc.Name, "table", sc.Table.Name, "checkpoint", state.Checkpoint,
		"partitions", state.Positions.Count())
	ann, notifier, err := p.announcing(sc, nt, outLayout)
	if err != nil {
		return err
	}
	ann.Retention = nil // snapshots are Iceberg's
	r.notifier = notifier
	p.committer.AddDirTable(sc.Name, sc.Table.Name, tbl, cfg.Writer.Workers, state, ann)
	writerOpts := p.writerOptions(cfg)
	r.s, err = p.newStream(ingest.Options{
		Pipeline: cfg, Stream: sc, Input: inLayout, Output: outLayout, Program: prog, Partitioner: part,
		NewDecoder: newDecoder,
		NewWriter: func(worker int) (ingest.TableWriter, error) {
			return iceberg.NewWriterIn(fio, tbl.StagingURL(), outLayout, part, writerOpts(worker)), nil
		},
	}, state, ann)
	return err
}

// writerBudget is the memory of one worker's open files: open files get a
// quarter of the memory budget, fetched and queued records an eighth (see
// ingest); the rest is for sealing and commits (a checkpoint of a backfill
// holds tens of thousands of data files) and for the garbage collector.
func writerBudget(cfg *config.Pipeline) int64 {
	return int64(cfg.MemoryBudget) / 4 / int64(cfg.Writer.Workers) / int64(max(1, len(cfg.Streams)))
}

// lateTable readies the table of a stream's late rows (late.policy table):
// created like the stream's own, with commits ahead of the stream's own
// table rolled back (see iceberg.RollBackAhead) and orphans removed.
func (p *pipeline) lateTable(ctx context.Context, cfg *config.Pipeline, sc config.Stream, out schema.Schema, cp int64) (*table.Table, func(int) (ingest.TableWriter, error), error) {
	lc := config.Table{Name: sc.Late.Table, Partition: sc.Table.Partition, Properties: sc.Table.Properties}
	tbl, bound, err := iceberg.EnsureTable(ctx, p.cat, lc, out)
	if err != nil {
		return nil, nil, fmt.Errorf("late.table: %w", err)
	}
	tbl, undone, err := iceberg.RollBackAhead(ctx, tbl, sc.Name, cp)
	if err != nil {
		return nil, nil, fmt.Errorf("late.table: %w", err)
	}
	if undone > 0 {
		p.log.Info("rolled back late-table commits of a checkpoint the stream's table never got", "table", lc.Name, "commits", undone)
	}
	if _, err := iceberg.RemoveOrphans(ctx, tbl); err != nil {
		return nil, nil, fmt.Errorf("late.table: %w", err)
	}
	layout := schema.NewLayout(bound, lc.Name)
	part, err := iceberg.NewPartitioner(lc.Partition, layout)
	if err != nil {
		return nil, nil, fmt.Errorf("late.table: %w", err)
	}
	budget, runID := writerBudget(cfg), p.runID
	return tbl, func(worker int) (ingest.TableWriter, error) {
		return iceberg.NewWriter(ctx, tbl, layout, part, iceberg.WriterOptions{
			Worker: worker, RunID: runID, TargetFileSize: int64(cfg.Writer.TargetFileSize),
			RowGroupSize: int64(cfg.Writer.RowGroupSize), Compression: cfg.Writer.Compression,
			MaxOpenFiles: cfg.Writer.MaxOpenFiles, MemoryBudget: budget / 4,
		})
	}, nil
}

// Committed routes the committer's acknowledgements to the streams.
func (p *pipeline) Committed(stream string, cp checkpoint.DataWritten, snapshotID int64) {
	p.mu.Lock()
	r := p.byName[stream]
	p.mu.Unlock()
	if r != nil {
		r.s.Committed(cp, snapshotID)
	}
	p.mu.Lock()
	m := p.mirrors[stream]
	p.mu.Unlock()
	if m != nil {
		m.committed(cp.Checkpoint)
	}
	if p.audit != nil {
		p.audit.Notify()
	}
}

// runningStreams lists the streams in config order.
func (p *pipeline) runningStreams() []*ingest.Stream {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*ingest.Stream(nil), p.streams...)
}

func (p *pipeline) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// run runs every stream and the committer until ctx ends, then lets the
// streams take their last checkpoint before stopping the committer. The
// first error stops everything. Config texts arriving on reload are
// validated and applied while running (see apply); nil disables reloads.
func (p *pipeline) run(ctx context.Context, metricsAddr string, reload <-chan []byte) error {
	defer p.close()
	commitCtx, stopCommit := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCommit()
	g, gctx := errgroup.WithContext(commitCtx)
	g.Go(func() error {
		err := p.committer.Run(gctx)
		if err != nil {
			// No checkpoint can commit any more: streams stop without one.
			for _, s := range p.runningStreams() {
				s.Abort(err)
			}
		}
		return err
	})
	if p.audit != nil {
		g.Go(func() error { return p.audit.Run(gctx) })
	}
	g.Go(func() error {
		defer stopCommit()
		// CDC sources take their last checkpoints, and wait for them, as
		// the streams do, before the committer stops.
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(gctx, cancel)() // the committer failed
		mg, mctx := errgroup.WithContext(sctx)
		for _, m := range p.sources {
			mg.Go(func() error { return m.Run(mctx) })
		}
		mg.Go(func() error { return p.supervise(mctx, gctx, reload) })
		return mg.Wait()
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

// supervise owns the stream goroutines: it starts them, applies reloads,
// and returns when ctx ends (after every stream's last checkpoint) or when
// a stream or the committer fails.
func (p *pipeline) supervise(ctx, gctx context.Context, reload <-chan []byte) error {
	exited := make(chan *streamRun, 16)
	start := func(r *streamRun) {
		sctx, cancel := context.WithCancel(ctx)
		r.cancel, r.done = cancel, make(chan error, 1)
		go func() {
			r.done <- r.run(sctx)
			exited <- r
		}()
	}
	// stop drains a stream: it stops reading and commits a last checkpoint.
	stop := func(r *streamRun) error {
		r.cancel()
		err := <-r.done
		r.done <- err // for the final wait
		return err
	}
	p.mu.Lock()
	for _, r := range p.byName {
		start(r)
	}
	p.mu.Unlock()
	stopAll := func() error {
		p.mu.Lock()
		runs := make([]*streamRun, 0, len(p.byName))
		for _, r := range p.byName {
			runs = append(runs, r)
		}
		p.mu.Unlock()
		var errs []error
		for _, r := range runs {
			r.cancel()
		}
		for _, r := range runs {
			if err := <-r.done; err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for {
		select {
		case <-ctx.Done():
			return stopAll()
		case <-gctx.Done():
			stopAll()
			return nil // the committer's error is the one reported
		case r := <-exited:
			p.mu.Lock()
			current := p.byName[r.cfg.Name] == r
			p.mu.Unlock()
			if !current || ctx.Err() != nil {
				continue // stopped by a reload, or shutting down
			}
			name := r.cfg.Name
			err := <-r.done
			r.done <- err
			if errors.Is(err, ingest.ErrRestartNeeded) {
				// Its records' columns changed: it committed up to the first
				// such record; restart it with the new columns.
				p.log.Info("restarting stream with new columns", "stream", name, "reason", err)
				p.committer.RemoveTable(name)
				nr, perr := p.prepare(ctx, p.cfg, r.cfg)
				if perr == nil {
					p.mu.Lock()
					p.byName[name] = nr
					for i, old := range p.streams {
						if old == r.s {
							p.streams[i] = nr.s
						}
					}
					p.mu.Unlock()
					start(nr)
					continue
				}
				err = fmt.Errorf("restart stream %s: %w", name, perr)
			}
			if err == nil {
				err = fmt.Errorf("stream %s stopped unexpectedly", name)
			}
			stopAll()
			return err
		case raw := <-reload:
			next, err := config.ParseIn(raw, p.cfg.Dir)
			if err == nil {
				err = p.apply(ctx, next, start, stop)
			}
			if err != nil {
				p.reloads.WithLabelValues("refused").Inc()
				p.log.Error("config reload refused; the running config stays", "err", err)
			}
		}
	}
}

// apply moves the running pipeline to a new config: removed streams finish
// a checkpoint and stop, new streams start, and changed streams finish a
// checkpoint and restart with their new settings (evolving their table's
// schema first when columns were added or widened), so nothing is lost or
// duplicated. Everything is checked before anything changes: an update that
// cannot apply is refused whole.
func (p *pipeline) apply(ctx context.Context, next *config.Pipeline, start func(*streamRun), stop func(*streamRun) error) error {
	if diff := pipelineDiff(p.cfg, next); len(diff) > 0 {
		return fmt.Errorf("changes to %s need a restart", strings.Join(diff, ", "))
	}
	p.mu.Lock()
	current := map[string]*streamRun{}
	for k, v := range p.byName {
		current[k] = v
	}
	p.mu.Unlock()
	var added, changed, removed []string
	for _, sc := range next.Streams {
		r, ok := current[sc.Name]
		switch {
		case !ok:
			added = append(added, sc.Name)
		case !reflect.DeepEqual(r.cfg, sc) || !sameInput(r, sc):
			changed = append(changed, sc.Name)
			if err := p.preflight(ctx, r.cfg, sc); err != nil {
				return fmt.Errorf("stream %s: %w", sc.Name, err)
			}
		}
	}
	for name := range current {
		if _, ok := findStream(next, name); !ok {
			removed = append(removed, name)
		}
	}
	if len(added)+len(changed)+len(removed) == 0 {
		p.reloads.WithLabelValues("unchanged").Inc()
		p.log.Info("config reloaded: no change")
		return nil
	}
	for _, name := range append(append([]string(nil), removed...), changed...) {
		r := current[name]
		p.log.Info("stopping stream for the new config", "stream", name)
		if err := stop(r); err != nil {
			return fmt.Errorf("stop stream %s: %w", name, err)
		}
		p.committer.RemoveTable(name)
		p.mu.Lock()
		delete(p.byName, name)
		p.mu.Unlock()
	}
	p.cfg = next
	var streams []*ingest.Stream
	for _, sc := range next.Streams {
		p.mu.Lock()
		r := p.byName[sc.Name]
		p.mu.Unlock()
		if r == nil {
			var err error
			if r, err = p.prepare(ctx, next, sc); err != nil {
				// The old stream is stopped and its config gone: this is fatal
				// only in the sense that the stream stays down; say so loudly.
				p.log.Error("stream could not start with the new config", "stream", sc.Name, "err", err)
				continue
			}
			p.mu.Lock()
			p.byName[sc.Name] = r
			p.mu.Unlock()
			start(r)
		}
		streams = append(streams, r.s)
	}
	p.mu.Lock()
	p.streams = streams
	p.mu.Unlock()
	p.reloads.WithLabelValues("applied").Inc()
	p.log.Info("config reloaded", "added", strings.Join(added, ","), "changed", strings.Join(changed, ","), "removed", strings.Join(removed, ","))
	return nil
}

// prepareExport readies a stream that writes to a Kafka topic: rows go out
// in one transaction per checkpoint that also commits the group's offsets.
func (p *pipeline) prepareExport(cfg *config.Pipeline, sc config.Stream, in, out schema.Schema, prog *etl.Program) (*ingest.Stream, error) {
	out.AssignIDs()
	outLayout := schema.NewLayout(out, sc.Name)
	inLayout := outLayout
	if prog != nil {
		in.AssignIDs()
		inLayout = schema.NewLayout(in, sc.Name)
	}
	newDecoder, err := decoderFactory(sc, inLayout)
	if err != nil {
		return nil, err
	}
	enc, err := kafkasink.NewEncoder(outLayout, sc.Export.Key)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	values, err := exportValues(sc.Export, enc, outLayout)
	if err != nil {
		return nil, err
	}
	var stream *ingest.Stream
	session := func() *kgo.GroupTransactSession {
		if stream == nil {
			return nil
		}
		return stream.Session()
	}
	p.log.Info("stream exports to kafka", "stream", sc.Name, "topic", sc.Export.Topic)
	stream, err = ingest.NewStream(ingest.Options{
		Pipeline: cfg, Stream: sc, Input: inLayout, Output: outLayout, Program: prog, Partitioner: noPartition{},
		NewDecoder: newDecoder,
		NewWriter: func(int) (ingest.TableWriter, error) {
			return kafkasink.NewWriter(enc, values(), sc.Export.Topic, session), nil
		},
		Committer:   kafkasink.NewCommitter(sc.Name, cfg.Writer.Workers, session, p),
		DeadLetters: p.dl, KafkaOpts: p.kopts, InstanceID: instanceID(cfg, sc.Name), Transactional: true,
		Logger: p.log, Metrics: p.metrics,
	})
	return stream, err
}

// exportValues returns a maker of each writer's value encoder for the
// export's format.
func exportValues(ex *config.Export, enc *kafkasink.Encoder, out *schema.Layout) (func() kafkasink.ValueEncoder, error) {
	if ex.Format != "protobuf" {
		return func() kafkasink.ValueEncoder { return kafkasink.JSONValues{Encoder: enc.Clone()} }, nil
	}
	md, err := ex.Protobuf.Descriptor()
	if err != nil {
		return nil, fmt.Errorf("export.protobuf: %w", err)
	}
	pe, err := kafkasink.NewProtoEncoder(out, md)
	if err != nil {
		return nil, fmt.Errorf("export.protobuf: message %s cannot hold the output columns: %w", md.FullName(), err)
	}
	return func() kafkasink.ValueEncoder { return pe.Clone() }, nil
}

// decoderFactory makes the per-worker decoders of a stream's format,
// decompressing values first when the producer compressed them.
func decoderFactory(sc config.Stream, l *schema.Layout) (func() (ingest.Decoder, error), error) {
	var base func() (parse.RowDecoder, error)
	switch sc.Format {
	case "protobuf":
		if sc.Protobuf.SchemaRegistry != nil {
			src, err := sc.Registry()
			if err != nil {
				return nil, err
			}
			in, err := sc.InputSchema()
			if err != nil {
				return nil, err
			}
			return func() (ingest.Decoder, error) { return src.NewDecoder(l, in), nil }, nil
		}
		md, err := sc.Protobuf.Descriptor()
		if err != nil {
			return nil, fmt.Errorf("protobuf: %w", err)
		}
		opts := sc.Protobuf.Options(sc.EventTime, int(sc.MaxRecordBytes))
		base = func() (parse.RowDecoder, error) { return parse.NewProtobuf(md, l, opts) }
		if m := sc.Match; m != nil && m.Field != "" {
			decode := base
			base = func() (parse.RowDecoder, error) {
				d, err := decode()
				if err != nil {
					return nil, err
				}
				return parse.NewProtoMatch(d, md, m.Field, m.Value)
			}
		}
	default:
		opts := parse.Options{EventTime: sc.EventTime, MaxRecordBytes: int(sc.MaxRecordBytes)}
		base = func() (parse.RowDecoder, error) { return parse.NewJSON(l, opts) }
		if m := sc.Match; m != nil && m.Field != "" {
			base = func() (parse.RowDecoder, error) {
				d, err := parse.NewJSON(l, opts)
				if err != nil {
					return nil, err
				}
				return parse.NewJSONMatch(d, m.Field, m.Value)
			}
		}
	}
	// Build one now so that a bad match.field fails the stream's start
	// rather than its first worker.
	if _, err := base(); err != nil {
		return nil, err
	}
	return func() (ingest.Decoder, error) {
		// Decompress first: the match reads the record itself.
		d, err := base()
		if err != nil || sc.Compression == "none" || sc.Compression == "" {
			return d, err
		}
		return parse.NewDecompressing(d, sc.Compression, int(sc.MaxRecordBytes))
	}, nil
}

// noPartition puts every row of an export in one group.
type noPartition struct{}

func (noPartition) AppendKey(buf []byte, _ parquet.Row) []byte { return buf }

// preflight checks that a changed stream can restart with its new settings:
// the same table must be able to take the new columns in place.
func (p *pipeline) preflight(ctx context.Context, old, next config.Stream) error {
	in, err := next.InputSchema()
	if err != nil {
		return err
	}
	out := in
	if !next.ETL.IsZero() {
		prog, err := etl.New(next.ETL, in)
		if err != nil {
			return err
		}
		out = prog.Output()
	}
	if next.Export != nil {
		// No table: the new rows simply follow, if the format can hold them.
		out.AssignIDs()
		l := schema.NewLayout(out, next.Name)
		enc, err := kafkasink.NewEncoder(l, next.Export.Key)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		_, err = exportValues(next.Export, enc, l)
		return err
	}
	if next.Hive() {
		return nil // Hive-family readers take files of new shapes by column name
	}
	if p.cat == nil {
		return fmt.Errorf("table %s: an Iceberg table needs the catalog section, which the daemon started without: restart it", next.Table.Name)
	}
	tbl, err := p.cat.LoadTable(ctx, iceberg.Identifier(next.Table.Name))
	if err != nil {
		if old.Table.Name != next.Table.Name {
			return nil // a new table is created on start
		}
		return fmt.Errorf("table %s: %w", next.Table.Name, err)
	}
	if _, err := iceberg.SchemaChanges(tbl, out); err != nil {
		return fmt.Errorf("table %s cannot take the new columns: %w", next.Table.Name, err)
	}
	if !reflect.DeepEqual(old.Table.Partition, next.Table.Partition) && old.Table.Name == next.Table.Name {
		return fmt.Errorf("table %s: changing table.partition of an existing table is not supported", next.Table.Name)
	}
	return nil
}

// sameInput reports whether a protobuf stream's message type still maps to
// the columns it runs with: a changed .proto file or descriptor set is a
// change of the stream even when its config text is the same.
func sameInput(r *streamRun, sc config.Stream) bool {
	if sc.Format != "protobuf" {
		return true
	}
	in, err := sc.InputSchema()
	if err != nil {
		return false // let preflight report it
	}
	return schema.Type{Kind: schema.KindStruct, Fields: in.Fields}.Equal(schema.Type{Kind: schema.KindStruct, Fields: r.in.Fields})
}

func findStream(cfg *config.Pipeline, name string) (config.Stream, bool) {
	for _, s := range cfg.Streams {
		if s.Name == name {
			return s, true
		}
	}
	return config.Stream{}, false
}

// pipelineDiff names the top-level sections other than streams that differ.
func pipelineDiff(a, b *config.Pipeline) []string {
	var diff []string
	va, vb := reflect.ValueOf(*a), reflect.ValueOf(*b)
	t := va.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "streams" {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			diff = append(diff, name)
		}
	}
	return diff
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
