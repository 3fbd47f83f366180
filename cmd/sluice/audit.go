package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/schema"
	"github.com/sluicehq/sluice/sinks/audit"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

const auditUsage = `usage: sluice audit -c pipeline.yaml [--table T] [--from TIME] [--to TIME] [--json]

Reconciles the audit trace with the tables. For each table and event hour:
the records the trace counts by outcome (written, filtered, dead-lettered,
skipped, late) and the rows the table holds for that hour at its latest
snapshot (read with iceberg-go's reader, deletes applied); for each stream,
the records its committed offset ranges cover against the records counted.
Every mismatch is marked; the exit status is 1 if there is any. TIME is
RFC 3339 or 2006-01-02T15 (hours, UTC).

`

// ErrAuditMismatch is the failure of an audit that found mismatches.
var ErrAuditMismatch = errors.New("the audit found mismatches")

// auditHour is one table hour of the report.
type auditHour struct {
	Table     string `json:"table"`
	Hour      string `json:"hour"` // "-": records without an event time
	Written   int64  `json:"written"`
	Filtered  int64  `json:"filtered"`
	Dead      int64  `json:"dead_lettered"`
	Skipped   int64  `json:"skipped"`
	Late      int64  `json:"late"`
	TableRows *int64 `json:"table_rows"` // nil: not comparable (no event-time column)
	Mismatch  bool   `json:"mismatch"`
}

// auditStream is one stream's source reconciliation.
type auditStream struct {
	Stream   string `json:"stream"`
	Table    string `json:"table"`
	Read     int64  `json:"read_by_offsets"`
	Counted  int64  `json:"records_counted"`
	Mismatch bool   `json:"mismatch"`
}

type auditReport struct {
	Hours    []auditHour   `json:"hours"`
	Streams  []auditStream `json:"streams"`
	Mismatch bool          `json:"mismatch"`
}

func auditCmd(args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	path := fs.String("c", "", "pipeline config file (required)")
	only := fs.String("table", "", "audit only this namespace.table")
	from := fs.String("from", "", "first event hour to audit (RFC 3339 or 2006-01-02T15)")
	to := fs.String("to", "", "last event hour to audit")
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), auditUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		fs.Usage()
		return errors.New("-c pipeline.yaml is required")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	lo, hi, err := hourRange(*from, *to)
	if err != nil {
		return err
	}
	ctx := context.Background()
	rows, err := readTrace(ctx, cfg)
	if err != nil {
		return err
	}
	_, closeHDFS := installHDFS(cfg.HDFS, slog.New(slog.DiscardHandler), nil)
	defer closeHDFS()
	cat, closeCat, err := iceberg.OpenCatalog(ctx, cfg.Catalog)
	if err != nil {
		return err
	}
	defer closeCatalog(closeCat, &err)
	var rep auditReport
	for _, sc := range cfg.Streams {
		if sc.Export != nil || (*only != "" && sc.Table.Name != *only) {
			continue
		}
		tbl, err := cat.LoadTable(ctx, iceberg.Identifier(sc.Table.Name))
		if err != nil {
			return fmt.Errorf("table %s: %w", sc.Table.Name, err)
		}
		hours, stream, err := auditStreamTable(ctx, sc, tbl, rows, lo, hi)
		if err != nil {
			return err
		}
		rep.Hours = append(rep.Hours, hours...)
		rep.Streams = append(rep.Streams, stream)
	}
	for _, h := range rep.Hours {
		rep.Mismatch = rep.Mismatch || h.Mismatch
	}
	for _, s := range rep.Streams {
		rep.Mismatch = rep.Mismatch || s.Mismatch
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printAudit(out, rep)
	}
	if rep.Mismatch {
		return ErrAuditMismatch
	}
	return nil
}

// readTrace reads the pipeline's trace from where the daemon writes it.
func readTrace(ctx context.Context, cfg *config.Pipeline) ([]audit.Row, error) {
	if ch := cfg.Audit.ClickHouse; ch != nil {
		c, err := audit.NewClickHouse(audit.ClickHouseOptions{Addr: ch.Addrs, Database: ch.Database, Table: ch.Table,
			User: ch.User, Password: ch.Password, Timeout: ch.Timeout.D()})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.Rows(ctx, cfg.Name)
	}
	rows, err := audit.ReadFile(cfg.Audit.File)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(rows, func(r audit.Row) bool { return r.Pipeline != cfg.Name }), nil
}

func hourRange(from, to string) (lo, hi time.Time, err error) {
	parse := func(s string) (time.Time, error) {
		for _, layout := range []string{time.RFC3339, "2006-01-02T15", "2006-01-02"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC().Truncate(time.Hour), nil
			}
		}
		return time.Time{}, fmt.Errorf("%q is not RFC 3339 or 2006-01-02T15", s)
	}
	lo, hi = time.Unix(-1<<40, 0), time.Unix(1<<40, 0)
	if from != "" {
		if lo, err = parse(from); err != nil {
			return lo, hi, fmt.Errorf("--from: %w", err)
		}
	}
	if to != "" {
		if hi, err = parse(to); err != nil {
			return lo, hi, fmt.Errorf("--to: %w", err)
		}
	}
	return lo, hi, nil
}

