package parse

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/parquet-go/parquet-go"
	"github.com/sluicehq/sluice/ingest/schema"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// ProtoOptions configure ProtoSchema and a Protobuf decoder. Pass the same
// options to both: EnumAsNumber and MaxDepth change the schema, and the
// decoder must cut recursive messages where the schema did.
type ProtoOptions struct {
	// EventTime names the top-level field holding the record's event time:
	// a google.protobuf.Timestamp, or a field mapped to int64 holding epoch
	// milliseconds (int64, sint64, sfixed64, uint32, fixed32 or
	// google.protobuf.Int64Value). Decoder only.
	EventTime string
	// MaxRecordBytes rejects larger records before parsing (0 = no limit).
	// Decoder only.
	MaxRecordBytes int
	// EnumAsNumber stores enums as their int32 numbers rather than their
	// names.
	EnumAsNumber bool
	// MaxDepth is how many levels of messages become nested structs, the
	// record's own message being level 1 (0 = DefaultProtoMaxDepth; at most
	// MaxProtoDepth). Message fields below it are left out of the schema,
	// and a record that has one fails to decode: it is how recursive
	// messages get a finite schema.
	MaxDepth int
	// Resolver finds the message types named by google.protobuf.Any values
	// to render them as JSON (nil: protoregistry.GlobalTypes). An Any of a
	// type it does not know is written as {"@type":…,"value":"<base64>"}.
	// Decoder only.
	Resolver interface {
		protoregistry.ExtensionTypeResolver
		protoregistry.MessageTypeResolver
	}
}

const (
	// DefaultProtoMaxDepth is the default of ProtoOptions.MaxDepth.
	DefaultProtoMaxDepth = 8
	// MaxProtoDepth bounds ProtoOptions.MaxDepth. Each level of nesting adds
	// up to three Parquet definition levels (a map's value in an optional
	// map), and Parquet allows 255.
	MaxProtoDepth = 64
	// maxProtoColumns is the most leaf columns a message may map to: the
	// most Parquet (parquet-go) can address. It also stops a message with
	// several recursive fields from growing its schema exponentially before
	// MaxDepth cuts it.
	maxProtoColumns = parquet.MaxColumnIndex + 1
)

// validate reports every problem with the options that ProtoSchema uses.
func (o ProtoOptions) validate() []error {
	var errs []error
	if o.MaxDepth < 0 || o.MaxDepth > MaxProtoDepth {
		errs = append(errs, fmt.Errorf("max_depth: %d is out of range 0..%d", o.MaxDepth, MaxProtoDepth))
	}
	if o.MaxRecordBytes < 0 {
		errs = append(errs, fmt.Errorf("max_record_bytes: %d is negative", o.MaxRecordBytes))
	}
	return errs
}

func (o ProtoOptions) maxDepth() int {
	if o.MaxDepth == 0 {
		return DefaultProtoMaxDepth
	}
	return o.MaxDepth
}

