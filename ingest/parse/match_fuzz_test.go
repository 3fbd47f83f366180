package parse

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// checkMatchDecode decodes data with m, whose inner decoder accepts
// everything, and checks that the outcome is one of the three Decode may
// have: selected (decoded), ErrNotMatched (not decoded) or a *RecordError
// (decoded, to be dead-lettered). It returns whether the record was
// selected, and whether it was dead.
func checkMatchDecode(t *testing.T, m *Matching, inner *fakeDecoder, data []byte) (selected, dead bool) {
	t.Helper()
	inner.calls = 0
	_, _, err := m.Decode(make(parquet.Row, 0, 1), data)
	var re *RecordError
	switch {
	case err == nil:
		if inner.calls != 1 {
			t.Fatalf("selected, but the inner decoder was called %d times", inner.calls)
		}
		return true, false
	case err == ErrNotMatched:
		if inner.calls != 0 {
			t.Fatalf("not selected, but the inner decoder was called %d times", inner.calls)
		}
		return false, false
	case errors.As(err, &re):
		if inner.calls != 1 {
			t.Fatalf("dead (%v), but the inner decoder was called %d times", err, inner.calls)
		}
		return false, true
	}
	t.Fatalf("Decode: %v (%T), want nil, ErrNotMatched or a *RecordError", err, err)
	return false, false
}

// FuzzJSONMatch checks that no record makes a JSON Matching panic or
// return anything but the three outcomes, and that when encoding/json reads
// the record too, it agrees on whether the key holds the value.
func FuzzJSONMatch(f *testing.F) {
	for _, seed := range []struct{ data, value string }{
		{`{"kind":"click"}`, "click"},
		{`{"kind":"view","a":[1,{"kind":"click"}]}`, "click"},
		{`{"kind":7}`, "7"},
		{`{"kind":-7.5e-3}`, "-7.5e-3"},
		{`{"kind":true}`, "true"},
		{`{"kind":false}`, "false"},
		{`{"kind":null}`, "null"},
		{`{"kind":{}}`, "{}"},
		{`{"\u006bind":"cl\u0069ck"}`, "click"},
		{`{"kind":"a","kind":"a"}`, "a"},
		{`{"kind":"\ud800"}`, "\xed\xa0\x80"},
		{"{\"kind\":\"\xff\"}", "\xff"},
		{`{"kind":NaN}`, "NaN"},
		{`[]`, ""}, {`null`, ""}, {`"x"`, "x"}, {`{`, ""}, {``, ""}, {`{}`, ""},
		{clickEvent, "page_view"},
	} {
		f.Add([]byte(seed.data), seed.value)
	}
	f.Fuzz(func(t *testing.T, data []byte, value string) {
		inner := &fakeDecoder{}
		m, err := NewJSONMatch(inner, "kind", value)
		if err != nil {
			t.Fatal(err)
		}
		selected, dead := checkMatchDecode(t, m, inner, data)
		if dead {
			return
		}
		// A second opinion where encoding/json reads the record alike:
		// it keeps the last of repeated keys (which Matching refuses) and
		// replaces invalid UTF-8 (which Matching compares as it is).
		var obj map[string]json.RawMessage
		if json.Unmarshal(data, &obj) != nil {
			return
		}
		raw, ok := obj["kind"]
		want := false
		switch {
		case !ok:
		case raw[0] == '"':
			if bytes.IndexByte(raw, '\\') >= 0 || !utf8.Valid(raw) {
				return
			}
			want = string(raw[1:len(raw)-1]) == value
		case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9', string(raw) == "true", string(raw) == "false":
			want = string(raw) == value
		}
		if selected != want {
			t.Errorf("kind %s, value %q: selected %v, encoding/json says %v", raw, value, selected, want)
		}
	})
}

// matchFields are the fields of mt.Ev a record can be selected by.
var matchFields = []string{"s", "b", "k", "t", "i32", "s32", "sf32", "i64", "s64", "sf64", "u32", "f32", "u64", "f64", "os", "o1", "o2", "ok"}

