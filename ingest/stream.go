// Package ingest is the pipeline runtime of one stream: it reads Kafka
// topics with a consumer group, decodes and transforms records on parallel
// workers, hands rows to table writers, and passes checkpoint barriers
// through so each checkpoint's files and positions reach the committer
// together. Committing, catalogs and file formats live in sinks/.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/deadletter"
	"github.com/sluicehq/sluice/ingest/etl"
	"github.com/sluicehq/sluice/ingest/schema"
	"github.com/sluicehq/sluice/watermark"
)

// TableWriter receives a worker's rows for its table (sinks/iceberg.Writer).
type TableWriter interface {
	// Write adds a row to the file of its partition; the row's byte slices
	// stay valid until Flush.
	Write(key []byte, row parquet.Row, eventTime int64) error
	// Flush writes gathered rows so their memory can be reused.
	Flush() error
	// Seal closes every file and returns the files sealed since the last Seal.
	Seal() ([]iceberg.DataFile, int64, error)
}

// Decoder turns record values into rows of the input layout; one per
// worker. Errors it returns for a record dead-letter that record.
type Decoder interface {
	Decode(row parquet.Row, data []byte) (parquet.Row, int64, error)
	// Reset releases the memory of rows decoded since the last Reset.
	Reset()
}

// Partitioner computes the partition key of a row.
type Partitioner interface {
	AppendKey(buf []byte, row parquet.Row) []byte
}

// Submitter takes a worker's part of a checkpoint (sinks/iceberg.Committer).
type Submitter interface {
	Submit(ctx context.Context, dw checkpoint.DataWritten) error
}

// DeadLetters keeps records that cannot be ingested.
type DeadLetters interface {
	Put(ctx context.Context, e deadletter.Entry) error
	Flush(ctx context.Context) error
}

// Options wire a Stream.
type Options struct {
	Pipeline *config.Pipeline
	Stream   config.Stream
	// Input is the layout of decoded records; Output the layout of table rows
	// (equal to Input when there is no ETL).
	Input, Output *schema.Layout
	// Program is the compiled ETL, nil when the stream has none.
	Program *etl.Program
	// NewDecoder makes a worker's decoder (default: JSON of Input).
	NewDecoder  func() (Decoder, error)
	Partitioner Partitioner
	// NewWriter makes the table writer of one worker.
	NewWriter func(worker int) (TableWriter, error)
	// NewLateWriter makes the late table's writer of one worker
	// (late.policy table only).
	NewLateWriter func(worker int) (TableWriter, error)
	// NewChangeWriter makes the upserting writer of one worker, for streams
	// of change events (format canal or debezium) instead of NewWriter.
	NewChangeWriter func(worker int) (ChangeWriter, error)
	// RunID names this run's files.
	RunID string
	// Start is what the table recorded: resume positions and the last checkpoint.
	StartPositions  checkpoint.Positions
	StartCheckpoint int64
	Committer       Submitter
	DeadLetters     DeadLetters
	// KafkaOpts connect to the cluster (seeds, TLS, SASL); the stream adds
	// its group and topics.
	KafkaOpts []kgo.Opt
	// InstanceID makes the daemon a static group member, so a restarted
	// daemon takes over its partitions without waiting for a session timeout.
	InstanceID string
	// Transactional runs the stream for a Kafka exporter: records are read
	// and written inside Kafka transactions that also commit the consumer
	// group's offsets (see sinks/kafka), so the group's offsets are the
	// positions, and at each barrier polling stops until the checkpoint's
	// transaction has committed (a transaction commits the offsets of every
	// record polled in it).
	Transactional bool
	Logger        *slog.Logger
	Metrics       *Metrics
}

// Stats are live counters of a stream, for progress displays.
type Stats struct {
	Read, Written, DeadLettered, Filtered int64
	Committed, CommittedFiles             int64
	Lag                                   int64
	Checkpoint                            int64
	LastCommit                            time.Time
	Positions                             checkpoint.Positions
}

