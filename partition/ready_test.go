package partition

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/sluicehq/sluice/watermark"
)

var (
	hourly  = Slicing{Field: "ts_hour", FieldID: 1000, Unit: "hour"}
	daily   = Slicing{Field: "ts_day", FieldID: 1000, Unit: "day"}
	monthly = Slicing{Field: "ts_month", FieldID: 1000, Unit: "month"}
	yearly  = Slicing{Field: "ts_year", FieldID: 1000, Unit: "year"}
)

func utc(year int, month time.Month, day, hour, min, sec, nsec int) time.Time {
	return time.Date(year, month, day, hour, min, sec, nsec, time.UTC)
}

// TestSlicing checks each unit's ordinal, bounds, label and path at chosen
// instants: the epoch, just before it, month and year ends, a leap day.
func TestSlicing(t *testing.T) {
	tests := []struct {
		s          Slicing
		at         time.Time
		ord        int64
		start, end time.Time
		label      string
	}{
		{hourly, utc(1970, 1, 1, 0, 0, 0, 0), 0, utc(1970, 1, 1, 0, 0, 0, 0), utc(1970, 1, 1, 1, 0, 0, 0), "1970-01-01-00"},
		{hourly, utc(1969, 12, 31, 23, 59, 59, 999999000), -1, utc(1969, 12, 31, 23, 0, 0, 0), utc(1970, 1, 1, 0, 0, 0, 0), "1969-12-31-23"},
		{hourly, utc(1969, 12, 31, 23, 0, 0, 0), -1, utc(1969, 12, 31, 23, 0, 0, 0), utc(1970, 1, 1, 0, 0, 0, 0), "1969-12-31-23"},
		{hourly, utc(1969, 12, 31, 22, 59, 59, 999999000), -2, utc(1969, 12, 31, 22, 0, 0, 0), utc(1969, 12, 31, 23, 0, 0, 0), "1969-12-31-22"},
		{hourly, utc(2026, 11, 23, 5, 30, 0, 0), 498725, utc(2026, 11, 23, 5, 0, 0, 0), utc(2026, 11, 23, 6, 0, 0, 0), "2026-11-23-05"},
		{hourly, utc(2026, 12, 31, 23, 59, 59, 999999000), 499655, utc(2026, 12, 31, 23, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0, 0), "2026-12-31-23"},
		{hourly, utc(1900, 3, 1, 7, 1, 0, 0), -612185, utc(1900, 3, 1, 7, 0, 0, 0), utc(1900, 3, 1, 8, 0, 0, 0), "1900-03-01-07"},

		{daily, utc(1970, 1, 1, 0, 0, 0, 0), 0, utc(1970, 1, 1, 0, 0, 0, 0), utc(1970, 1, 2, 0, 0, 0, 0), "1970-01-01"},
		{daily, utc(1969, 12, 31, 23, 59, 59, 999999000), -1, utc(1969, 12, 31, 0, 0, 0, 0), utc(1970, 1, 1, 0, 0, 0, 0), "1969-12-31"},
		{daily, utc(1969, 12, 31, 0, 0, 0, 0), -1, utc(1969, 12, 31, 0, 0, 0, 0), utc(1970, 1, 1, 0, 0, 0, 0), "1969-12-31"},
		{daily, utc(2024, 2, 29, 12, 0, 0, 0), 19782, utc(2024, 2, 29, 0, 0, 0, 0), utc(2024, 3, 1, 0, 0, 0, 0), "2024-02-29"},
		{daily, utc(2026, 12, 31, 23, 59, 59, 999999000), 20818, utc(2026, 12, 31, 0, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0, 0), "2026-12-31"},

		{monthly, utc(1970, 1, 1, 0, 0, 0, 0), 0, utc(1970, 1, 1, 0, 0, 0, 0), utc(1970, 2, 1, 0, 0, 0, 0), "1970-01"},
		{monthly, utc(1969, 12, 31, 23, 59, 59, 999999000), -1, utc(1969, 12, 1, 0, 0, 0, 0), utc(1970, 1, 1, 0, 0, 0, 0), "1969-12"},
		{monthly, utc(1969, 1, 1, 0, 0, 0, 0), -12, utc(1969, 1, 1, 0, 0, 0, 0), utc(1969, 2, 1, 0, 0, 0, 0), "1969-01"},
		{monthly, utc(1968, 12, 31, 23, 59, 59, 999999000), -13, utc(1968, 12, 1, 0, 0, 0, 0), utc(1969, 1, 1, 0, 0, 0, 0), "1968-12"},
		{monthly, utc(2024, 2, 29, 23, 0, 0, 0), 649, utc(2024, 2, 1, 0, 0, 0, 0), utc(2024, 3, 1, 0, 0, 0, 0), "2024-02"},
		{monthly, utc(2026, 12, 31, 23, 59, 59, 999999000), 683, utc(2026, 12, 1, 0, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0, 0), "2026-12"},
		{monthly, utc(2027, 1, 1, 0, 0, 0, 0), 684, utc(2027, 1, 1, 0, 0, 0, 0), utc(2027, 2, 1, 0, 0, 0, 0), "2027-01"},

		{yearly, utc(1970, 1, 1, 0, 0, 0, 0), 0, utc(1970, 1, 1, 0, 0, 0, 0), utc(1971, 1, 1, 0, 0, 0, 0), "1970"},
		{yearly, utc(1969, 12, 31, 23, 59, 59, 999999000), -1, utc(1969, 1, 1, 0, 0, 0, 0), utc(1970, 1, 1, 0, 0, 0, 0), "1969"},
		{yearly, utc(1900, 6, 1, 0, 0, 0, 0), -70, utc(1900, 1, 1, 0, 0, 0, 0), utc(1901, 1, 1, 0, 0, 0, 0), "1900"},
		{yearly, utc(2026, 12, 31, 23, 59, 59, 999999000), 56, utc(2026, 1, 1, 0, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0, 0), "2026"},
	}
	for _, tc := range tests {
		t.Run(tc.s.Unit+"/"+tc.at.Format(time.RFC3339Nano), func(t *testing.T) {
			if got := tc.s.Of(tc.at.UnixMicro()); got != tc.ord {
				t.Fatalf("Of = %d, want %d", got, tc.ord)
			}
			start, end := tc.s.Bounds(tc.ord)
			if !start.Equal(tc.start) || !end.Equal(tc.end) {
				t.Errorf("Bounds = [%v, %v), want [%v, %v)", start, end, tc.start, tc.end)
			}
			if start.Location() != time.UTC || end.Location() != time.UTC {
				t.Errorf("Bounds in %v and %v, want UTC", start.Location(), end.Location())
			}
			if got := tc.s.Label(tc.ord); got != tc.label {
				t.Errorf("Label = %q, want %q", got, tc.label)
			}
			if got, want := tc.s.Path(tc.ord), tc.s.Field+"="+tc.label; got != want {
				t.Errorf("Path = %q, want %q", got, want)
			}
		})
	}
}

