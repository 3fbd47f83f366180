package kafka

import (
	"encoding/json"
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
	for _, typ := range []string{"list<struct<a:int64>>", "map<string,struct<a:list<int64>>>"} {
		if _, err := NewEncoder(layoutOf(t, [2]string{"items", typ}), ""); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
	if _, err := NewEncoder(layoutOf(t, [2]string{"m", "map<string,string>"}), "m"); err == nil {
		t.Error("map key column accepted")
	}
	if _, err := NewEncoder(layoutOf(t, [2]string{"a", "string"}), "missing"); err == nil {
		t.Error("missing key column accepted")
	}
}

// TestAppendJSONNested checks lists of structs, and maps, from both
// decoders.
func TestAppendJSONNested(t *testing.T) {
	l := layoutOf(t, [2]string{"id", "string"}, [2]string{"ts", "timestamptz(ms)"},
		[2]string{"items", "list<struct<sku:string,qty:list<int64>,dims:struct<w:float64>>>"})
	dec, err := parse.NewJSON(l, parse.Options{EventTime: "ts"})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := NewEncoder(l, "id")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{`{"id":"1","ts":1,"items":[{"sku":"a","qty":[1,null],"dims":{"w":2}},null,{"qty":null,"dims":null},{"qty":[]}]}`,
			`{"id":"1","ts":"1970-01-01T00:00:00.001Z","items":[{"dims":{"w":2},"qty":[1,null],"sku":"a"},null,{"dims":null,"qty":null,"sku":null},{"dims":null,"qty":[],"sku":null}]}`},
		{`{"id":"2","ts":1,"items":[]}`, `{"id":"2","ts":"1970-01-01T00:00:00.001Z","items":[]}`},
		{`{"id":"3","ts":1}`, `{"id":"3","ts":"1970-01-01T00:00:00.001Z","items":null}`},
	}
	for _, tt := range tests {
		row, _, err := dec.Decode(nil, []byte(tt.in))
		if err != nil {
			t.Fatalf("decode %s: %v", tt.in, err)
		}
		if got := string(enc.AppendJSON(nil, row)); got != tt.want {
			t.Errorf("AppendJSON(%s)\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}

	c := newProtoCodec(t, "exp.Order", parse.ProtoOptions{EventTime: "event_time"})
	enc, err = NewEncoder(c.l, "")
	if err != nil {
		t.Fatal(err)
	}
	const empty = `{"qty":[],"sku":"","tags":{}}`
	for _, tt := range []struct{ in, want string }{
		{`{"eventTime":"2026-11-23T07:00:00.123456Z","items":[{"sku":"a","qty":[1,2],"tags":{"k":"v"}},{}],"attrs":{"x":"y","":"e\"q"},
			"byId":{"1":{"sku":"b"},"-2":{}},"flags":{"true":1.5,"false":"NaN"},"stamps":{"18446744073709551615":"1970-01-01T00:00:00Z"}}`,
			`{"event_time":"2026-11-23T07:00:00.123456Z","items":[{"qty":[1,2],"sku":"a","tags":{"k":"v"}},` + empty + `],` +
				`"attrs":{"":"e\"q","x":"y"},"by_id":{"-2":` + empty + `,"1":{"qty":[],"sku":"b","tags":{}}},"flags":{"false":"NaN","true":1.5},` +
				`"stamps":{"18446744073709551615":"1970-01-01T00:00:00Z"}}`},
		{`{"eventTime":"2026-11-23T07:00:00Z"}`, `{"event_time":"2026-11-23T07:00:00Z","items":[],"attrs":{},"by_id":{},"flags":{},"stamps":{}}`},
	} {
		row := c.row(t, marshal(t, c.message(t, tt.in)))
		got := string(enc.AppendJSON(nil, row))
		if got != tt.want {
			t.Errorf("AppendJSON(%s)\n got %s\nwant %s", tt.in, got, tt.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("invalid JSON %s", got)
		}
	}
}