// FuzzProtoMatch checks that no record makes a protobuf Matching panic or
// return anything but the three outcomes, and that when the protobuf
// runtime parses the record too, it agrees on whether the field holds the
// value.
func FuzzProtoMatch(f *testing.F) {
	md := messageType(f, matchTypes(f), "mt.Ev")
	neg := uint64(math.MaxUint64)
	for _, seed := range []struct {
		data  wire
		field int
		value string
	}{
		{wire{}.str(1, "click"), 0, "click"},
		{wire{}.str(1, "click").str(1, "view"), 0, "view"},
		{wire{}, 0, ""},
		{wire{}.bytes(2, []byte{0xff}), 1, "\xff"},
		{wire{}.varint(3, 1), 2, "CLICK"},
		{wire{}.varint(3, neg), 2, "NEG"},
		{wire{}.varint(3, math.MaxUint32), 2, "-1"},
		{wire{}.varint(4, 2), 3, "true"},
		{wire{}.varint(5, neg), 4, "-1"},
		{wire{}.varint(6, 3), 5, "-2"},
		{wire{}.fixed32(7, math.MaxUint32), 6, "-1"},
		{wire{}.varint(8, 1<<63), 7, "-9223372036854775808"},
		{wire{}.varint(9, 1), 8, "-1"},
		{wire{}.fixed64(10, neg), 9, "-1"},
		{wire{}.varint(11, 1<<32|1), 10, "1"},
		{wire{}.fixed32(12, 1), 11, "1"},
		{wire{}.varint(13, neg), 12, "18446744073709551615"},
		{wire{}.fixed64(14, 1), 13, "1"},
		{wire{}.str(15, ""), 14, ""},
		{wire{}.str(16, "x").varint(17, 1), 15, "x"},
		{wire{}.varint(17, 1).str(16, "x"), 16, "1"},
		{wire{}.str(16, "x").bytes(18, wire{}.varint(1, 1)), 15, "x"},
		{wire{}.varint(24, 0), 17, "KIND_UNSPECIFIED"},
		{wire{}.varint(1, 5), 0, "click"},
		{wire{}.group(30, wire{}.str(1, "x")).str(1, "click"), 0, "click"},
		{wire{}.raw(0x0a, 5, 'c'), 0, "click"},
		{wire{}.tag(5, protowire.EndGroupType), 4, "0"},
		{wire{}.str(1, "\xff"), 0, "\xff"},
	} {
		f.Add([]byte(seed.data), uint8(seed.field), seed.value)
	}
	f.Fuzz(func(t *testing.T, data []byte, field uint8, value string) {
		name := matchFields[int(field)%len(matchFields)]
		inner := &fakeDecoder{}
		m, err := NewProtoMatch(inner, md, name, value)
		if err != nil {
			return // a value the field cannot hold
		}
		selected, dead := checkMatchDecode(t, m, inner, data)
		msg := dynamicpb.NewMessage(md)
		if proto.Unmarshal(data, msg) != nil {
			// Malformed, or invalid UTF-8 in a string: Matching reads only
			// the top level, and strings as bytes.
			return
		}
		if dead {
			// The runtime keeps a value of the wrong wire type as an
			// unknown field; Matching has it dead-lettered.
			if msg.GetUnknown() == nil {
				t.Errorf("dead, but the runtime parses it without unknown fields")
			}
			return
		}
		if want := runtimeMatches(t, msg, md.Fields().ByName(protoreflect.Name(name)), value); selected != want {
			t.Errorf("%s=%q: selected %v, the runtime says %v", name, value, selected, want)
		}
	})
}

// runtimeMatches says whether fd holds value in msg, as read by the
// protobuf runtime.
func runtimeMatches(t *testing.T, msg protoreflect.Message, fd protoreflect.FieldDescriptor, value string) bool {
	if fd.HasPresence() && !msg.Has(fd) {
		return false
	}
	v := msg.Get(fd)
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String() == value
	case protoreflect.BytesKind:
		return string(v.Bytes()) == value
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool()) == value
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByName(protoreflect.Name(value)); ev != nil {
			return v.Enum() == ev.Number()
		}
		n, err := strconv.ParseInt(value, 10, 32)
		return err == nil && int64(v.Enum()) == n
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(value, 10, 64)
		return err == nil && v.Int() == n
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(value, 10, 64)
		return err == nil && v.Uint() == n
	}
	t.Fatalf("field %s of kind %s", fd.Name(), fd.Kind())
	return false
}
