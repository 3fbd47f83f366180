package iceberg

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/schema"
)

// firstPartitionFieldID is where Iceberg numbers partition fields from.
const firstPartitionFieldID = 1000

// Identifier splits "namespace.table".
func Identifier(name string) table.Identifier {
	return strings.Split(name, ".")
}

// EnsureTable loads the stream's table, creating it (and its namespace) when
// missing, evolves its schema when the stream's columns grew compatibly (see
// SchemaChanges), and checks the partitioning. It returns the table and the
// output schema bound to the table's field IDs.
func EnsureTable(ctx context.Context, cat catalog.Catalog, cfg config.Table, out schema.Schema) (*table.Table, schema.Schema, error) {
	ident := Identifier(cfg.Name)
	tbl, err := cat.LoadTable(ctx, ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		tbl, err = createTable(ctx, cat, ident, cfg, out)
	}
	if err != nil {
		return nil, schema.Schema{}, fmt.Errorf("table %s: %w", cfg.Name, err)
	}
	current, err := schema.FromIceberg(tbl.Schema())
	if err != nil {
		return nil, schema.Schema{}, fmt.Errorf("table %s: %w", cfg.Name, err)
	}
	stored, err := loadSources(tbl.Properties())
	if err != nil {
		return nil, schema.Schema{}, fmt.Errorf("table %s: %w", cfg.Name, err)
	}
	plan, err := planRenames(current, out, stored)
	if err != nil {
		return nil, schema.Schema{}, fmt.Errorf("table %s: %w", cfg.Name, err)
	}
	if len(plan) > 0 {
		if tbl, err = renameColumns(ctx, tbl, plan); err != nil {
			return nil, schema.Schema{}, fmt.Errorf("table %s: %w", cfg.Name, err)
		}
		if current, err = schema.FromIceberg(tbl.Schema()); err != nil {
			return nil, schema.Schema{}, fmt.Errorf("table %s: %w", cfg.Name, err)
		}
	}
	changes, err := schema.Changes(current, out)
	if err != nil {
		return nil, schema.Schema{}, fmt.Errorf("table %s cannot take the stream's columns: %w", cfg.Name, err)
	}
	if len(changes) > 0 {
		if tbl, err = evolve(ctx, tbl, out); err != nil {
			return nil, schema.Schema{}, fmt.Errorf("table %s: %w", cfg.Name, err)
		}
		if current, err = schema.FromIceberg(tbl.Schema()); err != nil {
			return nil, schema.Schema{}, fmt.Errorf("table %s: %w", cfg.Name, err)
		}
	}
	bound, err := out.Bind(current)
	if err != nil {
		return nil, schema.Schema{}, fmt.Errorf("table %s does not match the stream's columns: %w", cfg.Name, err)
	}
	want, err := partitionSpec(cfg.Partition, bound)
	if err != nil {
		return nil, schema.Schema{}, fmt.Errorf("table %s: %w", cfg.Name, err)
	}
	if have := tbl.Spec(); !sameSpec(have, want) {
		return nil, schema.Schema{}, fmt.Errorf("table %s is partitioned by %s but table.partition says %s", cfg.Name, have.String(), want.String())
	}
	if tbl, err = recordSources(ctx, tbl, stored, bound); err != nil {
		return nil, schema.Schema{}, fmt.Errorf("table %s: %w", cfg.Name, err)
	}
	return tbl, bound, nil
}

func createTable(ctx context.Context, cat catalog.Catalog, ident table.Identifier, cfg config.Table, out schema.Schema) (*table.Table, error) {
	ns := catalog.NamespaceFromIdent(ident)
	if err := cat.CreateNamespace(ctx, ns, nil); err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
		return nil, fmt.Errorf("create namespace %s: %w", strings.Join(ns, "."), err)
	}
	s := schema.Schema{Fields: append([]schema.Field(nil), out.Fields...)}
	s.AssignIDs()
	isch, err := s.Iceberg()
	if err != nil {
		return nil, err
	}
	spec, err := partitionSpec(cfg.Partition, s)
	if err != nil {
		return nil, err
	}
	props := iceberg.Properties{
		"format-version":                  "2",
		"write.parquet.compression-codec": "zstd",
	}
	for k, v := range cfg.Properties {
		props[k] = v
	}
	tbl, err := cat.CreateTable(ctx, ident, isch, catalog.WithPartitionSpec(&spec), catalog.WithProperties(props))
	if errors.Is(err, catalog.ErrTableAlreadyExists) {
		return cat.LoadTable(ctx, ident)
	}
	return tbl, err
}

func partitionSpec(exprs []string, s schema.Schema) (iceberg.PartitionSpec, error) {
	var fields []iceberg.PartitionField
	for i, expr := range exprs {
		pf, err := config.ParsePartitionField(expr, s)
		if err != nil {
			return iceberg.PartitionSpec{}, fmt.Errorf("table.partition[%d]: %w", i, err)
		}
		src, _ := s.Field(pf.Column)
		f := iceberg.PartitionField{SourceIDs: []int{src.ID}, FieldID: firstPartitionFieldID + i}
		switch pf.Transform {
		case "identity":
			f.Transform, f.Name = iceberg.IdentityTransform{}, pf.Column
		case "hour":
			f.Transform, f.Name = iceberg.HourTransform{}, pf.Column+"_hour"
		case "day":
			f.Transform, f.Name = iceberg.DayTransform{}, pf.Column+"_day"
		case "month":
			f.Transform, f.Name = iceberg.MonthTransform{}, pf.Column+"_month"
		case "year":
			f.Transform, f.Name = iceberg.YearTransform{}, pf.Column+"_year"
		case "bucket":
			f.Transform, f.Name = iceberg.BucketTransform{NumBuckets: pf.Buckets}, pf.Column+"_bucket"
		}
		fields = append(fields, f)
	}
	return iceberg.NewPartitionSpec(fields...), nil
}

func sameSpec(a, b iceberg.PartitionSpec) bool {
	if a.NumFields() != b.NumFields() {
		return false
	}
	for i := range a.NumFields() {
		fa, fb := a.Field(i), b.Field(i)
		if fa.SourceID() != fb.SourceID() || fa.Transform.String() != fb.Transform.String() {
			return false
		}
	}
	return true
}
