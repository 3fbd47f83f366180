package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/sinks/iceberg"
)

const partitionsUsage = `usage: sluice partitions (--dir DIR | -c pipeline.yaml) [--json] [namespace.table]

Shows the time partitions of tables with notices (table.notify): each one's
state — open (data committed, not yet announced), ready, empty, or updated
(late data appended after it was announced) — its records and files, when it
was announced and the snapshot its latest notice names, with the stream's
committed watermark. Without a table, every table with notices. It only
reads the catalog.

`

// partitionsCmd prints the announcement state of tables' time partitions.
func partitionsCmd(args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("partitions", flag.ContinueOnError)
	dir := fs.String("dir", "", "demo directory holding "+demoCatalogFile+" and "+demoWarehouse+"/")
	path := fs.String("c", "", "pipeline config file whose catalog to read")
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), partitionsUsage)
		fs.PrintDefaults()
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) > 1 {
		return fmt.Errorf("want at most one table, got %s", strings.Join(positional, " "))
	}
	ctx := context.Background()
	cat, _, closeCat, err := openInspectCatalog(ctx, *dir, *path)
	if err != nil {
		return err
	}
	defer closeCatalog(closeCat, &err)
	names := positional
	if len(names) == 0 {
		if names, err = allTableNames(ctx, cat); err != nil {
			return err
		}
	}
	var reports []iceberg.PartitionReport
	for _, name := range names {
		tbl, err := cat.LoadTable(ctx, iceberg.Identifier(name))
		if err != nil {
			return fmt.Errorf("table %s: %w", name, err)
		}
		rep, ok, err := iceberg.ReportPartitions(tbl)
		if err != nil {
			return fmt.Errorf("table %s: %w", name, err)
		}
		if !ok && len(positional) > 0 {
			return fmt.Errorf("table %s has no partition notices (see table.notify)", name)
		}
		if ok {
			reports = append(reports, rep)
		}
	}
	if *asJSON {
		return writeJSON(out, reports)
	}
	if len(reports) == 0 {
		fmt.Fprintln(out, "no table has partition notices (see table.notify)")
		return nil
	}
	for i, rep := range reports {
		if i > 0 {
			fmt.Fprintln(out)
		}
		writePartitionReport(out, rep)
	}
	return nil
}

func writePartitionReport(out io.Writer, rep iceberg.PartitionReport) {
	wm := "none yet"
	if !rep.Watermark.IsZero() {
		wm = rep.Watermark.Format(time.RFC3339)
	}
	fmt.Fprintf(out, "%s (stream %s), watermark %s\n", rep.Table, orDash(rep.Stream), wm)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tSTATE\tRECORDS\tFILES\tANNOUNCED\tUPDATED\tSNAPSHOT")
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	for _, p := range rep.Partitions {
		snap := "-"
		if p.SnapshotID != 0 {
			snap = fmt.Sprint(p.SnapshotID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", p.Path, p.State, p.Records, p.Files, stamp(p.AnnouncedAt), stamp(p.UpdatedAt), snap)
	}
	tw.Flush()
}
