package iceberg

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/ingest/checkpoint"
)

// TestTidy: after commits, snapshots beyond the retention expire (keeping
// the newest MinSnapshots) and the current snapshot's manifests are merged
// once there are too many; every row stays readable.
func TestTidy(t *testing.T) {
	ctx := context.Background()
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.tidy", nil, eventCols...)
	r := startAnnouncing(t, cat, tt.tbl, 1, CommitterOptions{}, Announcing{
		Retention: &Retention{MaxSnapshotAge: 0, MinSnapshots: 2, MaxManifests: 3, Every: 0},
	})
	for cp := int64(1); cp <= 6; cp++ {
		files := tt.writeFiles(t, 0, event{id: cp, ts: cp})
		r.submit(t, dataWritten(cp, 0, files, checkpoint.Positions{"t": {0: cp}}))
		r.nextAck(t)
	}
	tbl := reload(t, cat, tt.tbl)
	if n := len(tbl.Metadata().Snapshots()); n > 3 {
		t.Errorf("%d snapshots left, want at most 3 (2 kept, plus a manifest rewrite)", n)
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	manifests, err := tbl.CurrentSnapshot().Manifests(fs)
	if err != nil {
		t.Fatal(err)
	}
	if len(manifests) > 3 {
		t.Errorf("%d manifests in the current snapshot, want at most 3", len(manifests))
	}
	if got := len(tableFiles(t, tbl)); got != 6 {
		t.Errorf("%d data files readable, want 6", got)
	}
	st, err := LoadState(tbl, "s1")
	if err != nil || st.Checkpoint != 6 {
		t.Errorf("LoadState after expiry = checkpoint %d, %v; want 6", st.Checkpoint, err)
	}
}