// ProtoSchema returns the columns of messages of type md. Each field becomes
// a column named by the field's name (not its JSON name), in declaration
// order; every column is optional. The types:
//
//	| Protobuf                                  | Column          | Notes                                              |
//	|-------------------------------------------|-----------------|----------------------------------------------------|
//	| double                                    | float64         |                                                    |
//	| float                                     | float32         |                                                    |
//	| int32, sint32, sfixed32                   | int32           |                                                    |
//	| int64, sint64, sfixed64                   | int64           |                                                    |
//	| uint32, fixed32                           | int64           | int32 cannot hold 2^31 and above                   |
//	| uint64, fixed64                           | decimal(20,0)   | int64 cannot hold 2^63 and above                   |
//	| bool                                      | bool            |                                                    |
//	| string                                    | string          | must be valid UTF-8 (in proto2 too)                |
//	| bytes                                     | binary          |                                                    |
//	| enum                                      | string          | the value's name; a number the enum does not       |
//	|                                           |                 | declare as its decimal text, e.g. "7"              |
//	| enum, with EnumAsNumber                   | int32           | the number                                         |
//	| message, group                            | struct<…>       | its fields by these rules; null when absent; the   |
//	|                                           |                 | chunks of one sent more than once are merged       |
//	| repeated T                                | list<T>         | empty (not null) when absent; packed and unpacked  |
//	|                                           |                 | encodings both read                                |
//	| map<K,V>                                  | map<K,V>        | empty when absent; of equal keys the last wins; a  |
//	|                                           |                 | missing key or value is its type's default         |
//	| oneof members                             | one column each | all null but the member set last                   |
//	| proto3 optional                           | as its type     | null when absent                                   |
//	| google.protobuf.Timestamp                 | timestamptz(us) | nanoseconds truncated; must be in years 1..9999    |
//	| google.protobuf.Duration                  | int64           | microseconds, truncated toward zero; at most       |
//	|                                           |                 | 10,000 years                                       |
//	| google.protobuf.DoubleValue, FloatValue,  | the wrapped     | null when the wrapper is absent                    |
//	| Int32Value, Int64Value, UInt32Value,      | type, as above  |                                                    |
//	| UInt64Value, BoolValue, StringValue,      |                 |                                                    |
//	| BytesValue                                |                 |                                                    |
//	| google.protobuf.Struct, Value, ListValue, | string          | JSON: protojson's form, compacted; an empty Value  |
//	| Any                                       |                 | is the text null; an Any of a type the resolver    |
//	|                                           |                 | does not know is {"@type":…,"value":"<base64>"}    |
//
// Presence follows protobuf: a field with presence (message fields,
// proto3 optional, proto2 optional and required, oneof members, editions
// explicit presence) is null when absent, even if it declares a default;
// one without (proto3 scalars, enums, strings and bytes) holds its default
// value — zero, false, "", the enum's zero value — because the record
// cannot tell "absent" from "default" apart. Unknown numbers of proto2
// (closed) enums are kept as their decimal text too, where the protobuf
// runtime would move them to the unknown fields.
//
// Messages nest as structs up to opts.MaxDepth levels (the message itself
// is level 1). Message fields below that are left out, which is how a
// recursive message gets a finite schema; Protobuf fails a record that
// has such a field, naming its path, rather than dropping it silently.
// Fields of messages with no fields (google.protobuf.Empty) are left out
// too, since Parquet has no empty groups. Extensions and unknown fields
// are not columns.
//
// The schema has no field IDs; bind or assign them before building a
// Layout. Each field's Source is its field number, which tables keep so a
// renamed field keeps its column.
func ProtoSchema(md protoreflect.MessageDescriptor, opts ProtoOptions) (schema.Schema, error) {
	if md == nil {
		return schema.Schema{}, errors.New("parse: no message descriptor")
	}
	if errs := opts.validate(); len(errs) > 0 {
		return schema.Schema{}, errors.Join(errs...)
	}
	m := protoMapper{enumAsNumber: opts.EnumAsNumber, maxDepth: opts.maxDepth()}
	t, st, err := m.message(md, 1)
	if err != nil {
		return schema.Schema{}, err
	}
	if st != mapped {
		return schema.Schema{}, fmt.Errorf("parse: message %s has no fields that map to columns", md.FullName())
	}
	return schema.Schema{Fields: t.Fields}, nil
}

// pkind is how one protobuf value is read and converted to a column value.
type pkind uint8

const (
	pkInvalid pkind = iota
	pkDouble
	pkFloat
	pkInt32 // int32 varint: the low 32 bits
	pkSint32
	pkSfixed32
	pkInt64
	pkSint64
	pkSfixed64
	pkUint32 // to int64
	pkFixed32
	pkUint64 // to decimal(20,0)
	pkFixed64
	pkBool
	pkString
	pkBytes
	pkEnumName
	pkEnumNumber
	// Messages written as one column value.
	pkTimestamp
	pkDuration
	pkWrapper // its value field is read with the wrapper's inner kind
	pkJSON    // Struct, Value, ListValue, Any
	// A message mapped to a struct.
	pkMessage
)

