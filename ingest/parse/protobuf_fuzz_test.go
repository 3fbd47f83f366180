package parse

import (
	"errors"
	"math"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/sluicehq/sluice/ingest/schema"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// FuzzProtobuf checks that no input makes Decode panic or return anything
// but a *RecordError, and that every row it returns is one parquet-go
// writes and reads back unchanged. When the protobuf runtime parses the
// input too, the decoder must agree with reflection on the runtime's
// canonical encoding of it.
func FuzzProtobuf(f *testing.F) {
	reg := testTypes(f)
	type decoder struct {
		name string
		md   protoreflect.MessageDescriptor
		d    *Protobuf
		l    *schema.Layout
		opts ProtoOptions
		// differential: compare with reflection (proto3 only: the runtime
		// drops unknown numbers of proto2's closed enums, which Protobuf
		// keeps as their decimal text).
		differential bool
	}
	var decoders []decoder
	for _, c := range []struct {
		msg          string
		opts         ProtoOptions
		differential bool
	}{
		{"test.Every", everyOpts(f), true},
		{"test.Every", ProtoOptions{EventTime: "event_ms", EnumAsNumber: true, MaxRecordBytes: 4096}, true},
		{"test.Tree", ProtoOptions{EventTime: "event_time", MaxDepth: 3}, true},
		{"test2.P2", ProtoOptions{EventTime: "event_ms"}, false},
	} {
		md := messageType(f, reg, c.msg)
		l := newProtoLayout(f, md, c.opts)
		decoders = append(decoders, decoder{c.msg, md, newProtoDecoder(f, md, l, c.opts), l, c.opts, c.differential})
	}
	every := messageType(f, reg, "test.Every")
	f.Add(marshal(f, newMessage(f, every, everyFull(f))))
	f.Add(marshal(f, newMessage(f, every, map[string]any{"event_time": timestamppb.New(time1), "event_ms": 1,
		"attrs": map[any]any{"a": "b"}, "c_str": "x", "packed": []any{1, 2, 3}})))
	f.Add([]byte(eventTime().varint(4, 1).str(15, "x").bytes(21, protowire.AppendVarint(nil, 5)).
		bytes(25, wire{}.str(1, "k").str(2, "v")).bytes(25, wire{}.str(1, "k")).bytes(29, wire{}.varint(1, 1)).
		group(99, wire{}.varint(1, 1)).bytes(47, wire{}.varint(1, math.MaxUint64).bytes(2, wire{}.varint(1, 3)))))
	f.Add([]byte(wire{}.varint(1, 1795417200123).str(3, "r").group(4, wire{}.varint(5, 1)).group(6, wire{}.str(7, "y")).
		bytes(8, protowire.AppendVarint(nil, 1)).varint(9, 7).fixed64(10, 1)))
	f.Add([]byte(eventTime().bytes(3, wire{}.str(2, "a").bytes(3, wire{}.bytes(3, nil))).bytes(4, wire{}.bytes(4, nil))))
	f.Add([]byte(eventTime().bytes(43, wire{}.str(1, "type.googleapis.com/google.protobuf.Duration").bytes(2, wire{}.varint(1, 5)))))
	f.Add([]byte(eventTime().bytes(41, wire{}.fixed64(2, math.Float64bits(math.NaN())))))
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add([]byte{0x0a, 0x05, 0x08})

	var row, again parquet.Row
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, dec := range decoders {
			var err error
			row, _, err = dec.d.Decode(row, data)
			if err != nil {
				var re *RecordError
				if !errors.As(err, &re) || re.Reason == "" {
					t.Fatalf("%s: error %#v is not a *RecordError with a reason", dec.name, err)
				}
				if len(row) != 0 {
					t.Fatalf("%s: error %v came with a row", dec.name, err)
				}
				dec.d.Reset()
				continue
			}
			writeReadRows(t, dec.l, row)
			dec.d.Reset()
			if !dec.differential {
				continue
			}
			m := dynamicpb.NewMessage(dec.md)
			if proto.Unmarshal(data, m) != nil {
				continue // the runtime takes fields of the wrong wire type as unknown
			}
			canonical, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			if err != nil {
				t.Fatalf("%s: marshal: %v", dec.name, err)
			}
			if again, _, err = dec.d.Decode(again, canonical); err != nil {
				t.Fatalf("%s: decoded %x but not its canonical form %x: %v", dec.name, data, canonical, err)
			}
			c := newReflectConverter(dec.l, dec.opts, true)
			want := c.row(nil, m)
			if c.err == nil && !sameRow(again, want) {
				t.Fatalf("%s: Decode and reflection disagree on %x:\ndecoded%s\nreflect%s", dec.name, canonical, fmtRow(again), fmtRow(want))
			}
			dec.d.Reset()
		}
	})
}
