package schema

import (
	"reflect"
	"strings"
	"testing"

	"github.com/apache/iceberg-go"
)

// testColumn declares a top-level column in config syntax.
type testColumn struct {
	name, typ string
	required  bool
}

// newSchema builds a schema from config syntax, without field IDs.
func newSchema(tb testing.TB, cols ...testColumn) Schema {
	tb.Helper()
	var s Schema
	for _, c := range cols {
		s.Fields = append(s.Fields, Field{Name: c.name, Type: mustParseType(tb, c.typ), Required: c.required})
	}
	return s
}

// nestedColumns cover every nesting the layout supports.
var nestedColumns = []testColumn{
	{name: "id", typ: "int64", required: true},
	{name: "note", typ: "string"},
	{name: "tags", typ: "list<string>"},
	{name: "items", typ: "list<struct<a:int64>>"},
	{name: "geo", typ: "struct<b:list<string>>"},
	{name: "at", typ: "timestamptz(ms)", required: true},
	{name: "attrs", typ: "map<string,struct<c:int64,d:map<int32,string>>>"},
}

func TestAssignIDs(t *testing.T) {
	s := newSchema(t, nestedColumns...)
	s.AssignIDs()
	// As Iceberg's reference implementation numbers a new table: all fields
	// of a struct first, then depth first into each; a list's element when
	// its list is entered, a map's key and value when the map is entered.
	want := map[string][4]int{ // path → ID, ElemID, KeyID, ValueID
		"id": {1, 0, 0, 0}, "note": {2, 0, 0, 0}, "tags": {3, 8, 0, 0}, "items": {4, 9, 0, 0}, "geo": {5, 0, 0, 0},
		"at": {6, 0, 0, 0}, "attrs": {7, 0, 13, 14},
		"items.element.a": {10, 0, 0, 0}, "geo.b": {11, 12, 0, 0},
		"attrs.value.c": {15, 0, 0, 0}, "attrs.value.d": {16, 0, 17, 18},
	}
	got := map[string][4]int{}
	var walk func(prefix string, fs []Field)
	walk = func(prefix string, fs []Field) {
		for _, f := range fs {
			path := prefix + f.Name
			got[path] = [4]int{f.ID, f.ElemID, f.KeyID, f.ValueID}
			switch f.Type.Kind {
			case KindStruct:
				walk(path+".", f.Type.Fields)
			case KindList:
				if f.Type.Elem.Kind == KindStruct {
					walk(path+".element.", f.Type.Elem.Fields)
				}
			case KindMap:
				if f.Type.Elem.Kind == KindStruct {
					walk(path+".value.", f.Type.Elem.Fields)
				}
			}
		}
	}
	walk("", s.Fields)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("IDs = %v, want %v", got, want)
	}
}