// TestSlicingMatchesIceberg checks Of and Label against iceberg-go's own
// transforms, for times across a thousand years on both sides of the
// epoch, and that each slice's bounds enclose the times it holds.
func TestSlicingMatchesIceberg(t *testing.T) {
	units := []struct {
		s         Slicing
		transform iceberg.Transform
	}{
		{hourly, iceberg.HourTransform{}},
		{daily, iceberg.DayTransform{}},
		{monthly, iceberg.MonthTransform{}},
		{yearly, iceberg.YearTransform{}},
	}
	lo, hi := utc(1500, 1, 1, 0, 0, 0, 0).UnixMicro(), utc(2500, 1, 1, 0, 0, 0, 0).UnixMicro()
	// Instants on and next to slice edges, where floor division and month
	// arithmetic go wrong first, then random ones.
	times := []int64{0, -1, 1, lo, hi - 1}
	for _, at := range []time.Time{
		utc(1969, 12, 31, 23, 0, 0, 0), utc(1969, 12, 1, 0, 0, 0, 0), utc(1969, 1, 1, 0, 0, 0, 0),
		utc(1968, 2, 29, 0, 0, 0, 0), utc(2000, 3, 1, 0, 0, 0, 0), utc(2026, 1, 1, 0, 0, 0, 0),
	} {
		us := at.UnixMicro()
		times = append(times, us-1, us, us+1)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		times = append(times, lo+r.Int64N(hi-lo))
	}
	for _, u := range units {
		t.Run(u.s.Unit, func(t *testing.T) {
			for _, us := range times {
				lit := u.transform.Apply(iceberg.Optional[iceberg.Literal]{Valid: true, Val: iceberg.TimestampLiteral(us)})
				if !lit.Valid {
					t.Fatalf("%s transform of %d is not valid", u.s.Unit, us)
				}
				var want int64
				switch v := lit.Val.Any().(type) {
				case int32:
					want = int64(v)
				case iceberg.Date:
					want = int64(v)
				default:
					t.Fatalf("%s transform gives %T", u.s.Unit, v)
				}
				at := time.UnixMicro(us).UTC()
				ord := u.s.Of(us)
				if ord != want {
					t.Fatalf("Of(%d = %v) = %d, iceberg says %d", us, at, ord, want)
				}
				if got, want := u.s.Label(ord), u.transform.ToHumanStr(int32(ord)); got != want {
					t.Fatalf("Label(%d) = %q, iceberg says %q", ord, got, want)
				}
				start, end := u.s.Bounds(ord)
				if at.Before(start) || !at.Before(end) {
					t.Fatalf("%v is outside Bounds(%d) = [%v, %v)", at, ord, start, end)
				}
				if u.s.Of(start.UnixMicro()) != ord || u.s.Of(end.UnixMicro()-1) != ord || u.s.Of(end.UnixMicro()) != ord+1 {
					t.Fatalf("Bounds(%d) = [%v, %v) do not delimit the slice", ord, start, end)
				}
			}
		})
	}
}

