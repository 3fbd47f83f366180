package iceberg

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/ingest/config"
	"github.com/sluicehq/sluice/ingest/schema"
)

func TestSchemaChanges(t *testing.T) {
	base := []col{{"id", "string", true}, {"n", "int32", false}, {"f", "float32", false},
		{"d", "decimal(9,2)", false}, {"s", "struct<a:int64>", false}, {"l", "list<int32>", false}}
	tests := []struct {
		name    string
		next    []col
		changes []string
		err     string
	}{
		{name: "same", next: base},
		{name: "add optional column", next: append(append([]col{}, base...), col{"extra", "string", false}),
			changes: []string{"add column extra string"}},
		{name: "widen", next: []col{{"id", "string", true}, {"n", "int64", false}, {"f", "float64", false},
			{"d", "decimal(12,2)", false}, {"s", "struct<a:int64,b:string>", false}, {"l", "list<int64>", false}},
			changes: []string{"widen column n from int32 to int64", "widen column f from float32 to float64",
				"widen column d from decimal(9,2) to decimal(12,2)", "add column s.b string", "widen column l.element from int32 to int64"}},
		{name: "relax required", next: []col{{"id", "string", false}}, changes: []string{"make column id optional"}},
		{name: "drop optional column is fine", next: []col{{"id", "string", true}}},
		{name: "narrow", next: []col{{"id", "string", true}, {"n", "int32", false}, {"f", "float32", false}, {"d", "decimal(8,2)", false}},
			err: "column d: cannot change decimal(9,2) to decimal(8,2)"},
		{name: "change type", next: []col{{"id", "int64", true}}, err: "column id: cannot change string to int64"},
		{name: "new required", next: []col{{"id", "string", true}, {"x", "int64", true}}, err: "column x: a new column cannot be required"},
		{name: "require optional", next: []col{{"id", "string", true}, {"n", "int32", true}}, err: "column n: cannot make an optional column required"},
		{name: "leave out required", next: []col{{"n", "int32", false}}, err: "column id: a required column cannot be left out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes, err := schema.Changes(testSchema(t, base...), testSchema(t, tt.next...))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(changes, "; ") != strings.Join(tt.changes, "; ") {
				t.Errorf("changes = %q, want %q", changes, tt.changes)
			}
		})
	}
}

// TestEnsureTableEvolves checks that a stream whose columns grew compatibly
// evolves its table in place, keeping the field IDs of existing columns, and
// that an incompatible change is refused with the column named.
func TestEnsureTableEvolves(t *testing.T) {
	cat := newTestCatalog(t)
	ctx := context.Background()
	cfg := config.Table{Name: "ns.evolve", Partition: []string{"day(ts)"}}
	v1 := testSchema(t, col{"id", "string", true}, col{"ts", "timestamptz", true}, col{"n", "int32", false})
	_, bound1, err := EnsureTable(ctx, cat, cfg, v1)
	if err != nil {
		t.Fatal(err)
	}
	v2 := testSchema(t, col{"id", "string", true}, col{"ts", "timestamptz", true}, col{"n", "int64", false}, col{"extra", "struct<a:string>", false})
	tbl, bound2, err := EnsureTable(ctx, cat, cfg, v2)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"id", "ts", "n"} {
		f1, _ := bound1.Field(name)
		f2, _ := bound2.Field(name)
		if f1.ID != f2.ID {
			t.Errorf("column %s changed field ID %d → %d", name, f1.ID, f2.ID)
		}
	}
	if f, ok := bound2.Field("n"); !ok || f.Type.Kind != schema.KindInt64 {
		t.Errorf("n = %+v, want int64", f)
	}
	if _, ok := bound2.Field("extra"); !ok {
		t.Error("extra column missing after evolution")
	}
	if len(tbl.Schemas()) != 2 {
		t.Errorf("table has %d schemas, want 2", len(tbl.Schemas()))
	}
	v3 := testSchema(t, col{"id", "string", true}, col{"ts", "timestamptz", true}, col{"n", "string", false})
	if _, _, err := EnsureTable(ctx, cat, cfg, v3); err == nil || !strings.Contains(err.Error(), "column n: cannot change int64 to string") {
		t.Fatalf("incompatible change: %v", err)
	}
}

// protoSchema builds a schema the way the protobuf mapping does: every
// field carries its field number as Source. Each entry is
// "name:type:number"; struct members of a "s" column come from members.
func protoSchema(t *testing.T, cols []string, members map[string][]string) schema.Schema {
	t.Helper()
	fields := func(cols []string) []schema.Field {
		var fs []schema.Field
		for _, c := range cols {
			first, last := strings.Index(c, ":"), strings.LastIndex(c, ":")
			typ, err := schema.ParseType(c[first+1 : last])
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, schema.Field{Name: c[:first], Type: typ, Source: c[last+1:]})
		}
		return fs
	}
	s := schema.Schema{Fields: fields(cols)}
	for i, f := range s.Fields {
		m, ok := members[f.Name]
		if !ok {
			continue
		}
		st := schema.Type{Kind: schema.KindStruct, Fields: fields(m)}
		if f.Type.Kind == schema.KindList {
			s.Fields[i].Type.Elem = &st
		} else {
			s.Fields[i].Type = st
		}
	}
	return s
}

