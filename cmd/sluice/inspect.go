package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/checkpoint"
	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/sinks/iceberg"
)

// The demo's directory layout (see demoCmd).
const (
	demoCatalogFile = "catalog.db"
	demoWarehouse   = "warehouse"
	demoCatalogName = "sluice"
)

// Standard snapshot summary keys written by every Iceberg writer.
const (
	summaryAddedFiles   = "added-data-files"
	summaryAddedRecords = "added-records"
	summaryTotalFiles   = "total-data-files"
	summaryTotalRecords = "total-records"
	summaryTotalSize    = "total-files-size"
	summaryTotalDeletes = "total-delete-files"
)

const inspectUsage = `usage: sluice inspect (--dir DIR | -c pipeline.yaml) [--json] [--snapshots N] [namespace.table]

Without a table, lists every namespace and table of the catalog. With one,
shows its schema, partition spec, latest snapshots and current partitions.
Inspecting only reads tables, and never creates a catalog.

`

// inspectCmd prints the catalog's tables, or one table's schema, snapshots
// and partitions.
func inspectCmd(args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	dir := fs.String("dir", "", "demo directory holding "+demoCatalogFile+" and "+demoWarehouse+"/")
	path := fs.String("c", "", "pipeline config file whose catalog to inspect")
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	nsnap := fs.Int("snapshots", 10, "snapshots to show for a table, newest first")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), inspectUsage)
		fs.PrintDefaults()
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) > 1 {
		return fmt.Errorf("want at most one table, got %s", strings.Join(positional, " "))
	}
	if *nsnap < 0 {
		return fmt.Errorf("--snapshots %d: must be 0 or more", *nsnap)
	}
	ctx := context.Background()
	cat, source, closeCat, err := openInspectCatalog(ctx, *dir, *path)
	if err != nil {
		return err
	}
	defer closeCatalog(closeCat, &err)

	if len(positional) == 0 {
		view, err := loadCatalogView(ctx, cat)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(out, view)
		}
		return view.write(out, source)
	}
	view, err := loadTableView(ctx, cat, positional[0], *nsnap)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(out, view)
	}
	return view.write(out)
}

// openInspectCatalog opens, to read only, the catalog of a demo directory
// or of a pipeline config; source names it for the output.
func openInspectCatalog(ctx context.Context, dir, path string) (catalog.Catalog, string, func() error, error) {
	cfg, source, err := inspectCatalogConfig(dir, path)
	if err != nil {
		return nil, "", nil, err
	}
	cat, closeCat, err := iceberg.OpenCatalog(ctx, cfg)
	if err != nil {
		return nil, "", nil, err
	}
	return cat, source, closeCat, nil
}

// closeCatalog closes a catalog when a command ends, reporting a failure
// in *err unless the command failed already.
func closeCatalog(closeCat func() error, err *error) {
	if cerr := closeCat(); cerr != nil && *err == nil {
		*err = fmt.Errorf("close catalog: %w", cerr)
	}
}

// parseInterspersed parses flags given after positional arguments too
// ("inspect demo.clicks --json"): the flag package stops at the first
// positional argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		rest = fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		positional, rest = append(positional, rest[0]), rest[1:]
	}
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// inspectCatalogConfig resolves --dir or -c to a catalog, and returns how the
// user named it (for the hint line). It refuses a SQLite file that does not
// exist: opening one would create an empty catalog, and inspecting must
// leave no trace.
func inspectCatalogConfig(dir, path string) (config.Catalog, string, error) {
	switch {
	case dir != "" && path != "":
		return config.Catalog{}, "", errors.New("use either --dir or -c, not both")
	case dir == "" && path == "":
		return config.Catalog{}, "", errors.New("--dir DIR or -c pipeline.yaml is required")
	case dir != "":
		abs, err := filepath.Abs(dir)
		if err != nil {
			return config.Catalog{}, "", err
		}
		db := filepath.Join(abs, demoCatalogFile)
		if err := requireFile(db); err != nil {
			return config.Catalog{}, "", fmt.Errorf("%s holds no Sluice catalog (%s: %w); create one with `sluice demo --dir %s`",
				dir, demoCatalogFile, err, dir)
		}
		return config.Catalog{
			Type:      "sql",
			URI:       db,
			Warehouse: "file://" + filepath.ToSlash(filepath.Join(abs, demoWarehouse)),
			Name:      demoCatalogName,
		}, "--dir " + dir, nil
	}
	p, err := config.Load(path)
	if err != nil {
		return config.Catalog{}, "", err
	}
	// The same rule as iceberg.OpenCatalog: anything that is not a URL is
	// a SQLite path.
	uri := p.Catalog.URI
	if strings.HasPrefix(uri, "sqlite://") || !strings.Contains(uri, "://") {
		if err := requireFile(strings.TrimPrefix(uri, "sqlite://")); err != nil {
			return config.Catalog{}, "", fmt.Errorf("catalog.uri in %s: %w; `sluice run -c %s` creates it", path, err, path)
		}
	}
	return p.Catalog, "-c " + path, nil
}

