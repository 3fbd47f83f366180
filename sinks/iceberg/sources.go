package iceberg

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/ingest/schema"
)

// sourcesProperty holds a table's stored assignment of record-format field
// sources (protobuf field numbers, as paths like "3.1") to Iceberg field
// IDs. Columns are otherwise matched to the stream by name; with it, a
// protobuf field that was renamed still finds its column, and the column
// is renamed with it (Iceberg reads by ID, so rows already written keep
// their values under the new name).
const sourcesProperty = "sluice.field-sources"

// sources maps a field's source path to its Iceberg field ID.
type sources map[string]int

func loadSources(props iceberg.Properties) (sources, error) {
	raw, ok := props[sourcesProperty]
	if !ok || raw == "" {
		return sources{}, nil
	}
	var s sources
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil, fmt.Errorf("table property %s: %w", sourcesProperty, err)
	}
	return s, nil
}

// rename is one column renamed because its source field was.
type rename struct {
	path []string // the column's current path
	to   string
	src  string
}

// planRenames finds the columns of current whose stored source now names a
// field of out with another name. A rename onto a name the struct already
// has is refused: the table would have two columns competing for it.
func planRenames(current, out schema.Schema, stored sources) ([]rename, error) {
	var plan []rename
	err := renamesIn(nil, "", current.Fields, out.Fields, stored, &plan)
	return plan, err
}

func renamesIn(path []string, prefix string, cur, out []schema.Field, stored sources, plan *[]rename) error {
	byID := make(map[int]schema.Field, len(cur))
	byName := make(map[string]schema.Field, len(cur))
	for _, f := range cur {
		byID[f.ID], byName[f.Name] = f, f
	}
	for _, f := range out {
		if f.Source == "" {
			continue
		}
		src := prefix + f.Source
		cf, ok := byID[stored[src]]
		if !ok {
			if cf, ok = byName[f.Name]; !ok {
				continue // a new column
			}
		} else if cf.Name != f.Name {
			if _, taken := byName[f.Name]; taken {
				return fmt.Errorf("column %s (protobuf field %s) was renamed to %s, but the table already has a column %s; drop or rename one of them first",
					strings.Join(append(path, cf.Name), "."), src, f.Name, f.Name)
			}
			*plan = append(*plan, rename{path: append(path[:len(path):len(path)], cf.Name), to: f.Name, src: src})
		}
		ct, ot := structOf(cf.Type), structOf(f.Type)
		if ct == nil || ot == nil {
			continue
		}
		if err := renamesIn(append(path[:len(path):len(path)], cf.Name, elemSeg(cf.Type)), src+".", ct.Fields, ot.Fields, stored, plan); err != nil {
			return err
		}
	}
	return nil
}

// structOf returns the struct holding t's nested fields: t itself, a
// list's element or a map's value.
func structOf(t schema.Type) *schema.Type {
	switch {
	case t.Kind == schema.KindStruct:
		return &t
	case (t.Kind == schema.KindList || t.Kind == schema.KindMap) && t.Elem != nil && t.Elem.Kind == schema.KindStruct:
		return t.Elem
	}
	return nil
}

// elemSeg is the path segment Iceberg puts between a column and the
// fields of its struct: none for a struct (dropped below), "element" for a
// list, "value" for a map.
func elemSeg(t schema.Type) string {
	switch t.Kind {
	case schema.KindList:
		return "element"
	case schema.KindMap:
		return "value"
	}
	return ""
}

// cleanPath drops the empty segments elemSeg leaves for structs.
func cleanPath(p []string) []string {
	out := p[:0:0]
	for _, s := range p {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// applyRenames returns current with the planned renames made, as the
// table will look once they are committed.
func applyRenames(current schema.Schema, plan []rename) schema.Schema {
	out := schema.Schema{Fields: cloneFields(current.Fields)}
	// Paths name columns as they were; a struct's members come after the
	// struct in the plan, so renaming backwards finds every one.
	for i := len(plan) - 1; i >= 0; i-- {
		renameField(out.Fields, cleanPath(plan[i].path), plan[i].to)
	}
	return out
}

func renameField(fs []schema.Field, path []string, to string) {
	for i := range fs {
		if fs[i].Name != path[0] {
			continue
		}
		if len(path) == 1 {
			fs[i].Name = to
			return
		}
		rest := path[1:]
		if elemSeg(fs[i].Type) != "" {
			rest = rest[1:] // "element" or "value"
		}
		if st := structOf(fs[i].Type); st != nil && len(rest) > 0 {
			renameField(st.Fields, rest, to)
		}
		return
	}
}

func cloneFields(fs []schema.Field) []schema.Field {
	out := make([]schema.Field, len(fs))
	for i, f := range fs {
		t := f.Type
		switch {
		case t.Kind == schema.KindStruct:
			t.Fields = cloneFields(t.Fields)
		case t.Elem != nil:
			e := *t.Elem
			if e.Kind == schema.KindStruct {
				e.Fields = cloneFields(e.Fields)
			}
			t.Elem = &e
		}
		f.Type = t
		out[i] = f
	}
	return out
}

// renameColumns commits the planned renames.
func renameColumns(ctx context.Context, tbl *table.Table, plan []rename) (*table.Table, error) {
	tx := tbl.NewTransaction()
	us := tx.UpdateSchema(true, false)
	for _, r := range plan {
		us.RenameColumn(cleanPath(r.path), r.to)
	}
	if err := us.Commit(); err != nil {
		return nil, fmt.Errorf("rename columns: %w", err)
	}
	return tx.Commit(ctx)
}

// collectSources lists the source path and field ID of every field of
// bound, a stream's output schema bound to its table.
func collectSources(prefix string, fs []schema.Field, into sources) {
	for _, f := range fs {
		if f.Source == "" || f.ID == 0 {
			continue
		}
		src := prefix + f.Source
		into[src] = f.ID
		if st := structOf(f.Type); st != nil {
			collectSources(src+".", st.Fields, into)
		}
	}
}

// recordSources stores the sources of bound's fields in the table's
// properties when they add to or change what is stored. Entries of fields
// the stream no longer has are kept: the field may come back.
func recordSources(ctx context.Context, tbl *table.Table, stored sources, bound schema.Schema) (*table.Table, error) {
	next := maps.Clone(stored)
	collectSources("", bound.Fields, next)
	if maps.Equal(next, stored) {
		return tbl, nil
	}
	raw, err := json.Marshal(next)
	if err != nil {
		return nil, err
	}
	tx := tbl.NewTransaction()
	if err := tx.SetProperties(iceberg.Properties{sourcesProperty: string(raw)}); err != nil {
		return nil, fmt.Errorf("store field sources: %w", err)
	}
	return tx.Commit(ctx)
}
