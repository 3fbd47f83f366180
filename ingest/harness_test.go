package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/deadletter"
	"github.com/sluicehq/sluice/ingest/etl"
	"github.com/sluicehq/sluice/ingest/schema"
)

// The stream owns a Kafka client, a poll loop, workers and a ticker; none
// may outlive Run. Brokers and clients of the tests are closed by cleanups
// before this runs.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait of these tests; a healthy run needs well
// under a second for each.
const testTimeout = 10 * time.Second

// env is one test's world: a broker, a producer, and the parts a stream is
// wired to (table writers, committer, dead letters) as in-memory recorders.
type env struct {
	t        *testing.T
	cluster  *kfake.Cluster
	producer *kgo.Client
	topic    string
	parts    int32

	pipeline  *config.Pipeline
	layout    *schema.Layout
	reg       *prometheus.Registry
	metrics   *Metrics
	table     *memTable
	committer *ackCommitter
	dead      *memDeadLetters
}

// newEnv starts a broker with one topic of the given partitions and a
// pipeline config of one stream reading it with two workers.
func newEnv(t *testing.T, partitions int32) *env {
	t.Helper()
	topic := "events"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	producer, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	t.Cleanup(producer.Close)

	sc := config.Stream{
		Name: "clicks", Topics: []string{topic}, Format: "json", MaxRecordBytes: 1 << 20, EventTime: "ts",
		Columns: []config.Column{
			{Name: "id", Type: "string", Required: true},
			{Name: "n", Type: "int64", Required: true},
			{Name: "ts", Type: "timestamptz(ms)", Required: true},
			{Name: "pad", Type: "string"},
		},
		Table: config.Table{Name: "test.clicks"},
	}
	in, err := sc.InputSchema()
	if err != nil {
		t.Fatalf("InputSchema: %v", err)
	}
	in.AssignIDs()
	p := &config.Pipeline{
		Name: "it",
		Kafka: config.Kafka{
			Brokers: c.ListenAddrs(), ClientID: "sluice-test", GroupPrefix: "sluice.", StartOffset: "earliest",
			FetchMaxBytes: 1 << 20,
		},
		Checkpoint: config.Checkpoint{
			Interval:             config.Duration(100 * time.Millisecond),
			CommitFailureTimeout: config.Duration(time.Minute),
			ShutdownTimeout:      config.Duration(5 * time.Second),
		},
		Writer:       config.Writer{Workers: 2},
		MemoryBudget: 64 << 20,
		Streams:      []config.Stream{sc},
	}
	reg := prometheus.NewRegistry()
	e := &env{
		t: t, cluster: c, producer: producer, topic: topic, parts: partitions,
		pipeline: p, layout: schema.NewLayout(in, "clicks"), reg: reg, metrics: NewMetrics(reg),
		table: newMemTable(), dead: &memDeadLetters{},
	}
	e.committer = newAckCommitter(p.Writer.Workers)
	return e
}