// requireFile reports an error unless path is an existing regular file.
func requireFile(path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s does not exist", path)
	}
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a file", path)
	}
	return nil
}

// catalogView is every namespace of a catalog with its tables.
type catalogView struct {
	Namespaces []namespaceView `json:"namespaces"`
}

type namespaceView struct {
	Name   string             `json:"name"`
	Tables []tableSummaryView `json:"tables"`
}

// tableSummaryView describes a table at its current snapshot.
type tableSummaryView struct {
	Name              string     `json:"name"`
	CurrentSnapshotID *int64     `json:"current_snapshot_id,omitempty"`
	Rows              int64      `json:"rows"`
	DataFiles         int64      `json:"data_files"`
	Bytes             int64      `json:"bytes"`
	LastCommit        *time.Time `json:"last_commit,omitempty"`
}

func loadCatalogView(ctx context.Context, cat catalog.Catalog) (*catalogView, error) {
	names, err := listNamespaces(ctx, cat)
	if err != nil {
		return nil, err
	}
	view := &catalogView{Namespaces: []namespaceView{}}
	for _, ns := range names {
		idents, err := listTables(ctx, cat, ns)
		if err != nil {
			return nil, err
		}
		nv := namespaceView{Name: strings.Join(ns, "."), Tables: []tableSummaryView{}}
		for _, ident := range idents {
			tbl, err := cat.LoadTable(ctx, ident)
			if err != nil {
				return nil, fmt.Errorf("load table %s: %w", strings.Join(ident, "."), err)
			}
			sum, err := summarizeTable(ctx, tbl)
			if err != nil {
				return nil, err
			}
			nv.Tables = append(nv.Tables, sum)
		}
		view.Namespaces = append(view.Namespaces, nv)
	}
	return view, nil
}

func listNamespaces(ctx context.Context, cat catalog.Catalog) ([]table.Identifier, error) {
	names, err := cat.ListNamespaces(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	slices.SortFunc(names, func(a, b table.Identifier) int { return slices.Compare(a, b) })
	return names, nil
}

func listTables(ctx context.Context, cat catalog.Catalog, ns table.Identifier) ([]table.Identifier, error) {
	var idents []table.Identifier
	for ident, err := range cat.ListTables(ctx, ns) {
		if err != nil {
			return nil, fmt.Errorf("list tables of %s: %w", strings.Join(ns, "."), err)
		}
		idents = append(idents, ident)
	}
	slices.SortFunc(idents, func(a, b table.Identifier) int { return slices.Compare(a, b) })
	return idents, nil
}

// allTableNames lists every table of the catalog as "namespace.table".
func allTableNames(ctx context.Context, cat catalog.Catalog) ([]string, error) {
	names, err := listNamespaces(ctx, cat)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ns := range names {
		idents, err := listTables(ctx, cat, ns)
		if err != nil {
			return nil, err
		}
		for _, ident := range idents {
			out = append(out, strings.Join(ident, "."))
		}
	}
	return out, nil
}

// summarizeTable reads the totals from the current snapshot's summary, which
// every Iceberg writer maintains, so listing a catalog reads one metadata
// file per table. The manifests are read only when a writer left the totals
// out, or when delete files count in total-files-size.
func summarizeTable(ctx context.Context, tbl *table.Table) (tableSummaryView, error) {
	name := strings.Join(tbl.Identifier(), ".")
	sum := tableSummaryView{Name: name}
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return sum, nil
	}
	sum.CurrentSnapshotID = &snap.SnapshotID
	at := time.UnixMilli(snap.TimestampMs).UTC()
	sum.LastCommit = &at
	rows, okRows := summaryInt(snap, summaryTotalRecords)
	files, okFiles := summaryInt(snap, summaryTotalFiles)
	size, okSize := summaryInt(snap, summaryTotalSize)
	deletes, okDeletes := summaryInt(snap, summaryTotalDeletes)
	if okRows && okFiles && okSize && okDeletes && deletes == 0 {
		sum.Rows, sum.DataFiles, sum.Bytes = rows, files, size
		return sum, nil
	}
	err := walkDataFiles(ctx, tbl, snap, func(df iceberggo.DataFile) {
		sum.Rows += df.Count()
		sum.DataFiles++
		sum.Bytes += df.FileSizeBytes()
	})
	return sum, err
}

