package kafka

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluicehq/sluice/ingest/schema"
)

// ProtoEncoder turns rows of a layout into protobuf messages of one type,
// written straight to the wire format: no message is built per row. It is
// the inverse of the protobuf decoder (parse.Protobuf, parse.ProtoSchema):
// a stream decoded from messages of a type and exported as that type
// yields the messages it read, less what the columns do not hold (unknown
// fields, Any and Struct values, Empty fields, nanoseconds below a
// microsecond).
//
// Fields are written in field number order and map entries in row order;
// a null column leaves its field absent, and a proto3 field without
// presence is left out when it holds its zero value, as the protobuf
// runtime's encoding does. It is used by one goroutine at a time (see
// Clone).
type ProtoEncoder struct {
	top *pmsg
	cur cursor
	// oneofs[m.oneofBase+i] is the member of oneof i of message m written
	// in the message being encoded (nil: none yet).
	oneofs []*pfield
}

// RowError reports a row that cannot be encoded as the message: a value
// the field cannot hold. The row is at fault, not the encoder, so the
// caller dead-letters it with Error() as the reason and carries on.
type RowError struct {
	// Column is the path of the offending column, such as "items[].sku"
	// ("[]" marks a list element, ".key" and ".value" a map's).
	Column string
	// Reason says what is wrong with its value.
	Reason string
}

// Error returns "column <Column>: <Reason>".
func (e *RowError) Error() string { return "column " + e.Column + ": " + e.Reason }

// RowRejected tells the stream that the row, not the export, is at fault:
// its record is dead-lettered and the stream goes on.
func (e *RowError) RowRejected() bool { return true }

func rowErr(f *pfield, reason string) *RowError { return &RowError{Column: f.path, Reason: reason} }

// pcard is the cardinality of a bound field.
type pcard uint8

const (
	pcSingle pcard = iota
	pcList
	pcMap
)

// pkind is how one value is written.
type pkind uint8

const (
	pkScalar    pkind = iota // one column value, converted by conv
	pkTimestamp              // a google.protobuf.Timestamp from microseconds
	pkDuration               // a google.protobuf.Duration from microseconds
	pkWrapper                // a google.protobuf.*Value; its value converted by conv
	pkMessage                // a struct, member by member
)

// conv converts a column value to the payload of a scalar field: a varint
// or fixed-width value, or bytes. The wire type is the field's.
type conv uint8

const (
	cvString      conv = iota // string → string, checked to be UTF-8
	cvBytes                   // string or binary → bytes
	cvEnumName                // string → enum, by value name
	cvBool                    // bool → bool
	cvInt32                   // int32 → int32, int64, sfixed64, enum: sign-extended
	cvInt32Zig                // int32 → sint32, sint64
	cvInt32Bits               // int32 → sfixed32
	cvInt64                   // int64 → int64, sfixed64
	cvInt64Zig                // int64 → sint64
	cvUint32                  // int64 → uint32, fixed32: range-checked
	cvUint64                  // decimal(20,0) → uint64, fixed64: range-checked
	cvFloat                   // float32 → float
	cvFloatDouble             // float32 → double
	cvDouble                  // float64 → double
)

// pfield is a field of a message bound to its column, or one value of a
// list or map field.
type pfield struct {
	path string // column path, for errors
	card pcard
	kind pkind
	conv conv
	// tag is the tag of one value; for a packed list, of the run.
	tag  uint64
	wire protowire.Type // of one value; StartGroupType for groups
	// innerTag is the tag of a wrapper's value field.
	innerTag uint64
	packed   bool
	// presence: zero values are written (explicit presence, or a value
	// in a list or map); without it they are left out.
	presence bool
	oneof    int    // index of its oneof in the message, or -1
	num      uint64 // field number, for ordering
	// Levels and columns, from the layout.
	col, def, rep int
	first         int // first leaf column
	leaves        []int
	want          parquet.Kind // physical kind of the column's values
	msg           *pmsg        // struct members
	elem          *pfield      // list element; map value
	key           *pfield      // map key
	enum          map[string]int32
	enumName      protoreflect.FullName
}