func TestSlicingString(t *testing.T) {
	if got := hourly.String(); got != "ts_hour (hour)" {
		t.Errorf("String = %q", got)
	}
}

// dataFile builds a data file whose partition holds partition field 1000
// (nil: none).
func dataFile(t *testing.T, value any) iceberg.DataFile {
	t.Helper()
	part := map[int]any{}
	if value != nil {
		part[1000] = value
	}
	spec := iceberg.NewPartitionSpec(iceberg.PartitionField{
		SourceIDs: []int{2}, FieldID: 1000, Name: "ts_day", Transform: iceberg.DayTransform{},
	})
	b, err := iceberg.NewDataFileBuilder(spec, iceberg.EntryContentData, "file:///wh/t/data/f.parquet",
		iceberg.ParquetFile, part, nil, nil, 10, 1000)
	if err != nil {
		t.Fatalf("NewDataFileBuilder: %v", err)
	}
	return b.Build()
}

func TestFileSlice(t *testing.T) {
	tests := []struct {
		name  string
		s     Slicing
		value any
		ord   int64
		ok    bool
	}{
		{"hour int32", hourly, int32(498725), 498725, true},
		{"hour before the epoch", hourly, int32(-1), -1, true},
		{"day date", daily, iceberg.Date(20415), 20415, true},
		{"day date before the epoch", daily, iceberg.Date(-365), -365, true},
		{"month int32", monthly, int32(-13), -13, true},
		{"year int32", yearly, int32(56), 56, true},
		{"int64", hourly, int64(1) << 40, 1 << 40, true},
		{"missing field", hourly, nil, 0, false},
		{"string value", hourly, "2026-11-23-05", 0, false},
		{"other field id", Slicing{Field: "ts_hour", FieldID: 1001, Unit: "hour"}, int32(5), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ord, ok := tc.s.FileSlice(dataFile(t, tc.value))
			if ord != tc.ord || ok != tc.ok {
				t.Errorf("FileSlice = %d, %v, want %d, %v", ord, ok, tc.ord, tc.ok)
			}
		})
	}
}

// base is the hour the Advance scenarios start from: 2026-11-23 05:00.
var base = hourly.Of(utc(2026, 11, 23, 5, 0, 0, 0).UnixMicro())

// at is the time (microseconds) h hours and m minutes after base.
func at(h, m int) int64 {
	start, _ := hourly.Bounds(base + int64(h))
	return start.Add(time.Duration(m) * time.Minute).UnixMicro()
}

// hours turns stats keyed by hours after base into stats keyed by slice.
func hours(kv map[int]Stats) map[int64]Stats {
	if kv == nil {
		return nil
	}
	out := map[int64]Stats{}
	for h, s := range kv {
		out[base+int64(h)] = s
	}
	return out
}

// brief describes notices as "kind label records/files".
func brief(ns []Notice) []string {
	var out []string
	for _, n := range ns {
		out = append(out, fmt.Sprintf("%s %s %d/%d", n.Kind, n.Partition["ts_hour"], n.Records, n.Files))
	}
	return out
}

