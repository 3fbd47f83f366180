package kafka

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/ingest/parse"
	"github.com/sluicehq/sluice/ingest/schema"
)

func layoutOf(t *testing.T, cols ...[2]string) *schema.Layout {
	t.Helper()
	var s schema.Schema
	for _, c := range cols {
		typ, err := schema.ParseType(c[1])
		if err != nil {
			t.Fatal(err)
		}
		s.Fields = append(s.Fields, schema.Field{Name: c[0], Type: typ})
	}
	s.AssignIDs()
	return schema.NewLayout(s, "t")
}

// TestAppendJSON decodes records with the JSON decoder and checks the
// exported JSON, so both directions agree on every type.
func TestAppendJSON(t *testing.T) {
	l := layoutOf(t,
		[2]string{"id", "string"}, [2]string{"ts", "timestamptz(ms)"}, [2]string{"n", "int32"}, [2]string{"big", "int64"},
		[2]string{"f", "float32"}, [2]string{"d", "float64"}, [2]string{"ok", "bool"}, [2]string{"price", "decimal(12,2)"},
		[2]string{"wide", "decimal(30,4)"}, [2]string{"day", "date"}, [2]string{"raw", "binary"},
		[2]string{"tags", "list<string>"}, [2]string{"geo", "struct<country:string,lat:float64>"})
	dec, err := parse.NewJSON(l, parse.Options{EventTime: "ts"})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := NewEncoder(l, "id")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{`{"id":"e-1","ts":"2026-11-23T05:00:00.123Z","n":-3,"big":9007199254740993,"f":1.5,"d":-0.25,"ok":true,"price":"-12.05","wide":"123456789012345678.0001","day":"2026-11-23","raw":"AAE=","tags":["a",null,"c\"q"],"geo":{"country":"US","lat":1.5}}`,
			`{"id":"e-1","ts":"2026-11-23T05:00:00.123Z","n":-3,"big":9007199254740993,"f":1.5,"d":-0.25,"ok":true,"price":-12.05,"wide":123456789012345678.0001,"day":"2026-11-23","raw":"AAE=","tags":["a",null,"c\"q"],"geo":{"country":"US","lat":1.5}}`},
		{`{"id":"tab\there","ts":1795410000000,"tags":[],"geo":null,"price":"0.05"}`,
			`{"id":"tab\there","ts":"2026-11-23T05:00:00Z","n":null,"big":null,"f":null,"d":null,"ok":null,"price":0.05,"wide":null,"day":null,"raw":null,"tags":[],"geo":null}`},
		{`{"id":"ü","ts":"2026-11-23T05:00:00Z","geo":{"lat":2}}`,
			`{"id":"ü","ts":"2026-11-23T05:00:00Z","n":null,"big":null,"f":null,"d":null,"ok":null,"price":null,"wide":null,"day":null,"raw":null,"tags":null,"geo":{"country":null,"lat":2}}`},
	}
	for _, tt := range tests {
		row, _, err := dec.Decode(nil, []byte(tt.in))
		if err != nil {
			t.Fatalf("decode %s: %v", tt.in, err)
		}
		got := string(enc.AppendJSON(nil, row))
		if got != tt.want {
			t.Errorf("AppendJSON(%s)\n got %s\nwant %s", tt.in, got, tt.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("invalid JSON %s", got)
		}
		var id struct{ ID string }
		json.Unmarshal([]byte(got), &id)
		if k := string(enc.Key(row)); k != id.ID {
			t.Errorf("key %q, want %q", k, id.ID)
		}
	}
}

func TestNewEncoderRefuses(t *testing.T) {
	if _, err := NewEncoder(layoutOf(t, [2]string{"items", "list<struct<a:int64>>"}), ""); err == nil || !strings.Contains(err.Error(), "column items") {
		t.Errorf("list of structs: %v", err)
	}
	if _, err := NewEncoder(layoutOf(t, [2]string{"a", "string"}), "missing"); err == nil {
		t.Error("missing key column accepted")
	}
}
