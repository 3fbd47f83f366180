package registry

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluicehq/sluice/ingest/parse"
	"github.com/sluicehq/sluice/ingest/schema"
)

const v1 = `syntax = "proto3";
package t;
import "google/protobuf/timestamp.proto";
message E { string id = 1; google.protobuf.Timestamp ts = 2; int32 n = 3; }
`

// v2 adds a field; v3 changes a type incompatibly.
const (
	v2 = `syntax = "proto3";
package t;
import "google/protobuf/timestamp.proto";
message E { string id = 1; google.protobuf.Timestamp ts = 2; int32 n = 3; string extra = 4; }
`
	v3 = `syntax = "proto3";
package t;
import "google/protobuf/timestamp.proto";
message E { string id = 1; google.protobuf.Timestamp ts = 2; string n = 3; }
`
)

type fixture struct {
	reg           *srfake.Registry
	src           *Source
	layout        *schema.Layout
	cols          schema.Schema
	id1, id2, id3 int
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	f := &fixture{reg: reg}
	for i, text := range []string{v1, v2, v3} {
		id, _, err := reg.RegisterSchema("e-value", sr.Schema{Schema: text, Type: sr.TypeProtobuf})
		if err != nil {
			t.Fatal(err)
		}
		*[]*int{&f.id1, &f.id2, &f.id3}[i] = id
	}
	opts := parse.ProtoOptions{EventTime: "ts"}
	src, err := New([]string{reg.URL()}, "", "", "e-value", "", opts)
	if err != nil {
		t.Fatal(err)
	}
	f.src = src
	md, err := src.messageByID(t.Context(), f.id1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.cols, err = parse.ProtoSchema(md, opts); err != nil {
		t.Fatal(err)
	}
	s := f.cols
	s.AssignIDs()
	f.layout = schema.NewLayout(s, "e")
	return f
}

// record encodes {id, ts, n} in the wire format of schema id.
func record(t testing.TB, id int, extra bool) []byte {
	t.Helper()
	var h sr.ConfluentHeader
	b, err := h.AppendEncode(nil, id, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, "r1")
	var ts []byte
	ts = protowire.AppendTag(ts, 1, protowire.VarintType)
	ts = protowire.AppendVarint(ts, 1795410000)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, ts)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	if extra {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendString(b, "x")
	}
	return b
}

func TestDecoder(t *testing.T) {
	f := newFixture(t)
	d := f.src.NewDecoder(f.layout, f.cols)
	row, et, err := d.Decode(nil, record(t, f.id1, false))
	if err != nil {
		t.Fatal(err)
	}
	if et != 1795410000*1_000_000 || len(row) != 3 {
		t.Errorf("event time %d, row %v", et, row)
	}
	var re *parse.RecordError
	if _, _, err := d.Decode(nil, []byte("plain")); !errors.As(err, &re) {
		t.Errorf("no wire header: %v, want a RecordError", err)
	}
	if _, _, err := d.Decode(nil, record(t, f.id2, true)); !errors.Is(err, ErrSchemaChanged) {
		t.Errorf("new field: %v, want ErrSchemaChanged", err)
	} else if rs, ok := err.(interface{ NeedsRestart() bool }); !ok || !rs.NeedsRestart() {
		t.Errorf("new field: %T does not ask for a restart", err)
	}
	if _, _, err := d.Decode(nil, record(t, f.id3, false)); !errors.As(err, &re) {
		t.Errorf("type change: %v, want a RecordError", err)
	}
	if _, _, err := d.Decode(nil, record(t, 999, false)); err == nil || errors.As(err, &re) {
		t.Errorf("unknown schema id: %v, want a stream error (not the record's fault)", err)
	}
	latest, err := f.src.Latest(t.Context())
	if err != nil || latest.Fields().Len() != 3 || latest.Fields().ByName("n").Kind().String() != "string" {
		t.Errorf("latest = %v, %v; want v3", latest, err)
	}
}

// FuzzDecoder feeds arbitrary bytes, with and without a valid header: the
// decoder never panics and reports bad input as record errors.
func FuzzDecoder(f *testing.F) {
	fx := newFixture(f)
	f.Add(record(f, fx.id1, false))
	f.Add(record(f, fx.id1, false)[:7])
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := fx.src.NewDecoder(fx.layout, fx.cols)
		_, _, err := d.Decode(nil, data)
		var re *parse.RecordError
		if err != nil && !errors.As(err, &re) && !errors.Is(err, ErrSchemaChanged) {
			// Only schema lookups of unknown ids may fail otherwise.
			if id, _, herr := header.DecodeID(data); herr != nil || id == fx.id1 || id == fx.id2 || id == fx.id3 {
				t.Fatalf("unexpected error %v", err)
			}
		}
	})
}
