package ingest

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// item is a batch of one partition's records, or a checkpoint barrier.
type item struct {
	recs    []*kgo.Record
	bytes   int64
	barrier int64 // checkpoint number; 0 for records
	// hwm is the partition's high watermark when the records were fetched:
	// records before it were waiting to be read.
	hwm int64
}

// queue hands batches from the poll loop to one worker. It is unbounded by
// itself; the poll loop pauses partitions once it holds more than its share
// of the memory budget, so polling — and with it the group membership —
// never blocks on a slow worker.
type queue struct {
	mu     sync.Mutex
	items  []item
	bytes  int64
	signal chan struct{}
}

func newQueue() *queue { return &queue{signal: make(chan struct{}, 1)} }

// push appends an item and returns the bytes now queued.
func (q *queue) push(it item) int64 {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.bytes += it.bytes
	n := q.bytes
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
	return n
}

// pop waits for the next item.
func (q *queue) pop(ctx context.Context) (item, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			it := q.items[0]
			q.items[0] = item{}
			q.items = q.items[1:]
			q.mu.Unlock()
			return it, true
		}
		q.mu.Unlock()
		select {
		case <-q.signal:
		case <-ctx.Done():
			return item{}, false
		}
	}
}

// release subtracts processed bytes and returns the bytes still queued.
func (q *queue) release(n int64) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bytes -= n
	return q.bytes
}

func (q *queue) queued() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}