func TestIcebergRoundTrip(t *testing.T) {
	s := newSchema(t, append(nestedColumns,
		testColumn{name: "amount", typ: "decimal(12,2)"},
		testColumn{name: "flag", typ: "bool", required: true},
		testColumn{name: "i32", typ: "int32"},
		testColumn{name: "f32", typ: "float32"},
		testColumn{name: "f64", typ: "float64"},
		testColumn{name: "day", typ: "date"},
		testColumn{name: "local", typ: "timestamp"},
		testColumn{name: "raw", typ: "binary"},
		testColumn{name: "deep", typ: "struct<x:struct<y:list<struct<z:decimal(30,4)>>>>"},
		testColumn{name: "counts", typ: "map<int64,int32>", required: true},
		testColumn{name: "deep_map", typ: "list<struct<m:map<decimal(20,0),struct<n:map<string,binary>>>>>"},
	)...)
	s.AssignIDs()
	is, err := s.Iceberg()
	if err != nil {
		t.Fatalf("Iceberg: %v", err)
	}
	// Every ID is unique and findable in the Iceberg schema.
	seen := map[int]string{}
	var check func(fs []Field, prefix string)
	check = func(fs []Field, prefix string) {
		for _, f := range fs {
			for _, id := range []int{f.ID, f.ElemID, f.KeyID, f.ValueID} {
				if id == 0 {
					continue
				}
				if prev, ok := seen[id]; ok {
					t.Errorf("field ID %d used by %s and %s", id, prev, prefix+f.Name)
				}
				seen[id] = prefix + f.Name
				if _, ok := is.FindFieldByID(id); !ok {
					t.Errorf("field ID %d (%s) not in the Iceberg schema", id, prefix+f.Name)
				}
			}
			t := f.Type
			if t.Kind == KindList || t.Kind == KindMap {
				t = *t.Elem
			}
			check(t.Fields, prefix+f.Name+".")
		}
	}
	check(s.Fields, "")
	if nf, ok := is.FindFieldByName("amount"); !ok || !nf.Type.Equals(iceberg.DecimalTypeOf(12, 2)) {
		t.Errorf("amount = %v, %t; want decimal(12,2)", nf, ok)
	}
	if nf, ok := is.FindFieldByName("id"); !ok || !nf.Required {
		t.Errorf("id = %v, %t; want required", nf, ok)
	}
	nf, _ := is.FindFieldByName("counts")
	if mt, ok := nf.Type.(*iceberg.MapType); !ok || !mt.KeyType.Equals(iceberg.PrimitiveTypes.Int64) ||
		!mt.ValueType.Equals(iceberg.PrimitiveTypes.Int32) || mt.ValueRequired || !nf.Required {
		t.Errorf("counts = %v; want a required map<long,int> with optional values", nf)
	}

	back, err := FromIceberg(is)
	if err != nil {
		t.Fatalf("FromIceberg: %v", err)
	}
	// Every type above reads ms timestamps, the unit FromIceberg assumes, so
	// the schema comes back exactly.
	if !reflect.DeepEqual(back, s) {
		t.Errorf("FromIceberg(Iceberg(s)):\n got %+v\nwant %+v", back, s)
	}
}