// newClient returns a client of the env's broker, closed by a cleanup.
func (e *env) newClient(opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.cluster.ListenAddrs()...)}, opts...)...)
	if err != nil {
		e.t.Fatalf("kgo: %v", err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

// streamOptions are what a test may vary about a stream.
type streamOptions struct {
	startPositions  checkpoint.Positions
	startCheckpoint int64
	etl             etl.Config // none when zero
	late            *memTable  // late.policy table's rows
}

// newStream wires a stream to the env's recorders. The pipeline config may
// be changed before calling it.
func (e *env) newStream(o streamOptions) *Stream {
	e.t.Helper()
	out := e.layout
	var prog *etl.Program
	if !o.etl.IsZero() {
		var err error
		if prog, err = etl.New(o.etl, e.layout.Schema); err != nil {
			e.t.Fatalf("etl: %v", err)
		}
		os := prog.Output()
		os.AssignIDs()
		out = schema.NewLayout(os, "clicks")
	}
	table := e.table
	s, err := NewStream(Options{
		Pipeline: e.pipeline, Stream: e.pipeline.Streams[0], Input: e.layout, Output: out, Program: prog,
		Partitioner: keyPartitioner{},
		NewWriter: func(worker int) (TableWriter, error) {
			return &memWriter{worker: worker, table: table, layout: out}, nil
		},
		NewLateWriter:  lateWriter(o.late, out),
		StartPositions: o.startPositions, StartCheckpoint: o.startCheckpoint,
		Committer: e.committer, DeadLetters: e.dead,
		KafkaOpts: []kgo.Opt{
			kgo.SeedBrokers(e.pipeline.Kafka.Brokers...), kgo.ClientID(e.pipeline.Kafka.ClientID),
			// The client has one fetch in flight per broker; a partition whose
			// start offset resolves while a long poll waits starts when that
			// poll returns. A short wait keeps such starts from costing the
			// default 5s.
			kgo.FetchMaxWait(100 * time.Millisecond),
		},
		Metrics: e.metrics,
	})
	if err != nil {
		e.t.Fatalf("NewStream: %v", err)
	}
	e.committer.setStream(s)
	return s
}

func lateWriter(late *memTable, out *schema.Layout) func(int) (TableWriter, error) {
	if late == nil {
		return nil
	}
	return func(worker int) (TableWriter, error) {
		return &memWriter{worker: worker, table: late, layout: out}, nil
	}
}

// running is a stream whose Run is under way.
type running struct {
	cancel context.CancelFunc
	done   chan error // receives Run's result
	once   sync.Once
	err    error
}

// run starts s.Run. A cleanup stops it before the broker closes.
func (e *env) run(s *Stream) *running {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	e.t.Cleanup(func() { r.stop() })
	return r
}

// wait returns Run's error, or an error of its own if Run does not return
// within the test timeout.
func (r *running) wait() error {
	r.once.Do(func() {
		select {
		case r.err = <-r.done:
		case <-time.After(testTimeout):
			r.err = errors.New("Run did not return within the test timeout")
		}
	})
	return r.err
}

// stop cancels Run's context and waits for it to return.
func (r *running) stop() error {
	r.cancel()
	return r.wait()
}

// returned reports whether Run has returned, without waiting.
func (r *running) returned() bool {
	select {
	case err := <-r.done:
		r.done <- err // keep it for wait
		return true
	default:
		return false
	}
}

// record is the JSON value of a test record: id names its partition and
// sequence number n, and ts is its event time.
func record(partition int32, n int, pad int) []byte {
	v := map[string]any{
		"id": fmt.Sprintf("p%d-%d", partition, n), "n": n, "ts": baseMillis + int64(n),
	}
	if pad > 0 {
		v["pad"] = strings.Repeat("x", pad)
	}
	b, _ := json.Marshal(v)
	return b
}

const baseMillis = 1_700_000_000_000

// produce writes values to one partition and returns the offset after the last.
func (e *env) produce(partition int32, values ...[]byte) int64 {
	e.t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: e.topic, Partition: partition, Value: v}
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	res := e.producer.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
	return recs[len(recs)-1].Offset + 1
}

// produceRange writes the records n in [from, to) to a partition.
func (e *env) produceRange(partition int32, from, to, pad int) int64 {
	e.t.Helper()
	var vs [][]byte
	for n := from; n < to; n++ {
		vs = append(vs, record(partition, n, pad))
	}
	return e.produce(partition, vs...)
}

// waitFor polls cond until it holds, failing the test after timeout. It is
// for conditions no channel announces (gauges, counters).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// keyPartitioner puts every row in one partition.
type keyPartitioner struct{}

func (keyPartitioner) AppendKey(buf []byte, _ parquet.Row) []byte { return append(buf, "all"...) }

// writtenRow is a row as a table writer received it.
type writtenRow struct {
	worker int
	id     string
	n      int64
	event  int64
}

// memTable records the rows of every worker's writer.
type memTable struct {
	mu    sync.Mutex
	rows  []writtenRow
	files int
}

func newMemTable() *memTable { return &memTable{} }

func (m *memTable) snapshot() []writtenRow {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]writtenRow(nil), m.rows...)
}

func (m *memTable) count(prefix string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.rows {
		if strings.HasPrefix(r.id, prefix) {
			n++
		}
	}
	return n
}

// memWriter is a TableWriter that records rows and seals them into fake
// data files, one per Seal with rows.
type memWriter struct {
	worker  int
	table   *memTable
	layout  *schema.Layout
	pending []writtenRow // since the last Flush
	unseal  int64        // rows flushed since the last Seal
	seq     int
}

func (w *memWriter) Write(_ []byte, row parquet.Row, eventTime int64) error {
	// The row's byte slices are only valid until Flush: read them now.
	r := writtenRow{worker: w.worker, n: -1, event: eventTime}
	idCol, nCol := w.layout.ByName["id"].Column, w.layout.ByName["n"].Column
	for _, v := range row {
		switch v.Column() {
		case idCol:
			r.id = string(v.ByteArray())
		case nCol:
			r.n = v.Int64()
		}
	}
	if r.id == "" || r.n < 0 {
		return fmt.Errorf("row without id or n: %v", row)
	}
	if strings.HasPrefix(r.id, "reject-") {
		return rejectedRow{}
	}
	w.pending = append(w.pending, r)
	return nil
}

// rejectedRow is how a writer refuses one row: its record is dead-lettered.
type rejectedRow struct{}

func (rejectedRow) Error() string     { return "column id: the format cannot hold it" }
func (rejectedRow) RowRejected() bool { return true }

func (w *memWriter) Flush() error {
	w.table.mu.Lock()
	w.table.rows = append(w.table.rows, w.pending...)
	w.table.mu.Unlock()
	w.unseal += int64(len(w.pending))
	w.pending = w.pending[:0]
	return nil
}

