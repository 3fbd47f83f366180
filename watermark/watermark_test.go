package watermark

import (
	"slices"
	"testing"
	"time"
)

func TestStream(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	us := func(d time.Duration) int64 { return now.Add(d).UnixMicro() }
	cfg := Config{OutOfOrderness: time.Minute, IdleTimeout: 5 * time.Minute}
	a, b := Key{"t", 0}, Key{"t", 1}
	tests := []struct {
		name  string
		parts map[Key]Partition
		prev  int64
		want  int64
	}{
		{"least of the active partitions, less out-of-orderness",
			map[Key]Partition{a: {MaxEventTime: us(-time.Hour), LastRecord: now}, b: {MaxEventTime: us(-2 * time.Hour), LastRecord: now}}, None, us(-2*time.Hour - time.Minute)},
		{"an idle partition stops holding the stream back",
			map[Key]Partition{a: {MaxEventTime: us(-time.Hour), LastRecord: now}, b: {MaxEventTime: us(-2 * time.Hour), LastRecord: now.Add(-6 * time.Minute)}}, None, us(-time.Hour - time.Minute)},
		{"not yet idle: still holds",
			map[Key]Partition{a: {MaxEventTime: us(-time.Hour), LastRecord: now}, b: {MaxEventTime: us(-2 * time.Hour), LastRecord: now.Add(-4 * time.Minute)}}, None, us(-2*time.Hour - time.Minute)},
		{"an active partition without records holds at None",
			map[Key]Partition{a: {MaxEventTime: us(-time.Hour), LastRecord: now}, b: {MaxEventTime: None, LastRecord: now}}, None, None},
		{"all idle: the clock",
			map[Key]Partition{a: {MaxEventTime: us(-time.Hour), LastRecord: now.Add(-10 * time.Minute)}}, None, us(-time.Minute)},
		{"nothing known: the clock", nil, None, us(-time.Minute)},
		{"never below what was committed",
			map[Key]Partition{a: {MaxEventTime: us(-time.Hour), LastRecord: now}}, us(-30 * time.Minute), us(-30 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cfg.Stream(tt.parts, now, tt.prev); got != tt.want {
				t.Errorf("Stream = %v, want %v", time.UnixMicro(got).UTC(), time.UnixMicro(tt.want).UTC())
			}
		})
	}
}

func TestAhead(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	us := func(d time.Duration) int64 { return now.Add(d).UnixMicro() }
	parts := map[Key]Partition{
		{"t", 0}: {MaxEventTime: us(-3 * time.Hour), LastRecord: now},
		{"t", 1}: {MaxEventTime: us(-2 * time.Hour), LastRecord: now},
		{"t", 2}: {MaxEventTime: us(0), LastRecord: now},
	}
	stream := Config{}.Stream(parts, now, None)
	for _, tt := range []struct {
		drift time.Duration
		want  []Key
	}{
		{0, nil},
		{30 * time.Minute, []Key{{"t", 1}, {"t", 2}}},
		{90 * time.Minute, []Key{{"t", 2}}},
		{4 * time.Hour, nil},
	} {
		got := Config{MaxDrift: tt.drift}.Ahead(parts, stream)
		slices.SortFunc(got, func(a, b Key) int { return int(a.Partition - b.Partition) })
		if !slices.Equal(got, tt.want) {
			t.Errorf("drift %s: Ahead = %v, want %v", tt.drift, got, tt.want)
		}
	}
	if got := (Config{MaxDrift: time.Minute}).Ahead(parts, None); got != nil {
		t.Errorf("Ahead of a stream without a watermark = %v", got)
	}
}

func TestMerge(t *testing.T) {
	t0 := time.Unix(100, 0)
	got := Partition{MaxEventTime: 5, LastRecord: t0}.Merge(Partition{MaxEventTime: 3, LastRecord: t0.Add(time.Second)})
	if got.MaxEventTime != 5 || !got.LastRecord.Equal(t0.Add(time.Second)) {
		t.Errorf("Merge = %+v", got)
	}
	if got := (Partition{MaxEventTime: None}).Merge(Partition{MaxEventTime: 7}); got.MaxEventTime != 7 {
		t.Errorf("Merge with None = %+v", got)
	}
}
