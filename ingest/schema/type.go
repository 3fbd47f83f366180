// Package schema describes the columns a stream declares in its pipeline config
// and maps them to their Iceberg and Parquet forms. Parsers, the ETL stage and
// the Parquet writers all agree on rows through the Layout built here.
package schema

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind is the logical type of a column.
type Kind uint8

// The kinds a column may have. Timestamps are stored with microsecond
// precision (the finest Iceberg v2 supports); Unit only says how numeric JSON
// input is read.
const (
	KindInvalid Kind = iota
	KindString
	KindBool
	KindInt32
	KindInt64
	KindFloat32
	KindFloat64
	KindDecimal
	KindDate
	KindTimestamp   // without zone
	KindTimestampTZ // instant, adjusted to UTC
	KindBinary
	KindList
	KindStruct
	KindMap
)

// TimeUnit is the unit numeric timestamp input is expressed in.
type TimeUnit uint8

// Time units for numeric timestamp input.
const (
	Millis TimeUnit = iota
	Micros
)

// Type is a column type as declared in config, for example "int64",
// "decimal(12,2)", "timestamptz(us)", "list<string>", "map<string,int64>" or
// "struct<id:int64,tags:list<string>>".
//
// The IDs of a list's element and of a map's key and value are kept in the
// Field holding the list or map, so a list element or map value has no
// Field of its own to number a nested list or map: lists and map values
// may hold primitives and structs (which may hold anything), but not lists
// or maps directly. Map keys are primitive, as Iceberg and Parquet require
// of engines in practice (Spark, Trino and Flink reject other keys).
type Type struct {
	Kind      Kind
	Precision int      // decimal
	Scale     int      // decimal
	Unit      TimeUnit // timestamps
	Key       *Type    // map key: always primitive
	Elem      *Type    // list element or map value
	Fields    []Field  // struct, in declaration order
}

// Field is a named column or struct member.
type Field struct {
	Name     string
	Type     Type
	Required bool
	// ID is the Iceberg field ID. Zero until bound to a table. For lists,
	// ElemID is the ID of the element; for maps, KeyID and ValueID are the
	// IDs of the key and the value (ElemID stays zero).
	ID      int
	ElemID  int
	KeyID   int
	ValueID int
	// Source names the field in its record format where the format has a
	// name that survives renames: a protobuf field's number. Empty for
	// JSON columns and computed ones. Tables remember it per column so a
	// renamed field keeps writing its column (see sinks/iceberg).
	Source string
}

// IsPrimitive reports whether t has no children.
func (t Type) IsPrimitive() bool {
	return t.Kind != KindList && t.Kind != KindStruct && t.Kind != KindMap
}

// IsTimestamp reports whether t is one of the timestamp kinds.
func (t Type) IsTimestamp() bool { return t.Kind == KindTimestamp || t.Kind == KindTimestampTZ }

// String renders t in the syntax ParseType accepts.
func (t Type) String() string {
	switch t.Kind {
	case KindString:
		return "string"
	case KindBool:
		return "bool"
	case KindInt32:
		return "int32"
	case KindInt64:
		return "int64"
	case KindFloat32:
		return "float32"
	case KindFloat64:
		return "float64"
	case KindDecimal:
		return fmt.Sprintf("decimal(%d,%d)", t.Precision, t.Scale)
	case KindDate:
		return "date"
	case KindTimestamp, KindTimestampTZ:
		name := "timestamp"
		if t.Kind == KindTimestampTZ {
			name = "timestamptz"
		}
		if t.Unit == Micros {
			return name + "(us)"
		}
		return name + "(ms)"
	case KindBinary:
		return "binary"
	case KindList:
		return "list<" + t.Elem.String() + ">"
	case KindMap:
		return "map<" + t.Key.String() + "," + t.Elem.String() + ">"
	case KindStruct:
		var b strings.Builder
		b.WriteString("struct<")
		for i, f := range t.Fields {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(f.Name)
			b.WriteByte(':')
			b.WriteString(f.Type.String())
		}
		b.WriteByte('>')
		return b.String()
	}
	return "invalid"
}

// Equal reports whether two types are the same, ignoring field IDs and the
// numeric input unit of timestamps (which is not part of the stored type).
func (t Type) Equal(o Type) bool {
	if t.Kind != o.Kind {
		return false
	}
	switch t.Kind {
	case KindDecimal:
		return t.Precision == o.Precision && t.Scale == o.Scale
	case KindList:
		if t.Elem == nil || o.Elem == nil {
			return t.Elem == o.Elem
		}
		return t.Elem.Equal(*o.Elem)
	case KindMap:
		return equalPtr(t.Key, o.Key) && equalPtr(t.Elem, o.Elem)
	case KindStruct:
		if len(t.Fields) != len(o.Fields) {
			return false
		}
		for i := range t.Fields {
			a, b := t.Fields[i], o.Fields[i]
			if a.Name != b.Name || a.Required != b.Required || !a.Type.Equal(b.Type) {
				return false
			}
		}
		return true
	}
	return true
}

func equalPtr(a, b *Type) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// MaxDecimalPrecision is the largest precision Iceberg allows.
const MaxDecimalPrecision = 38

// ParseType parses the config syntax of a column type.
func ParseType(s string) (Type, error) {
	p := typeParser{s: s}
	t, err := p.parse()
	if err != nil {
		return Type{}, err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return Type{}, fmt.Errorf("unexpected %q after type in %q", p.s[p.i:], s)
	}
	return t, nil
}

type typeParser struct {
	s string
	i int
}

func (p *typeParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *typeParser) ident() string {
	p.skipSpace()
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			p.i++
			continue
		}
		break
	}
	return p.s[start:p.i]
}

