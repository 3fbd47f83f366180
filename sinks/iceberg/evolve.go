package iceberg

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/schema"
)

// SchemaChanges lists how a stream's output schema differs from its
// table's and whether the table can follow in place: columns whose
// protobuf field was renamed are renamed (see sourcesProperty), then
// schema.Changes decides the rest.
func SchemaChanges(tbl *table.Table, next schema.Schema) ([]string, error) {
	current, err := schema.FromIceberg(tbl.Schema())
	if err != nil {
		return nil, err
	}
	stored, err := loadSources(tbl.Properties())
	if err != nil {
		return nil, err
	}
	plan, err := planRenames(current, next, stored)
	if err != nil {
		return nil, err
	}
	var changes []string
	for _, r := range plan {
		changes = append(changes, fmt.Sprintf("rename column %s to %s (protobuf field %s)", strings.Join(cleanPath(r.path), "."), r.to, r.src))
	}
	more, err := schema.Changes(applyRenames(current, plan), next)
	return append(changes, more...), err
}

// evolve applies compatible changes of the output schema to the table.
func evolve(ctx context.Context, tbl *table.Table, next schema.Schema) (*table.Table, error) {
	s := schema.Schema{Fields: append([]schema.Field(nil), next.Fields...)}
	s.AssignIDs() // ids are ignored: the union matches by name
	isch, err := s.Iceberg()
	if err != nil {
		return nil, err
	}
	tx := tbl.NewTransaction()
	if err := tx.UpdateSchema(true, false).UnionByNameWith(isch).Commit(); err != nil {
		return nil, fmt.Errorf("evolve schema: %w", err)
	}
	return tx.Commit(ctx)
}
