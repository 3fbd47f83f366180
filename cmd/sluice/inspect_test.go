package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

// newInspectDir lays out a demo-like directory (catalog.db, warehouse/) with
// an empty namespace and one table, demo.clicks, partitioned by day(ts) and
// written by two checkpoints:
//
//	checkpoint 1: 2024-05-01 ×2, 2024-05-02 ×1
//	checkpoint 2: 2024-05-02 ×2
func newInspectDir(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cat, closeCat, err := iceberg.OpenCatalog(ctx, config.Catalog{
		Type:      "sql",
		URI:       filepath.Join(dir, demoCatalogFile),
		Warehouse: "file://" + filepath.Join(dir, demoWarehouse),
		Name:      demoCatalogName,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer closeCat()
	for _, ns := range []string{"demo", "empty"} {
		if err := cat.CreateNamespace(ctx, table.Identifier{ns}, nil); err != nil {
			t.Fatal(err)
		}
	}
	sc := iceberggo.NewSchema(0,
		iceberggo.NestedField{ID: 1, Name: "id", Type: iceberggo.PrimitiveTypes.Int64, Required: true},
		iceberggo.NestedField{ID: 2, Name: "ts", Type: iceberggo.PrimitiveTypes.TimestampTz, Required: true},
		iceberggo.NestedField{ID: 3, Name: "page", Type: iceberggo.PrimitiveTypes.String},
		iceberggo.NestedField{ID: 4, Name: "geo", Type: &iceberggo.StructType{FieldList: []iceberggo.NestedField{
			{ID: 5, Name: "country", Type: iceberggo.PrimitiveTypes.String, Required: true},
			{ID: 6, Name: "city", Type: iceberggo.PrimitiveTypes.String},
		}}},
	)
	spec := iceberggo.NewPartitionSpec(iceberggo.PartitionField{
		SourceIDs: []int{2}, FieldID: 1000, Name: "ts_day", Transform: iceberggo.DayTransform{},
	})
	tbl, err := cat.CreateTable(ctx, table.Identifier{"demo", "clicks"}, sc,
		catalog.WithPartitionSpec(&spec), catalog.WithProperties(iceberggo.Properties{"format-version": "2"}))
	if err != nil {
		t.Fatal(err)
	}
	arrowSchema, err := table.SchemaToArrowSchema(tbl.Schema(), nil, false, false)
	if err != nil {
		t.Fatal(err)
	}
	appendRows := func(tbl *table.Table, rows string, props iceberggo.Properties) *table.Table {
		t.Helper()
		at, err := array.TableFromJSON(memory.DefaultAllocator, arrowSchema, []string{rows})
		if err != nil {
			t.Fatal(err)
		}
		defer at.Release()
		tbl, err = tbl.AppendTable(ctx, at, 1024, props)
		if err != nil {
			t.Fatal(err)
		}
		return tbl
	}
	micros := func(s string) string {
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return strconv.FormatInt(ts.UnixMicro(), 10)
	}
	tbl = appendRows(tbl, `[
		{"id": 1, "ts": "2024-05-01T08:00:00Z", "page": "/", "geo": {"country": "DE", "city": "Berlin"}},
		{"id": 2, "ts": "2024-05-01T09:30:00Z", "page": "/cart", "geo": null},
		{"id": 3, "ts": "2024-05-02T01:00:00Z", "page": null, "geo": {"country": "FR", "city": null}}
	]`, iceberggo.Properties{
		iceberg.PropStream:       "clicks",
		iceberg.PropCheckpoint:   "1",
		iceberg.PropPositions:    `{"clicks":{"0":2,"1":1}}`,
		iceberg.PropMaxEventTime: micros("2024-05-02T01:00:00Z"),
		iceberg.PropRecords:      "3",
	})
	appendRows(tbl, `[
		{"id": 4, "ts": "2024-05-02T10:00:00Z", "page": "/help", "geo": null},
		{"id": 5, "ts": "2024-05-02T23:59:59Z", "page": "/", "geo": {"country": "US", "city": "Austin"}}
	]`, iceberggo.Properties{
		iceberg.PropStream:       "clicks",
		iceberg.PropCheckpoint:   "2",
		iceberg.PropPositions:    `{"clicks":{"0":3,"1":2},"views":{"0":40}}`,
		iceberg.PropMaxEventTime: micros("2024-05-02T23:59:59Z"),
		iceberg.PropRecords:      "2",
	})
	return dir
}

func runInspect(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := inspectCmd(args, &out); err != nil {
		t.Fatalf("inspect %s: %v", strings.Join(args, " "), err)
	}
	return out.String()
}

// wantInspectLine fails unless some line of out matches the pattern, whose spaces
// stand for tabwriter padding.
func wantInspectLine(t *testing.T, out, pattern string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + strings.ReplaceAll(pattern, " ", `\s+`) + `\s*$`)
	if !re.MatchString(out) {
		t.Errorf("no line matches %q in:\n%s", pattern, out)
	}
}

func TestInspectCatalog(t *testing.T) {
	dir := newInspectDir(t)
	out := runInspect(t, "--dir", dir)
	wantInspectLine(t, out, `TABLE ROWS FILES SIZE LAST COMMIT \(UTC\) SNAPSHOT`)
	wantInspectLine(t, out, `demo\.clicks 5 3 \d+(\.\d)? K?i?B \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \d+`)
	wantInspectLine(t, out, `namespaces without tables: empty`)
	wantInspectLine(t, out, `Run "sluice inspect --dir `+regexp.QuoteMeta(dir)+` demo\.clicks" for a table's schema, snapshots and partitions\.`)
}

func TestInspectTable(t *testing.T) {
	dir := newInspectDir(t)
	// Flags after the table name work too.
	out := runInspect(t, "--dir", dir, "demo.clicks", "--snapshots", "5")

	wantInspectLine(t, out, `table demo\.clicks`)
	wantInspectLine(t, out, `location file://.*/warehouse/demo\.db/clicks`)
	wantInspectLine(t, out, `format version 2`)
	wantInspectLine(t, out, `current snapshot \d+: 5 rows in 3 data files, .*`)

	wantInspectLine(t, out, ` ID NAME TYPE REQUIRED`)
	wantInspectLine(t, out, ` 1 id long yes`)
	wantInspectLine(t, out, ` 2 ts timestamptz yes`)
	wantInspectLine(t, out, ` 3 page string no`)
	wantInspectLine(t, out, ` 4 geo struct no`)
	wantInspectLine(t, out, ` 5   country string yes`) // nested fields are indented
	wantInspectLine(t, out, ` 6   city string no`)

	wantInspectLine(t, out, ` 1000 ts_day day ts`)

	wantInspectLine(t, out, `snapshots \(newest 2 of 2\)`)
	wantInspectLine(t, out, ` \d+ 2\d{3}-\S+Z append 1 2 2 2024-05-02T23:59:59Z clicks: 2 partitions, next offsets sum 5; views: 1 partition, next offsets sum 40`)
	wantInspectLine(t, out, ` \d+ 2\d{3}-\S+Z append 2 3 1 2024-05-02T01:00:00Z clicks: 2 partitions, next offsets sum 3`)
	if i, j := strings.Index(out, "next offsets sum 5"), strings.Index(out, "next offsets sum 3"); i < 0 || j < 0 || i > j {
		t.Errorf("snapshots are not newest first:\n%s", out)
	}

	wantInspectLine(t, out, `partitions \(2\)`)
	wantInspectLine(t, out, ` PARTITION ROWS FILES SIZE SMALLEST FILE LARGEST FILE`)
	wantInspectLine(t, out, ` ts_day=2024-05-01 2 1 .*`)
	wantInspectLine(t, out, ` ts_day=2024-05-02 3 2 .*`)
}

func TestInspectSnapshotLimit(t *testing.T) {
	dir := newInspectDir(t)
	out := runInspect(t, "--dir", dir, "--snapshots", "1", "demo.clicks")
	wantInspectLine(t, out, `snapshots \(newest 1 of 2\)`)
	if strings.Contains(out, "next offsets sum 3") {
		t.Errorf("the older snapshot is shown despite --snapshots 1:\n%s", out)
	}
}

func TestInspectJSON(t *testing.T) {
	dir := newInspectDir(t)

	var cv catalogView
	if err := json.Unmarshal([]byte(runInspect(t, "--json", "--dir", dir)), &cv); err != nil {
		t.Fatal(err)
	}
	if len(cv.Namespaces) != 2 || cv.Namespaces[0].Name != "demo" || cv.Namespaces[1].Name != "empty" {
		t.Fatalf("namespaces = %+v, want demo and empty", cv.Namespaces)
	}
	if got := cv.Namespaces[0].Tables; len(got) != 1 || got[0].Name != "demo.clicks" || got[0].Rows != 5 ||
		got[0].DataFiles != 3 || got[0].Bytes <= 0 || got[0].LastCommit == nil {
		t.Errorf("tables of demo = %+v", got)
	}

	var tv tableView
	if err := json.Unmarshal([]byte(runInspect(t, "--dir", dir, "--json", "demo.clicks")), &tv); err != nil {
		t.Fatal(err)
	}
	if tv.Name != "demo.clicks" || tv.FormatVersion != 2 || tv.Rows != 5 || tv.DataFiles != 3 || tv.CurrentSnapshotID == nil {
		t.Errorf("table = %+v", tv)
	}
	if len(tv.Schema) != 4 || tv.Schema[3].Type != "struct" || len(tv.Schema[3].Fields) != 2 || tv.Schema[3].Fields[0].Name != "country" {
		t.Errorf("schema = %+v", tv.Schema)
	}
	if len(tv.PartitionSpec) != 1 || tv.PartitionSpec[0].Transform != "day" || tv.PartitionSpec[0].Source != "ts" {
		t.Errorf("partition spec = %+v", tv.PartitionSpec)
	}
	if tv.SnapshotCount != 2 || len(tv.Snapshots) != 2 {
		t.Fatalf("snapshots = %d of %d, want 2 of 2", len(tv.Snapshots), tv.SnapshotCount)
	}
	newest := tv.Snapshots[0]
	if newest.Checkpoint == nil || *newest.Checkpoint != 2 || newest.Stream != "clicks" || newest.AddedRecords != 2 ||
		newest.Positions["clicks"][1] != 2 || newest.Positions["views"][0] != 40 ||
		newest.MaxEventTime == nil || !newest.MaxEventTime.Equal(time.Date(2024, 5, 2, 23, 59, 59, 0, time.UTC)) {
		t.Errorf("newest snapshot = %+v", newest)
	}
	if newest.ParentID == nil || *newest.ParentID != tv.Snapshots[1].ID || newest.ID != *tv.CurrentSnapshotID {
		t.Errorf("snapshot lineage: newest %+v, older %d, current %d", newest, tv.Snapshots[1].ID, *tv.CurrentSnapshotID)
	}
	want := []struct {
		partition   string
		rows, files int64
	}{{"ts_day=2024-05-01", 2, 1}, {"ts_day=2024-05-02", 3, 2}}
	if len(tv.Partitions) != len(want) {
		t.Fatalf("partitions = %+v", tv.Partitions)
	}
	var bytesSum int64
	for i, w := range want {
		p := tv.Partitions[i]
		if p.Partition != w.partition || p.Rows != w.rows || p.Files != w.files ||
			p.SmallestFile <= 0 || p.SmallestFile > p.LargestFile || p.Bytes < p.LargestFile {
			t.Errorf("partition %d = %+v, want %s with %d rows in %d files", i, p, w.partition, w.rows, w.files)
		}
		bytesSum += p.Bytes
	}
	if bytesSum != tv.Bytes {
		t.Errorf("partition sizes sum to %d, table size is %d", bytesSum, tv.Bytes)
	}
}

func TestInspectConfigFile(t *testing.T) {
	dir := newInspectDir(t)
	path := filepath.Join(t.TempDir(), "pipeline.yaml")
	writeInspectFile(t, path, `name: test
kafka:
  brokers: ["localhost:9092"]
catalog:
  uri: `+filepath.Join(dir, demoCatalogFile)+`
  warehouse: file://`+filepath.Join(dir, demoWarehouse)+`
dead_letter:
  file: `+filepath.Join(dir, "dead.jsonl")+`
streams:
  - name: clicks
    topics: [clicks]
    columns:
      - {name: id, type: int64, required: true}
      - {name: ts, type: timestamptz, required: true}
    event_time: ts
    table:
      name: demo.clicks
      partition: ["day(ts)"]
`)
	out := runInspect(t, "-c", path)
	wantInspectLine(t, out, `demo\.clicks 5 3 .*`)
	wantInspectLine(t, out, `Run "sluice inspect -c `+regexp.QuoteMeta(path)+` demo\.clicks" .*`)
}

func TestInspectErrors(t *testing.T) {
	dir := newInspectDir(t)
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no catalog", nil, "--dir DIR or -c pipeline.yaml is required"},
		{"both catalogs", []string{"--dir", dir, "-c", "p.yaml"}, "use either --dir or -c, not both"},
		{"missing table", []string{"--dir", dir, "demo.views"}, "table demo.views not found (tables: demo.clicks)"},
		{"missing namespace", []string{"--dir", dir, "nope.clicks"}, "table nope.clicks not found (tables: demo.clicks)"},
		{"bare table name", []string{"--dir", dir, "clicks"}, `table "clicks": want namespace.table`},
		{"two tables", []string{"--dir", dir, "demo.clicks", "demo.views"}, "want at most one table, got demo.clicks demo.views"},
		{"negative snapshots", []string{"--dir", dir, "--snapshots", "-1"}, "--snapshots -1: must be 0 or more"},
		{"no catalog in dir", []string{"--dir", empty}, empty + " holds no Sluice catalog"},
		{"no catalog in dir hint", []string{"--dir", empty}, "create one with `sluice demo --dir " + empty + "`"},
		{"missing config", []string{"-c", filepath.Join(empty, "pipeline.yaml")}, "read config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := inspectCmd(tc.args, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// Inspecting must not create a catalog where there was none.
	if entries, err := os.ReadDir(empty); err != nil || len(entries) != 0 {
		t.Errorf("inspect left %v in an empty directory (err %v)", entries, err)
	}
}

func TestInspectEmptyCatalog(t *testing.T) {
	dir := t.TempDir()
	_, closeCat, err := iceberg.OpenCatalog(context.Background(), config.Catalog{
		Type: "sql", URI: filepath.Join(dir, demoCatalogFile), Warehouse: "file://" + dir, Name: demoCatalogName,
	})
	if err != nil {
		t.Fatal(err)
	}
	closeCat()
	wantInspectLine(t, runInspect(t, "--dir", dir), `the catalog has no tables`)
	err = inspectCmd([]string{"--dir", dir, "demo.clicks"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "table demo.clicks not found (the catalog has no tables)") {
		t.Errorf("err = %v", err)
	}
}

func TestInspectHelp(t *testing.T) {
	err := inspectCmd([]string{"-h"}, &bytes.Buffer{})
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("err = %v, want flag.ErrHelp", err)
	}
}

func writeInspectFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
