package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/compaction"
	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/schema"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

const compactUsage = `usage: sluice compact (--dir DIR | -c pipeline.yaml) [--partition PATH ...] [--target-size 256MiB] namespace.table

Merges the small data files of a table's partitions into files near the
target size, each partition committed as one rewrite snapshot: readers at
any snapshot see every row once. For backfills and tables written by older
versions; a running daemon may keep appending meanwhile (a rewrite that
loses to an append is retried). Files written with other columns than the
table has now are left as they are.

`

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// compactCmd merges a table's small files on demand.
func compactCmd(args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("compact", flag.ContinueOnError)
	dir := fs.String("dir", "", "demo directory holding "+demoCatalogFile+" and "+demoWarehouse+"/")
	path := fs.String("c", "", "pipeline config file whose catalog to use")
	var partitions multiFlag
	fs.Var(&partitions, "partition", "partition path to compact, e.g. ts_hour=2026-11-23-07 (repeatable; default: all)")
	target := config.ByteSize(compaction.DefaultTargetFileSize)
	fs.Var(&target, "target-size", "size merged files roll at")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), compactUsage)
		fs.PrintDefaults()
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return fmt.Errorf("want one table, got %d arguments", len(positional))
	}
	ctx := context.Background()
	cat, _, closeCat, err := openInspectCatalog(ctx, *dir, *path)
	if err != nil {
		return err
	}
	defer closeCatalog(closeCat, &err)
	name := positional[0]
	ident := iceberg.Identifier(name)
	tbl, err := cat.LoadTable(ctx, ident)
	if err != nil {
		return fmt.Errorf("table %s: %w", name, err)
	}
	sch, err := schema.FromIceberg(tbl.Schema())
	if err != nil {
		return fmt.Errorf("table %s: %w", name, err)
	}
	exprs, err := iceberg.PartitionExprs(tbl)
	if err != nil {
		return fmt.Errorf("table %s: %w", name, err)
	}
	opts := compaction.Options{TargetFileSize: int64(target), Writer: iceberg.WriterOptions{
		Worker: 0, RunID: fmt.Sprintf("compact%d", time.Now().Unix()), Compression: "zstd", RowGroupSize: 16 << 20,
	}}
	m, err := compaction.NewMerger(ctx, tbl, schema.NewLayout(sch, name), exprs, opts)
	if err != nil {
		return err
	}
	var keep func(string) bool
	if len(partitions) > 0 {
		keep = func(p string) bool { return slices.Contains(partitions, p) }
	}
	parts, err := compaction.Partitions(ctx, tbl, keep)
	if err != nil {
		return err
	}
	load := func(ctx context.Context) (*table.Table, error) { return cat.LoadTable(ctx, ident) }
	var before, after int
	for _, p := range parts {
		merged, written, err := m.MergeFiles(ctx, p.Files)
		if err != nil {
			return fmt.Errorf("partition %s: %w", orDash(p.Path), err)
		}
		if len(merged) == 0 {
			continue
		}
		if tbl, err = compaction.Commit(ctx, load, tbl, merged, written, iceberggo.Properties{iceberg.PropCompaction: orDash(p.Path)}); err != nil {
			return fmt.Errorf("partition %s: %w", orDash(p.Path), err)
		}
		before, after = before+len(merged), after+len(written)
		fmt.Fprintf(out, "%s: %d files merged into %d (%s)\n", orDash(p.Path), len(merged), len(written), inspectBytes(totalSize(written)))
	}
	fmt.Fprintf(out, "%s: %d files merged into %d across %d partitions\n", name, before, after, len(parts))
	return nil
}

func totalSize(files []iceberggo.DataFile) int64 {
	var n int64
	for _, f := range files {
		n += f.FileSizeBytes()
	}
	return n
}
