package parse

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/parquet-go/parquet-go"
	"github.com/sluicehq/sluice/ingest/schema"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// compileProto compiles .proto sources, which may import the well-known
// types, into a registry. The files are rebuilt by protodesc, as a stream
// would build them from a schema registry's file descriptor sets, so that
// the protobuf runtime (and dynamicpb, the benchmark's baseline) works with
// its own descriptor implementation rather than protocompile's.
func compileProto(tb testing.TB, srcs map[string]string) *protoregistry.Files {
	tb.Helper()
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: protocompile.SourceAccessorFromMap(srcs),
		}),
	}
	names := make([]string, 0, len(srcs))
	for name := range srcs {
		names = append(names, name)
	}
	slices.Sort(names)
	files, err := c.Compile(context.Background(), names...)
	if err != nil {
		tb.Fatalf("compile %v: %v", names, err)
	}
	reg := new(protoregistry.Files)
	var register func(fd protoreflect.FileDescriptor)
	register = func(fd protoreflect.FileDescriptor) {
		if _, err := reg.FindFileByPath(fd.Path()); err == nil {
			return
		}
		imports := fd.Imports()
		for i := range imports.Len() {
			register(imports.Get(i).FileDescriptor)
		}
		if global, err := protoregistry.GlobalFiles.FindFileByPath(fd.Path()); err == nil {
			fd = global // a well-known type
		} else if fd, err = protodesc.NewFile(protodesc.ToFileDescriptorProto(fd), reg); err != nil {
			tb.Fatalf("build %s: %v", fd.Path(), err)
		}
		if err := reg.RegisterFile(fd); err != nil {
			tb.Fatalf("register %s: %v", fd.Path(), err)
		}
	}
	for _, f := range files {
		register(f)
	}
	return reg
}

// messageType finds a message type in reg.
func messageType(tb testing.TB, reg *protoregistry.Files, name string) protoreflect.MessageDescriptor {
	tb.Helper()
	d, err := reg.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		tb.Fatalf("find %s: %v", name, err)
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		tb.Fatalf("%s is not a message", name)
	}
	return md
}

// newProtoLayout builds the layout of md's schema the way streams do:
// mapped by ProtoSchema, Iceberg IDs assigned.
func newProtoLayout(tb testing.TB, md protoreflect.MessageDescriptor, opts ProtoOptions) *schema.Layout {
	tb.Helper()
	s, err := ProtoSchema(md, opts)
	if err != nil {
		tb.Fatalf("ProtoSchema(%s): %v", md.FullName(), err)
	}
	s.AssignIDs()
	return schema.NewLayout(s, "test")
}

func newProtoDecoder(tb testing.TB, md protoreflect.MessageDescriptor, l *schema.Layout, opts ProtoOptions) *Protobuf {
	tb.Helper()
	d, err := NewProtobuf(md, l, opts)
	if err != nil {
		tb.Fatalf("NewProtobuf(%s): %v", md.FullName(), err)
	}
	return d
}

// marshal encodes m with map entries in key order, so that rows from the
// wire and from reflectRow list them alike.
func marshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return b
}

// reflectConverter turns a message built by protoreflect (dynamicpb) into
// a row of a layout from ProtoSchema by walking its fields. It is the
// benchmark's baseline, and the tests' second opinion: it shares nothing
// with Protobuf but the layout, and reads the message through the
// protobuf runtime's own semantics (Has, Get, oneofs, merges, map keys).
type reflectConverter struct {
	l            *schema.Layout
	enumAsNumber bool
	resolver     protojson.MarshalOptions
	// sortKeys lists map entries in key order; a map's Range order is
	// random. The benchmark does without.
	sortKeys bool
	sorter   columnSorter
	// err is set when a JSON-mapped value has no JSON form.
	err error
}

func newReflectConverter(l *schema.Layout, opts ProtoOptions, sortKeys bool) *reflectConverter {
	c := &reflectConverter{l: l, enumAsNumber: opts.EnumAsNumber, sortKeys: sortKeys}
	c.sorter.counts = make([]int, l.NumColumns+1)
	if opts.Resolver != nil {
		c.resolver.Resolver = opts.Resolver
	}
	return c
}

func (c *reflectConverter) row(row parquet.Row, m protoreflect.Message) parquet.Row {
	row = row[:0]
	fds := m.Descriptor().Fields()
	for _, n := range c.l.Top {
		row = c.field(row, n, m, fds.ByName(protoreflect.Name(n.Field.Name)), 0)
	}
	c.sorter.sort(row)
	return row
}

func nulls(row parquet.Row, n *schema.Node, rep, def int) parquet.Row {
	for _, col := range n.Leaves {
		row = append(row, parquet.NullValue().Level(rep, def, col))
	}
	return row
}

