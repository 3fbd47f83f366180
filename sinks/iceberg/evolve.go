package iceberg

import (
	"context"
	"fmt"

	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/schema"
)

// SchemaChanges lists how a stream's output schema differs from its table's
// and whether the table can follow in place; see schema.Changes.
func SchemaChanges(current, next schema.Schema) ([]string, error) {
	return schema.Changes(current, next)
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