// Stream runs one stream. It owns its Kafka client, poll loop, workers and
// checkpoint ticker; all stop when Run returns.
type Stream struct {
	opts    Options
	cfg     config.Stream
	log     *slog.Logger
	workers []*worker

	nextCheckpoint int64 // owned by the ticker goroutine

	mu         sync.Mutex
	committed  checkpoint.Positions // positions of the last commit
	acked      int64
	ackedCh    chan struct{} // closed and replaced on every ack
	stats      Stats
	lag        map[topicPartition]int64
	running    atomic.Bool
	client     atomic.Pointer[kgo.Client]
	session    atomic.Pointer[kgo.GroupTransactSession]
	wantCP     chan struct{} // transactional: the ticker asks the poll loop for a barrier
	restart    chan struct{} // closed when a worker needs the stream rebuilt
	restartErr error
	failed     chan struct{}
	failErr    error

	read, written, dead, filtered atomic.Int64

	// lateBefore: records with earlier event times belong to announced
	// partitions (see SetLateBefore).
	lateBefore atomic.Int64
	// align pauses partitions that run ahead; nil without max_drift.
	align *aligner
}

type topicPartition struct {
	topic     string
	partition int32
}

// recordOverhead is the memory a fetched record holds beyond its key and
// value: kgo's Record (about 160 bytes) and slack in its batch buffers.
const recordOverhead = 256

// SetLateBefore tells the stream that partitions of records with event
// times before us (microseconds) were announced complete; with late.policy
// drop, such records are dropped and counted.
func (s *Stream) SetLateBefore(us int64) { s.lateBefore.Store(us) }

// ErrRestartNeeded ends Run after a last checkpoint when records need the
// stream rebuilt first (their message type gained columns); the records
// from there on are read again by the rebuilt stream.
var ErrRestartNeeded = errors.New("stream needs a restart")

// ErrAssignmentChanged stops a stream whose partitions were taken away while
// it had uncommitted data; the daemon restarts from the table positions.
var ErrAssignmentChanged = errors.New("partitions were revoked from this daemon while it ran; restarting from the positions in the table (run one daemon per stream's consumer group)")

// NewStream validates the wiring; it starts nothing.
func NewStream(opts Options) (*Stream, error) {
	switch {
	case opts.Pipeline == nil, opts.Input == nil, opts.Output == nil, opts.Partitioner == nil,
		opts.NewWriter == nil && opts.NewChangeWriter == nil, opts.Committer == nil, opts.DeadLetters == nil, opts.Metrics == nil,
		opts.Stream.Late.Policy == "table" && opts.NewLateWriter == nil:
		return nil, errors.New("ingest: incomplete stream options")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StartPositions == nil {
		opts.StartPositions = checkpoint.Positions{}
	}
	s := &Stream{
		opts: opts, cfg: opts.Stream, log: opts.Logger.With("stream", opts.Stream.Name),
		nextCheckpoint: opts.StartCheckpoint + 1, committed: opts.StartPositions.Clone(),
		acked: opts.StartCheckpoint, ackedCh: make(chan struct{}), lag: map[topicPartition]int64{},
		failed: make(chan struct{}), wantCP: make(chan struct{}, 1), restart: make(chan struct{}),
	}
	s.lateBefore.Store(watermark.None)
	if wm := opts.Stream.Watermark; wm.MaxDrift > 0 {
		s.align = newAligner(s, wm.Policy())
	}
	s.stats.Checkpoint = opts.StartCheckpoint
	s.stats.Positions = opts.StartPositions.Clone()
	n := opts.Pipeline.Writer.Workers
	for i := range n {
		w, err := newWorker(s, i)
		if err != nil {
			return nil, err
		}
		s.workers = append(s.workers, w)
	}
	return s, nil
}

// Name is the stream's name.
func (s *Stream) Name() string { return s.cfg.Name }

// Stats returns a snapshot of the stream's counters.
func (s *Stream) Stats() Stats {
	s.mu.Lock()
	st := s.stats
	st.Positions = s.stats.Positions.Clone()
	var lag int64
	for _, l := range s.lag {
		lag += l
	}
	st.Lag = lag
	s.mu.Unlock()
	st.Read, st.Written, st.DeadLettered, st.Filtered = s.read.Load(), s.written.Load(), s.dead.Load(), s.filtered.Load()
	return st
}

// Committed is called by the committer after each checkpoint of this stream
// is committed. Only now are consumer-group offsets committed, for lag
// monitoring; they are never read back as positions.
func (s *Stream) Committed(cp checkpoint.DataWritten, snapshotID int64) {
	s.mu.Lock()
	s.committed.Merge(cp.Positions)
	s.acked = cp.Checkpoint
	close(s.ackedCh)
	s.ackedCh = make(chan struct{})
	s.stats.Checkpoint = cp.Checkpoint
	s.stats.Committed += cp.Counts.Written
	s.stats.CommittedFiles += int64(len(cp.Files))
	s.stats.LastCommit = time.Now()
	s.stats.Positions.Merge(cp.Positions)
	pos := s.committed.Clone()
	s.mu.Unlock()
	s.opts.Metrics.records.WithLabelValues(s.cfg.Name, "committed").Add(float64(cp.Counts.Written))
	if cl := s.client.Load(); cl != nil && !s.opts.Transactional {
		offsets := map[string]map[int32]kgo.EpochOffset{}
		for topic, parts := range pos {
			m := map[int32]kgo.EpochOffset{}
			for p, off := range parts {
				m[p] = kgo.EpochOffset{Epoch: -1, Offset: off}
			}
			offsets[topic] = m
		}
		cl.CommitOffsets(context.Background(), offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				s.log.Warn("group offset commit failed (lag metrics only; positions are in the table)", "err", err)
			}
		})
	}
	s.log.Debug("checkpoint committed", "checkpoint", cp.Checkpoint, "files", len(cp.Files), "records", cp.Counts.Written, "snapshot", snapshotID)
}