// wire is the wire type of one value of kind k (messages: when not
// encoded as groups).
func (k pkind) wire() protowire.Type {
	switch k {
	case pkDouble, pkFixed64, pkSfixed64:
		return protowire.Fixed64Type
	case pkFloat, pkFixed32, pkSfixed32:
		return protowire.Fixed32Type
	case pkString, pkBytes, pkTimestamp, pkDuration, pkWrapper, pkJSON, pkMessage:
		return protowire.BytesType
	}
	return protowire.VarintType
}

// packable reports whether repeated values of kind k may be packed.
func (k pkind) packable() bool { return k.wire() != protowire.BytesType }

// isMessage reports whether values of kind k are messages on the wire.
func (k pkind) isMessage() bool { return k >= pkTimestamp }

// Well-known message types with a column type of their own.
var wellKnown = map[protoreflect.FullName]pkind{
	"google.protobuf.Timestamp":   pkTimestamp,
	"google.protobuf.Duration":    pkDuration,
	"google.protobuf.DoubleValue": pkWrapper,
	"google.protobuf.FloatValue":  pkWrapper,
	"google.protobuf.Int64Value":  pkWrapper,
	"google.protobuf.UInt64Value": pkWrapper,
	"google.protobuf.Int32Value":  pkWrapper,
	"google.protobuf.UInt32Value": pkWrapper,
	"google.protobuf.BoolValue":   pkWrapper,
	"google.protobuf.StringValue": pkWrapper,
	"google.protobuf.BytesValue":  pkWrapper,
	"google.protobuf.Struct":      pkJSON,
	"google.protobuf.Value":       pkJSON,
	"google.protobuf.ListValue":   pkJSON,
	"google.protobuf.Any":         pkJSON,
}

// mapStatus says whether a field has columns.
type mapStatus uint8

const (
	mapped mapStatus = iota
	// cut: a message below MaxDepth, or one with nothing but such messages.
	cut
	// empty: a message without fields, or with only empty messages.
	empty
)

// protoMapper maps protobuf fields to column types.
type protoMapper struct {
	enumAsNumber bool
	maxDepth     int
	columns      int // leaf columns mapped so far
}

// value maps one value of fd, ignoring its cardinality: a scalar or a
// well-known message, with its kind and, for wrappers, the kind of the
// wrapped value; or pkMessage for a message mapped to a struct.
func (m *protoMapper) value(fd protoreflect.FieldDescriptor) (schema.Type, pkind, pkind) {
	switch fd.Kind() {
	case protoreflect.DoubleKind:
		return schema.Type{Kind: schema.KindFloat64}, pkDouble, 0
	case protoreflect.FloatKind:
		return schema.Type{Kind: schema.KindFloat32}, pkFloat, 0
	case protoreflect.Int32Kind:
		return schema.Type{Kind: schema.KindInt32}, pkInt32, 0
	case protoreflect.Sint32Kind:
		return schema.Type{Kind: schema.KindInt32}, pkSint32, 0
	case protoreflect.Sfixed32Kind:
		return schema.Type{Kind: schema.KindInt32}, pkSfixed32, 0
	case protoreflect.Int64Kind:
		return schema.Type{Kind: schema.KindInt64}, pkInt64, 0
	case protoreflect.Sint64Kind:
		return schema.Type{Kind: schema.KindInt64}, pkSint64, 0
	case protoreflect.Sfixed64Kind:
		return schema.Type{Kind: schema.KindInt64}, pkSfixed64, 0
	case protoreflect.Uint32Kind:
		return schema.Type{Kind: schema.KindInt64}, pkUint32, 0
	case protoreflect.Fixed32Kind:
		return schema.Type{Kind: schema.KindInt64}, pkFixed32, 0
	case protoreflect.Uint64Kind:
		return schema.Type{Kind: schema.KindDecimal, Precision: 20}, pkUint64, 0
	case protoreflect.Fixed64Kind:
		return schema.Type{Kind: schema.KindDecimal, Precision: 20}, pkFixed64, 0
	case protoreflect.BoolKind:
		return schema.Type{Kind: schema.KindBool}, pkBool, 0
	case protoreflect.StringKind:
		return schema.Type{Kind: schema.KindString}, pkString, 0
	case protoreflect.BytesKind:
		return schema.Type{Kind: schema.KindBinary}, pkBytes, 0
	case protoreflect.EnumKind:
		if m.enumAsNumber {
			return schema.Type{Kind: schema.KindInt32}, pkEnumNumber, 0
		}
		return schema.Type{Kind: schema.KindString}, pkEnumName, 0
	}
	// A message or group.
	md := fd.Message()
	switch k := wellKnown[md.FullName()]; k {
	case pkTimestamp:
		return schema.Type{Kind: schema.KindTimestampTZ, Unit: schema.Micros}, k, 0
	case pkDuration:
		return schema.Type{Kind: schema.KindInt64}, k, 0
	case pkJSON:
		return schema.Type{Kind: schema.KindString}, k, 0
	case pkWrapper:
		if v := md.Fields().ByNumber(1); v != nil && !v.IsList() && !v.IsMap() && v.Message() == nil {
			t, inner, _ := m.value(v)
			return t, k, inner
		}
	}
	return schema.Type{}, pkMessage, 0
}