// checkNotices checks what every notice of a slicing must hold whatever
// the scenario: the slice's bounds, partition, path and the watermark
// after the call.
func checkNotices(t *testing.T, s Slicing, ns []Notice, wm int64) {
	t.Helper()
	for _, n := range ns {
		label := n.Partition[s.Field]
		if len(n.Partition) != 1 || n.Path != s.Field+"="+label {
			t.Errorf("%s notice: partition %v, path %q", n.Kind, n.Partition, n.Path)
			continue
		}
		ord := s.Of(n.Start.UnixMicro())
		start, end := s.Bounds(ord)
		if !n.Start.Equal(start) || !n.End.Equal(end) || s.Label(ord) != label {
			t.Errorf("%s notice %s: bounds [%v, %v), want [%v, %v)", n.Kind, n.Path, n.Start, n.End, start, end)
		}
		if want := time.UnixMicro(wm).UTC(); !n.Watermark.Equal(want) {
			t.Errorf("%s notice %s: watermark %v, want %v", n.Kind, n.Path, n.Watermark, want)
		}
		if n.ID != "" || n.SnapshotID != 0 || n.Table != "" || n.Checkpoint != 0 {
			t.Errorf("%s notice %s sets fields that are the caller's: %+v", n.Kind, n.Path, n)
		}
	}
}