func (s *Stream) waitAcked(ctx context.Context, n int64) error {
	for {
		s.mu.Lock()
		done, ch := s.acked >= n, s.ackedCh
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.failed:
			return s.failErr
		}
	}
}

// GroupID is the consumer group of the stream.
func (s *Stream) GroupID() string {
	return s.opts.Pipeline.Kafka.GroupPrefix + s.opts.Pipeline.Name + "." + s.cfg.Name
}

func (s *Stream) clientOpts() []kgo.Opt {
	opts := append([]kgo.Opt(nil), s.opts.KafkaOpts...)
	opts = append(opts,
		kgo.ConsumerGroup(s.GroupID()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxBytes(int32(s.opts.Pipeline.Kafka.FetchMaxBytes)),
		// A partition's batch is what a queue can overshoot its share by
		// before the partition is paused: keep it a fraction of a fetch.
		kgo.FetchMaxPartitionBytes(int32(max(s.opts.Pipeline.Kafka.FetchMaxBytes/8, 256<<10))),
		kgo.MaxConcurrentFetches(1),
		kgo.AdjustFetchOffsetsFn(s.adjustOffsets),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onRevoked),
	)
	if s.opts.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(s.opts.InstanceID))
	}
	if s.opts.Transactional {
		// The transactional ID is stable per daemon and stream, so a restarted
		// daemon fences its predecessor's open transaction.
		id := s.opts.InstanceID
		if id == "" {
			id = s.GroupID()
		}
		opts = append(opts,
			kgo.TransactionalID(id),
			kgo.TransactionTimeout(max(2*s.opts.Pipeline.Checkpoint.Interval.D()+30*time.Second, time.Minute)),
			kgo.RequireStableFetchOffsets(),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		)
	}
	if s.cfg.TopicRegex != "" {
		opts = append(opts, kgo.ConsumeRegex(), kgo.ConsumeTopics(s.cfg.TopicRegex))
	} else {
		opts = append(opts, kgo.ConsumeTopics(s.cfg.Topics...))
	}
	if s.opts.Pipeline.Kafka.StartOffset == "latest" {
		opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	} else {
		opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	}
	return opts
}