// auditStreamTable reconciles one stream's trace with its table.
func auditStreamTable(ctx context.Context, sc config.Stream, tbl *table.Table, rows []audit.Row, lo, hi time.Time) ([]auditHour, auditStream, error) {
	byHour := map[time.Time]*auditHour{}
	st := auditStream{Stream: sc.Name, Table: sc.Table.Name}
	for _, r := range rows {
		if r.Stream != sc.Name {
			continue
		}
		switch r.Stage {
		case "read":
			st.Read += r.Records
			continue
		case "compacted":
			continue // rewritten, not read
		}
		st.Counted += r.Records
		if !r.Hour.Equal(time.Unix(0, 0)) && (r.Hour.Before(lo) || r.Hour.After(hi)) {
			continue
		}
		h := byHour[r.Hour]
		if h == nil {
			h = &auditHour{Table: sc.Table.Name, Hour: r.Hour.Format("2006-01-02T15")}
			if r.Hour.Equal(time.Unix(0, 0)) {
				h.Hour = "-"
			}
			byHour[r.Hour] = h
		}
		switch r.Stage {
		case "written":
			h.Written += r.Records
		case "filtered":
			h.Filtered += r.Records
		case "dead_lettered":
			h.Dead += r.Records
		case "skipped":
			h.Skipped += r.Records
		default:
			h.Late += r.Records
		}
	}
	st.Mismatch = st.Read != st.Counted
	tableRows, ok, err := rowsByHour(ctx, sc, tbl, lo, hi)
	if err != nil {
		return nil, st, err
	}
	if ok {
		for hour, n := range tableRows {
			if byHour[hour] == nil {
				byHour[hour] = &auditHour{Table: sc.Table.Name, Hour: hour.Format("2006-01-02T15")}
			}
			n := n
			byHour[hour].TableRows = &n
		}
	}
	var out []auditHour
	for _, h := range byHour {
		if ok && h.Hour != "-" {
			if h.TableRows == nil {
				zero := int64(0)
				h.TableRows = &zero
			}
			h.Mismatch = *h.TableRows != h.Written
		}
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b auditHour) int { return strings.Compare(a.Hour, b.Hour) })
	return out, st, nil
}

// rowsByHour counts a table's rows per hour of the stream's event time,
// reading that column alone (deletes applied); ok is false when the table
// has no such column (an ETL dropped or renamed it).
func rowsByHour(ctx context.Context, sc config.Stream, tbl *table.Table, lo, hi time.Time) (map[time.Time]int64, bool, error) {
	col := sc.EventTime
	sch, err := schema.FromIceberg(tbl.Schema())
	if err != nil {
		return nil, false, err
	}
	f, found := sch.Field(col)
	if !found || !(f.Type.IsTimestamp() || f.Type.Kind == schema.KindDate || f.Type.Kind == schema.KindInt64) {
		return nil, false, nil
	}
	opts := []table.ScanOption{table.WithSelectedFields(col)}
	if f.Type.IsTimestamp() && lo.Unix() > -1<<39 {
		opts = append(opts, table.WithRowFilter(iceberggo.GreaterThanEqual(iceberggo.Reference(col), lo.UnixMicro())))
	}
	_, it, err := tbl.Scan(opts...).ToArrowRecords(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("scan %s: %w", sc.Table.Name, err)
	}
	out := map[time.Time]int64{}
	for rec, err := range it {
		if err != nil {
			return nil, false, fmt.Errorf("scan %s: %w", sc.Table.Name, err)
		}
		c := rec.Column(0)
		for i := range c.Len() {
			if c.IsNull(i) {
				continue
			}
			var t time.Time
			switch a := c.(type) {
			case *array.Timestamp:
				unit := a.DataType().(*arrow.TimestampType).Unit
				t = a.Value(i).ToTime(unit)
			case *array.Date32:
				t = a.Value(i).ToTime()
			case *array.Int64:
				t = time.UnixMilli(a.Value(i))
			default:
				return nil, false, fmt.Errorf("scan %s: column %s is %T", sc.Table.Name, col, c)
			}
			h := t.UTC().Truncate(time.Hour)
			if h.Before(lo) || h.After(hi) {
				continue
			}
			out[h]++
		}
		rec.Release()
	}
	return out, true, nil
}

func printAudit(out io.Writer, rep auditReport) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "table\thour\twritten\tfiltered\tdead-lettered\tskipped\tlate\ttable rows\t\t")
	for _, h := range rep.Hours {
		rowsText, mark := "n/a", ""
		if h.TableRows != nil {
			rowsText = fmt.Sprint(*h.TableRows)
		}
		if h.Mismatch {
			mark = "MISMATCH"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", h.Table, h.Hour, h.Written, h.Filtered, h.Dead, h.Skipped, h.Late, rowsText, mark)
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stream\ttable\tread (offsets)\trecords counted\t\t")
	for _, s := range rep.Streams {
		mark := ""
		if s.Mismatch {
			mark = "MISMATCH"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t\n", s.Stream, s.Table, s.Read, s.Counted, mark)
	}
	tw.Flush()
	if rep.Mismatch {
		fmt.Fprintln(out, "\nmismatches found")
	} else {
		fmt.Fprintln(out, "\nno mismatch")
	}
}