func TestAdvance(t *testing.T) {
	const none = watermark.None
	type call struct {
		added map[int]Stats // by hours after base
		wm    int64
		want  []string // brief of the notices
		late  int64    // LateBefore after the call
	}
	tests := []struct {
		name  string
		delay time.Duration
		calls []call
	}{
		{"nothing starts without data or watermark", 0, []call{
			{nil, none, nil, none},
			{map[int]Stats{}, none, nil, none},
			// A file without records (all filtered) does not start it.
			{map[int]Stats{0: {0, 1}}, none, nil, none},
			{map[int]Stats{2: {5, 1}}, none, nil, none},
			// No watermark yet: nothing is due, however old the data.
			{map[int]Stats{3: {1, 1}}, none, nil, none},
			{nil, at(4, 0), []string{"ready 2026-11-23-07 5/1", "ready 2026-11-23-08 1/1"}, at(4, 0)},
		}},
		{"starts at the earliest data slice", 0, []call{
			{map[int]Stats{3: {2, 1}, 1: {4, 2}}, at(1, 30), nil, none},
			{nil, at(4, 0), []string{"ready 2026-11-23-06 4/2", "empty 2026-11-23-07 0/0", "ready 2026-11-23-08 2/1"}, at(4, 0)},
		}},
		{"starts at the watermark's slice when it comes first", 0, []call{
			{map[int]Stats{3: {1, 1}}, at(1, 30), nil, none},
			{nil, at(3, 0), []string{"empty 2026-11-23-06 0/0", "empty 2026-11-23-07 0/0"}, at(3, 0)},
			{nil, at(4, 0), []string{"ready 2026-11-23-08 1/1"}, at(4, 0)},
		}},
		{"data behind the start moves it back until something is announced", 0, []call{
			{map[int]Stats{3: {1, 1}}, at(1, 30), nil, none},
			{map[int]Stats{0: {2, 1}}, at(1, 30), []string{"ready 2026-11-23-05 2/1"}, at(1, 0)},
			{map[int]Stats{0: {1, 1}}, at(1, 30), []string{"updated 2026-11-23-05 3/2"}, at(1, 0)},
		}},
		{"a watermark alone starts", 0, []call{
			{nil, at(0, 15), nil, none},
			{nil, at(2, 0), []string{"empty 2026-11-23-05 0/0", "empty 2026-11-23-06 0/0"}, at(2, 0)},
		}},
		{"data and watermark in one call", 0, []call{
			{map[int]Stats{0: {3, 1}, 1: {2, 1}}, at(2, 30), []string{"ready 2026-11-23-05 3/1", "ready 2026-11-23-06 2/1"}, at(2, 0)},
		}},
		{"due exactly at the end", 0, []call{
			{map[int]Stats{0: {1, 1}}, at(1, 0) - 1, nil, none},
			{nil, at(1, 0), []string{"ready 2026-11-23-05 1/1"}, at(1, 0)},
		}},
		{"due exactly at end plus delay", 15 * time.Minute, []call{
			{map[int]Stats{0: {1, 1}}, at(1, 15) - 1, nil, none},
			{nil, at(1, 15), []string{"ready 2026-11-23-05 1/1"}, at(1, 0)},
			{nil, at(2, 15) - 1, nil, at(1, 0)},
			{nil, at(2, 15), []string{"empty 2026-11-23-06 0/0"}, at(2, 0)},
		}},
		{"late data updates announced slices with totals", 0, []call{
			{map[int]Stats{0: {3, 1}}, at(1, 0), []string{"ready 2026-11-23-05 3/1"}, at(1, 0)},
			// Hour 1 is not announced yet: its data is not late.
			{map[int]Stats{0: {2, 1}, 1: {4, 1}}, at(1, 0), []string{"updated 2026-11-23-05 5/2"}, at(1, 0)},
			// Updates come before what the call makes ready.
			{map[int]Stats{0: {1, 1}}, at(2, 0), []string{"updated 2026-11-23-05 6/3", "ready 2026-11-23-06 4/1"}, at(2, 0)},
			{map[int]Stats{1: {1, 1}, 0: {1, 1}}, at(2, 0), []string{"updated 2026-11-23-05 7/4", "updated 2026-11-23-06 5/2"}, at(2, 0)},
			// Files without records update nothing, but count.
			{map[int]Stats{0: {0, 1}}, at(2, 0), nil, at(2, 0)},
			{map[int]Stats{0: {1, 1}}, at(2, 0), []string{"updated 2026-11-23-05 8/6"}, at(2, 0)},
		}},
		{"nothing twice", 0, []call{
			{map[int]Stats{0: {1, 1}}, at(3, 0), []string{"ready 2026-11-23-05 1/1", "empty 2026-11-23-06 0/0", "empty 2026-11-23-07 0/0"}, at(3, 0)},
			{nil, at(3, 0), nil, at(3, 0)},
			{nil, at(3, 59), nil, at(3, 0)},
			{map[int]Stats{3: {2, 1}}, at(4, 0), []string{"ready 2026-11-23-08 2/1"}, at(4, 0)},
			{nil, at(4, 0), nil, at(4, 0)},
		}},
		{"the watermark does not go back", 0, []call{
			{map[int]Stats{0: {1, 1}}, at(2, 0), []string{"ready 2026-11-23-05 1/1", "empty 2026-11-23-06 0/0"}, at(2, 0)},
			// The update carries the watermark already reached.
			{map[int]Stats{1: {1, 1}}, at(0, 30), []string{"updated 2026-11-23-06 1/1"}, at(2, 0)},
			{nil, none, nil, at(2, 0)},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var st State
			wm := watermark.None // the highest watermark given so far
			announced := map[string]bool{}
			for i, c := range tc.calls {
				wm = max(wm, c.wm)
				ns := hourly.Advance(&st, hours(c.added), c.wm, tc.delay)
				if got := brief(ns); !slices.Equal(got, c.want) {
					t.Errorf("call %d: notices %q, want %q", i, got, c.want)
				}
				if st.Watermark != wm {
					t.Errorf("call %d: state watermark %d, want %d", i, st.Watermark, wm)
				}
				checkNotices(t, hourly, ns, wm)
				if got := hourly.LateBefore(&st); got != c.late {
					t.Errorf("call %d: LateBefore = %v, want %v", i, time.UnixMicro(got).UTC(), time.UnixMicro(c.late).UTC())
				}
				for _, n := range ns {
					if n.Kind == Updated {
						continue
					}
					if announced[n.Path] {
						t.Errorf("call %d: %s announced twice", i, n.Path)
					}
					announced[n.Path] = true
				}
			}
		})
	}
}

// TestAdvanceBeforeAnyAnnouncement: data the stream sees before it has a
// watermark starts the slicing, but announces nothing. Records of earlier
// slices that arrive next (from a source partition that was behind) are
// not late: no slice before them was announced. LateBefore says
// "watermark.None before anything was announced", and updated notices are
// for "every announced slice that receives data".
func TestAdvanceBeforeAnyAnnouncement(t *testing.T) {
	var st State
	if ns := hourly.Advance(&st, hours(map[int]Stats{2: {5, 1}}), watermark.None, 0); len(ns) != 0 {
		t.Fatalf("notices %q without a watermark", brief(ns))
	}
	if got := hourly.LateBefore(&st); got != watermark.None {
		t.Errorf("LateBefore = %v with nothing announced, want watermark.None", time.UnixMicro(got).UTC())
	}
	ns := hourly.Advance(&st, hours(map[int]Stats{1: {3, 1}}), watermark.None, 0)
	for _, n := range ns {
		if n.Kind == Updated {
			t.Errorf("updated notice for %s, which was never announced", n.Path)
		}
	}
	// Once the watermark passes, every slice with data is announced ready.
	ns = hourly.Advance(&st, nil, at(3, 0), 0)
	if got, want := brief(ns), []string{"ready 2026-11-23-06 3/1", "ready 2026-11-23-07 5/1"}; !slices.Equal(got, want) {
		t.Errorf("notices %q, want %q", got, want)
	}
}