// field maps fd, a field of a message at depth.
func (m *protoMapper) field(fd protoreflect.FieldDescriptor, depth int) (schema.Type, mapStatus, error) {
	if fd.IsMap() {
		kt, _, _ := m.value(fd.MapKey())
		vt, st, err := m.elem(fd.MapValue(), depth)
		if err != nil || st != mapped {
			return schema.Type{}, st, err
		}
		if err := m.count(fd); err != nil {
			return schema.Type{}, mapped, err
		}
		return schema.Type{Kind: schema.KindMap, Key: &kt, Elem: &vt}, mapped, nil
	}
	t, st, err := m.elem(fd, depth)
	if err != nil || st != mapped || !fd.IsList() {
		return t, st, err
	}
	return schema.Type{Kind: schema.KindList, Elem: &t}, mapped, nil
}

// elem maps one value of fd, a field of a message at depth.
func (m *protoMapper) elem(fd protoreflect.FieldDescriptor, depth int) (schema.Type, mapStatus, error) {
	t, k, _ := m.value(fd)
	if k != pkMessage {
		return t, mapped, m.count(fd)
	}
	if depth >= m.maxDepth {
		return schema.Type{}, cut, nil
	}
	return m.message(fd.Message(), depth+1)
}

func (m *protoMapper) count(fd protoreflect.FieldDescriptor) error {
	if m.columns++; m.columns > maxProtoColumns {
		return fmt.Errorf("parse: message maps to more than %d columns (at field %s); lower max_depth", maxProtoColumns, fd.FullName())
	}
	return nil
}

// message maps md, at depth, to a struct.
func (m *protoMapper) message(md protoreflect.MessageDescriptor, depth int) (schema.Type, mapStatus, error) {
	t := schema.Type{Kind: schema.KindStruct}
	anyCut := false
	fds := md.Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		ft, st, err := m.field(fd, depth)
		if err != nil {
			return schema.Type{}, mapped, err
		}
		switch st {
		case mapped:
			t.Fields = append(t.Fields, schema.Field{Name: string(fd.Name()), Type: ft, Source: strconv.Itoa(int(fd.Number()))})
		case cut:
			anyCut = true
		}
	}
	switch {
	case len(t.Fields) > 0:
		return t, mapped, nil
	case anyCut:
		// Its only content is below the cut: cut it too, so that a record
		// holding it fails instead of losing the content silently.
		return schema.Type{}, cut, nil
	}
	return schema.Type{}, empty, nil
}
