package iceberg

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/schema"
)

// SchemaChanges lists how a stream's output schema differs from its table's
// and whether the table can follow in place. Iceberg allows adding optional
// columns (also inside structs), widening int32→int64, float32→float64 and
// decimal(p,s)→decimal(p',s) with p'>p, and relaxing required to optional.
// Anything else — narrowing, changing a type, requiring a column — would
// break rows already written or rows still to come, and is refused.
func SchemaChanges(current, next schema.Schema) ([]string, error) {
	var changes []string
	var errs []error
	diffFields("", current.Fields, next.Fields, &changes, &errs)
	return changes, errors.Join(errs...)
}

func diffFields(prefix string, cur, next []schema.Field, changes *[]string, errs *[]error) {
	byName := map[string]schema.Field{}
	for _, f := range cur {
		byName[f.Name] = f
	}
	seen := map[string]bool{}
	for _, nf := range next {
		seen[nf.Name] = true
		path := prefix + nf.Name
		cf, ok := byName[nf.Name]
		if !ok {
			if nf.Required {
				*errs = append(*errs, fmt.Errorf("column %s: a new column cannot be required (rows already written have no value)", path))
				continue
			}
			*changes = append(*changes, fmt.Sprintf("add column %s %s", path, nf.Type))
			continue
		}
		if cf.Required != nf.Required {
			if nf.Required {
				*errs = append(*errs, fmt.Errorf("column %s: cannot make an optional column required", path))
			} else {
				*changes = append(*changes, fmt.Sprintf("make column %s optional", path))
			}
		}
		diffType(path, cf.Type, nf.Type, changes, errs)
	}
	for _, cf := range cur {
		if !seen[cf.Name] && cf.Required {
			*errs = append(*errs, fmt.Errorf("column %s: a required column cannot be left out", prefix+cf.Name))
		}
	}
}

func diffType(path string, cur, next schema.Type, changes *[]string, errs *[]error) {
	switch {
	case cur.Equal(next):
		return
	case cur.Kind == schema.KindStruct && next.Kind == schema.KindStruct:
		diffFields(path+".", cur.Fields, next.Fields, changes, errs)
		return
	case cur.Kind == schema.KindList && next.Kind == schema.KindList:
		diffType(path+".element", *cur.Elem, *next.Elem, changes, errs)
		return
	case cur.Kind == schema.KindInt32 && next.Kind == schema.KindInt64,
		cur.Kind == schema.KindFloat32 && next.Kind == schema.KindFloat64,
		cur.Kind == schema.KindDecimal && next.Kind == schema.KindDecimal && next.Scale == cur.Scale && next.Precision > cur.Precision:
		*changes = append(*changes, fmt.Sprintf("widen column %s from %s to %s", path, cur, next))
		return
	}
	*errs = append(*errs, fmt.Errorf("column %s: cannot change %s to %s in place (only adding optional columns and widening int32→int64, float32→float64, decimal precision are allowed)", path, cur, next))
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
