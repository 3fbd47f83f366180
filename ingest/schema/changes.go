package schema

import (
	"errors"
	"fmt"
)

// Changes lists how a stream's output schema differs from its table's
// and whether the table can follow in place. Iceberg allows adding optional
// columns (also inside structs), widening int32→int64, float32→float64 and
// decimal(p,s)→decimal(p',s) with p'>p, and relaxing required to optional.
// Anything else — narrowing, changing a type, requiring a column — would
// break rows already written or rows still to come, and is refused.
func Changes(current, next Schema) ([]string, error) {
	var changes []string
	var errs []error
	diffFields("", current.Fields, next.Fields, &changes, &errs)
	return changes, errors.Join(errs...)
}

func diffFields(prefix string, cur, next []Field, changes *[]string, errs *[]error) {
	byName := map[string]Field{}
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

func diffType(path string, cur, next Type, changes *[]string, errs *[]error) {
	switch {
	case cur.Equal(next):
		return
	case cur.Kind == KindStruct && next.Kind == KindStruct:
		diffFields(path+".", cur.Fields, next.Fields, changes, errs)
		return
	case cur.Kind == KindList && next.Kind == KindList:
		diffType(path+".element", *cur.Elem, *next.Elem, changes, errs)
		return
	case cur.Kind == KindInt32 && next.Kind == KindInt64,
		cur.Kind == KindFloat32 && next.Kind == KindFloat64,
		cur.Kind == KindDecimal && next.Kind == KindDecimal && next.Scale == cur.Scale && next.Precision > cur.Precision:
		*changes = append(*changes, fmt.Sprintf("widen column %s from %s to %s", path, cur, next))
		return
	}
	*errs = append(*errs, fmt.Errorf("column %s: cannot change %s to %s in place (only adding optional columns and widening int32→int64, float32→float64, decimal precision are allowed)", path, cur, next))
}
