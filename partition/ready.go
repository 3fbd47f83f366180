package partition

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/sluicehq/sluice/watermark"
)

// Slicing is a table's time partitioning: the partition field whose values
// are hours, days, months or years of the event time. Each value is one
// slice, the unit notices announce; other partition fields of the table
// lie within it.
type Slicing struct {
	// Field is the partition field's name, e.g. "ts_hour".
	Field string
	// FieldID is its partition field ID, the key of DataFile.Partition().
	FieldID int
	// Unit is "hour", "day", "month" or "year".
	Unit string
	// Compact holds each due slice that has data in State.Closing until
	// its files were merged; Release then announces it.
	Compact bool
}

// Of returns the ordinal of the slice holding the time us (microseconds
// since the epoch): Iceberg's transform of it.
func (s Slicing) Of(us int64) int64 {
	switch s.Unit {
	case "hour":
		return floorDiv(us, int64(time.Hour/time.Microsecond))
	case "day":
		return floorDiv(us, int64(24*time.Hour/time.Microsecond))
	}
	t := time.UnixMicro(us).UTC()
	if s.Unit == "month" {
		return int64((t.Year()-1970)*12 + int(t.Month()) - 1)
	}
	return int64(t.Year() - 1970)
}

// Bounds returns the start (inclusive) and end (exclusive) of slice ord.
func (s Slicing) Bounds(ord int64) (time.Time, time.Time) {
	switch s.Unit {
	case "hour":
		start := time.Unix(ord*3600, 0).UTC()
		return start, start.Add(time.Hour)
	case "day":
		start := time.Unix(ord*86400, 0).UTC()
		return start, start.AddDate(0, 0, 1)
	case "month":
		start := time.Date(1970+int(floorDiv(ord, 12)), time.Month(ord-12*floorDiv(ord, 12)+1), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
	start := time.Date(1970+int(ord), 1, 1, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(1, 0, 0)
}

// Label is the slice's partition value as Iceberg writes it in paths:
// 2026-11-23-05, 2026-11-23, 2026-11 or 2026.
func (s Slicing) Label(ord int64) string {
	start, _ := s.Bounds(ord)
	switch s.Unit {
	case "hour":
		return start.Format("2006-01-02-15")
	case "day":
		return start.Format("2006-01-02")
	case "month":
		return start.Format("2006-01")
	}
	return start.Format("2006")
}

// Path is the slice's partition path segment, e.g. ts_hour=2026-11-23-05.
func (s Slicing) Path(ord int64) string { return s.Field + "=" + s.Label(ord) }

// FileSlice returns the slice a data file belongs to.
func (s Slicing) FileSlice(f iceberg.DataFile) (int64, bool) {
	switch v := f.Partition()[s.FieldID].(type) {
	case int32:
		return int64(v), true
	case iceberg.Date:
		return int64(v), true
	case int64:
		return v, true
	}
	return 0, false
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Stats is the data committed to one slice.
type Stats struct {
	Records int64 `json:"records"`
	Files   int64 `json:"files"`
}

// keepAnnounced is how many announced slices keep their stats, so that
// late data can report the slice's totals in its updated notice.
const keepAnnounced = 168

// maxPerAdvance bounds the slices one checkpoint announces, so a watermark
// that leaps (a stream idle for months) cannot stall a commit; the rest
// follow at the next checkpoints.
const maxPerAdvance = 1000

// State is what a table's announcements have reached. It is stored with
// every commit, so a restarted daemon neither skips nor repeats a slice.
type State struct {
	// Started is false until the stream saw data or a watermark: slices
	// before it began are not announced.
	Started bool `json:"started"`
	// Through is the first slice not yet announced.
	Through int64 `json:"through"`
	// Announced is true once a slice was announced; until then data of an
	// earlier slice (from a source partition that was behind) moves
	// Through back to it rather than counting as late.
	Announced bool `json:"announced"`
	// Watermark is the stream's committed watermark (microseconds).
	Watermark int64 `json:"watermark"`
	// Slices holds the data committed per slice: every slice not yet
	// announced and the latest announced ones.
	Slices map[int64]Stats `json:"slices,omitempty"`
	// Closing are due slices waiting for their compaction (Slicing.Compact)
	// before they are announced.
	Closing []int64 `json:"closing,omitempty"`
	// Notices are the notices the commit holding this state made due: the
	// history of a table's announcements, one commit at a time.
	Notices []Notice `json:"notices,omitempty"`
	// Undelivered are notices committed but not yet known to have reached
	// every target; a restarted daemon sends them again.
	Undelivered []Notice `json:"undelivered,omitempty"`
}

// Advance takes a checkpoint about to be committed — the data it adds per
// slice, the stream's watermark after it — and returns the notices the
// commit makes due, updating st: an updated notice for every announced
// slice that receives data, then a ready (or, without data, empty) notice
// for every slice whose end plus delay the watermark passed. The notices
// carry the slice and its totals; the caller adds the table, the snapshot
// and the ids once the commit is done.
func (s Slicing) Advance(st *State, added map[int64]Stats, wm int64, delay time.Duration) []Notice {
	if st.Slices == nil {
		st.Slices = map[int64]Stats{}
	}
	if !st.Started || wm > st.Watermark {
		st.Watermark = wm // the caller keeps it from going back (watermark.Config.Stream)
	}
	var out []Notice
	for _, ord := range slices.Sorted(maps.Keys(added)) {
		a := added[ord]
		total := st.Slices[ord]
		total.Records += a.Records
		total.Files += a.Files
		st.Slices[ord] = total
		if a.Records == 0 || !st.Started || ord >= st.Through {
			continue
		}
		if slices.Contains(st.Closing, ord) {
			continue // announced with these rows once compacted
		}
		if st.Announced {
			out = append(out, s.notice(Updated, ord, total, st.Watermark))
		} else {
			st.Through = ord
		}
	}
	if !st.Started {
		first, ok := int64(0), false
		for ord, a := range added {
			if a.Records > 0 && (!ok || ord < first) {
				first, ok = ord, true
			}
		}
		if st.Watermark != watermark.None {
			if w := s.Of(st.Watermark); !ok || w < first {
				first, ok = w, true
			}
		}
		if !ok {
			return out
		}
		st.Started, st.Through = true, first
	}
	if st.Watermark == watermark.None {
		return out
	}
	for range maxPerAdvance {
		_, end := s.Bounds(st.Through)
		if end.Add(delay).UnixMicro() > st.Watermark {
			break
		}
		kind := Ready
		stats := st.Slices[st.Through]
		switch {
		case stats.Records == 0:
			out = append(out, s.notice(Empty, st.Through, stats, st.Watermark))
		case s.Compact:
			st.Closing = append(st.Closing, st.Through)
		default:
			out = append(out, s.notice(kind, st.Through, stats, st.Watermark))
		}
		st.Through++
		st.Announced = true
	}
	for ord := range st.Slices {
		if ord < st.Through-keepAnnounced && !slices.Contains(st.Closing, ord) {
			delete(st.Slices, ord)
		}
	}
	return out
}

// Release ends the wait of a closing slice whose files were merged, now
// files of them, and returns its ready notice; false if the slice was not
// closing.
func (s Slicing) Release(st *State, ord, files int64) (Notice, bool) {
	i := slices.Index(st.Closing, ord)
	if i < 0 {
		return Notice{}, false
	}
	st.Closing = slices.Delete(slices.Clone(st.Closing), i, i+1)
	stats := st.Slices[ord]
	stats.Files = files
	if st.Slices == nil {
		st.Slices = map[int64]Stats{}
	}
	st.Slices[ord] = stats
	return s.notice(Ready, ord, stats, st.Watermark), true
}

func (s Slicing) notice(kind Kind, ord int64, stats Stats, wm int64) Notice {
	start, end := s.Bounds(ord)
	return Notice{
		Kind: kind, Partition: map[string]string{s.Field: s.Label(ord)}, Path: s.Path(ord),
		Start: start, End: end, Records: stats.Records, Files: stats.Files,
		Watermark: time.UnixMicro(wm).UTC(),
	}
}

// LateBefore is the time before which a record belongs to an announced
// slice (microseconds; watermark.None before anything was announced).
func (s Slicing) LateBefore(st *State) int64 {
	if !st.Announced {
		return watermark.None
	}
	start, _ := s.Bounds(st.Through)
	return start.UnixMicro()
}

// String describes the slicing for logs.
func (s Slicing) String() string { return fmt.Sprintf("%s (%s)", s.Field, s.Unit) }
