package parse

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/parquet-go/parquet-go"
	"github.com/valyala/fastjson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ErrNotMatched is returned by Matching.Decode for a record that belongs to
// another stream reading the same topic. It is not a *RecordError: the
// record is not bad, and the caller counts it as skipped rather than
// dead-lettering it.
var ErrNotMatched = errors.New("record does not match the stream")

// Matching selects the records of one stream among the message types that
// share a topic, by the value of one top-level field of the record value,
// before they are decoded: records whose field does not hold the value are
// not decoded, and Decode returns ErrNotMatched for them.
//
// Looking at one field costs a scan of the record's top level, and
// allocates nothing per record once warm. For JSON it is a full parse with
// a parser of its own (the inner decoder parses a selected record again;
// about a third of the cost of decoding a small flat record), which also
// means that a record over max_record_bytes is parsed once before the
// decoder refuses it. For protobuf it is a walk over the top-level tags:
// embedded messages are skipped whole, unread, so a record not selected is
// not checked below its top level; its own stream's decoder judges it.
//
// A record the selection cannot read (not valid JSON, malformed protobuf, a
// field sent with the wrong type) is never skipped: it is handed to the
// inner decoder so that it is dead-lettered with the decoder's reason.
// Skipping it would drop it silently, as every other stream reading the
// topic would skip it too. Should the inner decoder accept it anyway (the
// field is not one of its columns), Decode fails it with the selection's
// own *RecordError, so a record the selection cannot place never lands in
// the table.
//
// It is not safe for concurrent use; use one per goroutine.
type Matching struct {
	inner RowDecoder
	m     matcher
}

// matcher decides whether one record value selects the stream. A record it
// cannot read is reported as a *RecordError and not matched.
type matcher interface {
	match(data []byte) (bool, *RecordError)
}

// Decode decodes the record with the inner decoder if it is selected, and
// returns row[:0] and ErrNotMatched if it is not.
func (m *Matching) Decode(row parquet.Row, data []byte) (parquet.Row, int64, error) {
	ok, bad := m.m.match(data)
	switch {
	case bad != nil:
		row, us, err := m.inner.Decode(row, data)
		if err != nil {
			return row, us, err
		}
		// What the inner decoder keeps in its arena for the row is
		// released at the next Reset, as for any record.
		return row[:0], 0, bad
	case !ok:
		return row[:0], 0, ErrNotMatched
	}
	return m.inner.Decode(row, data)
}

// Reset resets the inner decoder.
func (m *Matching) Reset() { m.inner.Reset() }

// UnknownFields passes on the inner decoder's count of unknown fields.
// Records not selected are not decoded and do not count.
func (m *Matching) UnknownFields() int64 {
	if u, ok := m.inner.(interface{ UnknownFields() int64 }); ok {
		return u.UnknownFields()
	}
	return 0
}

// NewJSONMatch wraps inner so that it decodes only the JSON records whose
// top-level key field holds value: a string equal to value, or a number or
// bool whose JSON text is value ("7" selects 7 but not 7.0 or 7e0; "true"
// selects true). A missing key, null, an object or an array selects
// nothing.
//
// A record that is not a JSON object, or that repeats the key, is handed to
// the inner decoder to be dead-lettered (see Matching): a JSON object with
// a repeated key has no agreed meaning, and JSON rejects it for a column.
func NewJSONMatch(inner RowDecoder, field, value string) (*Matching, error) {
	if inner == nil {
		return nil, errors.New("parse: no decoder to match for")
	}
	if field == "" {
		return nil, errors.New("match.field: must name a top-level key")
	}
	return &Matching{inner: inner, m: &jsonMatch{field: field, value: value}}, nil
}

type jsonMatch struct {
	field, value string
	parser       fastjson.Parser
	num          []byte // scratch for the text of a number
}

