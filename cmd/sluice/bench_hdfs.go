package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
	"github.com/sluicehq/sluice/integration/hdfstest"
	"github.com/sluicehq/sluice/sinks/hdfs"
	"github.com/sluicehq/sluice/sinks/hive"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

// hdfsCheckpoint is the cost of one checkpoint of a hive table on HDFS
// whose closes are slow: the NameNode answers "not yet replicated" to
// every complete until closeDelay after the file's last block.
type hdfsCheckpoint struct {
	Partitions int              `json:"partitions"`
	CloseDelay time.Duration    `json:"close_delay_ns"`
	OneClose   time.Duration    `json:"one_close_ns"`   // one file closed alone
	Seal       time.Duration    `json:"seal_ns"`        // every file of the checkpoint sealed and closed
	Commit     time.Duration    `json:"commit_ns"`      // record written, files renamed into place
	Checkpoint time.Duration    `json:"checkpoint_ns"`  // Seal + Commit
	Calls      map[string]int64 `json:"namenode_calls"` // NameNode calls of the checkpoint, by method
}

// benchHDFS measures a checkpoint of partitions open hive partitions on
// the HDFS test double (three DataNodes, in this process), each close
// taking closeDelay.
func benchHDFS(partitions int, closeDelay time.Duration) (hdfsCheckpoint, error) {
	ctx := context.Background()
	res := hdfsCheckpoint{Partitions: partitions, CloseDelay: closeDelay}
	c, err := hdfstest.New(hdfstest.Options{DataNodes: 3})
	if err != nil {
		return res, err
	}
	defer c.Close()
	c.SetReplicationDelay(closeDelay)
	fsys, err := hdfs.Open(hdfs.Options{NameNodes: []string{c.Addr()}, User: "sluice"}, "")
	if err != nil {
		return res, err
	}
	defer fsys.Close()

	start := time.Now()
	w, err := fsys.Create("/bench/one")
	if err != nil {
		return res, err
	}
	if _, err := w.Write(make([]byte, 256<<10)); err != nil {
		return res, err
	}
	if err := w.Close(); err != nil {
		return res, err
	}
	res.OneClose = time.Since(start)

	var s schema.Schema
	for _, col := range []struct{ name, typ string }{{"ts", "timestamptz(us)"}, {"id", "string"}, {"v", "int64"}} {
		typ, err := schema.ParseType(col.typ)
		if err != nil {
			return res, err
		}
		s.Fields = append(s.Fields, schema.Field{Name: col.name, Type: typ, Required: true})
	}
	s.AssignIDs()
	layout := schema.NewLayout(s, "bench.hdfs")
	part, err := iceberg.NewPartitioner([]string{"hour(ts)"}, layout)
	if err != nil {
		return res, err
	}
	part = part.Hive()
	authority := c.Addr()
	tbl, err := hive.Open(ctx, hive.Options{Name: "bench.hdfs", Location: "hdfs://" + authority + "/bench/t", FS: fsys})
	if err != nil {
		return res, err
	}
	wr := iceberg.NewWriterIn(hdfs.NewIO(fsys, authority), tbl.StagingURL(), layout, part, iceberg.WriterOptions{RunID: "bench"})
	base := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	var keyBuf []byte
	tsCol, idCol, vCol := layout.ByName["ts"].Column, layout.ByName["id"].Column, layout.ByName["v"].Column
	for i := range partitions * 200 {
		ts := base.Add(time.Duration(i%partitions) * time.Hour).UnixMicro()
		id := []byte("e-" + strconv.Itoa(i))
		row := make(parquet.Row, 3)
		row[tsCol] = parquet.Int64Value(ts).Level(0, 0, tsCol)
		row[idCol] = parquet.ByteArrayValue(id).Level(0, 0, idCol)
		row[vCol] = parquet.Int64Value(int64(i)).Level(0, 0, vCol)
		keyBuf = part.AppendKey(keyBuf[:0], row)
		if err := wr.Write(keyBuf, row, ts); err != nil {
			return res, err
		}
	}
	if err := wr.Flush(); err != nil {
		return res, err
	}
	c.ResetCalls()
	start = time.Now()
	files, _, err := wr.Seal()
	if err != nil {
		return res, err
	}
	res.Seal = time.Since(start)
	if len(files) != partitions {
		return res, fmt.Errorf("sealed %d files, want %d", len(files), partitions)
	}
	t := time.Now()
	if _, err := tbl.Commit(ctx, files, map[string]string{"sluice.checkpoint": "1", "sluice.commit-id": "bench/1"}); err != nil {
		return res, err
	}
	res.Commit = time.Since(t)
	res.Checkpoint = time.Since(start)
	res.Calls = c.Calls()
	return res, nil
}

func (h hdfsCheckpoint) print(out io.Writer) {
	fmt.Fprintf(out, "hdfs checkpoint: %d open partitions, every close %s (NameNode answers 'not yet replicated' until then)\n",
		h.Partitions, h.CloseDelay)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "one close\tseal (all closes)\tcommit (record+renames)\tcheckpoint\tsum of closes\tcheckpoint/one close\t")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\t\n", h.OneClose.Round(time.Millisecond), h.Seal.Round(time.Millisecond),
		h.Commit.Round(time.Millisecond), h.Checkpoint.Round(time.Millisecond),
		(time.Duration(h.Partitions) * h.OneClose).Round(time.Millisecond), float64(h.Checkpoint)/float64(h.OneClose))
	tw.Flush()
	methods := slices.Sorted(maps.Keys(h.Calls))
	var parts []string
	total := int64(0)
	for _, m := range methods {
		parts = append(parts, fmt.Sprintf("%s %d", m, h.Calls[m]))
		total += h.Calls[m]
	}
	fmt.Fprintf(out, "NameNode calls of the checkpoint: %d (%.1f per file): %s\n", total, float64(total)/float64(h.Partitions),
		strings.Join(parts, ", "))
}