// summaryInt returns an integer property of a snapshot's summary.
func summaryInt(snap *table.Snapshot, key string) (int64, bool) {
	if snap.Summary == nil {
		return 0, false
	}
	v, err := strconv.ParseInt(snap.Summary.Properties[key], 10, 64)
	return v, err == nil
}

// walkDataFiles calls fn with every live data file of a snapshot, streaming
// the manifests so a large table is never held in memory at once.
func walkDataFiles(ctx context.Context, tbl *table.Table, snap *table.Snapshot, fn func(iceberggo.DataFile)) error {
	name := strings.Join(tbl.Identifier(), ".")
	fsys, err := tbl.FS(ctx)
	if err != nil {
		return fmt.Errorf("table %s: open file system: %w", name, err)
	}
	manifests, err := snap.Manifests(fsys)
	if err != nil {
		return fmt.Errorf("table %s: snapshot %d: %w", name, snap.SnapshotID, err)
	}
	for _, m := range manifests {
		if m.ManifestContent() != iceberggo.ManifestContentData {
			continue
		}
		for entry, err := range m.Entries(fsys, true) {
			if err != nil {
				return fmt.Errorf("table %s: read manifest %s: %w", name, m.FilePath(), err)
			}
			fn(entry.DataFile())
		}
	}
	return nil
}

// tableView is one table in detail.
type tableView struct {
	Name              string          `json:"name"`
	UUID              string          `json:"uuid"`
	Location          string          `json:"location"`
	FormatVersion     int             `json:"format_version"`
	CurrentSnapshotID *int64          `json:"current_snapshot_id,omitempty"`
	Rows              int64           `json:"rows"`
	DataFiles         int64           `json:"data_files"`
	Bytes             int64           `json:"bytes"`
	Schema            []columnView    `json:"schema"`
	PartitionSpec     []specFieldView `json:"partition_spec"`
	// SnapshotCount is the length of the current snapshot's history;
	// Snapshots holds the newest of them.
	SnapshotCount int             `json:"snapshot_count"`
	Snapshots     []snapshotView  `json:"snapshots"`
	Partitions    []partitionView `json:"partitions"`
}

type columnView struct {
	ID       int          `json:"id"`
	Name     string       `json:"name"`
	Type     string       `json:"type"`
	Required bool         `json:"required"`
	Fields   []columnView `json:"fields,omitempty"`
}

type specFieldView struct {
	FieldID   int    `json:"field_id"`
	Name      string `json:"name"`
	Transform string `json:"transform"`
	SourceIDs []int  `json:"source_ids"`
	Source    string `json:"source"`
}