// Session is the transaction session of a running transactional stream.
func (s *Stream) Session() *kgo.GroupTransactSession { return s.session.Load() }

// adjustOffsets replaces the group's offsets with the table's positions: the
// table is the truth, since only what it committed is in the lake. A
// transactional stream commits its positions with the group, so they stand.
func (s *Stream) adjustOffsets(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	if s.opts.Transactional {
		return offsets, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	start := kgo.NewOffset().AtStart()
	if s.opts.Pipeline.Kafka.StartOffset == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	for topic, parts := range offsets {
		for p := range parts {
			if pos, ok := s.committed.Get(topic, p); ok {
				parts[p] = kgo.NewOffset().At(pos)
			} else {
				parts[p] = start
			}
		}
	}
	return offsets, nil
}

func (s *Stream) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if !s.running.Load() || len(revoked) == 0 {
		return
	}
	s.log.Error("partitions revoked while running", "partitions", fmt.Sprint(revoked))
	s.fail(ErrAssignmentChanged)
}

// requestRestart asks Run to take a last checkpoint and return
// ErrRestartNeeded.
func (s *Stream) requestRestart(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.restartErr == nil {
		s.restartErr = cause
		close(s.restart)
	}
}

// Abort makes Run return err at once, without waiting for a last checkpoint:
// for when the committer is gone and no checkpoint could commit.
func (s *Stream) Abort(err error) { s.fail(err) }

func (s *Stream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr == nil {
		s.failErr = err
		close(s.failed)
	}
}

// Run reads until ctx ends, then stops polling, takes a last checkpoint,
// waits (up to checkpoint.shutdown_timeout) for it to commit, and returns.
func (s *Stream) Run(ctx context.Context) error {
	var cl *kgo.Client
	if s.opts.Transactional {
		sess, err := kgo.NewGroupTransactSession(s.clientOpts()...)
		if err != nil {
			return fmt.Errorf("stream %s: kafka client: %w", s.cfg.Name, err)
		}
		defer sess.Close()
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("stream %s: begin transaction: %w", s.cfg.Name, err)
		}
		s.session.Store(sess)
		defer s.session.Store(nil)
		cl = sess.Client()
	} else {
		c, err := kgo.NewClient(s.clientOpts()...)
		if err != nil {
			return fmt.Errorf("stream %s: kafka client: %w", s.cfg.Name, err)
		}
		defer c.Close()
		cl = c
	}
	s.client.Store(cl)
	defer s.client.Store(nil)
	s.running.Store(true)
	defer s.running.Store(false)

	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	g, gctx := errgroup.WithContext(workCtx)
	for _, w := range s.workers {
		g.Go(func() error { return w.run(gctx, cl) })
	}
	pollCtx, stopPoll := context.WithCancel(gctx)
	defer stopPoll()
	pollDone := make(chan struct{})
	g.Go(func() error {
		defer close(pollDone)
		return s.poll(pollCtx, cl)
	})
	if s.align != nil {
		g.Go(func() error { return s.align.run(pollCtx, cl) })
	}
	g.Go(func() error {
		defer stopWork()
		t := time.NewTicker(s.opts.Pipeline.Checkpoint.Interval.D())
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-s.failed:
				return s.failErr
			case <-t.C:
				if s.opts.Transactional {
					select {
					case s.wantCP <- struct{}{}:
					default: // the last request is still pending
					}
				} else {
					s.barrier()
				}
			case <-ctx.Done():
				return s.drain(gctx, stopPoll, pollDone)
			case <-s.restart:
				if err := s.drain(gctx, stopPoll, pollDone); err != nil {
					return err
				}
				return fmt.Errorf("%w: %w", ErrRestartNeeded, s.restartErr)
			}
		}
	})
	err := g.Wait()
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.cfg.Name, err)
	}
	return nil
}

