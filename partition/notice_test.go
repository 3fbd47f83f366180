package partition

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/notice.golden.json with what the current code produces")

func TestNoticeID(t *testing.T) {
	tests := []struct {
		table, path string
		kind        Kind
		snapshot    int64
		want        string
	}{
		{"db.events", "ts_hour=2026-11-23-05", Ready, 42, "db.events/ts_hour=2026-11-23-05/ready"},
		{"db.events", "ts_hour=2026-11-23-05", Empty, 0, "db.events/ts_hour=2026-11-23-05/empty"},
		{"db.events", "ts_hour=2026-11-23-05", Updated, 43, "db.events/ts_hour=2026-11-23-05/updated/43"},
		{"db.events", "ts_day=2026-11-23/region=eu", Updated, 7, "db.events/ts_day=2026-11-23/region=eu/updated/7"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := NoticeID(tt.table, tt.path, tt.kind, tt.snapshot); got != tt.want {
				t.Errorf("NoticeID = %q, want %q", got, tt.want)
			}
		})
	}
	// Ready and empty notices are announced once per partition: the
	// snapshot must not change their id, or re-sends would not dedupe.
	if a, b := NoticeID("t", "p", Ready, 1), NoticeID("t", "p", Ready, 2); a != b {
		t.Errorf("ready ids differ by snapshot: %q, %q", a, b)
	}
}

func goldenNotice() Notice {
	start := time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC)
	return Notice{
		ID:         NoticeID("analytics.events", "ts_hour=2026-11-23-05", Ready, 6781234567890123456),
		Kind:       Ready,
		Pipeline:   "clickstream",
		Stream:     "events",
		Table:      "analytics.events",
		Partition:  map[string]string{"ts_hour": "2026-11-23-05"},
		Path:       "ts_hour=2026-11-23-05",
		Start:      start,
		End:        start.Add(time.Hour),
		SnapshotID: 6781234567890123456,
		Records:    1234567,
		Files:      12,
		Watermark:  time.Date(2026, 11, 23, 6, 2, 30, 500_000_000, time.UTC),
		Checkpoint: 9876,
		EmittedAt:  time.Date(2026, 11, 23, 6, 2, 31, 0, time.UTC),
	}
}

func TestNoticeJSONGolden(t *testing.T) {
	golden := filepath.Join("testdata", "notice.golden.json")
	got, err := json.MarshalIndent(goldenNotice(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./partition -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("notice JSON differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", golden, got, want)
	}

	// The golden file reads back as the notice.
	var back Notice
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	if g, w := mustJSON(t, back), mustJSON(t, goldenNotice()); g != w {
		t.Errorf("golden round trip:\ngot  %s\nwant %s", g, w)
	}
}

func TestNoticeJSONUTC(t *testing.T) {
	utc := goldenNotice()
	local := utc
	zone := time.FixedZone("UTC+5", 5*3600)
	local.Start, local.End = utc.Start.In(zone), utc.End.In(zone)
	local.Watermark, local.EmittedAt = utc.Watermark.In(zone), utc.EmittedAt.In(zone)
	if g, w := mustJSON(t, local), mustJSON(t, utc); g != w {
		t.Errorf("times not marshalled in UTC:\ngot  %s\nwant %s", g, w)
	}
}

func TestNoticeJSONNilPartition(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, Notice{Kind: Empty})), &m); err != nil {
		t.Fatal(err)
	}
	if p, ok := m["partition"].(map[string]any); !ok || len(p) != 0 {
		t.Errorf("partition = %#v, want {}", m["partition"])
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