type snapshotView struct {
	ID           int64                `json:"id"`
	ParentID     *int64               `json:"parent_id,omitempty"`
	Time         time.Time            `json:"time"`
	Operation    string               `json:"operation"`
	AddedFiles   int64                `json:"added_files"`
	AddedRecords int64                `json:"added_records"`
	Stream       string               `json:"stream,omitempty"`
	Checkpoint   *int64               `json:"checkpoint,omitempty"`
	Positions    checkpoint.Positions `json:"positions,omitempty"`
	MaxEventTime *time.Time           `json:"max_event_time,omitempty"`
	// Summary is every summary property, for what the fields above omit.
	Summary map[string]string `json:"summary"`
}

// partitionView aggregates the live data files of one partition.
type partitionView struct {
	Partition    string `json:"partition"`
	Rows         int64  `json:"rows"`
	Files        int64  `json:"files"`
	Bytes        int64  `json:"bytes"`
	SmallestFile int64  `json:"smallest_file_bytes"`
	LargestFile  int64  `json:"largest_file_bytes"`
}

func loadTableView(ctx context.Context, cat catalog.Catalog, name string, nsnap int) (*tableView, error) {
	ident := iceberg.Identifier(name)
	if len(ident) < 2 || slices.Contains(ident, "") {
		return nil, fmt.Errorf("table %q: want namespace.table", name)
	}
	tbl, err := cat.LoadTable(ctx, ident)
	if errors.Is(err, catalog.ErrNoSuchTable) || errors.Is(err, catalog.ErrNoSuchNamespace) {
		names, lerr := allTableNames(ctx, cat)
		if lerr != nil {
			return nil, fmt.Errorf("table %s not found; %w", name, lerr)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("table %s not found (the catalog has no tables)", name)
		}
		return nil, fmt.Errorf("table %s not found (tables: %s)", name, strings.Join(names, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("load table %s: %w", name, err)
	}

	md := tbl.Metadata()
	sc := tbl.Schema()
	view := &tableView{
		Name:          strings.Join(tbl.Identifier(), "."),
		UUID:          md.TableUUID().String(),
		Location:      tbl.Location(),
		FormatVersion: md.Version(),
		Schema:        columnViews(sc.Fields()),
		PartitionSpec: []specFieldView{},
		Snapshots:     []snapshotView{},
		Partitions:    []partitionView{},
	}
	spec := tbl.Spec()
	for _, f := range spec.Fields() {
		src, _ := sc.FindColumnName(f.SourceID())
		view.PartitionSpec = append(view.PartitionSpec, specFieldView{
			FieldID: f.FieldID, Name: f.Name, Transform: f.Transform.String(),
			SourceIDs: f.SourceIDs, Source: src,
		})
	}

	// History is the current snapshot's ancestry, the lineage a stream's
	// positions advance along; snapshots off it (rolled back, other
	// branches) are not part of what the table holds.
	for snap := tbl.CurrentSnapshot(); snap != nil; {
		if len(view.Snapshots) < nsnap {
			view.Snapshots = append(view.Snapshots, newSnapshotView(snap))
		}
		view.SnapshotCount++
		if snap.ParentSnapshotID == nil {
			break
		}
		snap = tbl.SnapshotByID(*snap.ParentSnapshotID)
	}

	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return view, nil
	}
	view.CurrentSnapshotID = &snap.SnapshotID
	byPath := map[string]*partitionView{}
	paths := partitionPaths{tbl: tbl, schema: sc, types: map[int32]*iceberggo.StructType{}}
	err = walkDataFiles(ctx, tbl, snap, func(df iceberggo.DataFile) {
		size := df.FileSizeBytes()
		view.Rows += df.Count()
		view.DataFiles++
		view.Bytes += size
		path := paths.of(df)
		p := byPath[path]
		if p == nil {
			p = &partitionView{Partition: path, SmallestFile: size, LargestFile: size}
			byPath[path] = p
		}
		p.Rows += df.Count()
		p.Files++
		p.Bytes += size
		p.SmallestFile = min(p.SmallestFile, size)
		p.LargestFile = max(p.LargestFile, size)
	})
	if err != nil {
		return nil, err
	}
	for _, p := range byPath {
		view.Partitions = append(view.Partitions, *p)
	}
	slices.SortFunc(view.Partitions, func(a, b partitionView) int { return cmp.Compare(a.Partition, b.Partition) })
	return view, nil
}

func columnViews(fields []iceberggo.NestedField) []columnView {
	out := make([]columnView, 0, len(fields))
	for _, f := range fields {
		c := columnView{ID: f.ID, Name: f.Name, Type: f.Type.String(), Required: f.Required}
		if nested, ok := f.Type.(iceberggo.NestedType); ok {
			c.Type = nested.Type() // "struct", "list" or "map"; the children follow
			c.Fields = columnViews(nested.Fields())
		}
		out = append(out, c)
	}
	return out
}

func newSnapshotView(snap *table.Snapshot) snapshotView {
	v := snapshotView{
		ID:       snap.SnapshotID,
		ParentID: snap.ParentSnapshotID,
		Time:     time.UnixMilli(snap.TimestampMs).UTC(),
		Summary:  map[string]string{},
	}
	if snap.Summary == nil {
		return v
	}
	props := snap.Summary.Properties
	v.Operation = string(snap.Summary.Operation)
	v.Summary = props
	if v.Summary == nil {
		v.Summary = map[string]string{}
	}
	v.AddedFiles, _ = summaryInt(snap, summaryAddedFiles)
	v.AddedRecords, _ = summaryInt(snap, summaryAddedRecords)
	v.Stream = props[iceberg.PropStream]
	if cp, ok := summaryInt(snap, iceberg.PropCheckpoint); ok {
		v.Checkpoint = &cp
	}
	if raw := props[iceberg.PropPositions]; raw != "" {
		// Undecodable positions stay visible in Summary.
		if pos, err := checkpoint.DecodePositions(raw); err == nil {
			v.Positions = pos
		}
	}
	if us, ok := summaryInt(snap, iceberg.PropMaxEventTime); ok && us > 0 {
		t := time.UnixMicro(us).UTC()
		v.MaxEventTime = &t
	}
	return v
}

// partitionPaths renders data files' partition values as Hive-style paths
// ("ts_day=2024-05-01"), with the spec each file was written under.
type partitionPaths struct {
	tbl    *table.Table
	schema *iceberggo.Schema
	types  map[int32]*iceberggo.StructType
}

func (p partitionPaths) of(df iceberggo.DataFile) string {
	spec := p.tbl.Metadata().PartitionSpecByID(int(df.SpecID()))
	if spec == nil {
		// A spec the metadata no longer holds: show the raw values by
		// partition field ID.
		vals := df.Partition()
		ids := slices.Sorted(maps.Keys(vals))
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = fmt.Sprintf("%d=%v", id, vals[id])
		}
		return strings.Join(parts, "/")
	}
	typ, ok := p.types[df.SpecID()]
	if !ok {
		typ = spec.PartitionType(p.schema)
		p.types[df.SpecID()] = typ
	}
	return spec.PartitionToPath(table.GetPartitionRecord(df, typ), p.schema)
}

