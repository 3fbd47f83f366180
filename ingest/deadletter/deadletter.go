// Package deadletter keeps the records a stream could not ingest, with the
// reason and where they came from, so nothing is lost on bad input. Entries
// go to a Kafka topic (production) or a local JSON-lines file (embedded mode)
// and are flushed before the checkpoint that moves past them commits.
package deadletter

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Entry is one dead-lettered record.
type Entry struct {
	Stream    string
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
	// Stage is where it failed: "parse" or "etl".
	Stage  string
	Reason string
}

// File appends entries as JSON lines. Safe for concurrent use.
type File struct {
	maxValue int
	mu       sync.Mutex
	f        *os.File
	w        *bufio.Writer
	enc      *json.Encoder
}

// OpenFile opens (appending) or creates a dead-letter file.
func OpenFile(path string, maxValueBytes int) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("dead-letter file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dead-letter file %s: %w", path, err)
	}
	w := bufio.NewWriter(f)
	return &File{maxValue: maxValueBytes, f: f, w: w, enc: json.NewEncoder(w)}, nil
}

// fileEntry is the JSON form of an entry. Value is text when it is valid
// UTF-8, otherwise base64 with value_encoding "base64".
type fileEntry struct {
	Time          string `json:"time"`
	Stream        string `json:"stream"`
	Stage         string `json:"stage"`
	Reason        string `json:"reason"`
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	Offset        int64  `json:"offset"`
	Timestamp     string `json:"timestamp,omitempty"`
	Key           string `json:"key,omitempty"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding"`
	ValueBytes    int    `json:"value_bytes"`
	Truncated     bool   `json:"truncated,omitempty"`
}

// Put appends an entry (buffered until Flush).
func (d *File) Put(_ context.Context, e Entry) error {
	fe := fileEntry{
		Time: time.Now().UTC().Format(time.RFC3339Nano), Stream: e.Stream, Stage: e.Stage, Reason: e.Reason,
		Topic: e.Topic, Partition: e.Partition, Offset: e.Offset, ValueBytes: len(e.Value),
	}
	if !e.Timestamp.IsZero() {
		fe.Timestamp = e.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	if len(e.Key) > 0 {
		fe.Key = base64.StdEncoding.EncodeToString(e.Key)
	}
	v := e.Value
	if len(v) > d.maxValue {
		v, fe.Truncated = v[:d.maxValue], true
	}
	if utf8.Valid(v) {
		fe.Value, fe.ValueEncoding = string(v), "utf8"
	} else {
		fe.Value, fe.ValueEncoding = base64.StdEncoding.EncodeToString(v), "base64"
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enc.Encode(&fe); err != nil {
		return fmt.Errorf("dead-letter file: %w", err)
	}
	return nil
}

// Flush makes every entry durable.
func (d *File) Flush(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.w.Flush(); err != nil {
		return fmt.Errorf("dead-letter file: %w", err)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("dead-letter file: %w", err)
	}
	return nil
}

// Close flushes and closes the file.
func (d *File) Close() error {
	err := d.Flush(context.Background())
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Topic produces entries to a Kafka topic: the original key and value, with
// the context in headers (sluice.reason, sluice.stage, sluice.stream,
// sluice.topic, sluice.partition, sluice.offset), the way Kafka Connect's
// dead-letter queues do, so existing tooling can read them.
type Topic struct {
	cl       *kgo.Client
	topic    string
	maxValue int
	mu       sync.Mutex
	err      error
}

// NewTopic produces to topic with a client the caller owns.
func NewTopic(cl *kgo.Client, topic string, maxValueBytes int) *Topic {
	return &Topic{cl: cl, topic: topic, maxValue: maxValueBytes}
}

// Put produces an entry asynchronously; failures surface at Flush.
func (d *Topic) Put(ctx context.Context, e Entry) error {
	v := e.Value
	headers := []kgo.RecordHeader{
		{Key: "sluice.reason", Value: []byte(e.Reason)},
		{Key: "sluice.stage", Value: []byte(e.Stage)},
		{Key: "sluice.stream", Value: []byte(e.Stream)},
		{Key: "sluice.topic", Value: []byte(e.Topic)},
		{Key: "sluice.partition", Value: strconv.AppendInt(nil, int64(e.Partition), 10)},
		{Key: "sluice.offset", Value: strconv.AppendInt(nil, e.Offset, 10)},
	}
	if len(v) > d.maxValue {
		v = v[:d.maxValue]
		headers = append(headers, kgo.RecordHeader{Key: "sluice.truncated-from", Value: strconv.AppendInt(nil, int64(len(e.Value)), 10)})
	}
	rec := &kgo.Record{Topic: d.topic, Key: e.Key, Value: v, Headers: headers, Timestamp: e.Timestamp}
	d.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			d.mu.Lock()
			if d.err == nil {
				d.err = err
			}
			d.mu.Unlock()
		}
	})
	return nil
}

// Flush waits for every produced entry and reports the first failure.
func (d *Topic) Flush(ctx context.Context) error {
	if err := d.cl.Flush(ctx); err != nil {
		return fmt.Errorf("dead-letter topic %s: %w", d.topic, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.err
	d.err = nil
	if err != nil {
		return fmt.Errorf("dead-letter topic %s: %w", d.topic, err)
	}
	return nil
}
