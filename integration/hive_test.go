package integration

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/checkpoint"
)

// lake is the file system a hive table lives on in a test: a local
// directory or the HDFS test double, read independently of Sluice.
type lake interface {
	// url is the URL of root, a path of the lake.
	url(root string) string
	// files lists every file under root (path relative to root, and size).
	files(t *testing.T, root string) map[string]int64
	read(t *testing.T, p string) []byte
}

type localLake struct{}

func (localLake) url(root string) string { return "file://" + root }

func (localLake) files(t *testing.T, root string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			out[filepath.ToSlash(rel)] = fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (localLake) read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hiddenPath reports whether a Hive-family reader skips p: a path with a
// component starting with _ or . (staging, the record, _SUCCESS).
func hiddenPath(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if strings.HasPrefix(c, "_") || strings.HasPrefix(c, ".") {
			return true
		}
	}
	return false
}

// hiveRecord reads the table's checkpoint record; nil before the first.
func hiveRecord(t *testing.T, lk lake, root string) map[string]any {
	t.Helper()
	if _, ok := lk.files(t, path.Join(root, "_sluice"))["checkpoint.json"]; !ok {
		return nil
	}
	var rec map[string]any
	if err := json.Unmarshal(lk.read(t, path.Join(root, "_sluice/checkpoint.json")), &rec); err != nil {
		t.Fatalf("checkpoint record: %v", err)
	}
	return rec
}

// hivePositions are the positions the table's checkpoint record holds.
func hivePositions(t *testing.T, lk lake, root, topic string) map[int32]int64 {
	t.Helper()
	rec := hiveRecord(t, lk, root)
	if rec == nil {
		return nil
	}
	props, _ := rec["properties"].(map[string]any)
	raw, _ := props["sluice.positions"].(string)
	pos, err := checkpoint.DecodePositions(raw)
	if err != nil {
		t.Fatalf("record positions: %v", err)
	}
	return pos[topic]
}

// hiveIDs reads the id column of every file a Hive reader sees under root,
// counting each id; it fails the test on a visible file that is not
// complete Parquet (a half-written file must never be visible).
func hiveIDs(t *testing.T, lk lake, root string) (map[string]int, int) {
	t.Helper()
	ids := map[string]int{}
	n := 0
	for rel, size := range lk.files(t, root) {
		if hiddenPath(rel) {
			continue
		}
		if !strings.HasSuffix(rel, ".parquet") {
			t.Errorf("visible file %s is not Parquet", rel)
			continue
		}
		n++
		data := lk.read(t, path.Join(root, rel))
		if int64(len(data)) != size {
			t.Fatalf("%s: listed %d bytes, read %d", rel, size, len(data))
		}
		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("visible file %s is not complete Parquet: %v", rel, err)
		}
		r := parquet.NewGenericReader[struct {
			ID string `parquet:"id"`
		}](f)
		rows := make([]struct {
			ID string `parquet:"id"`
		}, 1024)
		for {
			k, err := r.Read(rows)
			for _, row := range rows[:k] {
				ids[row.ID]++
			}
			if err != nil {
				break
			}
		}
		r.Close()
	}
	return ids, n
}

// checkHive checks a hive table after the daemon stopped cleanly: every id
// of 0..total-1 exactly once in the visible files, every file in a
// partition directory, nothing staged or temporary left behind, and the
// record's positions at the log end.
func checkHive(t *testing.T, e *env, lk lake, root string, total int) {
	t.Helper()
	ids, _ := hiveIDs(t, lk, root)
	checkIDs(t, ids, total)
	for rel := range lk.files(t, root) {
		if strings.HasPrefix(rel, "_sluice/") && rel != "_sluice/checkpoint.json" {
			t.Errorf("left behind: %s", rel)
		}
		if !hiddenPath(rel) && !strings.HasPrefix(rel, "dt=") {
			t.Errorf("file outside the partition directories: %s", rel)
		}
	}
	pos := hivePositions(t, lk, root, e.topic)
	for p, end := range endOffsets(t, e.addr, e.topic) {
		if pos[p] != end {
			t.Errorf("partition %d: recorded position %d, log end %d", p, pos[p], end)
		}
	}
}

// hiveConfig is the events config with a hive table at location.
func (e *env) hiveConfig(location, extra string) string {
	e.t.Helper()
	cfg := e.config("300ms", "")
	text, err := os.ReadFile(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	out := strings.Replace(string(text), "      name: it.events\n",
		"      name: it.events\n      format: hive\n      location: "+location+"\n", 1)
	out = strings.Replace(out, "dead_letter:", extra+"dead_letter:", 1)
	if err := os.WriteFile(cfg, []byte(out), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return cfg
}

// hiveCrashLoop SIGKILLs the daemon at random moments while events are
// produced, then lets it catch up and stop, and checks the table.
func hiveCrashLoop(t *testing.T, e *env, lk lake, root, cfg string, total, kills int) {
	t.Helper()
	produced := produceDuring(t, e.addr, e.topic, total, 2000, 100*time.Millisecond, 200*time.Millisecond)
	e.killLoop(cfg, kills, 0, 2500*time.Millisecond, func(k int, wait time.Duration) {
		t.Logf("kill %d after %s; recorded positions %v", k+1, wait, hivePositions(t, lk, root, e.topic))
	})
	produced()
	e.catchUp(cfg, func() bool { return e.reached(e.topic, hivePositions(t, lk, root, e.topic)) })
	checkHive(t, e, lk, root, total)
}

// TestHiveLocalCrashLoop runs the crash loop against a hive table in a
// local directory.
func TestHiveLocalCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop runs the real binary many times")
	}
	total, kills := 60_000, 4
	if os.Getenv("SLUICE_SOAK") != "" {
		total, kills = 500_000, 30
	}
	e := newEnv(t, 4, "events")
	root := filepath.Join(e.dir, "lake", "events")
	cfg := e.hiveConfig(localLake{}.url(root), "")
	hiveCrashLoop(t, e, localLake{}, root, cfg, total, kills)
}