func (j *jsonMatch) match(data []byte) (bool, *RecordError) {
	v, err := j.parser.ParseBytes(data)
	if err != nil {
		return false, recordErr(err.Error())
	}
	obj, err := v.Object()
	if err != nil {
		return false, recordErr("record is not a JSON object")
	}
	// Visit rather than Get, so that a repeated key is seen; the closure
	// does not escape, so it is not allocated.
	var (
		found *fastjson.Value
		dup   bool
	)
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if string(key) == j.field {
			dup = dup || found != nil
			found = v
		}
	})
	if dup {
		return false, &RecordError{Field: j.field, Reason: "duplicate key"}
	}
	if found == nil {
		return false, nil
	}
	switch found.Type() {
	case fastjson.TypeString:
		s, _ := found.StringBytes()
		return string(s) == j.value, nil
	case fastjson.TypeNumber:
		// fastjson keeps a number's text but only lets it out this way.
		j.num = found.MarshalTo(j.num[:0])
		return string(j.num) == j.value, nil
	case fastjson.TypeTrue:
		return j.value == "true", nil
	case fastjson.TypeFalse:
		return j.value == "false", nil
	}
	return false, nil // null, object, array
}

// NewProtoMatch wraps inner so that it decodes only the protobuf messages
// of type md whose top-level field named field holds value. The field must
// be singular and of a kind that makes a routing key: string, bytes
// (compared byte for byte), enum (value is a name of the enum, or a number
// in decimal), bool ("true" or "false") or any integer (value in decimal,
// in the kind's range). Messages, groups, maps, repeated fields and floats
// are refused, as are values the field cannot hold.
//
// The wire format is scanned, not decoded, with protobuf's semantics: the
// last occurrence of the field wins, and an occurrence of another member of
// its oneof clears it. An absent field selects the record only when value
// is the field's default ("", 0, false, the enum's zero value) and the
// field has no presence (proto3 without optional, or editions' implicit
// presence), since protobuf then reads absent and default alike; a field
// with presence that is absent holds nothing, and selects nothing.
//
// A malformed message, or an occurrence of the field (or of a member of its
// oneof) with another wire type than its own, is handed to the inner
// decoder to be dead-lettered (see Matching). The protobuf runtime would
// keep such a value as an unknown field; the decoder fails the record.
func NewProtoMatch(inner RowDecoder, md protoreflect.MessageDescriptor, field, value string) (*Matching, error) {
	if inner == nil {
		return nil, errors.New("parse: no decoder to match for")
	}
	if md == nil {
		return nil, errors.New("parse: no message type to match in")
	}
	p, err := newProtoMatch(md, field, value)
	if err != nil {
		return nil, fmt.Errorf("match.field %q: %w", field, err)
	}
	return &Matching{inner: inner, m: p}, nil
}

type protoMatch struct {
	name  string
	num   protowire.Number
	wire  protowire.Type
	bytes bool   // string or bytes: compare the value's bytes with value
	value string // of a string or bytes field
	// want is the value of a varint or fixed-width field as it reads on the
	// wire once normalised (see norm).
	want uint64
	// mask keeps the bits of a wire value that the field's kind reads: the
	// low 32 of a 32-bit kind, which may be sent sign-extended to 64.
	mask    uint64
	boolean bool // any nonzero varint is true
	// absent is whether a record without the field is selected.
	absent bool
	// oneof is the other members of the field's oneof: setting one
	// clears the field.
	oneof []wireField
}

type wireField struct {
	name string
	num  protowire.Number
	wire protowire.Type
}

