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
			changes, err := SchemaChanges(testSchema(t, base...), testSchema(t, tt.next...))
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