// TestAdvanceBounded: a watermark that leaps over years announces at most
// maxPerAdvance slices per call, in order, the rest on later calls.
func TestAdvanceBounded(t *testing.T) {
	var st State
	const total = 2*maxPerAdvance + maxPerAdvance/2
	first := hourly.Advance(&st, hours(map[int]Stats{0: {7, 2}}), at(0, 0), 0)
	if len(first) != 0 {
		t.Fatalf("notices %q before the leap", brief(first))
	}
	leap := at(total, 0)
	next := base
	for i, want := range []int{maxPerAdvance, maxPerAdvance, maxPerAdvance / 2, 0} {
		ns := hourly.Advance(&st, nil, leap, 0)
		if len(ns) != want {
			t.Fatalf("call %d: %d notices, want %d", i, len(ns), want)
		}
		checkNotices(t, hourly, ns, leap)
		for _, n := range ns {
			if ord := hourly.Of(n.Start.UnixMicro()); ord != next {
				t.Fatalf("call %d: announced slice %d, want %d", i, ord, next)
			}
			kind := Empty
			if next == base {
				kind = Ready
			}
			if n.Kind != kind {
				t.Errorf("call %d: %s notice for %s, want %s", i, n.Kind, n.Path, kind)
			}
			next++
		}
		if len(st.Slices) > keepAnnounced {
			t.Errorf("call %d: %d slices kept, want at most %d", i, len(st.Slices), keepAnnounced)
		}
	}
	if st.Through != base+total {
		t.Errorf("through %d, want %d", st.Through, base+total)
	}
}

// TestAdvancePrunes: announced slices keep their stats for keepAnnounced
// slices, so late data reports totals; older ones are forgotten and their
// late data reports only itself.
func TestAdvancePrunes(t *testing.T) {
	var st State
	const n = keepAnnounced + 32
	for h := range n {
		hourly.Advance(&st, hours(map[int]Stats{h: {1, 1}}), at(h, 0), 0)
	}
	// Every hour before the last is announced.
	if st.Through != base+n-1 {
		t.Fatalf("through %d, want %d", st.Through-base, n-1)
	}
	var want []int64
	for ord := st.Through - keepAnnounced; ord <= st.Through; ord++ {
		want = append(want, ord)
	}
	if got := slices.Sorted(maps.Keys(st.Slices)); !slices.Equal(got, want) {
		t.Errorf("slices kept %v, want %v", got, want)
	}

	oldest := int(st.Through - keepAnnounced - base) // still kept
	ns := hourly.Advance(&st, hours(map[int]Stats{oldest: {2, 1}, oldest - 1: {2, 1}}), at(n-1, 0), 0)
	if got, want := brief(ns), []string{
		fmt.Sprintf("updated %s 2/1", hourly.Label(base+int64(oldest)-1)),
		fmt.Sprintf("updated %s 3/2", hourly.Label(base+int64(oldest))),
	}; !slices.Equal(got, want) {
		t.Errorf("late data: notices %q, want %q", got, want)
	}
	if _, ok := st.Slices[base+int64(oldest)-1]; ok {
		t.Errorf("stats of pruned slice %d kept again", oldest-1)
	}
}

func TestLateBefore(t *testing.T) {
	tests := []struct {
		s    Slicing
		st   State
		want int64
	}{
		{hourly, State{}, watermark.None},
		{hourly, State{Through: 5, Watermark: at(0, 0)}, watermark.None},
		// Started, but nothing announced yet.
		{hourly, State{Started: true, Through: base, Watermark: at(0, 30)}, watermark.None},
		{hourly, State{Started: true, Announced: true, Through: base}, at(0, 0)},
		{hourly, State{Started: true, Announced: true, Through: -1}, utc(1969, 12, 31, 23, 0, 0, 0).UnixMicro()},
		{daily, State{Started: true, Announced: true, Through: -1}, utc(1969, 12, 31, 0, 0, 0, 0).UnixMicro()},
		{monthly, State{Started: true, Announced: true, Through: 683}, utc(2026, 12, 1, 0, 0, 0, 0).UnixMicro()},
		{yearly, State{Started: true, Announced: true, Through: -70}, utc(1900, 1, 1, 0, 0, 0, 0).UnixMicro()},
	}
	for _, tc := range tests {
		if got := tc.s.LateBefore(&tc.st); got != tc.want {
			t.Errorf("%s LateBefore(%+v) = %d, want %d", tc.s, tc.st, got, tc.want)
		}
	}
}