// pmsg is the bound fields of a message, in field number order.
type pmsg struct {
	fields     []*pfield
	oneofBase  int
	oneofNames []protoreflect.Name
}

// NewProtoEncoder binds the layout's columns to the fields of md by name
// (the field's name, not its JSON name), at every level. Every column must
// have a field whose type it encodes as; fields without a column are left
// unset, but proto2 required fields must have one: without it no message
// would parse. (A null in a required field's column is written as absent,
// mirroring the decoder, which reads a record without the field as a
// null.) It reports every problem at once.
//
// A column encodes as a field of the type the decoder maps to it, and as
// a few wider ones:
//
//	| Column          | Protobuf                                                              |
//	|-----------------|-----------------------------------------------------------------------|
//	| string          | string (UTF-8 checked per row), bytes, enum (by value name, or the    |
//	|                 | decimal text of its number as the decoder writes unknown numbers)     |
//	| binary          | bytes                                                                 |
//	| bool            | bool                                                                  |
//	| int32           | int32, sint32, sfixed32, int64, sint64, sfixed64, enum (its number)   |
//	| int64           | int64, sint64, sfixed64; uint32, fixed32 (range checked per row);     |
//	|                 | google.protobuf.Duration (microseconds)                               |
//	| float32         | float, double                                                         |
//	| float64         | double                                                                |
//	| decimal(20,0)   | uint64, fixed64 (range checked per row)                               |
//	| timestamp(tz)   | google.protobuf.Timestamp (years 1 to 9999, checked per row)          |
//	| any of these    | the google.protobuf.*Value wrapper of a field it encodes as           |
//	| struct<…>       | message or group, member by member                                    |
//	| list<T>         | repeated T, packed as the field declares                              |
//	| map<K,V>        | map<K,V>                                                              |
//
// Dates, other decimals, and google.protobuf.Struct, Value, ListValue and
// Any fields (which the decoder renders as JSON text) cannot be encoded.
func NewProtoEncoder(l *schema.Layout, md protoreflect.MessageDescriptor) (*ProtoEncoder, error) {
	if l == nil {
		return nil, errors.New("export: no schema layout")
	}
	if md == nil {
		return nil, errors.New("export: no message descriptor")
	}
	b := protoBinder{}
	top, err := b.message(md, l.Top, "")
	if err != nil {
		return nil, err
	}
	return &ProtoEncoder{top: top, cur: newCursor(l.NumColumns), oneofs: make([]*pfield, b.oneofs)}, nil
}

// Clone returns an encoder for another goroutine: a ProtoEncoder keeps
// per-row scratch state and is not safe for concurrent use.
func (e *ProtoEncoder) Clone() *ProtoEncoder {
	return &ProtoEncoder{top: e.top, cur: e.cur.clone(), oneofs: make([]*pfield, len(e.oneofs))}
}

// Append appends the row as a message in wire format (without a length
// prefix). A row that the message cannot hold, such as an enum name the
// enum does not declare, returns b unchanged and a *RowError.
func (e *ProtoEncoder) Append(b []byte, row parquet.Row) ([]byte, error) {
	e.cur.reset(row)
	start := len(b)
	b, err := e.appendMsg(b, row, e.top)
	if err != nil {
		return b[:start], err
	}
	return b, nil
}

// protoBinder binds the columns of a layout to the fields of a message.
type protoBinder struct {
	oneofs int // oneofs of the messages bound so far
}