func TestIcebergNeedsIDs(t *testing.T) {
	tests := []struct {
		name    string
		s       func() Schema
		wantErr string
	}{
		{"no IDs", func() Schema { return newSchema(t, testColumn{name: "a", typ: "int64"}) }, "column a has no field ID"},
		{"no element ID", func() Schema {
			s := newSchema(t, testColumn{name: "tags", typ: "list<string>"})
			s.Fields[0].ID = 1
			return s
		}, "list element has no field ID"},
		{"no map IDs", func() Schema {
			s := newSchema(t, testColumn{name: "m", typ: "map<string,int64>"})
			s.Fields[0].ID = 1
			return s
		}, "map key or value has no field ID"},
		{"no map value ID", func() Schema {
			s := newSchema(t, testColumn{name: "m", typ: "map<string,int64>"})
			s.Fields[0].ID, s.Fields[0].KeyID = 1, 2
			return s
		}, "map key or value has no field ID"},
		{"map value member without ID", func() Schema {
			s := newSchema(t, testColumn{name: "m", typ: "map<string,struct<v:int64>>"})
			s.Fields[0].ID, s.Fields[0].KeyID, s.Fields[0].ValueID = 1, 2, 3
			return s
		}, "column v has no field ID"},
		{"nested member without ID", func() Schema {
			s := newSchema(t, testColumn{name: "geo", typ: "struct<b:int64>"})
			s.Fields[0].ID = 1
			return s
		}, "column b has no field ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.s().Iceberg(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Iceberg() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestFromIcebergUnsupported(t *testing.T) {
	tests := []struct {
		name    string
		field   iceberg.NestedField
		wantErr string
	}{
		{"map with a struct key", iceberg.NestedField{ID: 1, Name: "m", Type: &iceberg.MapType{
			KeyID: 2, KeyType: &iceberg.StructType{FieldList: []iceberg.NestedField{{ID: 4, Name: "k", Type: iceberg.PrimitiveTypes.String}}},
			ValueID: 3, ValueType: iceberg.PrimitiveTypes.Int64,
		}}, "column m: map keys must be primitive, not struct<k:string>"},
		{"map of lists", iceberg.NestedField{ID: 1, Name: "m", Type: &iceberg.MapType{
			KeyID: 2, KeyType: iceberg.PrimitiveTypes.String,
			ValueID: 3, ValueType: &iceberg.ListType{ElementID: 4, Element: iceberg.PrimitiveTypes.Int32},
		}}, "column m: maps of lists are not supported"},
		{"map of maps", iceberg.NestedField{ID: 1, Name: "m", Type: &iceberg.MapType{
			KeyID: 2, KeyType: iceberg.PrimitiveTypes.String,
			ValueID: 3, ValueType: &iceberg.MapType{KeyID: 4, KeyType: iceberg.PrimitiveTypes.String, ValueID: 5, ValueType: iceberg.PrimitiveTypes.String},
		}}, "column m: maps of maps are not supported"},
		{"map with an unsupported value", iceberg.NestedField{ID: 1, Name: "m", Type: &iceberg.MapType{
			KeyID: 2, KeyType: iceberg.PrimitiveTypes.String, ValueID: 3, ValueType: iceberg.PrimitiveTypes.UUID,
		}}, "m: column value: Iceberg type uuid is not supported"},
		{"list of maps", iceberg.NestedField{ID: 1, Name: "lm", Type: &iceberg.ListType{
			ElementID: 2, Element: &iceberg.MapType{KeyID: 3, KeyType: iceberg.PrimitiveTypes.String, ValueID: 4, ValueType: iceberg.PrimitiveTypes.String},
		}}, "column lm: lists of maps are not supported"},
		{"uuid", iceberg.NestedField{ID: 1, Name: "u", Type: iceberg.PrimitiveTypes.UUID}, "column u: Iceberg type uuid is not supported"},
		{"list of lists", iceberg.NestedField{ID: 1, Name: "ll", Type: &iceberg.ListType{
			ElementID: 2, Element: &iceberg.ListType{ElementID: 3, Element: iceberg.PrimitiveTypes.Int32},
		}}, "column ll: lists of lists are not supported"},
		{"nested unsupported", iceberg.NestedField{ID: 1, Name: "s", Type: &iceberg.StructType{FieldList: []iceberg.NestedField{
			{ID: 2, Name: "t", Type: iceberg.PrimitiveTypes.Time},
		}}}, "s: column t: Iceberg type time is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromIceberg(iceberg.NewSchema(0, tt.field))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("FromIceberg error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestBind(t *testing.T) {
	// The table numbers its fields differently from AssignIDs, as a catalog
	// that renumbers on create would.
	table := newSchema(t, nestedColumns...)
	table.AssignIDs()
	renumber(table.Fields, 100)

	cfg := newSchema(t, nestedColumns...)
	got, err := cfg.Bind(table)
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	if !reflect.DeepEqual(got, table) {
		t.Errorf("Bind:\n got %+v\nwant %+v", got, table)
	}
	// Bind returns a copy; the config schema keeps no IDs.
	if cfg.Fields[0].ID != 0 || cfg.Fields[3].Type.Elem.Fields[0].ID != 0 || cfg.Fields[4].Type.Fields[0].ElemID != 0 ||
		cfg.Fields[6].KeyID != 0 || cfg.Fields[6].Type.Elem.Fields[1].ValueID != 0 {
		t.Errorf("Bind wrote IDs into its receiver: %+v", cfg)
	}

	// A subset of optional columns binds; the columns keep config order.
	sub := newSchema(t, testColumn{name: "geo", typ: "struct<b:list<string>>"},
		testColumn{name: "id", typ: "int64", required: true}, testColumn{name: "at", typ: "timestamptz", required: true})
	got, err = sub.Bind(table)
	if err != nil {
		t.Fatalf("Bind subset: %v", err)
	}
	if got.Fields[0].Name != "geo" || got.Fields[0].ID != table.Fields[4].ID || got.Fields[1].ID != table.Fields[0].ID {
		t.Errorf("Bind subset = %+v", got)
	}
}

// renumber adds off to every ID in fs.
func renumber(fs []Field, off int) {
	for i := range fs {
		f := &fs[i]
		f.ID += off
		for _, id := range []*int{&f.ElemID, &f.KeyID, &f.ValueID} {
			if *id != 0 {
				*id += off
			}
		}
		renumber(f.Type.Fields, off)
		if f.Type.Elem != nil {
			renumber(f.Type.Elem.Fields, off)
		}
	}
}

func TestBindErrors(t *testing.T) {
	table := newSchema(t,
		testColumn{name: "id", typ: "int64", required: true},
		testColumn{name: "name", typ: "string"},
		testColumn{name: "tags", typ: "list<string>"},
		testColumn{name: "geo", typ: "struct<lat:float64,lon:float64>"},
		testColumn{name: "ts", typ: "timestamptz(ms)", required: true},
		testColumn{name: "attrs", typ: "map<string,string>"},
	)
	table.AssignIDs()
	tests := []struct {
		name     string
		cols     []testColumn
		wantErrs []string
	}{
		{
			name:     "missing column",
			cols:     []testColumn{{"id", "int64", true}, {"ts", "timestamptz", true}, {"extra", "string", false}},
			wantErrs: []string{"column extra is not in the table"},
		},
		{
			name:     "type mismatch",
			cols:     []testColumn{{"id", "int32", true}, {"ts", "timestamptz", true}},
			wantErrs: []string{"column id is int32 in config but int64 in the table"},
		},
		{
			name:     "nested type mismatch",
			cols:     []testColumn{{"id", "int64", true}, {"ts", "timestamptz", true}, {"geo", "struct<lat:float64>", false}},
			wantErrs: []string{"column geo is struct<lat:float64> in config but struct<lat:float64,lon:float64> in the table"},
		},
		{
			name:     "list element mismatch",
			cols:     []testColumn{{"id", "int64", true}, {"ts", "timestamptz", true}, {"tags", "list<binary>", false}},
			wantErrs: []string{"column tags is list<binary> in config but list<string> in the table"},
		},
		{
			name:     "map value mismatch",
			cols:     []testColumn{{"id", "int64", true}, {"ts", "timestamptz", true}, {"attrs", "map<string,int64>", false}},
			wantErrs: []string{"column attrs is map<string,int64> in config but map<string,string> in the table"},
		},
		{
			name:     "map key mismatch",
			cols:     []testColumn{{"id", "int64", true}, {"ts", "timestamptz", true}, {"attrs", "map<binary,string>", false}},
			wantErrs: []string{"column attrs is map<binary,string> in config but map<string,string> in the table"},
		},
		{
			name:     "timestamp zone mismatch",
			cols:     []testColumn{{"id", "int64", true}, {"ts", "timestamp", true}},
			wantErrs: []string{"column ts is timestamp(ms) in config but timestamptz(ms) in the table"},
		},
		{
			name:     "required in config, optional in table",
			cols:     []testColumn{{"id", "int64", true}, {"ts", "timestamptz", true}, {"name", "string", true}},
			wantErrs: []string{"column name: required is true in config but false in the table"},
		},
		{
			name:     "optional in config, required in table",
			cols:     []testColumn{{"id", "int64", false}, {"ts", "timestamptz", true}},
			wantErrs: []string{"column id: required is false in config but true in the table"},
		},
		{
			name:     "required table column not produced",
			cols:     []testColumn{{"id", "int64", true}},
			wantErrs: []string{"required table column ts is not produced by the stream"},
		},
		{
			name: "every difference is reported",
			cols: []testColumn{{"name", "int64", false}, {"extra", "string", false}},
			wantErrs: []string{
				"column name is int64 in config but string in the table",
				"column extra is not in the table",
				"required table column id is not produced by the stream",
				"required table column ts is not produced by the stream",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newSchema(t, tt.cols...).Bind(table)
			if err == nil {
				t.Fatalf("Bind succeeded, want errors %q", tt.wantErrs)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.wantErrs) {
				t.Errorf("Bind reported %d errors, want %d:\n%v", len(lines), len(tt.wantErrs), err)
			}
			for _, want := range tt.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Bind error does not mention %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestNewLayoutLevels(t *testing.T) {
	s := newSchema(t,
		testColumn{name: "req_i", typ: "int64", required: true},
		testColumn{name: "opt_s", typ: "string"},
		testColumn{name: "tags", typ: "list<string>"},
		testColumn{name: "req_tags", typ: "list<int32>", required: true},
		testColumn{name: "items", typ: "list<struct<a:int64>>"},
		testColumn{name: "geo", typ: "struct<b:list<string>>"},
		testColumn{name: "pair", typ: "struct<z:bool,y:decimal(20,2)>"},
		testColumn{name: "m", typ: "map<string,int64>"},
		testColumn{name: "req_m", typ: "map<int32,struct<x:list<string>,y:map<bool,date>>>", required: true},
	)
	s.AssignIDs()
	l := NewLayout(s, "test")

	// Levels worked out by hand from the Parquet list encoding: an optional
	// field adds a definition level, the repeated "list" group adds one
	// definition and one repetition level, and the element is optional; the
	// "key_value" group of a map does the same, its key is required and its
	// value optional.
	type levels struct{ def, rep int }
	want := map[string]levels{
		"req_i":                 {0, 0},
		"opt_s":                 {1, 0},
		"tags.list.element":     {3, 1},
		"req_tags.list.element": {2, 1},
		"items.list.element.a":  {4, 1},
		"geo.b.list.element":    {4, 1},
		"pair.y":                {2, 0},
		"pair.z":                {2, 0},
		"m.key_value.key":       {2, 1},
		"m.key_value.value":     {3, 1},
		"req_m.key_value.key":   {1, 1},
		// value 2, x 3, list 4, element 5.
		"req_m.key_value.value.x.list.element": {5, 2},
		// value 2, y 3, key_value 4; key 4, value 5.
		"req_m.key_value.value.y.key_value.key":   {4, 2},
		"req_m.key_value.value.y.key_value.value": {5, 2},
	}

	got := map[string]levels{}
	var columns []int
	var walk func(n *Node, path []string, rep int)
	walk = func(n *Node, path []string, rep int) {
		if n.Field.Type.Kind == KindList {
			if n.Rep != rep+1 {
				t.Errorf("%s: Rep = %d, want %d", strings.Join(path, "."), n.Rep, rep+1)
			}
			rep = n.Rep
			if len(n.Children) != 1 {
				t.Fatalf("%s: %d children, want the element", strings.Join(path, "."), len(n.Children))
			}
			walk(n.Children[0], append(path, "list", "element"), rep)
			return
		}
		if n.Field.Type.Kind == KindMap {
			key := strings.Join(path, ".")
			if n.Rep != rep+1 {
				t.Errorf("%s: Rep = %d, want %d", key, n.Rep, rep+1)
			}
			if len(n.Children) != 2 || n.Children[0].Field.Name != "key" || n.Children[1].Field.Name != "value" ||
				!n.Children[0].Field.Required || n.Children[1].Field.Required {
				t.Fatalf("%s: children %v, want a required key and an optional value", key, n.Children)
			}
			if n.Children[0].Field.ID != n.Field.KeyID || n.Children[1].Field.ID != n.Field.ValueID || n.Field.KeyID == 0 {
				t.Errorf("%s: children IDs %d, %d, want KeyID %d, ValueID %d", key,
					n.Children[0].Field.ID, n.Children[1].Field.ID, n.Field.KeyID, n.Field.ValueID)
			}
			walk(n.Children[0], append(path[:len(path):len(path)], "key_value", "key"), n.Rep)
			walk(n.Children[1], append(path[:len(path):len(path)], "key_value", "value"), n.Rep)
			return
		}
		if n.Field.Type.Kind == KindStruct {
			for i, c := range n.Children {
				if i > 0 && n.Children[i-1].Field.Name >= c.Field.Name {
					t.Errorf("%s: children not in name order", strings.Join(path, "."))
				}
				walk(c, append(path[:len(path):len(path)], c.Field.Name), rep)
			}
			return
		}
		key := strings.Join(path, ".")
		leaf, ok := l.Parquet.Lookup(path...)
		if !ok {
			t.Fatalf("%s: not a leaf of the parquet schema", key)
		}
		if n.Column != leaf.ColumnIndex {
			t.Errorf("%s: Column = %d, parquet says %d", key, n.Column, leaf.ColumnIndex)
		}
		if n.Def != leaf.MaxDefinitionLevel {
			t.Errorf("%s: Def = %d, parquet MaxDefinitionLevel = %d", key, n.Def, leaf.MaxDefinitionLevel)
		}
		if rep != leaf.MaxRepetitionLevel {
			t.Errorf("%s: repetition level of the enclosing list = %d, parquet MaxRepetitionLevel = %d", key, rep, leaf.MaxRepetitionLevel)
		}
		if !reflect.DeepEqual(n.Leaves, []int{n.Column}) {
			t.Errorf("%s: Leaves = %v, want [%d]", key, n.Leaves, n.Column)
		}
		got[key] = levels{n.Def, rep}
		columns = append(columns, n.Column)
	}
	for _, n := range l.Top {
		before := len(columns)
		walk(n, []string{n.Field.Name}, 0)
		if !reflect.DeepEqual(n.Leaves, columns[before:]) {
			t.Errorf("%s: Leaves = %v, want %v", n.Field.Name, n.Leaves, columns[before:])
		}
		if l.ByName[n.Field.Name] != n {
			t.Errorf("ByName[%s] is not the Top node", n.Field.Name)
		}
		if s.Fields[n.Index].Name != n.Field.Name {
			t.Errorf("%s: Index %d names %s", n.Field.Name, n.Index, s.Fields[n.Index].Name)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("levels = %v\nwant %v", got, want)
	}
	// Top is in column order, so the leaves of a walk are 0..n-1.
	for i, c := range columns {
		if c != i {
			t.Fatalf("leaf columns in Top order = %v, want 0..%d", columns, l.NumColumns-1)
		}
	}
	if l.NumColumns != len(want) || len(l.Parquet.Columns()) != len(want) {
		t.Errorf("NumColumns = %d, parquet has %d, want %d", l.NumColumns, len(l.Parquet.Columns()), len(want))
	}
	if l.Flat {
		t.Error("Flat = true for a schema with lists and structs")
	}
	// Field IDs of a map's key and value reach the Parquet schema.
	for _, p := range [][]string{{"m", "key_value", "key"}, {"m", "key_value", "value"}} {
		leaf, _ := l.Parquet.Lookup(p...)
		want := l.ByName["m"].Field.KeyID
		if p[2] == "value" {
			want = l.ByName["m"].Field.ValueID
		}
		if id := leaf.Node.ID(); id != want || id == 0 {
			t.Errorf("parquet field ID of %s = %d, want %d", strings.Join(p, "."), id, want)
		}
	}
}

func TestNewLayoutMapOnly(t *testing.T) {
	s := newSchema(t, testColumn{name: "m", typ: "map<string,string>"})
	s.AssignIDs()
	if l := NewLayout(s, "m"); l.Flat || l.NumColumns != 2 || !reflect.DeepEqual(l.Top[0].Leaves, []int{0, 1}) {
		t.Errorf("layout of a map: Flat %t, %d columns, leaves %v", l.Flat, l.NumColumns, l.Top[0].Leaves)
	}
}

func TestNewLayoutFlat(t *testing.T) {
	s := newSchema(t,
		testColumn{name: "z", typ: "int64", required: true},
		testColumn{name: "a", typ: "string"},
		testColumn{name: "m", typ: "decimal(30,2)"},
	)
	s.AssignIDs()
	l := NewLayout(s, "flat")
	if !l.Flat {
		t.Error("Flat = false for top-level primitives only")
	}
	var names []string
	for i, n := range l.Top {
		names = append(names, n.Field.Name)
		if n.Column != i || n.Def != map[bool]int{true: 0, false: 1}[n.Field.Required] {
			t.Errorf("%s: Column %d Def %d", n.Field.Name, n.Column, n.Def)
		}
	}
	// Parquet orders the columns of a group by name.
	if want := []string{"a", "m", "z"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Top order = %v, want %v", names, want)
	}
	if l.ByName["z"].Index != 0 || l.ByName["a"].Index != 1 {
		t.Errorf("Index does not point into Schema.Fields")
	}
	// Field IDs reach the Parquet schema, so readers can match by ID.
	leaf, _ := l.Parquet.Lookup("z")
	if id := leaf.Node.ID(); id != 1 {
		t.Errorf("parquet field ID of z = %d, want 1", id)
	}
}

func TestDecimalBytes(t *testing.T) {
	tests := []struct{ precision, want int }{
		{1, 1}, {2, 1}, {3, 2}, {4, 2}, {9, 4}, {10, 5}, {18, 8}, {19, 9}, {20, 9}, {38, 16},
	}
	for _, tt := range tests {
		if got := DecimalBytes(tt.precision); got != tt.want {
			t.Errorf("DecimalBytes(%d) = %d, want %d", tt.precision, got, tt.want)
		}
	}
}
