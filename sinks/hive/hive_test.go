package hive

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/apache/iceberg-go"
)

// stage writes a staged file and describes it as a writer would.
func stage(t *testing.T, tbl *Table, rel string) iceberg.DataFile {
	t.Helper()
	p := filepath.Join(tbl.Root(), Staging, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(rel), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := iceberg.NewDataFileBuilder(*iceberg.UnpartitionedSpec, iceberg.EntryContentData,
		tbl.StagingURL()+"/"+rel, iceberg.ParquetFile, nil, nil, nil, 1, int64(len(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b.Build()
}

// visible lists the files a Hive reader would see: everything under root
// outside directories and files starting with _ or . .
func visible(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && (d.Name()[0] == '_' || d.Name()[0] == '.') {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func props(cp int) map[string]string {
	return map[string]string{"sluice.checkpoint": strconv.Itoa(cp), "sluice.commit-id": "run/" + strconv.Itoa(cp),
		"sluice.positions": `{"t":{"0":` + strconv.Itoa(cp*10) + `}}`}
}

func open(t *testing.T, dir string) *Table {
	t.Helper()
	tbl, err := Open(context.Background(), Options{Name: "it.t", Location: "file://" + dir, FS: LocalFS{}})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func staged(t *testing.T, tbl *Table) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(tbl.Root(), Staging), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestCommitAndRecover(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// crash runs after checkpoint 1 committed and files of checkpoint
		// 2 were staged; it leaves the table as a crash would.
		crash func(t *testing.T, tbl *Table, files []iceberg.DataFile)
		want  []string
		cp    int64
	}{
		{"before the record", func(t *testing.T, tbl *Table, files []iceberg.DataFile) {}, []string{"dt=2026-11-23/hour=07/a.parquet"}, 1},
		{"record written under its temporary name", func(t *testing.T, tbl *Table, files []iceberg.DataFile) {
			os.WriteFile(filepath.Join(tbl.Root(), "_sluice", ".checkpoint.json-123.tmp"), []byte("{"), 0o644)
		}, []string{"dt=2026-11-23/hour=07/a.parquet"}, 1},
		{"record written, no rename", func(t *testing.T, tbl *Table, files []iceberg.DataFile) {
			rec := Record{Version: 1, Checkpoint: 2, Token: "run/2", Properties: props(2)}
			for _, f := range files {
				s, final, err := tbl.finalPath(f.FilePath())
				if err != nil {
					t.Fatal(err)
				}
				rec.Files = append(rec.Files, RecordFileEntry{Staged: s, Path: final})
			}
			raw, _ := json.Marshal(rec)
			if err := (LocalFS{}).WriteFile(filepath.Join(tbl.Root(), RecordFile), raw); err != nil {
				t.Fatal(err)
			}
		}, []string{"dt=2026-11-23/hour=07/a.parquet", "dt=2026-11-23/hour=07/b.parquet", "dt=2026-11-23/hour=08/c.parquet"}, 2},
		{"record written, one rename done", func(t *testing.T, tbl *Table, files []iceberg.DataFile) {
			rec := Record{Version: 1, Checkpoint: 2, Token: "run/2", Properties: props(2)}
			for _, f := range files {
				s, final, _ := tbl.finalPath(f.FilePath())
				rec.Files = append(rec.Files, RecordFileEntry{Staged: s, Path: final})
			}
			raw, _ := json.Marshal(rec)
			(LocalFS{}).WriteFile(filepath.Join(tbl.Root(), RecordFile), raw)
			if err := (LocalFS{}).Rename(rec.Files[0].Staged, rec.Files[0].Path); err != nil {
				t.Fatal(err)
			}
		}, []string{"dt=2026-11-23/hour=07/a.parquet", "dt=2026-11-23/hour=07/b.parquet", "dt=2026-11-23/hour=08/c.parquet"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tbl := open(t, dir)
			if tbl.Last() != nil {
				t.Fatal("a new table has a record")
			}
			a := stage(t, tbl, "dt=2026-11-23/hour=07/a.parquet")
			if cp, err := tbl.Commit(ctx, []iceberg.DataFile{a}, props(1)); err != nil || cp != 1 {
				t.Fatalf("commit: %d %v", cp, err)
			}
			if got := visible(t, dir); len(got) != 1 {
				t.Fatalf("visible after commit 1: %v", got)
			}
			files := []iceberg.DataFile{stage(t, tbl, "dt=2026-11-23/hour=07/b.parquet"), stage(t, tbl, "dt=2026-11-23/hour=08/c.parquet")}
			if got := visible(t, dir); len(got) != 1 {
				t.Fatalf("staged files are visible: %v", got)
			}
			tc.crash(t, tbl, files)
			tbl = open(t, dir)
			if got := visible(t, dir); !equal(got, tc.want) {
				t.Errorf("visible after recovery: %v, want %v", got, tc.want)
			}
			if tbl.Last().Checkpoint != tc.cp || tbl.Last().Properties["sluice.checkpoint"] != strconv.Itoa(int(tc.cp)) {
				t.Errorf("recovered checkpoint %d, want %d", tbl.Last().Checkpoint, tc.cp)
			}
			if s := staged(t, tbl); len(s) > 0 {
				t.Errorf("left behind after recovery: %v", s)
			}
			entries, _ := os.ReadDir(filepath.Join(dir, "_sluice"))
			for _, e := range entries {
				if e.Name() != "checkpoint.json" && e.Name() != "inprogress" {
					t.Errorf("left behind after recovery: _sluice/%s", e.Name())
				}
			}
		})
	}
}

// A commit retried after an error (here: a rename that failed) finishes
// the renames without writing a second record.
func TestCommitRetryFinishesRenames(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tbl := open(t, dir)
	f := stage(t, tbl, "dt=2026-11-23/hour=07/a.parquet")
	// Block the partition directory with a file: the rename fails.
	blocker := filepath.Join(dir, "dt=2026-11-23")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.Commit(ctx, []iceberg.DataFile{f}, props(1)); err == nil {
		t.Fatal("commit with a blocked directory succeeded")
	}
	os.Remove(blocker)
	if cp, err := tbl.Commit(ctx, []iceberg.DataFile{f}, props(1)); err != nil || cp != 1 {
		t.Fatalf("retried commit: %d %v", cp, err)
	}
	if got := visible(t, dir); !equal(got, []string{"dt=2026-11-23/hour=07/a.parquet"}) {
		t.Errorf("visible: %v", got)
	}
}

func TestForeignFileRefused(t *testing.T) {
	tbl := open(t, t.TempDir())
	b, _ := iceberg.NewDataFileBuilder(*iceberg.UnpartitionedSpec, iceberg.EntryContentData,
		"file:///elsewhere/x.parquet", iceberg.ParquetFile, nil, nil, nil, 1, 1)
	if _, err := tbl.Commit(context.Background(), []iceberg.DataFile{b.Build()}, props(1)); err == nil {
		t.Fatal("a file outside the staging directory was committed")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
