// Package audit exports the audit trace: for every committed checkpoint of
// every table, how many records each stage saw, by event hour and outcome,
// and the source offset ranges they came from. The trace is derived from
// what the commits themselves record (the snapshot summaries), so it is
// exactly what was committed, and a trace lost to a crash is derived again.
package audit

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

// Row is one count of the trace.
type Row struct {
	Pipeline   string `json:"pipeline"`
	Stream     string `json:"stream"`
	Table      string `json:"table"`
	Checkpoint int64  `json:"checkpoint"`
	Snapshot   int64  `json:"snapshot_id"`
	// Hour is the records' event hour; zero (1970-01-01 00:00) when they
	// have none (unreadable records).
	Hour time.Time `json:"hour"`
	// Stage is "read" (a source range: Topic, Partition, offsets) or a
	// record outcome: written, filtered, dead_lettered, skipped,
	// late_dropped, late_table. Reason details dead letters (the stage that
	// refused the record: parse, etl, export).
	Stage      string    `json:"stage"`
	Reason     string    `json:"reason"`
	Records    int64     `json:"records"`
	Topic      string    `json:"topic"`
	Partition  int32     `json:"partition"`
	OffsetFrom int64     `json:"offset_from"`
	OffsetTo   int64     `json:"offset_to"`
	Committed  time.Time `json:"committed_at"`
}

// RowsOf derives the trace of one commit from its snapshot; a snapshot
// without audit properties (a compaction, a schema change) has none.
func RowsOf(pipeline, stream, tableName string, snap table.Snapshot) ([]Row, error) {
	props := map[string]string{}
	if snap.Summary != nil {
		props = snap.Summary.Properties
	}
	raw, ok := props[iceberg.PropAudit]
	if !ok || props[iceberg.PropStream] != stream {
		return nil, nil
	}
	cp, err := strconv.ParseInt(props[iceberg.PropCheckpoint], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: bad %s %q", snap.SnapshotID, iceberg.PropCheckpoint, props[iceberg.PropCheckpoint])
	}
	tally, err := checkpoint.DecodeTally(raw)
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: %w", snap.SnapshotID, err)
	}
	base := Row{Pipeline: pipeline, Stream: stream, Table: tableName, Checkpoint: cp, Snapshot: snap.SnapshotID,
		Committed: time.UnixMilli(snap.TimestampMs).UTC(), Hour: time.Unix(0, 0).UTC(), Partition: -1}
	var rows []Row
	for k, n := range tally {
		r := base
		if k.Hour != checkpoint.NoHour {
			r.Hour = time.Unix(k.Hour*3600, 0).UTC()
		}
		r.Stage, r.Reason = splitOutcome(k.Outcome)
		r.Records = n
		rows = append(rows, r)
	}
	var ranges map[string]map[string][2]int64
	if s := props[iceberg.PropAuditOffsets]; s != "" {
		if err := json.Unmarshal([]byte(s), &ranges); err != nil {
			return nil, fmt.Errorf("snapshot %d: %s: %w", snap.SnapshotID, iceberg.PropAuditOffsets, err)
		}
	}
	for topic, parts := range ranges {
		for p, rg := range parts {
			part, err := strconv.ParseInt(p, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("snapshot %d: partition %q of %s", snap.SnapshotID, p, topic)
			}
			r := base
			r.Stage, r.Topic, r.Partition, r.OffsetFrom, r.OffsetTo, r.Records = "read", topic, int32(part), rg[0], rg[1], rg[1]-rg[0]
			rows = append(rows, r)
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].key() < rows[j].key() })
	return rows, nil
}

func (r Row) key() string {
	return fmt.Sprintf("%020d|%s|%s|%s|%011d", r.Hour.Unix(), r.Stage, r.Reason, r.Topic, r.Partition)
}

// splitOutcome splits "dead_lettered:parse" into stage and reason.
func splitOutcome(o string) (stage, reason string) {
	for i := range len(o) {
		if o[i] == ':' {
			return o[:i], o[i+1:]
		}
	}
	return o, ""
}
