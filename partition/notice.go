package partition

import (
	"encoding/json"
	"strconv"
	"time"
)

// Kind is what a notice says about its partition.
type Kind string

const (
	Ready   Kind = "ready"   // all the partition's data is committed
	Empty   Kind = "empty"   // the partition's time passed with no data
	Updated Kind = "updated" // late data was appended to an announced partition
)

// Notice announces one (table, partition) state.
type Notice struct {
	// ID is stable across re-sends, so receivers dedupe by it; build it
	// with NoticeID.
	ID       string `json:"id"`
	Kind     Kind   `json:"kind"`
	Pipeline string `json:"pipeline"`
	Stream   string `json:"stream"`
	// Table is "namespace.table".
	Table string `json:"table"`
	// Partition maps each partition field to its value as text, e.g.
	// {"ts_hour": "2026-11-23-05"}.
	Partition map[string]string `json:"partition"`
	// Path is the partition's path, e.g. "ts_hour=2026-11-23-05".
	Path string `json:"path"`
	// Start (inclusive) and End (exclusive) bound the partition's time.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// SnapshotID is the snapshot to read the table at; Records and Files
	// count the partition's rows and data files in it.
	SnapshotID int64 `json:"snapshot_id"`
	Records    int64 `json:"records"`
	Files      int64 `json:"files"`
	// Watermark is the stream's committed watermark and Checkpoint the
	// checkpoint whose commit made the partition ready.
	Watermark  time.Time `json:"watermark"`
	Checkpoint int64     `json:"checkpoint"`
	EmittedAt  time.Time `json:"emitted_at"`
}

// NoticeID returns the stable id of a notice: "<table>/<path>/<kind>" for
// ready and empty, which a partition announces once, and
// "<table>/<path>/updated/<checkpoint>" for updated, which it may announce
// after every checkpoint that appends late data. Both are known before the
// commit that makes the notice due, so the id is stored with it.
func NoticeID(table, path string, kind Kind, checkpoint int64) string {
	id := table + "/" + path + "/" + string(kind)
	if kind == Updated {
		id += "/" + strconv.FormatInt(checkpoint, 10)
	}
	return id
}

// MarshalJSON writes the notice with its times in UTC (RFC 3339) whatever
// their location, and a missing partition map as {} rather than null, so
// receivers see one shape.
func (n Notice) MarshalJSON() ([]byte, error) {
	type plain Notice // without the method, to not recurse
	p := plain(n)
	p.Start, p.End = p.Start.UTC(), p.End.UTC()
	p.Watermark, p.EmittedAt = p.Watermark.UTC(), p.EmittedAt.UTC()
	if p.Partition == nil {
		p.Partition = map[string]string{}
	}
	return json.Marshal(p)
}