// TestEnsureTableFollowsRenamedFields checks the stored source assignment:
// a protobuf field renamed in the message keeps its column (same field ID,
// now under the new name), in nested structs and list elements too, while
// a field that merely shares a new name is still a new column.
func TestEnsureTableFollowsRenamedFields(t *testing.T) {
	cat := newTestCatalog(t)
	ctx := context.Background()
	cfg := config.Table{Name: "ns.renames", Partition: []string{"day(ts)"}}
	v1 := protoSchema(t, []string{"id:string:1", "ts:timestamptz:2", "user:int64:3", "geo:struct<x:int32>:4", "items:list<int32>:5"},
		map[string][]string{"geo": {"city:string:1", "zip:string:2"}, "items": {"sku:string:1", "qty:int32:2"}})
	tbl, bound1, err := EnsureTable(ctx, cat, cfg, v1)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := loadSources(tbl.Properties())
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 9 {
		t.Errorf("stored sources = %v, want 9 entries", stored)
	}

	// user → user_id, geo.city → geo.town, items[].qty → items[].quantity.
	v2 := protoSchema(t, []string{"id:string:1", "ts:timestamptz:2", "user_id:int64:3", "geo:struct<x:int32>:4", "items:list<int32>:5", "note:string:6"},
		map[string][]string{"geo": {"town:string:1", "zip:string:2"}, "items": {"sku:string:1", "quantity:int32:2"}})
	reloaded, err := cat.LoadTable(ctx, Identifier(cfg.Name))
	if err != nil {
		t.Fatal(err)
	}
	changes, err := SchemaChanges(reloaded, v2)
	if err != nil {
		t.Fatal(err)
	}
	want := "rename column user to user_id (protobuf field 3); rename column geo.city to town (protobuf field 4.1); " +
		"rename column items.element.qty to quantity (protobuf field 5.2); add column note string"
	if got := strings.Join(changes, "; "); got != want {
		t.Errorf("changes:\n got %s\nwant %s", got, want)
	}
	tbl, bound2, err := EnsureTable(ctx, cat, cfg, v2)
	if err != nil {
		t.Fatal(err)
	}
	f1, _ := bound1.Field("user")
	f2, _ := bound2.Field("user_id")
	if f1.ID != f2.ID {
		t.Errorf("user_id has field ID %d, want user's %d", f2.ID, f1.ID)
	}
	g1, _ := bound1.Field("geo")
	g2, _ := bound2.Field("geo")
	if g1.Type.Fields[0].ID != g2.Type.Fields[0].ID || g2.Type.Fields[0].Name != "town" {
		t.Errorf("geo.town = %+v, want geo.city's ID %d", g2.Type.Fields[0], g1.Type.Fields[0].ID)
	}
	i1, _ := bound1.Field("items")
	i2, _ := bound2.Field("items")
	if i1.Type.Elem.Fields[1].ID != i2.Type.Elem.Fields[1].ID {
		t.Errorf("items.quantity has ID %d, want %d", i2.Type.Elem.Fields[1].ID, i1.Type.Elem.Fields[1].ID)
	}
	if _, ok := tbl.Schema().FindFieldByName("user"); ok {
		t.Error("table still has a column user")
	}
	if _, ok := tbl.Schema().FindFieldByName("geo.town"); !ok {
		t.Error("table has no column geo.town")
	}
	stored, _ = loadSources(tbl.Properties())
	if n, _ := bound2.Field("note"); stored["6"] != n.ID {
		t.Errorf("stored sources %v lack note (6 → %d)", stored, n.ID)
	}

	// Renaming onto a name the table already holds is refused.
	v3 := protoSchema(t, []string{"id:string:1", "ts:timestamptz:2", "note:int64:3"}, nil)
	if _, _, err := EnsureTable(ctx, cat, cfg, v3); err == nil || !strings.Contains(err.Error(), "column user_id (protobuf field 3) was renamed to note, but the table already has a column note") {
		t.Fatalf("rename onto a taken name: %v", err)
	}
}

// TestEnsureTableAdoptsExistingTable checks that a table written before
// sources were stored gets them from its columns' names on first use.
func TestEnsureTableAdoptsExistingTable(t *testing.T) {
	cat := newTestCatalog(t)
	ctx := context.Background()
	cfg := config.Table{Name: "ns.adopt"}
	if _, _, err := EnsureTable(ctx, cat, cfg, testSchema(t, col{"id", "string", false}, col{"n", "int64", false})); err != nil {
		t.Fatal(err)
	}
	tbl, bound, err := EnsureTable(ctx, cat, cfg, protoSchema(t, []string{"id:string:1", "n:int64:2"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := loadSources(tbl.Properties())
	if n, _ := bound.Field("n"); len(stored) != 2 || stored["2"] != n.ID {
		t.Errorf("stored sources = %v, want id and n", stored)
	}
}
