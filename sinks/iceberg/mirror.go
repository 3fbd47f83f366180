package iceberg

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/schema"
)

// EnsureUpsertTable loads the table that mirrors a keyed source table, or
// creates it: unpartitioned (see Upserts), with cols as its columns, the
// key columns required and declared the schema's identifier fields, which
// engines that read or write upserts (Flink, Spark) look for. An existing
// table is returned as it is: its columns follow the source's changes
// (EvolveUpsertTable), not the source's current shape.
func EnsureUpsertTable(ctx context.Context, cat catalog.Catalog, name string, cols schema.Schema, key []string, props map[string]string) (*table.Table, error) {
	ident := Identifier(name)
	tbl, err := cat.LoadTable(ctx, ident)
	if err == nil {
		return tbl, nil
	}
	if !errors.Is(err, catalog.ErrNoSuchTable) {
		return nil, fmt.Errorf("table %s: %w", name, err)
	}
	s := schema.Schema{Fields: slices.Clone(cols.Fields)}
	for i := range s.Fields {
		if slices.Contains(key, s.Fields[i].Name) {
			s.Fields[i].Required = true
		}
	}
	if tbl, err = createTable(ctx, cat, ident, config.Table{Name: name, Properties: props}, s); err != nil {
		return nil, fmt.Errorf("table %s: %w", name, err)
	}
	var paths [][]string
	for _, k := range key {
		paths = append(paths, []string{k})
	}
	tx := tbl.NewTransaction()
	if err := tx.UpdateSchema(false, false).SetIdentifierField(paths).Commit(); err != nil {
		return nil, fmt.Errorf("table %s: identifier fields %v: %w", name, key, err)
	}
	if tbl, err = tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("table %s: identifier fields %v: %w", name, key, err)
	}
	return tbl, nil
}

// EvolveUpsertTable renames columns (old name → new), then adds the
// columns of next the table lacks and widens the ones next widens. Columns
// next lacks stay: a dropped source column keeps its history and reads
// null from then on.
func EvolveUpsertTable(ctx context.Context, tbl *table.Table, next schema.Schema, renamed map[string]string) (*table.Table, error) {
	name := strings.Join(tbl.Identifier(), ".")
	var err error
	if len(renamed) > 0 {
		// A commit of its own: the union below matches columns by their
		// new names.
		tx := tbl.NewTransaction()
		up := tx.UpdateSchema(true, false)
		for _, from := range slices.Sorted(maps.Keys(renamed)) {
			if _, ok := tbl.Schema().FindFieldByName(from); ok {
				up = up.RenameColumn([]string{from}, renamed[from])
			}
		}
		if err := up.Commit(); err != nil {
			return nil, fmt.Errorf("table %s: rename columns %v: %w", name, renamed, err)
		}
		if tbl, err = tx.Commit(ctx); err != nil {
			return nil, fmt.Errorf("table %s: rename columns %v: %w", name, renamed, err)
		}
	}
	out, err := evolve(ctx, tbl, next)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", name, err)
	}
	return out, nil
}
