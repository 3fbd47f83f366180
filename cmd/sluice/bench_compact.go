package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"

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
