package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/compaction"
	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/schema"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

// compactFigures are the compact case's results beyond CPU and memory.
type compactFigures struct {
	ready, maxFiles, workers int
	before, after            int // files of the hour read
	readBefore, readAfter    time.Duration
}

func (q compactFigures) String() string {
	return fmt.Sprintf("%d hours ready, at most %d files per hour at ready (%d writers); reading an hour: %d files %s, compacted %d %s",
		q.ready, q.maxFiles, q.workers, q.before, q.readBefore.Round(time.Millisecond), q.after, q.readAfter.Round(time.Millisecond))
}

// benchCompacted waits for the closed hours' compactions, then measures
// how many files each has at ready and how long reading one hour takes
// before its compaction and after, in the same table.
func benchCompacted(ctx context.Context, p *pipeline, workers int) (compactFigures, error) {
	q := compactFigures{workers: workers}
	name := p.cfg.Streams[0].Name
	deadline := time.Now().Add(2 * time.Minute)
	var rep iceberg.PartitionReport
	for {
		tbl := p.committer.Table(name)
		var err error
		if rep, _, err = iceberg.ReportPartitions(tbl); err != nil {
			return q, err
		}
		q.ready = 0
		for _, ps := range rep.Partitions {
			if ps.State == "ready" {
				q.ready++
			}
		}
		// Six hours of events: the first five close once the data passed them.
		if q.ready >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	tbl := p.committer.Table(name)
	var hour string
	for _, ps := range rep.Partitions {
		if ps.State != "ready" {
			continue
		}
		q.maxFiles = max(q.maxFiles, int(ps.Files))
		if hour == "" {
			hour = ps.Path
		}
	}
	if hour == "" {
		return q, fmt.Errorf("no hour was compacted")
	}
	var rewrite *table.Snapshot
	for _, s := range tbl.Metadata().Snapshots() {
		if s.Summary != nil && s.Summary.Properties[iceberg.PropCompaction] == hour {
			rewrite = &s
		}
	}
	if rewrite == nil || rewrite.ParentSnapshotID == nil {
		return q, fmt.Errorf("no rewrite snapshot of %s", hour)
	}
	var err error
	if q.before, q.readBefore, err = readHour(ctx, tbl, *rewrite.ParentSnapshotID, hour); err != nil {
		return q, err
	}
	if q.after, q.readAfter, err = readHour(ctx, tbl, tbl.CurrentSnapshot().SnapshotID, hour); err != nil {
		return q, err
	}
	return q, nil
}

// readHour reads every row of a partition's files at a snapshot, as a
// query engine would scan them: open, footer, decode.
func readHour(ctx context.Context, tbl *table.Table, snapshot int64, path string) (int, time.Duration, error) {
	tasks, err := tbl.Scan(table.WithSnapshotID(snapshot)).PlanFiles(ctx)
	if err != nil {
		return 0, 0, err
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	seen := map[string]bool{}
	rows := make([]parquet.Row, 1024)
	for _, t := range tasks {
		f := t.File.FilePath()
		if seen[f] || !strings.Contains(f, "/"+path+"/") {
			continue
		}
		seen[f] = true
		in, err := fs.Open(f)
		if err != nil {
			return 0, 0, err
		}
		pf, err := parquet.OpenFile(in.(io.ReaderAt), t.File.FileSizeBytes())
		if err != nil {
			in.Close()
			return 0, 0, err
		}
		for _, rg := range pf.RowGroups() {
			rr := rg.Rows()
			for {
				if _, err := rr.ReadRows(rows); err != nil {
					break
				}
			}
			rr.Close()
		}
		in.Close()
	}
	return len(seen), time.Since(start), nil
}

// liveHour is the query-side figure of compaction on a live stream: one
// hour written as a checkpoint a minute by two writers leaves 120 files.
type liveHour struct {
	rows                int64
	filesBefore, after  int
	scanBefore, scanNow time.Duration
}

func (l liveHour) print(out io.Writer) {
	fmt.Fprintf(out, "reading one live hour (%d rows): %d files %s, compacted into %d %s (%.1fx faster)\n",
		l.rows, l.filesBefore, l.scanBefore.Round(time.Millisecond), l.after, l.scanNow.Round(time.Millisecond),
		l.scanBefore.Seconds()/l.scanNow.Seconds())
}

// benchLiveHour writes 120 small files into one hour of a table (60
// checkpoints of 2 writers, 2,500 rows each), reads the hour with
// iceberg-go's scan (best of three), merges it as the pipeline does, and
// reads it again.
func benchLiveHour(dir string) (liveHour, error) {
	ctx := context.Background()
	cat, closeCat, err := iceberg.OpenCatalog(ctx, config.Catalog{Type: "sql", Name: "sluice", URI: filepath.Join(dir, "catalog.db"),
		Warehouse: "file://" + filepath.Join(dir, "warehouse")})
	if err != nil {
		return liveHour{}, err
	}
	defer closeCat()
	out := schema.Schema{Fields: []schema.Field{
		{Name: "id", Type: schema.Type{Kind: schema.KindString}, Required: true},
		{Name: "ts", Type: schema.Type{Kind: schema.KindTimestampTZ}, Required: true},
		{Name: "user", Type: schema.Type{Kind: schema.KindInt64}},
		{Name: "page", Type: schema.Type{Kind: schema.KindString}},
		{Name: "amount", Type: schema.Type{Kind: schema.KindFloat64}},
	}}
	part := []string{"hour(ts)"}
	tbl, bound, err := iceberg.EnsureTable(ctx, cat, config.Table{Name: "bench.live", Partition: part}, out)
	if err != nil {
		return liveHour{}, err
	}
	layout := schema.NewLayout(bound, "bench.live")
	p, err := iceberg.NewPartitioner(part, layout)
	if err != nil {
		return liveHour{}, err
	}
	hour := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	col := func(name string) int { return layout.ByName[name].Column }
	var l liveHour
	var key []byte
	for cp := range 60 {
		var files []iceberggo.DataFile
		for writer := range 2 {
			w, err := iceberg.NewWriter(ctx, tbl, layout, p, iceberg.WriterOptions{Worker: writer, RunID: fmt.Sprint("live", cp), Compression: "zstd"})
			if err != nil {
				return l, err
			}
			for i := range 2500 {
				n := int64(cp*5000 + writer*2500 + i)
				ts := hour.Add(time.Duration(cp)*time.Minute + time.Duration(i)*time.Millisecond).UnixMicro()
				row := parquet.Row{
					parquet.ByteArrayValue(fmt.Appendf(nil, "ev-%09d", n)).Level(0, 0, col("id")),
					parquet.Int64Value(ts).Level(0, 0, col("ts")),
					parquet.Int64Value(n%9973).Level(0, 1, col("user")),
					parquet.ByteArrayValue(fmt.Appendf(nil, "/page/%d", n%211)).Level(0, 1, col("page")),
					parquet.DoubleValue(float64(n%1000)/7).Level(0, 1, col("amount")),
				}
				slices.SortFunc(row, func(a, b parquet.Value) int { return a.Column() - b.Column() })
				key = p.AppendKey(key[:0], row)
				if err := w.Write(key, row, ts); err != nil {
					return l, err
				}
			}
			if err := w.Flush(); err != nil {
				return l, err
			}
			sealed, _, err := w.Seal()
			if err != nil {
				return l, err
			}
			files = append(files, sealed...)
		}
		tx := tbl.NewTransaction()
		if err := tx.AddDataFiles(ctx, files, nil); err != nil {
			return l, err
		}
		if tbl, err = tx.Commit(ctx); err != nil {
			return l, err
		}
	}
	scan := func() (time.Duration, int, error) {
		r, err := bestScan(ctx, tbl)
		l.rows = r.rows
		return r.wall, len(r.files), err
	}
	if l.scanBefore, l.filesBefore, err = scan(); err != nil {
		return l, err
	}
	m, err := compaction.NewMerger(ctx, tbl, layout, part, compaction.Options{Writer: iceberg.WriterOptions{Worker: 900, RunID: "live-merge", Compression: "zstd"}})
	if err != nil {
		return l, err
	}
	parts, err := compaction.Partitions(ctx, tbl, nil)
	if err != nil {
		return l, err
	}
	merged, written, err := m.MergeFiles(ctx, parts[0].Files)
	if err != nil {
		return l, err
	}
	load := func(ctx context.Context) (*table.Table, error) { return cat.LoadTable(ctx, tbl.Identifier()) }
	if tbl, err = compaction.Commit(ctx, load, tbl, merged, written, nil); err != nil {
		return l, err
	}
	l.scanNow, l.after, err = scan()
	return l, err
}

// tableScan is one full read of a table with iceberg-go's scan (plan,
// then every record, deletes applied).
type tableScan struct {
	wall, cpu time.Duration
	rows      int64
	files     []table.FileScanTask
}

// bestScan reads a table three times and keeps the fastest read, the one
// least disturbed by the machine's other work.
func bestScan(ctx context.Context, tbl *table.Table) (tableScan, error) {
	var best tableScan
	for range 3 {
		start, cpu := time.Now(), cpuNow()
		tasks, err := tbl.Scan().PlanFiles(ctx)
		if err != nil {
			return best, err
		}
		_, it, err := tbl.Scan().ToArrowRecords(ctx)
		if err != nil {
			return best, err
		}
		r := tableScan{files: tasks}
		for rec, err := range it {
			if err != nil {
				return best, err
			}
			r.rows += rec.NumRows()
			rec.Release()
		}
		r.wall, r.cpu = time.Since(start), cpuNow()-cpu
		if best.wall == 0 || r.wall < best.wall {
			best = r
		}
	}
	return best, nil
}
