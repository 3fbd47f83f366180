// Package checkpoint holds the messages of the commit protocol: the source
// positions a checkpoint covers and what each writer sealed for it. Sources,
// writers and the committer all speak these types, and nothing else of each
// other.
package checkpoint

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/apache/iceberg-go"

	"github.com/sluicehq/sluice/watermark"
)

// Positions maps topic → partition → the next offset to read.
type Positions map[string]map[int32]int64

// Set records next as the position of a partition.
func (p Positions) Set(topic string, partition int32, next int64) {
	m := p[topic]
	if m == nil {
		m = map[int32]int64{}
		p[topic] = m
	}
	m[partition] = next
}

// Get returns the position of a partition.
func (p Positions) Get(topic string, partition int32) (int64, bool) {
	v, ok := p[topic][partition]
	return v, ok
}

// Merge overwrites p's positions with o's, partition by partition.
func (p Positions) Merge(o Positions) {
	for t, parts := range o {
		for part, off := range parts {
			p.Set(t, part, off)
		}
	}
}

// Clone returns a deep copy.
func (p Positions) Clone() Positions {
	out := make(Positions, len(p))
	for t, parts := range p {
		out[t] = maps.Clone(parts)
	}
	return out
}

// Count is the number of partitions held.
func (p Positions) Count() int {
	n := 0
	for _, parts := range p {
		n += len(parts)
	}
	return n
}

// Encode renders positions as JSON for a snapshot summary:
// {"topic":{"0":123,"1":456}}.
func (p Positions) Encode() string {
	out := make(map[string]map[string]int64, len(p))
	for t, parts := range p {
		m := make(map[string]int64, len(parts))
		for part, off := range parts {
			m[strconv.Itoa(int(part))] = off
		}
		out[t] = m
	}
	b, _ := json.Marshal(out) // maps of strings and ints always marshal
	return string(b)
}

// DecodePositions parses Encode's output.
func DecodePositions(s string) (Positions, error) {
	var raw map[string]map[string]int64
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("decode positions: %w", err)
	}
	p := Positions{}
	for t, parts := range raw {
		for k, off := range parts {
			part, err := strconv.ParseInt(k, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("decode positions: partition %q of %s: %w", k, t, err)
			}
			p.Set(t, int32(part), off)
		}
	}
	return p, nil
}

// Counts are the records a writer handled, by outcome.
type Counts struct {
	Read         int64 // records taken from the source
	DeadLettered int64 // records sent to the dead-letter destination
	Filtered     int64 // records the ETL filter dropped
	Written      int64 // rows written to data files
	Skipped      int64 // records another stream's match selects
	Late         int64 // records of announced partitions, dropped by late.policy drop
}

// Add accumulates o into c.
func (c *Counts) Add(o Counts) {
	c.Read += o.Read
	c.DeadLettered += o.DeadLettered
	c.Filtered += o.Filtered
	c.Written += o.Written
	c.Skipped += o.Skipped
	c.Late += o.Late
}

// DataWritten is one writer's share of a checkpoint: the files it sealed and
// the positions up to which its partitions were processed when the barrier
// reached it.
type DataWritten struct {
	Stream     string
	Checkpoint int64
	Worker     int
	Files      []iceberg.DataFile
	// DeleteFiles are equality-delete files committed with Files as one
	// row delta (tables kept upserted by primary key).
	DeleteFiles []iceberg.DataFile
	// LateFiles hold the late rows for the late table (late.policy table).
	LateFiles []iceberg.DataFile
	Positions Positions
	// MaxEventTime is the largest event time seen (microseconds), 0 if none.
	MaxEventTime int64
	// Marks are the event-time progress of the source partitions that had
	// records in this checkpoint, as of its barrier.
	Marks  map[watermark.Key]watermark.Partition
	Counts Counts
	// Bytes is the total size of Files.
	Bytes int64
	// Tally counts the records of the checkpoint by event hour and outcome;
	// Starts are the first offset processed per partition, so the
	// positions read cover [Starts, Positions).
	Tally  Tally
	Starts Positions
	// Props are more snapshot summary properties the source records with
	// its positions (a CDC table's position and snapshot progress), keys
	// starting "sluice.source."; the last part's win.
	Props map[string]string
}

// Gatherer assembles checkpoints from the parts every worker reports. Each
// worker sees every barrier in order, so checkpoints complete in order; a
// Gatherer releases each one once all its parts are in, oldest first.
type Gatherer struct {
	workers int
	last    int64
	parts   map[int64][]DataWritten
}

// NewGatherer expects workers parts per checkpoint, starting after last.
func NewGatherer(workers int, last int64) *Gatherer {
	return &Gatherer{workers: workers, last: last, parts: map[int64][]DataWritten{}}
}

