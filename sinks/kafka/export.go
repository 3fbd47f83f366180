package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/ingest/checkpoint"
)

// Session returns the transaction session of the running stream.
type Session func() *kgo.GroupTransactSession

// ValueEncoder renders a row as a record value.
type ValueEncoder interface {
	// Append appends the row's encoding to b; a row it cannot encode is
	// reported as a *RowError and b comes back unchanged.
	Append(b []byte, row parquet.Row) ([]byte, error)
}

// JSONValues renders values as JSON objects.
type JSONValues struct{ *Encoder }

// Append never fails: every exportable row has a JSON form.
func (j JSONValues) Append(b []byte, row parquet.Row) ([]byte, error) {
	return j.AppendJSON(b, row), nil
}

// Writer produces one worker's rows into the open transaction.
type Writer struct {
	enc     *Encoder // keys
	values  ValueEncoder
	topic   string
	session Session

	mu  sync.Mutex
	err error
}

// NewWriter writes rows to topic through the stream's session, keyed by
// enc's key column and with values from values, which must be the writer's
// own (encoders keep per-row state).
func NewWriter(enc *Encoder, values ValueEncoder, topic string, session Session) *Writer {
	return &Writer{enc: enc.Clone(), values: values, topic: topic, session: session}
}

// Write produces the row; the value is encoded now, so the row's memory
// may be reused after the call. A row the value encoder refuses is
// returned as its *RowError; produce failures surface at Flush or Seal.
func (w *Writer) Write(_ []byte, row parquet.Row, eventTime int64) error {
	if err := w.failure(); err != nil {
		return err
	}
	sess := w.session()
	if sess == nil {
		return errors.New("export: stream is not running")
	}
	value, err := w.values.Append(nil, row)
	if err != nil {
		return err
	}
	rec := &kgo.Record{Topic: w.topic, Key: w.enc.Key(row), Value: value, Timestamp: time.UnixMicro(eventTime)}
	sess.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
		if err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = fmt.Errorf("export to %s: %w", w.topic, err)
			}
			w.mu.Unlock()
		}
	})
	return nil
}

func (w *Writer) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Flush reports a failed produce.
func (w *Writer) Flush() error { return w.failure() }

// Seal has no files to seal: the committer flushes and commits the
// transaction. It reports a failed produce.
func (w *Writer) Seal() ([]iceberg.DataFile, int64, error) { return nil, 0, w.failure() }

// Acker hears about every committed checkpoint, in order.
type Acker interface {
	Committed(stream string, cp checkpoint.DataWritten, snapshotID int64)
}

// Committer ends each checkpoint's transaction once every worker reached
// its barrier: the rows produced and the group offsets of the records they
// came from commit together, or neither does.
type Committer struct {
	stream  string
	session Session
	acker   Acker

	mu     sync.Mutex
	gather *checkpoint.Gatherer
}

// NewCommitter commits the transactions of one stream with workers workers.
func NewCommitter(stream string, workers int, session Session, acker Acker) *Committer {
	return &Committer{stream: stream, session: session, acker: acker, gather: checkpoint.NewGatherer(workers, 0)}
}

// Submit takes a worker's part; the part that completes a checkpoint
// commits its transaction and begins the next one.
func (c *Committer) Submit(ctx context.Context, dw checkpoint.DataWritten) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cp := range c.gather.Add(dw) {
		sess := c.session()
		if sess == nil {
			return errors.New("export: stream is not running")
		}
		// End flushes every produced row first. Don't cancel it midway: an
		// interrupted EndTransaction leaves the outcome unknown.
		committed, err := sess.End(context.WithoutCancel(ctx), kgo.TryCommit)
		if err != nil {
			return fmt.Errorf("export checkpoint %d: end transaction: %w", cp.Checkpoint, err)
		}
		if !committed {
			return fmt.Errorf("export checkpoint %d: transaction aborted (group rebalanced or producer fenced); restarting from the committed offsets", cp.Checkpoint)
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("export checkpoint %d: begin next transaction: %w", cp.Checkpoint, err)
		}
		c.acker.Committed(c.stream, cp, 0)
	}
	return nil
}