func (c *reflectConverter) field(row parquet.Row, n *schema.Node, m protoreflect.Message, fd protoreflect.FieldDescriptor, rep int) parquet.Row {
	switch {
	case fd.IsList():
		l := m.Get(fd).List()
		if l.Len() == 0 {
			return nulls(row, n, rep, n.Def)
		}
		for i := range l.Len() {
			r := rep
			if i > 0 {
				r = n.Rep
			}
			row = c.value(row, n.Children[0], fd, l.Get(i), r)
		}
		return row
	case fd.IsMap():
		mp := m.Get(fd).Map()
		if mp.Len() == 0 {
			return nulls(row, n, rep, n.Def)
		}
		var keys []protoreflect.MapKey
		mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k)
			return true
		})
		if c.sortKeys {
			slices.SortFunc(keys, compareMapKeys)
		}
		for i, k := range keys {
			r := rep
			if i > 0 {
				r = n.Rep
			}
			row = c.value(row, n.Children[0], fd.MapKey(), k.Value(), r)
			row = c.value(row, n.Children[1], fd.MapValue(), mp.Get(k), r)
		}
		return row
	}
	if fd.HasPresence() && !m.Has(fd) {
		return nulls(row, n, rep, n.Def-1)
	}
	return c.value(row, n, fd, m.Get(fd), rep)
}

func compareMapKeys(a, b protoreflect.MapKey) int {
	switch x := a.Interface().(type) {
	case string:
		return cmpOrdered(x, b.Interface().(string))
	case bool:
		return cmpOrdered(strconv.FormatBool(x), strconv.FormatBool(b.Bool()))
	case int32, int64:
		return cmpOrdered(a.Int(), b.Int())
	}
	return cmpOrdered(a.Uint(), b.Uint())
}

func cmpOrdered[T int64 | uint64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (c *reflectConverter) value(row parquet.Row, n *schema.Node, fd protoreflect.FieldDescriptor, v protoreflect.Value, rep int) parquet.Row {
	var val parquet.Value
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		msg := v.Message()
		md := msg.Descriptor()
		switch name := md.FullName(); name {
		case "google.protobuf.Timestamp", "google.protobuf.Duration":
			secs := msg.Get(md.Fields().ByNumber(1)).Int()
			nanos := msg.Get(md.Fields().ByNumber(2)).Int()
			val = parquet.Int64Value(secs*1_000_000 + nanos/1000)
		case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.Any":
			// Through the generated types, as dynamic messages of these types
			// have no JSON form of their own.
			b, err := proto.Marshal(msg.Interface())
			if err != nil {
				panic(err)
			}
			text, err := reflectJSON(c.resolver, name, b)
			if err != nil {
				c.err = err
			}
			val = parquet.ByteArrayValue(text)
		case "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
			"google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
			"google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
			inner := md.Fields().ByNumber(1)
			return c.value(row, n, inner, msg.Get(inner), rep)
		default:
			fds := md.Fields()
			for _, child := range n.Children {
				row = c.field(row, child, msg, fds.ByName(protoreflect.Name(child.Field.Name)), rep)
			}
			return row
		}
	case protoreflect.DoubleKind:
		val = parquet.DoubleValue(v.Float())
	case protoreflect.FloatKind:
		val = parquet.FloatValue(float32(v.Float()))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		val = parquet.Int32Value(int32(v.Int()))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		val = parquet.Int64Value(v.Int())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		val = parquet.Int64Value(int64(v.Uint()))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		b := make([]byte, 9)
		binary.BigEndian.PutUint64(b[1:], v.Uint())
		val = parquet.FixedLenByteArrayValue(b)
	case protoreflect.BoolKind:
		val = parquet.BooleanValue(v.Bool())
	case protoreflect.StringKind:
		val = parquet.ByteArrayValue([]byte(v.String()))
	case protoreflect.BytesKind:
		val = parquet.ByteArrayValue(bytes.Clone(v.Bytes()))
	case protoreflect.EnumKind:
		num := v.Enum()
		switch ev := fd.Enum().Values().ByNumber(num); {
		case c.enumAsNumber:
			val = parquet.Int32Value(int32(num))
		case ev != nil:
			val = parquet.ByteArrayValue([]byte(ev.Name()))
		default:
			val = parquet.ByteArrayValue([]byte(strconv.Itoa(int(num))))
		}
	}
	return append(row, val.Level(rep, n.Def, n.Column))
}