func newProtoMatch(md protoreflect.MessageDescriptor, field, value string) (*protoMatch, error) {
	fd := md.Fields().ByName(protoreflect.Name(field))
	if fd == nil {
		return nil, fmt.Errorf("message %s has no field %q", md.FullName(), field)
	}
	switch {
	case fd.IsMap():
		return nil, errors.New("is a map; only a singular scalar field can select records")
	case fd.IsList():
		return nil, errors.New("is repeated; only a singular scalar field can select records")
	}
	p := &protoMatch{name: field, num: fd.Number(), wire: wireType(fd.Kind()), mask: math.MaxUint64}
	var zero bool // value is the kind's zero value
	switch k := fd.Kind(); k {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return nil, fmt.Errorf("is a message (%s); only a singular scalar field can select records", fd.Message().FullName())
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return nil, fmt.Errorf("is a %s; floating-point equality cannot select records", k)
	case protoreflect.StringKind, protoreflect.BytesKind:
		p.bytes, p.value, zero = true, value, value == ""
	case protoreflect.BoolKind:
		switch value {
		case "true":
			p.want = 1
		case "false":
		default:
			return nil, fmt.Errorf("value %q is not a bool: want true or false", value)
		}
		p.boolean, zero = true, value == "false"
	case protoreflect.EnumKind:
		ed := fd.Enum()
		var n int64
		if ev := ed.Values().ByName(protoreflect.Name(value)); ev != nil {
			n = int64(ev.Number())
		} else {
			var err error
			if n, err = strconv.ParseInt(value, 10, 32); err != nil {
				// A number the enum does not declare is allowed: producers
				// may be ahead of the schema, and the decoder keeps it.
				return nil, fmt.Errorf("enum %s has no value %q", ed.FullName(), value)
			}
		}
		p.want, p.mask, zero = uint64(uint32(n)), math.MaxUint32, n == 0
	default:
		n, err := parseWireInt(k, value)
		if err != nil {
			return nil, err
		}
		p.want, zero = n, n == 0
		switch k {
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Uint32Kind,
			protoreflect.Sfixed32Kind, protoreflect.Fixed32Kind:
			p.mask = math.MaxUint32
		}
	}
	// Without presence, a field is absent exactly when it holds its default,
	// which is the zero value: implicit presence allows no other default
	// (proto3 has none, and editions refuse one), and its enums are open,
	// with zero as their first value.
	p.absent = zero && !fd.HasPresence()
	if od := fd.ContainingOneof(); od != nil {
		for i := range od.Fields().Len() {
			if o := od.Fields().Get(i); o.Number() != fd.Number() {
				p.oneof = append(p.oneof, wireField{string(o.Name()), o.Number(), wireType(o.Kind())})
			}
		}
	}
	return p, nil
}

// parseWireInt parses value as an integer of kind k and returns it as the
// field reads on the wire: zigzag-encoded for sint kinds, the low 32 bits
// for 32-bit kinds.
func parseWireInt(k protoreflect.Kind, value string) (uint64, error) {
	var (
		bits   = 64
		signed = true
	)
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		bits = 32
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		bits, signed = 32, false
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		signed = false
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
	default:
		return 0, fmt.Errorf("is a %s, which cannot select records", k)
	}
	if !signed {
		n, err := strconv.ParseUint(value, 10, bits)
		if err != nil {
			return 0, intErr(k, value, err)
		}
		return n, nil
	}
	n, err := strconv.ParseInt(value, 10, bits)
	if err != nil {
		return 0, intErr(k, value, err)
	}
	switch k {
	case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return protowire.EncodeZigZag(n), nil // < 1<<32 for an int32
	case protoreflect.Int32Kind, protoreflect.Sfixed32Kind:
		return uint64(uint32(n)), nil
	}
	return uint64(n), nil
}

func intErr(k protoreflect.Kind, value string, err error) error {
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("value %q is out of range for %s", value, k)
	}
	return fmt.Errorf("value %q is not a decimal %s", value, k)
}

// wireType is the wire type of one value of kind k.
func wireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.DoubleKind, protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
		return protowire.Fixed64Type
	case protoreflect.FloatKind, protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
		return protowire.Fixed32Type
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return protowire.BytesType
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	}
	return protowire.VarintType
}

// norm returns a wire value as the field's kind reads it.
func (p *protoMatch) norm(v uint64) uint64 {
	if p.boolean {
		if v != 0 {
			return 1
		}
		return 0
	}
	return v & p.mask
}

func (p *protoMatch) match(b []byte) (bool, *RecordError) {
	set, ok := false, false // the field is set, and to the value
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, wireErr(n)
		}
		b = b[n:]
		if num != p.num {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return false, wireErr(n)
			}
			b = b[n:]
			for _, o := range p.oneof {
				if o.num == num {
					if typ != o.wire {
						return false, wireTypeErr(typ, o.wire).in(o.name)
					}
					set = false
				}
			}
			continue
		}
		v, chunk, n := consumeValue(num, typ, b)
		if n < 0 {
			return false, wireErr(n).in(p.name)
		}
		b = b[n:]
		if typ != p.wire {
			return false, wireTypeErr(typ, p.wire).in(p.name)
		}
		set = true
		if p.bytes {
			ok = string(chunk) == p.value
		} else {
			ok = p.norm(v) == p.want
		}
	}
	if !set {
		return p.absent, nil
	}
	return ok, nil
}

func wireTypeErr(got, want protowire.Type) *RecordError {
	return recordErr("wire type " + wireName(got) + ", want " + wireName(want))
}