func (v *catalogView) write(out io.Writer, source string) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	var empty []string
	example := ""
	fmt.Fprintln(tw, "TABLE\tROWS\tFILES\tSIZE\tLAST COMMIT (UTC)\tSNAPSHOT")
	for _, ns := range v.Namespaces {
		if len(ns.Tables) == 0 {
			empty = append(empty, ns.Name)
		}
		for _, t := range ns.Tables {
			if example == "" {
				example = t.Name
			}
			last, snap := "-", "-"
			if t.LastCommit != nil {
				last = t.LastCommit.Format(time.RFC3339)
			}
			if t.CurrentSnapshotID != nil {
				snap = strconv.FormatInt(*t.CurrentSnapshotID, 10)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", t.Name, t.Rows, t.DataFiles, inspectBytes(t.Bytes), last, snap)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(empty) > 0 {
		fmt.Fprintf(out, "\nnamespaces without tables: %s\n", strings.Join(empty, ", "))
	}
	if example == "" {
		_, err := fmt.Fprintln(out, "\nthe catalog has no tables")
		return err
	}
	_, err := fmt.Fprintf(out, "\nRun \"sluice inspect %s %s\" for a table's schema, snapshots and partitions.\n", source, example)
	return err
}

func (v *tableView) write(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "table\t%s\n", v.Name)
	fmt.Fprintf(tw, "location\t%s\n", v.Location)
	fmt.Fprintf(tw, "format version\t%d\n", v.FormatVersion)
	fmt.Fprintf(tw, "uuid\t%s\n", v.UUID)
	if v.CurrentSnapshotID == nil {
		fmt.Fprintf(tw, "current snapshot\tnone (no commits yet)\n")
	} else {
		fmt.Fprintf(tw, "current snapshot\t%d: %d rows in %d data files, %s\n",
			*v.CurrentSnapshotID, v.Rows, v.DataFiles, inspectBytes(v.Bytes))
	}

	fmt.Fprintf(tw, "\nschema\n")
	fmt.Fprintf(tw, "  ID\tNAME\tTYPE\tREQUIRED\n")
	writeColumns(tw, v.Schema, 0)

	fmt.Fprintf(tw, "\npartition spec\n")
	if len(v.PartitionSpec) == 0 {
		fmt.Fprintf(tw, "  unpartitioned\n")
	} else {
		fmt.Fprintf(tw, "  FIELD ID\tNAME\tTRANSFORM\tSOURCE\n")
		for _, f := range v.PartitionSpec {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", f.FieldID, f.Name, f.Transform, orDash(f.Source))
		}
	}

	fmt.Fprintf(tw, "\nsnapshots (newest %d of %d)\n", len(v.Snapshots), v.SnapshotCount)
	if len(v.Snapshots) > 0 {
		fmt.Fprintf(tw, "  SNAPSHOT\tTIME (UTC)\tOPERATION\tFILES\tRECORDS\tCHECKPOINT\tMAX EVENT TIME\tPOSITIONS\n")
	}
	for _, s := range v.Snapshots {
		cp, met := "-", "-"
		if s.Checkpoint != nil {
			cp = strconv.FormatInt(*s.Checkpoint, 10)
		}
		if s.MaxEventTime != nil {
			met = s.MaxEventTime.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", s.ID, s.Time.Format(time.RFC3339),
			orDash(s.Operation), s.AddedFiles, s.AddedRecords, cp, met, positionsSummary(s))
	}

	fmt.Fprintf(tw, "\npartitions (%d)\n", len(v.Partitions))
	if len(v.Partitions) > 0 {
		fmt.Fprintf(tw, "  PARTITION\tROWS\tFILES\tSIZE\tSMALLEST FILE\tLARGEST FILE\n")
	}
	for _, p := range v.Partitions {
		name := p.Partition
		if name == "" {
			name = "(unpartitioned)"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\t%s\n", name, p.Rows, p.Files,
			inspectBytes(p.Bytes), inspectBytes(p.SmallestFile), inspectBytes(p.LargestFile))
	}
	return tw.Flush()
}

