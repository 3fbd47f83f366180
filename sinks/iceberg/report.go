package iceberg

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/partition"
	"github.com/sluicehq/sluice/watermark"
)

// PartitionReport is what a table's commits say of its time partitions.
type PartitionReport struct {
	Table  string `json:"table"`
	Stream string `json:"stream,omitempty"`
	// Watermark is the stream's committed watermark (zero: none yet).
	Watermark time.Time `json:"watermark"`
	// Partitions are oldest first.
	Partitions []PartitionStatus `json:"partitions"`
}

// PartitionStatus is one time partition's state.
type PartitionStatus struct {
	Path string `json:"path"`
	// State is "open" (data committed, not announced), "ready", "empty"
	// or "updated" (late data appended after it was announced).
	State   string `json:"state"`
	Records int64  `json:"records"`
	Files   int64  `json:"files"`
	// AnnouncedAt is when the first notice was committed, UpdatedAt the
	// last updated notice (zero if none); SnapshotID the snapshot of the
	// latest notice.
	AnnouncedAt time.Time `json:"announced_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	SnapshotID  int64     `json:"snapshot_id,omitempty"`
	start       time.Time // for ordering
	latest      time.Time // of the notice Records and Files come from
}

// ReportPartitions reads a table's notices from its snapshot history
// (oldest first; expired snapshots take their notices with them) and the
// latest announcement state. ok is false when the table has none.
func ReportPartitions(tbl *table.Table) (PartitionReport, bool, error) {
	rep := PartitionReport{Table: strings.Join(tbl.Identifier(), ".")}
	var chain []*table.Snapshot
	for snap := tbl.CurrentSnapshot(); snap != nil; {
		chain = append(chain, snap)
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = tbl.SnapshotByID(*snap.ParentSnapshotID)
	}
	slices.Reverse(chain)
	byPath := map[string]*PartitionStatus{}
	var latest *partition.State
	for _, snap := range chain {
		if snap.Summary == nil {
			continue
		}
		raw, ok := snap.Summary.Properties[PropNotify]
		if !ok {
			continue
		}
		var st partition.State
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			return rep, false, fmt.Errorf("snapshot %d: %s: %w", snap.SnapshotID, PropNotify, err)
		}
		latest, rep.Stream = &st, snap.Summary.Properties[PropStream]
		for _, n := range st.Notices {
			if n.SnapshotID == 0 {
				n.SnapshotID = snap.SnapshotID
			}
			ps := byPath[n.Path]
			if ps == nil {
				ps = &PartitionStatus{Path: n.Path, start: n.Start}
				byPath[n.Path] = ps
			}
			if n.Kind == partition.Updated {
				if n.EmittedAt.After(ps.UpdatedAt) {
					ps.State, ps.UpdatedAt = string(n.Kind), n.EmittedAt
				}
			} else if ps.AnnouncedAt.IsZero() {
				ps.AnnouncedAt = n.EmittedAt
				if ps.State == "" {
					ps.State = string(n.Kind)
				}
			}
			if !n.EmittedAt.Before(ps.latest) {
				ps.Records, ps.Files, ps.SnapshotID, ps.latest = n.Records, n.Files, n.SnapshotID, n.EmittedAt
			}
		}
	}
	if latest == nil {
		return rep, false, nil
	}
	if latest.Watermark != watermark.None && latest.Watermark != 0 {
		rep.Watermark = time.UnixMicro(latest.Watermark).UTC()
	}
	if sl, ok := slicingOf(tbl); ok {
		for ord, stats := range latest.Slices {
			if latest.Started && ord < latest.Through {
				continue
			}
			start, _ := sl.Bounds(ord)
			byPath[sl.Path(ord)] = &PartitionStatus{Path: sl.Path(ord), State: "open", Records: stats.Records, Files: stats.Files, start: start}
		}
	}
	for _, ps := range byPath {
		rep.Partitions = append(rep.Partitions, *ps)
	}
	slices.SortFunc(rep.Partitions, func(a, b PartitionStatus) int { return a.start.Compare(b.start) })
	return rep, true, nil
}

// slicingOf recovers the slicing of a table's notices from its partition
// spec: the hour, day, month or year field whose name the notices use.
func slicingOf(tbl *table.Table) (partition.Slicing, bool) {
	spec := tbl.Spec()
	for i := range spec.NumFields() {
		f := spec.Field(i)
		unit := f.Transform.String()
		switch unit {
		case "hour", "day", "month", "year":
			return partition.Slicing{Field: f.Name, FieldID: f.FieldID, Unit: unit}, true
		}
	}
	return partition.Slicing{}, false
}
