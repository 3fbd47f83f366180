package deadletter

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// newTestCluster starts an in-process Kafka broker holding topics (one
// partition each); topics it does not hold are not created on demand.
func newTestCluster(t *testing.T, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func newTestClient(t *testing.T, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatalf("kgo: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumeAll reads n records of topic from its start.
func consumeAll(t *testing.T, c *kfake.Cluster, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := newTestClient(t, c, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s before the deadline", len(out), n, topic)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	if len(out) != n {
		t.Fatalf("read %d records of %s, want %d", len(out), topic, n)
	}
	return out
}

func headers(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		if _, dup := m[h.Key]; dup {
			m[h.Key] += "," + string(h.Value) // shows up as a mismatch
			continue
		}
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestTopicPut(t *testing.T) {
	c := newTestCluster(t, "dlq")
	dl := NewTopic(newTestClient(t, c), "dlq", 8)
	ts := time.UnixMilli(1700000000123)
	entries := []Entry{
		{
			Stream: "orders", Topic: "orders-v1", Partition: 7, Offset: 99, Timestamp: ts,
			Key: []byte("key-1"), Value: []byte("short"), Stage: "parse", Reason: "record is not a JSON object",
		},
		{
			Stream: "orders", Topic: "orders-v2", Partition: 0, Offset: 1 << 40, Timestamp: ts,
			Value: []byte("0123456789abcdef"), Stage: "etl", Reason: "division by zero",
		},
		{
			Stream: "clicks", Topic: "clicks", Partition: 2, Offset: 0, Timestamp: ts,
			Value: []byte{0xff, 0xfe}, Stage: "parse", Reason: "invalid UTF-8",
		},
	}
	for _, e := range entries {
		if err := dl.Put(context.Background(), e); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	if err := dl.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}

	recs := consumeAll(t, c, "dlq", len(entries))
	tests := []struct {
		key, value string
		headers    map[string]string
	}{
		{
			key: "key-1", value: "short",
			headers: map[string]string{
				"sluice.reason": "record is not a JSON object", "sluice.stage": "parse", "sluice.stream": "orders",
				"sluice.topic": "orders-v1", "sluice.partition": "7", "sluice.offset": "99",
			},
		},
		{
			// Longer than max bytes: cut, with the original size in a header.
			value: "01234567",
			headers: map[string]string{
				"sluice.reason": "division by zero", "sluice.stage": "etl", "sluice.stream": "orders",
				"sluice.topic": "orders-v2", "sluice.partition": "0", "sluice.offset": strconv.FormatInt(1<<40, 10),
				"sluice.truncated-from": "16",
			},
		},
		{
			// Values are bytes on a topic: no encoding is needed.
			value: "\xff\xfe",
			headers: map[string]string{
				"sluice.reason": "invalid UTF-8", "sluice.stage": "parse", "sluice.stream": "clicks",
				"sluice.topic": "clicks", "sluice.partition": "2", "sluice.offset": "0",
			},
		},
	}
	for i, want := range tests {
		r := recs[i]
		if string(r.Key) != want.key || string(r.Value) != want.value {
			t.Errorf("record %d: key %q value %q, want %q %q", i, r.Key, r.Value, want.key, want.value)
		}
		if got := headers(r); !mapsEqual(got, want.headers) {
			t.Errorf("record %d headers:\n got %v\nwant %v", i, got, want.headers)
		}
		if !r.Timestamp.Equal(ts) {
			t.Errorf("record %d timestamp %v, want the source record's %v", i, r.Timestamp, ts)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// TestTopicFlushReportsProduceError: Put never fails; a record that could not
// be produced fails the Flush after it, so the checkpoint that would move past
// the record does not commit.
func TestTopicFlushReportsProduceError(t *testing.T) {
	c := newTestCluster(t, "other")
	// One quick retry keeps the test short; the defaults only take longer.
	cl := newTestClient(t, c, kgo.UnknownTopicRetries(1), kgo.MetadataMinAge(10*time.Millisecond))
	dl := NewTopic(cl, "missing", 1<<20)
	for i := range 3 {
		if err := dl.Put(context.Background(), Entry{Stream: "s", Topic: "t", Offset: int64(i), Value: []byte("v")}); err != nil {
			t.Fatalf("Put returned %v; failures must wait for Flush", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := dl.Flush(ctx)
	if err == nil {
		t.Fatal("Flush = nil after producing to a topic that does not exist")
	}
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("Flush error = %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	if ctx.Err() != nil {
		t.Errorf("Flush ran into the test deadline: %v", err)
	}

	// The error is reported once; later entries that succeed flush cleanly.
	good := NewTopic(cl, "other", 1<<20)
	if err := good.Put(context.Background(), Entry{Stream: "s", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if err := good.Flush(context.Background()); err != nil {
		t.Errorf("Flush of a good topic: %v", err)
	}
	if err := dl.Flush(context.Background()); err != nil {
		t.Errorf("second Flush with nothing new = %v, want nil", err)
	}
}

// TestTopicFlushHonoursContext: a Flush that cannot finish returns when its
// context ends.
func TestTopicFlushHonoursContext(t *testing.T) {
	c := newTestCluster(t, "other")
	cl := newTestClient(t, c, kgo.UnknownTopicRetries(-1)) // never gives up on the missing topic
	dl := NewTopic(cl, "missing", 1<<20)
	if err := dl.Put(context.Background(), Entry{Stream: "s", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := dl.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush = %v, want the context's deadline", err)
	}
}