func writeColumns(w io.Writer, cols []columnView, depth int) {
	indent := strings.Repeat("  ", depth)
	for _, c := range cols {
		req := "no"
		if c.Required {
			req = "yes"
		}
		fmt.Fprintf(w, "  %d\t%s%s\t%s\t%s\n", c.ID, indent, c.Name, c.Type, req)
		writeColumns(w, c.Fields, depth+1)
	}
}

// positionsSummary condenses a snapshot's positions to one entry per topic:
// its partition count and the sum of its next offsets, which grows by the
// records consumed between two snapshots.
func positionsSummary(s snapshotView) string {
	if len(s.Positions) == 0 {
		if s.Summary[iceberg.PropPositions] != "" {
			return "(unreadable)"
		}
		return "-"
	}
	topics := slices.Sorted(maps.Keys(s.Positions))
	parts := make([]string, len(topics))
	for i, t := range topics {
		var sum int64
		for _, off := range s.Positions[t] {
			sum += off
		}
		n := len(s.Positions[t])
		parts[i] = fmt.Sprintf("%s: %d partition%s, next offsets sum %d", t, n, plural(n), sum)
	}
	return strings.Join(parts, "; ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// inspectBytes renders a size for people: 512 B, 3.4 KiB, 1.2 GiB.
func inspectBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
