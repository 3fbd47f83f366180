package iceberg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

func commitFiles(t *testing.T, tbl *table.Table, files []iceberg.DataFile, props iceberg.Properties) *table.Table {
	t.Helper()
	ctx := context.Background()
	tx := tbl.NewTransaction()
	if err := tx.AddDataFiles(ctx, files, props); err != nil {
		t.Fatalf("stage files: %v", err)
	}
	tbl, err := tx.Commit(ctx)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return tbl
}

func localPaths(files []iceberg.DataFile) []string {
	var out []string
	for _, f := range files {
		out = append(out, localPath(f.FilePath()))
	}
	return out
}

func exists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Stat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// TestRemoveOrphans leaves uncommitted files of a "crashed run" next to
// committed ones and checks that only the former go, in partitions whose
// directory names need escaping too.
func TestRemoveOrphans(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		partition []string
		keys      []string
	}{
		{"unpartitioned", nil, []string{"a"}},
		{"identity", []string{"k"}, []string{"p1", "p2"}},
		{"escaped partition values", []string{"k"}, []string{"a b/c=d", "x:y+z", "日本", "/../../../../x", "", "100%"}},
		{"day before 1970", []string{"day(ts)"}, []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cat := newTestCatalog(t)
			tt := newTestTable(t, cat, "db.events", tc.partition, eventCols...)
			var evs []event
			for i := range 20 {
				evs = append(evs, event{id: int64(i), ts: int64(i-10) * 3600e6, k: tc.keys[i%len(tc.keys)]})
			}
			committed := tt.writeFiles(t, 0, evs...)
			tbl := commitFiles(t, tt.tbl, committed, nil)

			// A crashed run: files sealed but never committed, one cut
			// short while being written, and a stray file placed by hand.
			orphans := localPaths(tt.writeFiles(t, 1, evs...))
			whole, err := os.ReadFile(orphans[0])
			if err != nil {
				t.Fatal(err)
			}
			partial := filepath.Join(filepath.Dir(orphans[0]), "19700101T000000Z-w2-crashed-00001.parquet")
			if err := os.WriteFile(partial, whole[:len(whole)/2], 0o644); err != nil {
				t.Fatal(err)
			}
			orphans = append(orphans, partial)
			dataDir := localPath(strings.TrimSuffix(tbl.Location(), "/") + "/data")
			stray := filepath.Join(dataDir, "stray", "00000-stray.parquet")
			if err := os.MkdirAll(filepath.Dir(stray), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(stray, []byte("PAR1"), 0o644); err != nil {
				t.Fatal(err)
			}
			orphans = append(orphans, stray)
			// Markers for readers are not data: they stay.
			marker := filepath.Join(filepath.Dir(orphans[0]), "_SUCCESS")
			if err := os.WriteFile(marker, []byte("{}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			metadataBefore, err := filepath.Glob(filepath.Join(localPath(tbl.Location()), "metadata", "*"))
			if err != nil || len(metadataBefore) == 0 {
				t.Fatalf("metadata files: %v, %v", metadataBefore, err)
			}

			removed, err := RemoveOrphans(ctx, tbl)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range removed {
				got = append(got, localPath(r))
			}
			slices.Sort(got)
			slices.Sort(orphans)
			if !slices.Equal(got, orphans) {
				t.Errorf("removed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(orphans, "\n"))
			}
			for _, p := range orphans {
				if exists(t, p) {
					t.Errorf("orphan %s is still there", p)
				}
			}
			if !exists(t, marker) {
				t.Errorf("marker %s was removed", marker)
			}
			for _, p := range localPaths(committed) {
				if !exists(t, p) {
					t.Errorf("committed file %s was removed", p)
				}
			}
			for _, p := range metadataBefore {
				if !exists(t, p) {
					t.Errorf("metadata file %s was removed", p)
				}
			}
			// The table still reads.
			tbl, err = cat.LoadTable(ctx, tbl.Identifier())
			if err != nil {
				t.Fatal(err)
			}
			tasks, err := tbl.Scan().PlanFiles(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			for _, task := range tasks {
				_, rows := readParquet(t, task.File.FilePath())
				n += int64(len(rows))
			}
			if n != int64(len(evs)) {
				t.Errorf("table holds %d rows after cleanup, %d committed", n, len(evs))
			}
		})
	}
}

// TestRemoveOrphansNothingToRemove covers tables without orphans,
// including one that never wrote data and so has no data directory.
func TestRemoveOrphansNothingToRemove(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(t *testing.T, tt *testTable) *table.Table
	}{
		{"never wrote data", func(t *testing.T, tt *testTable) *table.Table { return tt.tbl }},
		{"empty snapshot only", func(t *testing.T, tt *testTable) *table.Table {
			tx := tt.tbl.NewTransaction()
			if err := tx.AddFiles(ctx, nil, iceberg.Properties{PropStream: "s"}, true); err != nil {
				t.Fatal(err)
			}
			tbl, err := tx.Commit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return tbl
		}},
		{"everything committed", func(t *testing.T, tt *testTable) *table.Table {
			return commitFiles(t, tt.tbl, tt.writeFiles(t, 0, event{id: 1, k: "a"}, event{id: 2, k: "b"}), nil)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cat := newTestCatalog(t)
			tt := newTestTable(t, cat, "db.events", []string{"k"}, eventCols...)
			tbl := tc.setup(t, tt)
			removed, err := RemoveOrphans(ctx, tbl)
			if err != nil {
				t.Fatalf("RemoveOrphans: %v", err)
			}
			if len(removed) != 0 {
				t.Errorf("removed %v", removed)
			}
		})
	}
}

// TestRollBackAhead: commits of a late table ahead of the stream's own
// checkpoint are undone, by rolling back to the newest commit at or below
// it, or by deleting everything when every commit is ahead.
func TestRollBackAhead(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		committed []int64 // checkpoints committed to the late table, in order
		cp        int64   // the stream's own table's checkpoint
		undone    int
		rows      int // left in the late table
	}{
		{"none ahead", []int64{1, 2}, 2, 0, 4},
		{"one ahead", []int64{1, 2, 3}, 2, 1, 4},
		{"two ahead", []int64{1, 2, 3}, 1, 2, 2},
		{"all ahead", []int64{3}, 2, 1, 0},
		{"empty table", nil, 5, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cat := newTestCatalog(t)
			tt := newTestTable(t, cat, "db.late", nil, eventCols...)
			tbl := tt.tbl
			for i, cp := range tc.committed {
				files := tt.writeFiles(t, 0, event{id: int64(2 * i), ts: 1}, event{id: int64(2*i + 1), ts: 2})
				tbl = commitFiles(t, tbl, files, iceberg.Properties{PropStream: "s1", PropCheckpoint: fmt.Sprint(cp)})
			}
			got, undone, err := RollBackAhead(ctx, tbl, "s1", tc.cp)
			if err != nil {
				t.Fatal(err)
			}
			if undone != tc.undone {
				t.Errorf("undone %d commits, want %d", undone, tc.undone)
			}
			rows := 0
			if got.CurrentSnapshot() != nil {
				_, it, err := got.Scan().ToArrowRecords(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for rec, err := range it {
					if err != nil {
						t.Fatal(err)
					}
					rows += int(rec.NumRows())
					rec.Release()
				}
			}
			if rows != tc.rows {
				t.Errorf("%d rows left, want %d", rows, tc.rows)
			}
			// Reloaded from the catalog, the table agrees.
			if reloaded := reload(t, cat, got); reloaded.CurrentSnapshot() != nil && got.CurrentSnapshot() != nil &&
				reloaded.CurrentSnapshot().SnapshotID != got.CurrentSnapshot().SnapshotID {
				t.Errorf("catalog has snapshot %d, rollback returned %d", reloaded.CurrentSnapshot().SnapshotID, got.CurrentSnapshot().SnapshotID)
			}
		})
	}
}

// TestRemoveOrphansIn: while the daemon runs, only one partition's orphans
// older than the age go; younger files (a live writer's) and other
// partitions stay.
func TestRemoveOrphansIn(t *testing.T) {
	ctx := context.Background()
	cat := newTestCatalog(t)
	tt := newTestTable(t, cat, "db.events", []string{"k"}, eventCols...)
	committed := tt.writeFiles(t, 0, event{id: 1, ts: 1, k: "a"}, event{id: 2, ts: 2, k: "b"})
	tbl := commitFiles(t, tt.tbl, committed, nil)
	orphans := localPaths(tt.writeFiles(t, 1, event{id: 3, ts: 3, k: "a"}, event{id: 4, ts: 4, k: "b"}))
	young := localPaths(tt.writeFiles(t, 2, event{id: 5, ts: 5, k: "a"}))
	old := time.Now().Add(-2 * time.Hour)
	for _, p := range orphans {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := RemoveOrphansIn(ctx, tbl, "k=a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || !strings.Contains(removed[0], "/k=a/") {
		t.Fatalf("removed %v, want the old orphan of k=a only", removed)
	}
	keep := append(localPaths(committed), young...)
	for _, p := range orphans {
		if !strings.Contains(p, "/k=a/") {
			keep = append(keep, p) // another partition's
		}
	}
	for _, p := range keep {
		if !exists(t, p) {
			t.Errorf("%s was removed", p)
		}
	}
}
