package schema

import (
	"errors"
	"fmt"
	"sort"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
)

// Schema is an ordered list of top-level columns.
type Schema struct {
	Fields []Field
}

// Field returns the top-level field with the given name.
func (s Schema) Field(name string) (Field, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// AssignIDs numbers fields the way Iceberg's reference implementation does
// for a new table: all fields of a struct first, then depth first into each
// one; a list's element, and a map's key then value, are numbered when the
// list or map is entered (as Java's AssignFreshIds does). The catalog
// may renumber on create; Bind takes the table's numbering afterwards, and
// no file is written before that.
func (s *Schema) AssignIDs() {
	next := 1
	assignStruct(s.Fields, &next)
}

func assignStruct(fs []Field, next *int) {
	for i := range fs {
		fs[i].ID = *next
		*next++
	}
	for i := range fs {
		assignNested(&fs[i], next)
	}
}

func assignNested(f *Field, next *int) {
	switch f.Type.Kind {
	case KindStruct:
		assignStruct(f.Type.Fields, next)
	case KindList:
		f.ElemID = *next
		*next++
		if f.Type.Elem.Kind == KindStruct {
			assignStruct(f.Type.Elem.Fields, next)
		}
	case KindMap:
		f.KeyID = *next
		f.ValueID = *next + 1
		*next += 2
		// Keys are primitive; only a struct value has fields to number.
		if f.Type.Elem.Kind == KindStruct {
			assignStruct(f.Type.Elem.Fields, next)
		}
	}
}

// Iceberg returns the Iceberg form of s. IDs must have been assigned.
func (s Schema) Iceberg() (*iceberg.Schema, error) {
	fields := make([]iceberg.NestedField, len(s.Fields))
	for i, f := range s.Fields {
		nf, err := icebergField(f)
		if err != nil {
			return nil, err
		}
		fields[i] = nf
	}
	return iceberg.NewSchema(0, fields...), nil
}

func icebergField(f Field) (iceberg.NestedField, error) {
	if f.ID == 0 {
		return iceberg.NestedField{}, fmt.Errorf("column %s has no field ID", f.Name)
	}
	t, err := icebergType(f)
	if err != nil {
		return iceberg.NestedField{}, fmt.Errorf("column %s: %w", f.Name, err)
	}
	return iceberg.NestedField{ID: f.ID, Name: f.Name, Type: t, Required: f.Required}, nil
}

func icebergType(f Field) (iceberg.Type, error) {
	t := f.Type
	switch t.Kind {
	case KindString:
		return iceberg.PrimitiveTypes.String, nil
	case KindBool:
		return iceberg.PrimitiveTypes.Bool, nil
	case KindInt32:
		return iceberg.PrimitiveTypes.Int32, nil
	case KindInt64:
		return iceberg.PrimitiveTypes.Int64, nil
	case KindFloat32:
		return iceberg.PrimitiveTypes.Float32, nil
	case KindFloat64:
		return iceberg.PrimitiveTypes.Float64, nil
	case KindDecimal:
		return iceberg.DecimalTypeOf(t.Precision, t.Scale), nil
	case KindDate:
		return iceberg.PrimitiveTypes.Date, nil
	case KindTimestamp:
		return iceberg.PrimitiveTypes.Timestamp, nil
	case KindTimestampTZ:
		return iceberg.PrimitiveTypes.TimestampTz, nil
	case KindBinary:
		return iceberg.PrimitiveTypes.Binary, nil
	case KindList:
		if f.ElemID == 0 {
			return nil, errors.New("list element has no field ID")
		}
		elemField := Field{Name: "element", Type: *t.Elem, ID: f.ElemID}
		et, err := icebergType(elemField)
		if err != nil {
			return nil, err
		}
		return &iceberg.ListType{ElementID: f.ElemID, Element: et, ElementRequired: false}, nil
	case KindMap:
		if f.KeyID == 0 || f.ValueID == 0 {
			return nil, errors.New("map key or value has no field ID")
		}
		kt, err := icebergType(Field{Name: "key", Type: *t.Key, ID: f.KeyID})
		if err != nil {
			return nil, err
		}
		vt, err := icebergType(Field{Name: "value", Type: *t.Elem, ID: f.ValueID})
		if err != nil {
			return nil, err
		}
		// Values are optional, like list elements: the Parquet form below
		// declares them so.
		return &iceberg.MapType{KeyID: f.KeyID, KeyType: kt, ValueID: f.ValueID, ValueType: vt, ValueRequired: false}, nil
	case KindStruct:
		st := &iceberg.StructType{}
		for _, c := range t.Fields {
			nf, err := icebergField(c)
			if err != nil {
				return nil, err
			}
			st.FieldList = append(st.FieldList, nf)
		}
		return st, nil
	}
	return nil, fmt.Errorf("type %s has no Iceberg form", t)
}

// FromIceberg converts a table schema to a Schema (timestamps read as
// milliseconds when numeric, the config default).
func FromIceberg(s *iceberg.Schema) (Schema, error) {
	var out Schema
	for _, nf := range s.Fields() {
		f, err := fromIcebergField(nf)
		if err != nil {
			return Schema{}, err
		}
		out.Fields = append(out.Fields, f)
	}
	return out, nil
}

func fromIcebergField(nf iceberg.NestedField) (Field, error) {
	f := Field{Name: nf.Name, ID: nf.ID, Required: nf.Required}
	switch t := nf.Type.(type) {
	case iceberg.StringType:
		f.Type.Kind = KindString
	case iceberg.BooleanType:
		f.Type.Kind = KindBool
	case iceberg.Int32Type:
		f.Type.Kind = KindInt32
	case iceberg.Int64Type:
		f.Type.Kind = KindInt64
	case iceberg.Float32Type:
		f.Type.Kind = KindFloat32
	case iceberg.Float64Type:
		f.Type.Kind = KindFloat64
	case iceberg.DecimalType:
		f.Type = Type{Kind: KindDecimal, Precision: t.Precision(), Scale: t.Scale()}
	case iceberg.DateType:
		f.Type.Kind = KindDate
	case iceberg.TimestampType:
		f.Type.Kind = KindTimestamp
	case iceberg.TimestampTzType:
		f.Type.Kind = KindTimestampTZ
	case iceberg.BinaryType:
		f.Type.Kind = KindBinary
	case *iceberg.ListType:
		ef, err := fromIcebergField(iceberg.NestedField{ID: t.ElementID, Name: "element", Type: t.Element})
		if err != nil {
			return Field{}, fmt.Errorf("%s: %w", nf.Name, err)
		}
		switch ef.Type.Kind {
		case KindList:
			return Field{}, fmt.Errorf("column %s: lists of lists are not supported", nf.Name)
		case KindMap:
			return Field{}, fmt.Errorf("column %s: lists of maps are not supported", nf.Name)
		}
		f.ElemID = t.ElementID
		elem := ef.Type
		f.Type = Type{Kind: KindList, Elem: &elem}
	case *iceberg.MapType:
		kf, err := fromIcebergField(iceberg.NestedField{ID: t.KeyID, Name: "key", Type: t.KeyType, Required: true})
		if err != nil {
			return Field{}, fmt.Errorf("%s: %w", nf.Name, err)
		}
		if !kf.Type.IsPrimitive() {
			return Field{}, fmt.Errorf("column %s: map keys must be primitive, not %s", nf.Name, kf.Type)
		}
		vf, err := fromIcebergField(iceberg.NestedField{ID: t.ValueID, Name: "value", Type: t.ValueType})
		if err != nil {
			return Field{}, fmt.Errorf("%s: %w", nf.Name, err)
		}
		if err := checkMapValue(vf.Type); err != nil {
			return Field{}, fmt.Errorf("column %s: %w", nf.Name, err)
		}
		// Like ListType.ElementRequired, ValueRequired is not part of Type:
		// values are always written as optional.
		f.KeyID, f.ValueID = t.KeyID, t.ValueID
		key, value := kf.Type, vf.Type
		f.Type = Type{Kind: KindMap, Key: &key, Elem: &value}
	case *iceberg.StructType:
		f.Type.Kind = KindStruct
		for _, c := range t.FieldList {
			cf, err := fromIcebergField(c)
			if err != nil {
				return Field{}, fmt.Errorf("%s: %w", nf.Name, err)
			}
			f.Type.Fields = append(f.Type.Fields, cf)
		}
	default:
		return Field{}, fmt.Errorf("column %s: Iceberg type %s is not supported", nf.Name, nf.Type)
	}
	return f, nil
}

// Bind copies the field IDs of an existing table schema onto s, which must
// describe the same columns. Every difference is reported.
func (s Schema) Bind(table Schema) (Schema, error) {
	var errs []error
	out := Schema{Fields: make([]Field, len(s.Fields))}
	for i, f := range s.Fields {
		tf, ok := table.Field(f.Name)
		if !ok {
			errs = append(errs, fmt.Errorf("column %s is not in the table", f.Name))
			continue
		}
		if !f.Type.Equal(tf.Type) {
			errs = append(errs, fmt.Errorf("column %s is %s in config but %s in the table", f.Name, f.Type, tf.Type))
			continue
		}
		if f.Required != tf.Required {
			errs = append(errs, fmt.Errorf("column %s: required is %t in config but %t in the table", f.Name, f.Required, tf.Required))
			continue
		}
		out.Fields[i] = copyIDs(f, tf)
	}
	for _, tf := range table.Fields {
		if _, ok := s.Field(tf.Name); !ok && tf.Required {
			errs = append(errs, fmt.Errorf("required table column %s is not produced by the stream", tf.Name))
		}
	}
	return out, errors.Join(errs...)
}

func copyIDs(f, from Field) Field {
	f.ID, f.ElemID, f.KeyID, f.ValueID = from.ID, from.ElemID, from.KeyID, from.ValueID
	t := f.Type
	switch t.Kind {
	case KindStruct:
		fields := make([]Field, len(t.Fields))
		for i := range t.Fields {
			fields[i] = copyIDs(t.Fields[i], from.Type.Fields[i])
		}
		t.Fields = fields
	case KindList, KindMap:
		// A map's key is primitive: it has no IDs below it.
		elem := copyIDs(Field{Type: *t.Elem}, Field{Type: *from.Type.Elem}).Type
		t.Elem = &elem
	}
	f.Type = t
	return f
}

// DecimalBytes is the width of the fixed-length binary used for decimals too
// wide for int64.
func DecimalBytes(precision int) int {
	// Smallest n with 10^precision - 1 <= 2^(8n-1) - 1.
	n := 1
	for ; n < 17; n++ {
		if float64(precision) <= float64(8*n-1)*0.30102999566398120 {
			break
		}
	}
	return n
}

// Parquet returns the Parquet form of s with Iceberg field IDs, so engines
// that read by ID (every Iceberg reader) find the columns after renames.
func (s Schema) Parquet(name string) *parquet.Schema {
	g := parquet.Group{}
	for _, f := range s.Fields {
		g[f.Name] = parquetField(f)
	}
	return parquet.NewSchema(name, g)
}

func parquetField(f Field) parquet.Node {
	n := parquetType(f)
	if f.Required {
		n = parquet.Required(n)
	} else {
		n = parquet.Optional(n)
	}
	if f.ID != 0 {
		n = parquet.FieldID(n, f.ID)
	}
	return n
}

func parquetType(f Field) parquet.Node {
	t := f.Type
	switch t.Kind {
	case KindString:
		return parquet.String()
	case KindBool:
		return parquet.Leaf(parquet.BooleanType)
	case KindInt32:
		return parquet.Int(32)
	case KindInt64:
		return parquet.Int(64)
	case KindFloat32:
		return parquet.Leaf(parquet.FloatType)
	case KindFloat64:
		return parquet.Leaf(parquet.DoubleType)
	case KindDecimal:
		switch {
		case t.Precision <= 9:
			return parquet.Decimal(t.Scale, t.Precision, parquet.Int32Type)
		case t.Precision <= 18:
			return parquet.Decimal(t.Scale, t.Precision, parquet.Int64Type)
		default:
			return parquet.Decimal(t.Scale, t.Precision, parquet.FixedLenByteArrayType(DecimalBytes(t.Precision)))
		}
	case KindDate:
		return parquet.Date()
	case KindTimestamp:
		return parquet.TimestampAdjusted(parquet.Microsecond, false)
	case KindTimestampTZ:
		return parquet.TimestampAdjusted(parquet.Microsecond, true)
	case KindBinary:
		return parquet.Leaf(parquet.ByteArrayType)
	case KindList:
		return parquet.List(parquetField(Field{Name: "element", Type: *t.Elem, ID: f.ElemID}))
	case KindMap:
		return parquet.Map(
			parquetField(Field{Name: "key", Type: *t.Key, ID: f.KeyID, Required: true}),
			parquetField(Field{Name: "value", Type: *t.Elem, ID: f.ValueID}))
	case KindStruct:
		g := parquet.Group{}
		for _, c := range t.Fields {
			g[c.Name] = parquetField(c)
		}
		return g
	}
	panic(fmt.Sprintf("schema: no parquet form for %s", t)) // unreachable: ParseType admits only the kinds above
}

// Node is one field of a Layout: where its values go in a parquet.Row.
// Children are in Parquet column order (by name), which is the order their
// values must appear in a row.
type Node struct {
	Field Field
	// Column is the leaf column index (primitives only).
	Column int
	// Def is the definition level when this field is present and not null.
	Def int
	// Rep is the repetition level of a new element of this list or entry
	// of this map (lists and maps only).
	Rep int
	// Children: struct members by name, the single element of a list, or
	// the key and the value of a map (in that order, which is column order).
	// A map's key is required and its value optional.
	Children []*Node
	// Leaves are the column indexes of every leaf at or below this node, in order.
	Leaves []int
	// Index is the position of a top-level field in Schema.Fields.
	Index int
}

// Layout maps a schema onto the leaf columns of its Parquet form.
type Layout struct {
	Schema  Schema
	Parquet *parquet.Schema
	// Top holds the top-level fields in Parquet column order.
	Top []*Node
	// ByName finds a top-level field.
	ByName map[string]*Node
	// NumColumns is the number of leaf columns.
	NumColumns int
	// Flat is true when every column is a top-level primitive, so a row has
	// exactly one value per column at the column's index.
	Flat bool
}

// NewLayout builds the Parquet schema of s and the row layout.
func NewLayout(s Schema, name string) *Layout {
	ps := s.Parquet(name)
	l := &Layout{Schema: s, Parquet: ps, ByName: map[string]*Node{}, NumColumns: len(ps.Columns()), Flat: true}
	for i, f := range s.Fields {
		n := buildNode(ps, []string{f.Name}, f, 0, 0)
		n.Index = i
		l.Top = append(l.Top, n)
		l.ByName[f.Name] = n
		if !f.Type.IsPrimitive() {
			l.Flat = false
		}
	}
	sort.Slice(l.Top, func(i, j int) bool { return l.Top[i].Leaves[0] < l.Top[j].Leaves[0] })
	return l
}

func buildNode(ps *parquet.Schema, path []string, f Field, parentDef, parentRep int) *Node {
	n := &Node{Field: f, Def: parentDef}
	if !f.Required {
		n.Def++
	}
	switch f.Type.Kind {
	case KindStruct:
		kids := append([]Field(nil), f.Type.Fields...)
		sort.Slice(kids, func(i, j int) bool { return kids[i].Name < kids[j].Name })
		for _, c := range kids {
			cn := buildNode(ps, append(path[:len(path):len(path)], c.Name), c, n.Def, parentRep)
			n.Children = append(n.Children, cn)
			n.Leaves = append(n.Leaves, cn.Leaves...)
		}
	case KindList:
		n.Rep = parentRep + 1
		ef := Field{Name: "element", Type: *f.Type.Elem, ID: f.ElemID}
		// The repeated "list" group adds one definition level.
		cn := buildNode(ps, append(path[:len(path):len(path)], "list", "element"), ef, n.Def+1, n.Rep)
		n.Children = []*Node{cn}
		n.Leaves = cn.Leaves
	case KindMap:
		n.Rep = parentRep + 1
		// The repeated "key_value" group adds one definition level; the key
		// is required and adds none, the value is optional and adds one.
		kv := append(path[:len(path):len(path)], "key_value")
		kf := Field{Name: "key", Type: *f.Type.Key, ID: f.KeyID, Required: true}
		vf := Field{Name: "value", Type: *f.Type.Elem, ID: f.ValueID}
		kn := buildNode(ps, append(kv[:len(kv):len(kv)], "key"), kf, n.Def+1, n.Rep)
		vn := buildNode(ps, append(kv[:len(kv):len(kv)], "value"), vf, n.Def+1, n.Rep)
		n.Children = []*Node{kn, vn}
		n.Leaves = append(append([]int(nil), kn.Leaves...), vn.Leaves...)
	default:
		leaf, ok := ps.Lookup(path...)
		if !ok {
			panic(fmt.Sprintf("schema: column %v missing from its own parquet schema", path))
		}
		n.Column = leaf.ColumnIndex
		n.Leaves = []int{leaf.ColumnIndex}
	}
	return n
}