// TestAdvanceOtherUnits runs a day, a month and a year slicing across the
// epoch, where their ordinals turn negative.
func TestAdvanceOtherUnits(t *testing.T) {
	tests := []struct {
		s     Slicing
		data  time.Time
		wm    time.Time
		delay time.Duration
		want  []string
	}{
		{daily, utc(1969, 12, 30, 12, 0, 0, 0), utc(1970, 1, 2, 0, 0, 0, 0), 0,
			[]string{"ready ts_day=1969-12-30", "empty ts_day=1969-12-31", "empty ts_day=1970-01-01"}},
		{monthly, utc(1969, 11, 30, 0, 0, 0, 0), utc(1970, 2, 1, 0, 0, 0, 0), 0,
			[]string{"ready ts_month=1969-11", "empty ts_month=1969-12", "empty ts_month=1970-01"}},
		{monthly, utc(2024, 1, 31, 0, 0, 0, 0), utc(2024, 3, 1, 6, 0, 0, 0), 6 * time.Hour,
			[]string{"ready ts_month=2024-01", "empty ts_month=2024-02"}},
		{yearly, utc(1968, 7, 1, 0, 0, 0, 0), utc(1970, 12, 31, 0, 0, 0, 0), 0,
			[]string{"ready ts_year=1968", "empty ts_year=1969"}},
	}
	for _, tc := range tests {
		t.Run(tc.s.Unit, func(t *testing.T) {
			var st State
			ord := tc.s.Of(tc.data.UnixMicro())
			ns := tc.s.Advance(&st, map[int64]Stats{ord: {1, 1}}, tc.wm.UnixMicro(), tc.delay)
			var got []string
			for _, n := range ns {
				got = append(got, string(n.Kind)+" "+n.Path)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("notices %q, want %q", got, tc.want)
			}
			checkNotices(t, tc.s, ns, tc.wm.UnixMicro())
		})
	}
}

// TestStateJSON: the state stored in snapshot summaries reads back as it
// was, slices before the epoch and undelivered notices included.
func TestStateJSON(t *testing.T) {
	var st State
	hourly.Advance(&st, map[int64]Stats{-3: {4, 2}, -1: {1, 1}, 2: {9, 3}}, utc(1970, 1, 1, 1, 0, 0, 0).UnixMicro(), 0)
	n := goldenNotice()
	n.Kind = Updated
	n.ID = NoticeID(n.Table, n.Path, Updated, 12)
	st.Undelivered = []Notice{goldenNotice(), n}
	st.Notices = []Notice{n}
	if !st.Announced {
		t.Fatal("nothing announced to round-trip")
	}
	states := []State{
		st,
		{},
		{Watermark: watermark.None},
		{Started: true, Through: -5, Watermark: -1, Slices: map[int64]Stats{-6: {1, 1}, -5: {}, 1 << 40: {2, 2}}},
	}
	for i, want := range states {
		raw, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var got State
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("state %d: %v in %s", i, err, raw)
		}
		if g, w := mustJSON(t, got), string(raw); g != w {
			t.Errorf("state %d: round trip\ngot  %s\nwant %s", i, g, w)
		}
		// As Go values too, but for the notices: their times may differ in
		// memory and not in meaning, which the JSON above compares.
		g, w := got, want
		g.Notices, g.Undelivered, w.Notices, w.Undelivered = nil, nil, nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Errorf("state %d: round trip\ngot  %+v\nwant %+v\nJSON %s", i, g, w, raw)
		}
		// Back in a state, the advance goes on as before.
		later := want.Watermark + int64(3*time.Hour/time.Microsecond)
		if a, b := hourly.Advance(&got, nil, later, 0), hourly.Advance(&want, nil, later, 0); !slices.Equal(brief(a), brief(b)) {
			t.Errorf("state %d: decoded state announces %q, the original %q", i, brief(a), brief(b))
		}
	}
}
