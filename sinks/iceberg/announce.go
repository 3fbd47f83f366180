package iceberg

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/partition"
	"github.com/sluicehq/sluice/watermark"
)

// Summary properties of event-time progress, written with every commit.
const (
	// PropWatermark is the stream's committed watermark (microseconds).
	PropWatermark = "sluice.watermark"
	// PropEventTimes is the largest event time per source partition
	// (microseconds), in the form of PropPositions.
	PropEventTimes = "sluice.event-times"
	// PropNotify is the announcement state (partition.State as JSON).
	PropNotify = "sluice.notify"
)

// Table properties set for the table_property notice target.
const (
	PropReadyPartition = "sluice.ready-partition"
	PropReadyWatermark = "sluice.ready-watermark"
	PropReadyAt        = "sluice.ready-at"
)

// Announcing configures a table's watermark and its notices.
type Announcing struct {
	Watermark watermark.Config
	// Slicing is the time partitioning notices announce; notices are off
	// when its Unit is empty.
	Slicing partition.Slicing
	// Delay holds each notice back after the watermark passed the end.
	Delay time.Duration
	// Property records the latest complete partition in table properties.
	Property bool
	// Notify hands committed notices over for delivery; done is called once
	// every target has them. Nil: no delivery targets.
	Notify func(ns []partition.Notice, done func())
	// LateBefore hears, after each commit, where announced time ends.
	LateBefore func(us int64)
	// LateTable takes the late rows (late.policy table); nil otherwise.
	LateTable *table.Table
	// Compactor merges each time partition's files once the watermark
	// passed it, before it is announced; nil: no compaction. Needs Slicing.
	Compactor Compactor
	// CompactAfterFiles also merges a partition not closed yet once it has
	// this many files (0: only when it closes).
	CompactAfterFiles int
	// Retention expires old snapshots and merges manifests; nil: never.
	Retention *Retention
	// ApplyDeletesAfter compacts a table kept upserted (see Upserts) once
	// its current snapshot holds this many delete files: its live rows are
	// rewritten with the deletes applied (0: never).
	ApplyDeletesAfter int
	// UpsertTargetSize is the size the rewritten files roll at (0: the
	// table's write.target-file-size-bytes).
	UpsertTargetSize int64
}

func (a Announcing) notices() bool { return a.Slicing.Unit != "" }

// announceState is a table's event-time progress in the committer.
type announceState struct {
	cfg   Announcing
	marks map[watermark.Key]watermark.Partition
	state partition.State

	mu        sync.Mutex
	delivered map[string]bool // notice ids delivered since the last commit

	queued map[int64]bool // closing slices handed to the compactor (committer goroutine only)
}

func newAnnounceState(cfg Announcing, st State, now time.Time) *announceState {
	cfg.Slicing.Compact = cfg.Compactor != nil
	a := &announceState{cfg: cfg, marks: map[watermark.Key]watermark.Partition{}, state: st.Notify, delivered: map[string]bool{}, queued: map[int64]bool{}}
	if !st.Notify.Started && st.Notify.Watermark == 0 {
		a.state.Watermark = watermark.None
	}
	// Partitions known from earlier runs hold the watermark back until they
	// show records again or go idle.
	for topic, parts := range st.Positions {
		for p := range parts {
			a.marks[watermark.Key{Topic: topic, Partition: p}] = watermark.Partition{MaxEventTime: watermark.None, LastRecord: now}
		}
	}
	for topic, parts := range st.EventTimes {
		for p, us := range parts {
			a.marks[watermark.Key{Topic: topic, Partition: p}] = watermark.Partition{MaxEventTime: us, LastRecord: now}
		}
	}
	for i := range a.state.Undelivered {
		if a.state.Undelivered[i].SnapshotID == 0 {
			a.state.Undelivered[i].SnapshotID = st.SnapshotID
		}
	}
	return a
}

// markDelivered is the done callback of a batch of notices.
func (a *announceState) markDelivered(ids []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		a.delivered[id] = true
	}
}

// pending is what a commit of cp will record: the next state and the
// notices it makes due (without snapshot ids).
type pending struct {
	next      partition.State
	due       []partition.Notice
	props     iceberg.Properties // snapshot summary additions
	tableProp iceberg.Properties // table properties to set with the commit
}