// drain is the soft stop: no more polling, one last barrier, wait for its commit.
func (s *Stream) drain(ctx context.Context, stopPoll func(), pollDone <-chan struct{}) error {
	stopPoll()
	<-pollDone
	n := s.barrier()
	s.log.Info("stopping: last checkpoint", "checkpoint", n)
	wctx, cancel := context.WithTimeout(ctx, s.opts.Pipeline.Checkpoint.ShutdownTimeout.D())
	defer cancel()
	if err := s.waitAcked(wctx, n); err != nil {
		return fmt.Errorf("last checkpoint %d did not commit within %s: %w", n, s.opts.Pipeline.Checkpoint.ShutdownTimeout, err)
	}
	return nil
}

// barrier sends checkpoint barrier n to every worker, behind every record
// already queued, and returns n.
func (s *Stream) barrier() int64 {
	n := s.nextCheckpoint
	s.nextCheckpoint++
	for _, w := range s.workers {
		w.q.push(item{barrier: n})
	}
	return n
}

func (s *Stream) workerFor(topic string, partition int32) *worker {
	if len(s.workers) == 1 {
		return s.workers[0]
	}
	h := fnv.New32a()
	h.Write([]byte(topic))
	return s.workers[(h.Sum32()+uint32(partition))%uint32(len(s.workers))]
}

// pollOnce polls once. A transactional stream polls through its session
// and wakes up when a barrier is wanted.
func (s *Stream) pollOnce(ctx context.Context, cl *kgo.Client) kgo.Fetches {
	if !s.opts.Transactional {
		return cl.PollRecords(ctx, 20000)
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	woken := make(chan struct{})
	go func() {
		defer close(woken)
		select {
		case <-s.wantCP:
			// Put the request back for the loop, and stop waiting for records.
			select {
			case s.wantCP <- struct{}{}:
			default:
			}
			cancel()
		case <-pctx.Done():
		}
	}()
	// Records returned are always dispatched, even if the wake-up raced
	// with them: once polled, they count as consumed in the transaction.
	f := s.session.Load().PollRecords(pctx, 20000)
	cancel()
	<-woken
	return f
}

// poll fetches and dispatches records. It never blocks on workers: a worker
// whose queue is over its share of the memory budget gets its partitions
// paused instead, so the client keeps polling, heartbeating and taking part
// in rebalances however slow the table is.
func (s *Stream) poll(ctx context.Context, cl *kgo.Client) error {
	high := max(int64(s.opts.Pipeline.MemoryBudget)/8/int64(len(s.workers)), 1<<20)
	name := s.cfg.Name
	for {
		if s.opts.Transactional {
			select {
			case <-s.wantCP:
				// Everything polled so far is queued before the barrier and
				// nothing more is polled until its transaction commits.
				if err := s.waitAcked(ctx, s.barrier()); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
			default:
			}
		}
		fetches := s.pollOnce(ctx, cl)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		var fatal error
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			// Fetch errors are retried inside the client; log them.
			s.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
		})
		if fatal != nil {
			return fatal
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			var n int64
			for _, r := range p.Records {
				// A fetched record costs its bytes plus the client's record
				// struct and its share of the batch buffers.
				n += int64(len(r.Value) + len(r.Key) + recordOverhead)
			}
			last := p.Records[len(p.Records)-1].Offset
			s.mu.Lock()
			s.lag[topicPartition{p.Topic, p.Partition}] = max(0, p.HighWatermark-last-1)
			s.mu.Unlock()
			s.read.Add(int64(len(p.Records)))
			s.opts.Metrics.records.WithLabelValues(name, "read").Add(float64(len(p.Records)))
			w := s.workerFor(p.Topic, p.Partition)
			s.opts.Metrics.queued.WithLabelValues(name).Add(float64(n))
			if queued := w.q.push(item{recs: p.Records, bytes: n, hwm: p.HighWatermark}); queued > high {
				w.pause(cl, p.Topic, p.Partition, high)
			}
		})
		s.mu.Lock()
		var lag int64
		for _, l := range s.lag {
			lag += l
		}
		s.mu.Unlock()
		s.opts.Metrics.lag.WithLabelValues(name).Set(float64(lag))
	}
}