func (w *memWriter) Seal() ([]iceberg.DataFile, int64, error) {
	if len(w.pending) > 0 {
		return nil, 0, fmt.Errorf("worker %d: Seal with %d rows not flushed", w.worker, len(w.pending))
	}
	if w.unseal == 0 {
		return nil, 0, nil
	}
	w.seq++
	size := w.unseal * 100
	b, err := iceberg.NewDataFileBuilder(*iceberg.UnpartitionedSpec, iceberg.EntryContentData,
		fmt.Sprintf("mem://w%d/%d.parquet", w.worker, w.seq), iceberg.ParquetFile, nil, nil, nil, w.unseal, size)
	if err != nil {
		return nil, 0, err
	}
	w.unseal = 0
	w.table.mu.Lock()
	w.table.files++
	w.table.mu.Unlock()
	return []iceberg.DataFile{b.Build()}, size, nil
}

// ackCommitter plays the committer: it gathers each checkpoint's parts from
// every worker, merges them, and acknowledges checkpoints in order with
// Stream.Committed, unless told to hold acks. Merged checkpoints are sent on
// acked.
type ackCommitter struct {
	workers int
	acked   chan checkpoint.DataWritten
	// blocked gets the worker of each Submit that found its gate closed.
	blocked chan int

	mu     sync.Mutex
	stream *Stream
	parts  []checkpoint.DataWritten // every Submit, in order
	gather *checkpoint.Gatherer
	hold   bool
	held   []checkpoint.DataWritten
	gates  map[int]chan struct{} // worker → closed when its Submits may proceed
	check  func(checkpoint.DataWritten)
}

func newAckCommitter(workers int) *ackCommitter {
	return &ackCommitter{
		workers: workers, acked: make(chan checkpoint.DataWritten, 1<<12), blocked: make(chan int, 1<<12),
		gates: map[int]chan struct{}{},
	}
}

func (c *ackCommitter) setStream(s *Stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stream = s
	c.gather = checkpoint.NewGatherer(c.workers, s.opts.StartCheckpoint)
}

// block makes the Submits of a worker wait until the returned function is called.
func (c *ackCommitter) block(worker int) (release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gate := make(chan struct{})
	c.gates[worker] = gate
	return sync.OnceFunc(func() {
		c.mu.Lock()
		delete(c.gates, worker)
		c.mu.Unlock()
		close(gate)
	})
}

// holdAcks stops acknowledging; releaseAcks acknowledges what was held and
// carries on acknowledging.
func (c *ackCommitter) holdAcks() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = true
}

func (c *ackCommitter) releaseAcks() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = false
	for _, dw := range c.held {
		c.ack(dw)
	}
	c.held = nil
}

func (c *ackCommitter) submitted() []checkpoint.DataWritten {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]checkpoint.DataWritten(nil), c.parts...)
}

func (c *ackCommitter) Submit(ctx context.Context, dw checkpoint.DataWritten) error {
	c.mu.Lock()
	gate := c.gates[dw.Worker]
	c.mu.Unlock()
	if gate != nil {
		c.blocked <- dw.Worker
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.check != nil {
		c.check(dw)
	}
	c.parts = append(c.parts, dw)
	for _, merged := range c.gather.Add(dw) {
		if c.hold {
			c.held = append(c.held, merged)
			continue
		}
		c.ack(merged)
	}
	return nil
}

func (c *ackCommitter) ack(dw checkpoint.DataWritten) {
	c.stream.Committed(dw, 1000+dw.Checkpoint)
	c.acked <- dw
}

// waitPositions reads acknowledged checkpoints until the positions they
// cover, merged onto start, equal want, and returns them.
func (c *ackCommitter) waitPositions(t *testing.T, start, want checkpoint.Positions) []checkpoint.DataWritten {
	t.Helper()
	pos := start.Clone()
	var acks []checkpoint.DataWritten
	timeout := time.After(testTimeout)
	for pos.Encode() != want.Encode() {
		select {
		case dw := <-c.acked:
			acks = append(acks, dw)
			pos.Merge(dw.Positions)
		case <-timeout:
			t.Fatalf("timed out waiting for positions %s; committed %s after %d checkpoints", want.Encode(), pos.Encode(), len(acks))
		}
	}
	return acks
}

// memDeadLetters records dead letters, telling those flushed from those
// only put.
type memDeadLetters struct {
	mu       sync.Mutex
	pending  []deadletter.Entry
	flushed  []deadletter.Entry
	flushErr error
}

func (d *memDeadLetters) Put(_ context.Context, e deadletter.Entry) error {
	e.Key, e.Value = append([]byte(nil), e.Key...), append([]byte(nil), e.Value...)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending = append(d.pending, e)
	return nil
}

func (d *memDeadLetters) Flush(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.flushErr != nil {
		return d.flushErr
	}
	d.flushed = append(d.flushed, d.pending...)
	d.pending = nil
	return nil
}

func (d *memDeadLetters) entries() (flushed, pending []deadletter.Entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]deadletter.Entry(nil), d.flushed...), append([]deadletter.Entry(nil), d.pending...)
}

// metricValue reads a counter or gauge. (prometheus/testutil would need a
// module this repository does not require.)
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatalf("read metric: %v", err)
	}
	switch {
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	case out.Counter != nil:
		return out.Counter.GetValue()
	}
	t.Fatalf("metric %v is neither a counter nor a gauge", m.Desc())
	return 0
}