// reflectJSON renders a Struct, Value, ListValue or Any, encoded in b, as
// compact JSON, as ProtoSchema documents: an empty Value as null, an Any
// of an unknown type as its type URL and bytes.
func reflectJSON(o protojson.MarshalOptions, name protoreflect.FullName, b []byte) ([]byte, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil {
		return nil, err
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, err
	}
	if v, ok := m.(*structpb.Value); ok && v.Kind == nil {
		return []byte("null"), nil
	}
	text, err := o.Marshal(m)
	if a, ok := m.(*anypb.Any); ok && err != nil {
		url, _ := json.Marshal(a.TypeUrl)
		text, err = []byte(`{"@type":`+string(url)+`,"value":"`+base64.StdEncoding.EncodeToString(a.Value)+`"}`), nil
	}
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, text); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// setField sets a field of m by name to a Go value: scalars as their Go
// types, messages as proto.Message or map[string]any (recursively), lists
// as []any, maps as map[any]any.
func setField(tb testing.TB, m protoreflect.Message, name string, v any) {
	tb.Helper()
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		tb.Fatalf("%s has no field %s", m.Descriptor().FullName(), name)
	}
	switch {
	case fd.IsList():
		l := m.Mutable(fd).List()
		for _, e := range v.([]any) {
			l.Append(toValue(tb, fd, func() protoreflect.Message { return l.NewElement().Message() }, e))
		}
	case fd.IsMap():
		mp := m.Mutable(fd).Map()
		for k, e := range v.(map[any]any) {
			mk := toValue(tb, fd.MapKey(), nil, k).MapKey()
			mp.Set(mk, toValue(tb, fd.MapValue(), func() protoreflect.Message { return mp.NewValue().Message() }, e))
		}
	default:
		m.Set(fd, toValue(tb, fd, func() protoreflect.Message { return m.NewField(fd).Message() }, v))
	}
}

func toValue(tb testing.TB, fd protoreflect.FieldDescriptor, newMsg func() protoreflect.Message, v any) protoreflect.Value {
	tb.Helper()
	switch x := v.(type) {
	case map[string]any:
		msg := newMsg()
		for name, fv := range x {
			setField(tb, msg, name, fv)
		}
		return protoreflect.ValueOfMessage(msg)
	case proto.Message:
		// A generated well-known type: copy it into the field's own type.
		msg := newMsg()
		b, err := proto.Marshal(x)
		if err != nil {
			tb.Fatal(err)
		}
		if err := proto.Unmarshal(b, msg.Interface()); err != nil {
			tb.Fatal(err)
		}
		return protoreflect.ValueOfMessage(msg)
	case string:
		if fd.Kind() == protoreflect.EnumKind {
			ev := fd.Enum().Values().ByName(protoreflect.Name(x))
			if ev == nil {
				tb.Fatalf("enum %s has no value %s", fd.Enum().FullName(), x)
			}
			return protoreflect.ValueOfEnum(ev.Number())
		}
	case int:
		switch fd.Kind() {
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			return protoreflect.ValueOfInt32(int32(x))
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			return protoreflect.ValueOfInt64(int64(x))
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			return protoreflect.ValueOfUint32(uint32(x))
		case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			return protoreflect.ValueOfUint64(uint64(x))
		case protoreflect.EnumKind:
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(x))
		case protoreflect.DoubleKind:
			return protoreflect.ValueOfFloat64(float64(x))
		case protoreflect.FloatKind:
			return protoreflect.ValueOfFloat32(float32(x))
		}
	case float64:
		if fd.Kind() == protoreflect.FloatKind {
			return protoreflect.ValueOfFloat32(float32(x))
		}
	}
	return protoreflect.ValueOf(v)
}

// newMessage builds a message of type md from fields as setField takes them.
func newMessage(tb testing.TB, md protoreflect.MessageDescriptor, fields map[string]any) *dynamicpb.Message {
	tb.Helper()
	m := dynamicpb.NewMessage(md)
	for name, v := range fields {
		setField(tb, m, name, v)
	}
	return m
}

// sameRow is Row.Equal, except that a NaN equals a NaN of the same bits:
// parquet-go keeps the bits, and protobuf sends whatever bits it is given.
func sameRow(a, b parquet.Row) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Column() != y.Column() || x.RepetitionLevel() != y.RepetitionLevel() ||
			x.DefinitionLevel() != y.DefinitionLevel() || x.Kind() != y.Kind() || x.IsNull() != y.IsNull() {
			return false
		}
		switch {
		case x.IsNull():
		case x.Kind() == parquet.Double:
			if math.Float64bits(x.Double()) != math.Float64bits(y.Double()) {
				return false
			}
		case x.Kind() == parquet.Float:
			if math.Float32bits(x.Float()) != math.Float32bits(y.Float()) {
				return false
			}
		case !parquet.Equal(x, y):
			return false
		}
	}
	return true
}
