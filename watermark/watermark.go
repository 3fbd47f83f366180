// Package watermark tracks event-time progress: per source partition the
// largest event time seen, per stream the point before which no more
// records are expected. A stream's watermark decides when a table
// partition is complete (see package partition) and which source
// partitions run too far ahead of the others (alignment).
package watermark

import (
	"math"
	"time"
)

// None is the watermark of a stream that has not seen enough to have one.
const None int64 = math.MinInt64

// Config is a stream's watermark policy.
type Config struct {
	// OutOfOrderness is how far behind the largest event time seen a
	// partition's records may still arrive.
	OutOfOrderness time.Duration
	// IdleTimeout is how long a partition may go without records before it
	// stops holding the stream's watermark back. It counts again as soon as
	// a record arrives.
	IdleTimeout time.Duration
	// MaxDrift is how far a partition's watermark may run ahead of its
	// stream's before the partition is paused (0: never).
	MaxDrift time.Duration
}

// Key names a source partition.
type Key struct {
	Topic     string
	Partition int32
}

// Partition is what is known of one source partition.
type Partition struct {
	// MaxEventTime is the largest event time seen, in microseconds since
	// the epoch; None when no record was seen.
	MaxEventTime int64
	// LastRecord is when its last record was read (or when it became
	// known, if none was).
	LastRecord time.Time
	// Behind is true when more records were waiting as the last ones were
	// read: a partition behind is never idle, however long its records
	// take to be read (a backlog, a paused fetch).
	Behind bool
}

// Merge combines two reports of one partition; the newer one says whether
// it is behind.
func (p Partition) Merge(o Partition) Partition {
	p.MaxEventTime = max(p.MaxEventTime, o.MaxEventTime)
	if !o.LastRecord.Before(p.LastRecord) {
		p.LastRecord, p.Behind = o.LastRecord, o.Behind
	}
	return p
}

func (c Config) idle(p Partition, now time.Time) bool {
	return !p.Behind && now.Sub(p.LastRecord) > c.IdleTimeout
}

// own is a partition's watermark.
func (c Config) own(p Partition) int64 {
	if p.MaxEventTime == None {
		return None
	}
	return p.MaxEventTime - c.OutOfOrderness.Microseconds()
}

// Stream returns the watermark of a stream with these partitions at now,
// in microseconds: the least watermark of the partitions that are not
// idle (no records for IdleTimeout, and none waiting). A partition that is not idle and has seen no record holds it at
// None. When every partition is idle (or none is known) the stream has
// nothing left to wait for, and its watermark follows the clock: now less
// the out-of-orderness. The result never goes below prev, the watermark
// already committed.
func (c Config) Stream(parts map[Key]Partition, now time.Time, prev int64) int64 {
	wm, active := int64(math.MaxInt64), false
	for _, p := range parts {
		if c.idle(p, now) {
			continue
		}
		active = true
		wm = min(wm, c.own(p))
	}
	if !active {
		wm = now.UnixMicro() - c.OutOfOrderness.Microseconds()
	}
	return max(wm, prev)
}

// Ahead lists the partitions whose own watermark runs more than MaxDrift
// ahead of the stream's watermark stream (nil when MaxDrift is 0 or the
// stream has no watermark yet).
func (c Config) Ahead(parts map[Key]Partition, stream int64) []Key {
	if c.MaxDrift <= 0 || stream == None {
		return nil
	}
	limit := stream + c.MaxDrift.Microseconds()
	var out []Key
	for k, p := range parts {
		if c.own(p) > limit {
			out = append(out, k)
		}
	}
	return out
}