// prepare computes the event-time progress a commit of cp records.
func (a *announceState) prepare(tableName, pipeline, stream string, cp checkpoint.DataWritten, now time.Time) pending {
	for k, m := range cp.Marks {
		if have, ok := a.marks[k]; ok {
			m = have.Merge(m)
		}
		a.marks[k] = m
	}
	wm := a.cfg.Watermark.Stream(a.marks, now, a.state.Watermark)
	next := a.state
	next.Slices = maps.Clone(a.state.Slices)
	next.Closing = slices.Clone(a.state.Closing)
	a.mu.Lock()
	next.Undelivered = slices.DeleteFunc(slices.Clone(a.state.Undelivered), func(n partition.Notice) bool { return a.delivered[n.ID] })
	a.mu.Unlock()
	var due []partition.Notice
	if a.cfg.notices() {
		added := map[int64]partition.Stats{}
		for _, f := range cp.Files {
			if ord, ok := a.cfg.Slicing.FileSlice(f); ok {
				s := added[ord]
				s.Records += f.Count()
				s.Files++
				added[ord] = s
			}
		}
		due = a.cfg.Slicing.Advance(&next, added, wm, a.cfg.Delay)
		for i := range due {
			n := &due[i]
			n.Pipeline, n.Stream, n.Table, n.Checkpoint, n.EmittedAt = pipeline, stream, tableName, cp.Checkpoint, now.UTC()
			n.ID = partition.NoticeID(tableName, n.Path, n.Kind, cp.Checkpoint)
		}
		next.Notices = due
		if a.cfg.Notify != nil { // else nothing is to be delivered
			next.Undelivered = append(next.Undelivered, due...)
		}
	} else {
		next.Watermark = max(next.Watermark, wm)
	}
	return pending{next: next, due: due, props: a.summary(next), tableProp: a.readyProps(due)}
}

// summary is the event-time part of a commit's snapshot summary.
func (a *announceState) summary(next partition.State) iceberg.Properties {
	props := iceberg.Properties{
		PropWatermark:  strconv.FormatInt(next.Watermark, 10),
		PropEventTimes: a.eventTimes().Encode(),
	}
	if a.cfg.notices() {
		raw, _ := json.Marshal(next) // plain data always marshals
		props[PropNotify] = string(raw)
	}
	return props
}

// readyProps are the table properties the latest ready or empty notice of
// due sets (table_property target); nil if there is none.
func (a *announceState) readyProps(due []partition.Notice) iceberg.Properties {
	if !a.cfg.Property {
		return nil
	}
	for _, n := range slices.Backward(due) {
		if n.Kind == partition.Ready || n.Kind == partition.Empty {
			return iceberg.Properties{
				PropReadyPartition: n.Path,
				PropReadyWatermark: n.Watermark.Format(time.RFC3339Nano),
				PropReadyAt:        n.EmittedAt.Format(time.RFC3339Nano),
			}
		}
	}
	return nil
}

func (a *announceState) eventTimes() checkpoint.Positions {
	out := checkpoint.Positions{}
	for k, m := range a.marks {
		if m.MaxEventTime != watermark.None {
			out.Set(k.Topic, k.Partition, m.MaxEventTime)
		}
	}
	return out
}

// committed takes the state a commit recorded and hands its notices over.
func (a *announceState) committed(p pending, snapshotID int64) {
	a.state = p.next
	// Forget deliveries the state no longer lists; keep those that arrived
	// while committing, for the next commit to drop.
	a.mu.Lock()
	listed := map[string]bool{}
	for _, n := range a.state.Undelivered {
		listed[n.ID] = true
	}
	maps.DeleteFunc(a.delivered, func(id string, _ bool) bool { return !listed[id] })
	a.mu.Unlock()
	for i := range a.state.Undelivered {
		if a.state.Undelivered[i].SnapshotID == 0 {
			a.state.Undelivered[i].SnapshotID = snapshotID
		}
	}
	for i := range p.due {
		p.due[i].SnapshotID = snapshotID
	}
	a.state.Notices = nil // history, kept in the snapshot only
	a.send(p.due)
	if a.cfg.LateBefore != nil && a.cfg.notices() {
		a.cfg.LateBefore(a.cfg.Slicing.LateBefore(&a.state))
	}
}

// resend hands over the notices an earlier run committed but may not have
// delivered; receivers dedupe them by id.
func (a *announceState) resend() { a.send(slices.Clone(a.state.Undelivered)) }

func (a *announceState) send(ns []partition.Notice) {
	if len(ns) == 0 || a.cfg.Notify == nil {
		return
	}
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.ID
	}
	a.cfg.Notify(ns, func() { a.markDelivered(ids) })
}

// decodeState reads the event-time progress of a snapshot summary.
func decodeState(props iceberg.Properties, st *State) error {
	if v, ok := props[PropEventTimes]; ok && v != "" {
		et, err := checkpoint.DecodePositions(v)
		if err != nil {
			return fmt.Errorf("%s: %w", PropEventTimes, err)
		}
		st.EventTimes = et
	}
	if v, ok := props[PropNotify]; ok && v != "" {
		if err := json.Unmarshal([]byte(v), &st.Notify); err != nil {
			return fmt.Errorf("%s: %w", PropNotify, err)
		}
	} else if v, ok := props[PropWatermark]; ok {
		st.Notify.Watermark, _ = strconv.ParseInt(v, 10, 64)
	}
	return nil
}

// setTableProps stages table properties in a commit's transaction.
func setTableProps(tx *table.Transaction, props iceberg.Properties) error {
	if len(props) == 0 {
		return nil
	}
	return tx.SetProperties(props)
}