// Last is the number of the last checkpoint released.
func (g *Gatherer) Last() int64 { return g.last }

// Add takes one part and returns the checkpoints it completed, merged.
func (g *Gatherer) Add(dw DataWritten) []DataWritten {
	g.parts[dw.Checkpoint] = append(g.parts[dw.Checkpoint], dw)
	var done []DataWritten
	for {
		next := g.last + 1
		parts := g.parts[next]
		if len(parts) < g.workers {
			return done
		}
		delete(g.parts, next)
		g.last = next
		done = append(done, Merge(dw.Stream, next, parts))
	}
}

// Merge combines the parts of one checkpoint.
func Merge(stream string, cp int64, parts []DataWritten) DataWritten {
	merged := DataWritten{Stream: stream, Checkpoint: cp, Positions: Positions{}}
	for _, p := range parts {
		merged.Files = append(merged.Files, p.Files...)
		merged.LateFiles = append(merged.LateFiles, p.LateFiles...)
		merged.DeleteFiles = append(merged.DeleteFiles, p.DeleteFiles...)
		merged.Positions.Merge(p.Positions)
		merged.MaxEventTime = max(merged.MaxEventTime, p.MaxEventTime)
		for k, m := range p.Marks {
			if merged.Marks == nil {
				merged.Marks = map[watermark.Key]watermark.Partition{}
			}
			if have, ok := merged.Marks[k]; ok {
				m = have.Merge(m)
			}
			merged.Marks[k] = m
		}
		merged.Counts.Add(p.Counts)
		merged.Bytes += p.Bytes
		if len(p.Tally) > 0 {
			if merged.Tally == nil {
				merged.Tally = Tally{}
			}
			merged.Tally.Merge(p.Tally)
		}
		for t, parts := range p.Starts {
			for part, off := range parts {
				if merged.Starts == nil {
					merged.Starts = Positions{}
				}
				if have, ok := merged.Starts.Get(t, part); !ok || off < have {
					merged.Starts.Set(t, part, off)
				}
			}
		}
		if len(p.Props) > 0 {
			if merged.Props == nil {
				merged.Props = map[string]string{}
			}
			maps.Copy(merged.Props, p.Props)
		}
	}
	return merged
}

// Outcomes of a record, as the audit trace counts them.
const (
	Written     = "written"
	Filtered    = "filtered"
	DeadParse   = "dead_lettered:parse"
	DeadETL     = "dead_lettered:etl"
	DeadExport  = "dead_lettered:export"
	Skipped     = "skipped"
	LateDropped = "late_dropped"
	LateTable   = "late_table"
	// Compacted counts records a merge rewrote: not an outcome of records
	// read, and not part of a stream's reconciliation.
	Compacted       = "compacted"
	NoHour    int64 = -1 // a record without an event time (unreadable, or not decoded)
)

// TallyKey is an event hour (Unix time / 3600, NoHour if unknown) and a
// record outcome.
type TallyKey struct {
	Hour    int64
	Outcome string
}

// Tally counts records by event hour and outcome.
type Tally map[TallyKey]int64

// Add counts one record.
func (t Tally) Add(eventTime int64, known bool, outcome string) {
	h := NoHour
	if known {
		h = eventTime / 3_600_000_000
		if eventTime < 0 && eventTime%3_600_000_000 != 0 {
			h-- // the hour the instant falls in
		}
	}
	t[TallyKey{h, outcome}]++
}

// Merge adds o's counts to t.
func (t Tally) Merge(o Tally) {
	for k, n := range o {
		t[k] += n
	}
}

// Encode renders a tally for a snapshot summary: [[hour,"outcome",n],...]
// in a stable order.
func (t Tally) Encode() string {
	rows := make([][3]any, 0, len(t))
	for k, n := range t {
		rows = append(rows, [3]any{k.Hour, k.Outcome, n})
	}
	slices.SortFunc(rows, func(a, b [3]any) int {
		if c := cmp.Compare(a[0].(int64), b[0].(int64)); c != 0 {
			return c
		}
		return cmp.Compare(a[1].(string), b[1].(string))
	})
	b, _ := json.Marshal(rows)
	return string(b)
}

// DecodeTally parses Encode's output.
func DecodeTally(s string) (Tally, error) {
	var rows [][3]json.RawMessage
	if err := json.Unmarshal([]byte(s), &rows); err != nil {
		return nil, fmt.Errorf("decode tally: %w", err)
	}
	t := Tally{}
	for _, r := range rows {
		var k TallyKey
		var n int64
		if err := errors.Join(json.Unmarshal(r[0], &k.Hour), json.Unmarshal(r[1], &k.Outcome), json.Unmarshal(r[2], &n)); err != nil {
			return nil, fmt.Errorf("decode tally: %w", err)
		}
		t[k] += n
	}
	return t, nil
}