// message binds nodes, the members of a struct at path, to the fields of md.
func (b *protoBinder) message(md protoreflect.MessageDescriptor, nodes []*schema.Node, path string) (*pmsg, error) {
	m := &pmsg{oneofBase: b.oneofs}
	for i := range md.Oneofs().Len() {
		m.oneofNames = append(m.oneofNames, md.Oneofs().Get(i).Name())
	}
	b.oneofs += len(m.oneofNames)
	var errs []error
	fds := md.Fields()
	bound := make(map[protoreflect.Name]bool, len(nodes))
	for _, n := range nodes {
		fpath := joinPath(path, n.Field.Name)
		fd := fds.ByName(protoreflect.Name(n.Field.Name))
		if fd == nil {
			errs = append(errs, fmt.Errorf("column %s: message %s has no field %s; drop or rename the column in the ETL",
				fpath, md.FullName(), n.Field.Name))
			continue
		}
		bound[fd.Name()] = true
		f, err := b.field(fd, n, fpath)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.fields = append(m.fields, f)
	}
	for i := range fds.Len() {
		if fd := fds.Get(i); fd.Cardinality() == protoreflect.Required && !bound[fd.Name()] {
			errs = append(errs, fmt.Errorf("column %s: field %s is required, but no column holds it; add the column in the ETL",
				joinPath(path, string(fd.Name())), fd.FullName()))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(m.fields, func(a, b *pfield) int { return int(a.num) - int(b.num) })
	return m, nil
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// field binds fd to n, its column at path.
func (b *protoBinder) field(fd protoreflect.FieldDescriptor, n *schema.Node, path string) (*pfield, error) {
	kind := n.Field.Type.Kind
	var f *pfield
	switch {
	case fd.IsMap():
		if kind != schema.KindMap {
			return nil, mismatch(n, fd, path)
		}
		key, kerr := b.value(fd.MapKey(), n.Children[0], path+".key")
		value, verr := b.value(fd.MapValue(), n.Children[1], path+".value")
		if err := errors.Join(kerr, verr); err != nil {
			return nil, err
		}
		// Entries write their key and value even when zero, as the
		// protobuf runtime does.
		key.presence, value.presence = true, true
		f = &pfield{card: pcMap, key: key, elem: value, tag: uint64(protowire.EncodeTag(fd.Number(), protowire.BytesType))}
	case fd.IsList():
		if kind != schema.KindList {
			return nil, mismatch(n, fd, path)
		}
		elem, err := b.value(fd, n.Children[0], path+"[]")
		if err != nil {
			return nil, err
		}
		elem.presence = true // elements are written even when zero
		f = &pfield{card: pcList, elem: elem, tag: elem.tag}
		if fd.IsPacked() && elem.kind == pkScalar {
			f.packed = true
			f.tag = uint64(protowire.EncodeTag(fd.Number(), protowire.BytesType))
		}
	default:
		if kind == schema.KindMap || kind == schema.KindList {
			return nil, mismatch(n, fd, path)
		}
		var err error
		if f, err = b.value(fd, n, path); err != nil {
			return nil, err
		}
		f.presence = fd.HasPresence()
	}
	f.path, f.num, f.oneof = path, uint64(fd.Number()), -1
	f.def, f.rep, f.first, f.leaves = n.Def, n.Rep, n.Leaves[0], n.Leaves
	if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
		f.oneof = od.Index()
	}
	return f, nil
}

// Well-known message types a column encodes as.
const (
	timestampName protoreflect.FullName = "google.protobuf.Timestamp"
	durationName  protoreflect.FullName = "google.protobuf.Duration"
)

// wrappers are the google.protobuf.*Value types: a column encodes as one
// when it encodes as its value field.
var wrappers = map[protoreflect.FullName]bool{
	"google.protobuf.DoubleValue": true, "google.protobuf.FloatValue": true,
	"google.protobuf.Int64Value": true, "google.protobuf.UInt64Value": true,
	"google.protobuf.Int32Value": true, "google.protobuf.UInt32Value": true,
	"google.protobuf.BoolValue": true, "google.protobuf.StringValue": true,
	"google.protobuf.BytesValue": true,
}

// jsonTypes are the well-known types the decoder renders as JSON text,
// which the encoder does not parse back.
var jsonTypes = map[protoreflect.FullName]bool{
	"google.protobuf.Struct": true, "google.protobuf.Value": true,
	"google.protobuf.ListValue": true, "google.protobuf.Any": true,
}

// value binds one value of fd (ignoring its cardinality) to n, at path.
func (b *protoBinder) value(fd protoreflect.FieldDescriptor, n *schema.Node, path string) (*pfield, error) {
	f := &pfield{path: path, col: n.Column, def: n.Def, rep: n.Rep, first: n.Leaves[0], leaves: n.Leaves, oneof: -1, num: uint64(fd.Number())}
	if md := fd.Message(); md != nil {
		f.wire = protowire.BytesType
		if fd.Kind() == protoreflect.GroupKind {
			f.wire = protowire.StartGroupType
		}
		f.tag = uint64(protowire.EncodeTag(fd.Number(), f.wire))
		t := n.Field.Type
		switch name := md.FullName(); {
		case jsonTypes[name]:
			return nil, fmt.Errorf("column %s: field %s is a %s, which the decoder renders as JSON text and the encoder cannot write; drop or rename the column in the ETL",
				path, fd.FullName(), name)
		case name == timestampName:
			if !t.IsTimestamp() {
				return nil, mismatch(n, fd, path)
			}
			f.kind, f.want = pkTimestamp, parquet.Int64
		case name == durationName:
			if t.Kind != schema.KindInt64 {
				return nil, mismatch(n, fd, path)
			}
			f.kind, f.want = pkDuration, parquet.Int64
		case wrappers[name]:
			inner := md.Fields().ByNumber(1)
			if inner == nil || !scalarConv(f, inner, t) {
				return nil, mismatch(n, fd, path)
			}
			f.kind = pkWrapper
			f.innerTag = uint64(protowire.EncodeTag(1, scalarWire(inner.Kind())))
		default:
			if t.Kind != schema.KindStruct {
				return nil, mismatch(n, fd, path)
			}
			msg, err := b.message(md, n.Children, path)
			if err != nil {
				return nil, err
			}
			f.kind, f.msg = pkMessage, msg
		}
		return f, nil
	}
	if !scalarConv(f, fd, n.Field.Type) {
		return nil, mismatch(n, fd, path)
	}
	f.kind, f.wire = pkScalar, scalarWire(fd.Kind())
	f.tag = uint64(protowire.EncodeTag(fd.Number(), f.wire))
	return f, nil
}

// scalarConv sets f.conv and f.want for a column of type t written as the
// scalar field fd, and reports whether it can be.
func scalarConv(f *pfield, fd protoreflect.FieldDescriptor, t schema.Type) bool {
	k := fd.Kind()
	ok := true
	switch t.Kind {
	case schema.KindString:
		f.want = parquet.ByteArray
		switch k {
		case protoreflect.StringKind:
			f.conv = cvString
		case protoreflect.BytesKind:
			f.conv = cvBytes
		case protoreflect.EnumKind:
			f.conv, f.enum, f.enumName = cvEnumName, enumNumbers(fd.Enum()), fd.Enum().FullName()
		default:
			ok = false
		}
	case schema.KindBinary:
		f.want, f.conv, ok = parquet.ByteArray, cvBytes, k == protoreflect.BytesKind
	case schema.KindBool:
		f.want, f.conv, ok = parquet.Boolean, cvBool, k == protoreflect.BoolKind
	case schema.KindInt32:
		f.want = parquet.Int32
		switch k {
		case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sfixed64Kind, protoreflect.EnumKind:
			f.conv = cvInt32
		case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
			f.conv = cvInt32Zig
		case protoreflect.Sfixed32Kind:
			f.conv = cvInt32Bits
		default:
			ok = false
		}
	case schema.KindInt64:
		f.want = parquet.Int64
		switch k {
		case protoreflect.Int64Kind, protoreflect.Sfixed64Kind:
			f.conv = cvInt64
		case protoreflect.Sint64Kind:
			f.conv = cvInt64Zig
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			f.conv = cvUint32
		default:
			ok = false
		}
	case schema.KindFloat32:
		f.want = parquet.Float
		switch k {
		case protoreflect.FloatKind:
			f.conv = cvFloat
		case protoreflect.DoubleKind:
			f.conv = cvFloatDouble
		default:
			ok = false
		}
	case schema.KindFloat64:
		f.want, f.conv, ok = parquet.Double, cvDouble, k == protoreflect.DoubleKind
	case schema.KindDecimal:
		f.want, f.conv = parquet.FixedLenByteArray, cvUint64
		ok = t.Precision == 20 && t.Scale == 0 && (k == protoreflect.Uint64Kind || k == protoreflect.Fixed64Kind)
	default:
		ok = false
	}
	return ok
}

// scalarWire is the wire type of one value of a scalar kind.
func scalarWire(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.DoubleKind, protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
		return protowire.Fixed64Type
	case protoreflect.FloatKind, protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
		return protowire.Fixed32Type
	case protoreflect.StringKind, protoreflect.BytesKind:
		return protowire.BytesType
	}
	return protowire.VarintType
}

// enumNumbers maps every name of an enum's values (aliases too) to its
// number.
func enumNumbers(ed protoreflect.EnumDescriptor) map[string]int32 {
	vals := ed.Values()
	m := make(map[string]int32, vals.Len())
	for i := range vals.Len() {
		m[string(vals.Get(i).Name())] = int32(vals.Get(i).Number())
	}
	return m
}

// mismatch reports a column whose type does not encode as fd.
func mismatch(n *schema.Node, fd protoreflect.FieldDescriptor, path string) error {
	return fmt.Errorf("column %s: %s does not encode as field %s (%s); cast, drop or rename the column in the ETL",
		path, n.Field.Type, fd.FullName(), describeField(fd))
}

// describeField names the type of fd as a .proto file declares it.
func describeField(fd protoreflect.FieldDescriptor) string {
	switch {
	case fd.IsMap():
		return "map<" + describeValue(fd.MapKey()) + ", " + describeValue(fd.MapValue()) + ">"
	case fd.IsList():
		return "repeated " + describeValue(fd)
	}
	return describeValue(fd)
}

func describeValue(fd protoreflect.FieldDescriptor) string {
	switch {
	case fd.Message() != nil:
		return string(fd.Message().FullName())
	case fd.Enum() != nil:
		return "enum " + string(fd.Enum().FullName())
	}
	return fd.Kind().String()
}

// appendMsg appends the fields of m, taking their values from the cursor.
func (e *ProtoEncoder) appendMsg(b []byte, row parquet.Row, m *pmsg) ([]byte, *RowError) {
	clear(e.oneofs[m.oneofBase : m.oneofBase+len(m.oneofNames)])
	for _, f := range m.fields {
		var err *RowError
		switch f.card {
		case pcList:
			b, err = e.appendList(b, row, f)
		case pcMap:
			b, err = e.appendMap(b, row, f)
		default:
			if !e.present(row, f) {
				// Even a proto2 required field: the decoder reads a
				// record without one as a null, and this writes it back.
				e.cur.skip(row, f.leaves)
				continue
			}
			if f.oneof >= 0 {
				set := &e.oneofs[m.oneofBase+f.oneof]
				if *set != nil {
					return b, rowErr(f, "oneof "+string(m.oneofNames[f.oneof])+" is already set by column "+(*set).path+
						"; a message holds one member")
				}
				*set = f
			}
			b, err = e.appendValue(b, row, f)
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// present reports whether the value of f at the cursor is not null.
func (e *ProtoEncoder) present(row parquet.Row, f *pfield) bool {
	v := e.cur.peek(row, f.first)
	return v.DefinitionLevel() >= f.def && (f.kind == pkMessage || !v.IsNull())
}

// appendValue appends the field or element f, which is present.
func (e *ProtoEncoder) appendValue(b []byte, row parquet.Row, f *pfield) ([]byte, *RowError) {
	if f.kind == pkMessage {
		b, mark := f.open(b)
		b, err := e.appendMsg(b, row, f.msg)
		return f.close(b, mark), err
	}
	v := e.cur.next(row, f.col)
	switch f.kind {
	case pkTimestamp:
		if v.Kind() != parquet.Int64 {
			return b, wrongKind(f, v)
		}
		us := v.Int64()
		secs, nanos := us/1e6, us%1e6*1000
		if nanos < 0 { // a Timestamp's nanos are never negative
			secs, nanos = secs-1, nanos+1e9
		}
		if secs < minTimestampSeconds || secs > maxTimestampSeconds {
			return b, rowErr(f, "timestamp "+strconv.FormatInt(us, 10)+" µs is outside years 1 to 9999, the range of google.protobuf.Timestamp")
		}
		return appendSecondsNanos(f, b, secs, nanos), nil
	case pkDuration:
		if v.Kind() != parquet.Int64 {
			return b, wrongKind(f, v)
		}
		us := v.Int64()
		secs, nanos := us/1e6, us%1e6*1000 // nanos take the sign of secs
		if secs < -maxDurationSeconds || secs > maxDurationSeconds {
			return b, rowErr(f, "duration "+strconv.FormatInt(us, 10)+" µs exceeds 10,000 years, the range of google.protobuf.Duration")
		}
		return appendSecondsNanos(f, b, secs, nanos), nil
	case pkWrapper:
		u, bs, err := f.convert(v)
		if err != nil {
			return b, err
		}
		b, mark := f.open(b)
		if u != 0 || len(bs) > 0 { // the wrapped value has no presence
			b = protowire.AppendVarint(b, f.innerTag)
			b = appendPayload(b, protowire.Type(f.innerTag&7), u, bs)
		}
		return f.close(b, mark), nil
	}
	u, bs, err := f.convert(v)
	if err != nil {
		return b, err
	}
	if !f.presence && u == 0 && len(bs) == 0 {
		return b, nil
	}
	b = protowire.AppendVarint(b, f.tag)
	return appendPayload(b, f.wire, u, bs), nil
}

// Ranges of valid google.protobuf.Timestamp and Duration values, as the
// decoder checks them.
const (
	minTimestampSeconds = -62135596800 // 0001-01-01T00:00:00Z
	maxTimestampSeconds = 253402300799 // 9999-12-31T23:59:59Z
	maxDurationSeconds  = 315576000000 // 10,000 years
)

// appendSecondsNanos appends a Timestamp or Duration message.
func appendSecondsNanos(f *pfield, b []byte, secs, nanos int64) []byte {
	b, mark := f.open(b)
	if secs != 0 {
		b = protowire.AppendVarint(append(b, 1<<3|byte(protowire.VarintType)), uint64(secs))
	}
	if nanos != 0 {
		b = protowire.AppendVarint(append(b, 2<<3|byte(protowire.VarintType)), uint64(nanos))
	}
	return f.close(b, mark)
}

// appendList appends the elements of list f, if any.
func (e *ProtoEncoder) appendList(b []byte, row parquet.Row, f *pfield) ([]byte, *RowError) {
	if e.cur.peek(row, f.first).DefinitionLevel() <= f.def { // null or empty
		e.cur.skip(row, f.leaves)
		return b, nil
	}
	el := f.elem
	mark := -1
	if f.packed {
		b = protowire.AppendVarint(b, f.tag)
		mark = len(b)
		b = append(b, 0)
	}
	for i := 0; i == 0 || e.cur.repeats(row, f.first, f.rep); i++ {
		if !e.present(row, el) {
			return b, rowErr(el, "list element "+strconv.Itoa(i)+" is null, which protobuf cannot encode")
		}
		if !f.packed {
			var err *RowError
			if b, err = e.appendValue(b, row, el); err != nil {
				return b, err
			}
			continue
		}
		u, _, err := el.convert(e.cur.next(row, el.col))
		if err != nil {
			return b, err
		}
		b = appendPayload(b, el.wire, u, nil)
	}
	if f.packed {
		b = closeLen(b, mark)
	}
	return b, nil
}

// appendMap appends the entries of map f, if any, in row order.
func (e *ProtoEncoder) appendMap(b []byte, row parquet.Row, f *pfield) ([]byte, *RowError) {
	if e.cur.peek(row, f.first).DefinitionLevel() <= f.def { // null or empty
		e.cur.skip(row, f.leaves)
		return b, nil
	}
	for i := 0; i == 0 || e.cur.repeats(row, f.key.col, f.rep); i++ {
		b = protowire.AppendVarint(b, f.tag)
		mark := len(b)
		b = append(b, 0)
		if !e.present(row, f.key) {
			return b, rowErr(f.key, "map key "+strconv.Itoa(i)+" is null")
		}
		var err *RowError
		if b, err = e.appendValue(b, row, f.key); err != nil {
			return b, err
		}
		if !e.present(row, f.elem) {
			return b, rowErr(f.elem, "the value of map entry "+strconv.Itoa(i)+" is null, which protobuf cannot encode")
		}
		if b, err = e.appendValue(b, row, f.elem); err != nil {
			return b, err
		}
		b = closeLen(b, mark)
	}
	return b, nil
}

// convert returns the payload of scalar value v: a varint or fixed-width
// value as u, bytes as bs. Zero is u == 0 and len(bs) == 0.
func (f *pfield) convert(v parquet.Value) (u uint64, bs []byte, err *RowError) {
	if v.Kind() != f.want && f.conv != cvUint64 { // decimals take several kinds
		return 0, nil, wrongKind(f, v)
	}
	switch f.conv {
	case cvString:
		bs = v.ByteArray()
		if !utf8.Valid(bs) {
			return 0, nil, rowErr(f, "invalid UTF-8")
		}
		return 0, bs, nil
	case cvBytes:
		return 0, v.ByteArray(), nil
	case cvEnumName:
		name := v.ByteArray()
		n, ok := f.enum[string(name)]
		if !ok {
			if n, ok = parseInt32(name); !ok {
				return 0, nil, rowErr(f, "enum "+string(f.enumName)+" has no value "+quote(name))
			}
		}
		return uint64(int64(n)), nil, nil
	case cvBool:
		return protowire.EncodeBool(v.Boolean()), nil, nil
	case cvInt32:
		return uint64(int64(v.Int32())), nil, nil
	case cvInt32Zig:
		return protowire.EncodeZigZag(int64(v.Int32())), nil, nil
	case cvInt32Bits:
		return uint64(uint32(v.Int32())), nil, nil
	case cvInt64:
		return uint64(v.Int64()), nil, nil
	case cvInt64Zig:
		return protowire.EncodeZigZag(v.Int64()), nil, nil
	case cvUint32:
		n := v.Int64()
		if n < 0 || n > math.MaxUint32 {
			return 0, nil, rowErr(f, strconv.FormatInt(n, 10)+" is out of the range of an unsigned 32-bit field")
		}
		return uint64(n), nil, nil
	case cvUint64:
		return f.uint64(v)
	case cvFloat:
		return uint64(math.Float32bits(v.Float())), nil, nil
	case cvFloatDouble:
		return math.Float64bits(float64(v.Float())), nil, nil
	case cvDouble:
		return math.Float64bits(v.Double()), nil, nil
	}
	return 0, nil, rowErr(f, "no conversion") // unreachable: the binder sets conv
}

// wrongKind reports a value of another physical type than the column's:
// a row not laid out by the encoder's layout.
func wrongKind(f *pfield, v parquet.Value) *RowError {
	return rowErr(f, "holds a Parquet "+v.Kind().String()+" value, want "+f.want.String())
}

// uint64 reads a decimal(20,0): big-endian two's complement bytes (the
// layout's 9), or an int32 or int64 from other writers of decimals.
func (f *pfield) uint64(v parquet.Value) (uint64, []byte, *RowError) {
	switch v.Kind() {
	case parquet.Int32, parquet.Int64:
		n := v.Int64()
		if v.Kind() == parquet.Int32 {
			n = int64(v.Int32())
		}
		if n < 0 {
			return 0, nil, rowErr(f, strconv.FormatInt(n, 10)+" is negative, out of the range of an unsigned 64-bit field")
		}
		return uint64(n), nil, nil
	case parquet.ByteArray, parquet.FixedLenByteArray:
	default:
		return 0, nil, wrongKind(f, v)
	}
	raw := v.ByteArray()
	if len(raw) > 0 && raw[0]&0x80 != 0 {
		return 0, nil, rowErr(f, "negative, out of the range of an unsigned 64-bit field")
	}
	for len(raw) > 8 && raw[0] == 0 {
		raw = raw[1:]
	}
	if len(raw) > 8 {
		return 0, nil, rowErr(f, "exceeds 18446744073709551615, out of the range of an unsigned 64-bit field")
	}
	var u uint64
	for _, c := range raw {
		u = u<<8 | uint64(c)
	}
	return u, nil, nil
}

// parseInt32 parses the decimal text the decoder writes for an enum number
// the enum does not declare.
func parseInt32(b []byte) (int32, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	if n < math.MinInt32 || n > math.MaxInt32 {
		return 0, false
	}
	return int32(n), true
}

// maxQuoted bounds how much of a bad value an error repeats: reasons end
// up in dead-letter headers and logs.
const maxQuoted = 64

func quote(b []byte) string {
	if len(b) <= maxQuoted {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(strings.ToValidUTF8(string(b[:maxQuoted]), "")) + "..."
}

// appendPayload appends a value of wire type wt: u, or bs when
// length-delimited.
func appendPayload(b []byte, wt protowire.Type, u uint64, bs []byte) []byte {
	switch wt {
	case protowire.VarintType:
		return protowire.AppendVarint(b, u)
	case protowire.Fixed32Type:
		return protowire.AppendFixed32(b, uint32(u))
	case protowire.Fixed64Type:
		return protowire.AppendFixed64(b, u)
	}
	return protowire.AppendBytes(b, bs)
}

// open appends the tag of message field f and, unless it is a group, a
// one-byte placeholder for its length; close fills it in.
func (f *pfield) open(b []byte) ([]byte, int) {
	b = protowire.AppendVarint(b, f.tag)
	if f.wire == protowire.StartGroupType {
		return b, -1
	}
	return append(b, 0), len(b)
}

func (f *pfield) close(b []byte, mark int) []byte {
	if f.wire == protowire.StartGroupType {
		return protowire.AppendVarint(b, f.tag+1) // EndGroupType is StartGroupType+1
	}
	return closeLen(b, mark)
}

// closeLen writes the length of the bytes after the one-byte placeholder
// at mark into it, moving them up when the length needs more bytes: a
// message's length is known only once it is written, and most are
// shorter than 128 bytes.
func closeLen(b []byte, mark int) []byte {
	n := len(b) - mark - 1
	if n < 0x80 {
		b[mark] = byte(n)
		return b
	}
	k := protowire.SizeVarint(uint64(n))
	var pad [9]byte
	b = append(b, pad[:k-1]...)
	copy(b[mark+k:], b[mark+1:mark+1+n])
	protowire.AppendVarint(b[mark:mark], uint64(n))
	return b
}