func (p *typeParser) expect(c byte) error {
	p.skipSpace()
	if p.i >= len(p.s) || p.s[p.i] != c {
		return fmt.Errorf("expected %q at offset %d in %q", c, p.i, p.s)
	}
	p.i++
	return nil
}

func (p *typeParser) peek(c byte) bool {
	p.skipSpace()
	return p.i < len(p.s) && p.s[p.i] == c
}

func (p *typeParser) int() (int, error) {
	n := p.ident()
	v, err := strconv.Atoi(n)
	if err != nil {
		return 0, fmt.Errorf("expected a number at offset %d in %q", p.i-len(n), p.s)
	}
	return v, nil
}

var primitiveKinds = map[string]Kind{
	"string": KindString, "bool": KindBool, "boolean": KindBool,
	"int32": KindInt32, "int": KindInt32, "int64": KindInt64, "long": KindInt64,
	"float32": KindFloat32, "float": KindFloat32, "float64": KindFloat64, "double": KindFloat64,
	"date": KindDate, "binary": KindBinary, "bytes": KindBinary,
}

func (p *typeParser) parse() (Type, error) {
	name := strings.ToLower(p.ident())
	if name == "" {
		return Type{}, fmt.Errorf("expected a type name at offset %d in %q", p.i, p.s)
	}
	if k, ok := primitiveKinds[name]; ok {
		return Type{Kind: k}, nil
	}
	switch name {
	case "decimal":
		if err := p.expect('('); err != nil {
			return Type{}, err
		}
		prec, err := p.int()
		if err != nil {
			return Type{}, err
		}
		if err := p.expect(','); err != nil {
			return Type{}, err
		}
		scale, err := p.int()
		if err != nil {
			return Type{}, err
		}
		if err := p.expect(')'); err != nil {
			return Type{}, err
		}
		if prec < 1 || prec > MaxDecimalPrecision {
			return Type{}, fmt.Errorf("decimal precision %d out of range 1..%d", prec, MaxDecimalPrecision)
		}
		if scale < 0 || scale > prec {
			return Type{}, fmt.Errorf("decimal scale %d out of range 0..%d", scale, prec)
		}
		return Type{Kind: KindDecimal, Precision: prec, Scale: scale}, nil
	case "timestamp", "timestamptz":
		t := Type{Kind: KindTimestamp}
		if name == "timestamptz" {
			t.Kind = KindTimestampTZ
		}
		if p.peek('(') {
			p.i++
			// Units are case-insensitive like type names: "TIMESTAMP(MS)".
			switch u := strings.ToLower(p.ident()); u {
			case "ms":
				t.Unit = Millis
			case "us":
				t.Unit = Micros
			default:
				return Type{}, fmt.Errorf("timestamp unit %q is not ms or us", u)
			}
			if err := p.expect(')'); err != nil {
				return Type{}, err
			}
		}
		return t, nil
	case "list", "array":
		if err := p.expect('<'); err != nil {
			return Type{}, err
		}
		elem, err := p.parse()
		if err != nil {
			return Type{}, err
		}
		switch elem.Kind {
		case KindList:
			return Type{}, fmt.Errorf("lists of lists are not supported in %q", p.s)
		case KindMap:
			return Type{}, fmt.Errorf("lists of maps are not supported in %q", p.s)
		}
		if err := p.expect('>'); err != nil {
			return Type{}, err
		}
		return Type{Kind: KindList, Elem: &elem}, nil
	case "map":
		if err := p.expect('<'); err != nil {
			return Type{}, err
		}
		key, err := p.parse()
		if err != nil {
			return Type{}, err
		}
		if !key.IsPrimitive() {
			return Type{}, fmt.Errorf("map keys must be primitive, not %s, in %q", key, p.s)
		}
		if err := p.expect(','); err != nil {
			return Type{}, err
		}
		value, err := p.parse()
		if err != nil {
			return Type{}, err
		}
		if err := checkMapValue(value); err != nil {
			return Type{}, fmt.Errorf("%w in %q", err, p.s)
		}
		if err := p.expect('>'); err != nil {
			return Type{}, err
		}
		return Type{Kind: KindMap, Key: &key, Elem: &value}, nil
	case "struct":
		if err := p.expect('<'); err != nil {
			return Type{}, err
		}
		t := Type{Kind: KindStruct}
		seen := map[string]bool{}
		for {
			fname := p.ident()
			if fname == "" {
				return Type{}, fmt.Errorf("expected a field name at offset %d in %q", p.i, p.s)
			}
			if seen[fname] {
				return Type{}, fmt.Errorf("duplicate struct field %q in %q", fname, p.s)
			}
			seen[fname] = true
			if err := p.expect(':'); err != nil {
				return Type{}, err
			}
			ft, err := p.parse()
			if err != nil {
				return Type{}, err
			}
			t.Fields = append(t.Fields, Field{Name: fname, Type: ft})
			if p.peek(',') {
				p.i++
				continue
			}
			break
		}
		if err := p.expect('>'); err != nil {
			return Type{}, err
		}
		return t, nil
	}
	return Type{}, fmt.Errorf("unknown type %q (want one of string, bool, int32, int64, float32, float64, decimal(p,s), date, timestamp, timestamptz, binary, list<T>, struct<name:T,...>)", name)
}

// checkMapValue rejects the map values that have no Field to hold the IDs
// of their own children (see Type).
func checkMapValue(v Type) error {
	switch v.Kind {
	case KindList:
		return errors.New("maps of lists are not supported")
	case KindMap:
		return errors.New("maps of maps are not supported")
	}
	return nil
}
