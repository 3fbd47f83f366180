package cdc

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func brief(c Change) string {
	return fmt.Sprintf("%s %s.%s %v→%v @%d %s", c.Op, c.Schema, c.Table, c.Before, c.After, c.TsMs, c.ID)
}

func TestDecodeCanal(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		err      string
	}{
		{"insert of two rows", `{"id":7,"database":"shop","table":"orders","type":"INSERT","es":1700000000000,"ts":1700000000100,"isDdl":false,
			"data":[{"id":"1","amount":"1.50"},{"id":"2","amount":"2.00"}],"old":null,"pkNames":["id"]}`,
			[]string{"insert shop.orders map[]→map[amount:1.50 id:1] @1700000000000 canal:7:0", "insert shop.orders map[]→map[amount:2.00 id:2] @1700000000000 canal:7:1"}, ""},
		{"update: old holds the changed columns", `{"id":8,"database":"shop","table":"orders","type":"UPDATE","es":5,"isDdl":false,
			"data":[{"id":"1","amount":"9.00","note":"x"}],"old":[{"amount":"1.50"}]}`,
			[]string{"update shop.orders map[amount:1.50 id:1 note:x]→map[amount:9.00 id:1 note:x] @5 canal:8:0"}, ""},
		{"delete", `{"id":9,"database":"shop","table":"orders","type":"DELETE","es":6,"data":[{"id":"1"}]}`,
			[]string{"delete shop.orders map[id:1]→map[] @6 canal:9:0"}, ""},
		{"ddl is skipped", `{"id":10,"database":"shop","table":"orders","type":"ALTER","es":7,"isDdl":true,"sql":"ALTER TABLE orders ADD x INT"}`, nil, "not a row change"},
		{"unknown type", `{"id":1,"database":"d","table":"t","type":"MERGE","es":1,"data":[{}]}`, nil, `type "MERGE"`},
		{"update without old", `{"id":1,"database":"d","table":"t","type":"UPDATE","es":1,"data":[{"a":1}]}`, nil, "old values"},
		{"no table", `{"id":1,"database":"d","type":"INSERT","es":1,"data":[{"a":1}]}`, nil, "database and table"},
		{"not JSON", `{"id":`, nil, "canal:"},
		{"trailing data", `{"id":1,"database":"d","table":"t","type":"INSERT","es":1,"data":[{"a":1}]} {}`, nil, "after the JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeCanal([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, c := range got {
				lines = append(lines, brief(c))
			}
			if strings.Join(lines, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDecodeDebezium(t *testing.T) {
	src := `"source":{"db":"shop","table":"orders","ts_ms":1700000000000,"file":"bin.000003","pos":4711,"row":1}`
	tests := []struct {
		name, in, want, err string
	}{
		{"create", `{"before":null,"after":{"id":1,"amount":"1.50"},"op":"c","ts_ms":1700000000999,` + src + `}`,
			"insert shop.orders map[]→map[amount:1.50 id:1] @1700000000000 debezium::bin.000003:4711:1", ""},
		{"snapshot read", `{"after":{"id":1},"op":"r",` + src + `}`, "insert shop.orders map[]→map[id:1] @1700000000000 debezium::bin.000003:4711:1", ""},
		{"update", `{"before":{"id":1,"a":1},"after":{"id":1,"a":2},"op":"u",` + src + `}`,
			"update shop.orders map[a:1 id:1]→map[a:2 id:1] @1700000000000 debezium::bin.000003:4711:1", ""},
		{"delete", `{"before":{"id":1},"after":null,"op":"d",` + src + `}`, "delete shop.orders map[id:1]→map[] @1700000000000 debezium::bin.000003:4711:1", ""},
		{"schema envelope", `{"schema":{"type":"struct"},"payload":{"after":{"id":1},"op":"c",` + src + `}}`,
			"insert shop.orders map[]→map[id:1] @1700000000000 debezium::bin.000003:4711:1", ""},
		{"big numbers keep their digits", `{"after":{"id":18446744073709551615},"op":"c",` + src + `}`,
			"insert shop.orders map[]→map[id:18446744073709551615] @1700000000000 debezium::bin.000003:4711:1", ""},
		{"tombstone", `null`, "", "not a row change"},
		{"heartbeat", `{"source":{"db":"shop"},"ts_ms":1}`, "", "not a row change"},
		{"create without after", `{"op":"c",` + src + `}`, "", "without its row"},
		{"bad op", `{"op":"x","after":{},` + src + `}`, "", `op "x"`},
		{"no table", `{"op":"c","after":{},"source":{"db":"d","ts_ms":1}}`, "", "source.db and source.table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeDebezium([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				if tt.err == "not a row change" && !errors.Is(err, ErrNotRowChange) {
					t.Errorf("error %v is not ErrNotRowChange", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b := brief(got); b != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}

// TestArrange: re-delivered changes are dropped and the rest ordered by
// source time, then source position, whatever order they arrived in.
func TestArrange(t *testing.T) {
	mk := func(id string, ts int64, seq ...int64) Change { return Change{ID: id, TsMs: ts, seq: seq} }
	in := []Change{
		mk("c", 20, 3, 1), mk("a", 10, 3, 9), mk("b", 20, 3, 0), mk("a", 10, 3, 9), mk("d", 20, 2, 5), mk("c", 20, 3, 1),
	}
	var ids []string
	for _, c := range Arrange(in) {
		ids = append(ids, c.ID)
	}
	if got := strings.Join(ids, ","); got != "a,d,b,c" {
		t.Errorf("order %s, want a,d,b,c", got)
	}
}

func FuzzDecodeCanal(f *testing.F) {
	f.Add([]byte(`{"id":7,"database":"shop","table":"orders","type":"UPDATE","es":1,"data":[{"id":"1"}],"old":[{"id":"0"}]}`))
	f.Add([]byte(`{"id":1,"isDdl":true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		changes, err := DecodeCanal(data)
		if err != nil {
			return
		}
		for _, c := range changes {
			if c.Op < Insert || c.Op > Delete || c.Schema == "" || c.Table == "" || c.ID == "" {
				t.Fatalf("accepted a malformed change %+v", c)
			}
		}
	})
}

func FuzzDecodeDebezium(f *testing.F) {
	f.Add([]byte(`{"before":null,"after":{"id":1},"op":"c","source":{"db":"d","table":"t","ts_ms":1,"file":"bin.000001","pos":4,"row":0}}`))
	f.Add([]byte(`{"payload":{"op":"d","before":{"id":1},"source":{"db":"d","table":"t","ts_ms":1}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeDebezium(data)
		if err != nil {
			return
		}
		if c.Op < Insert || c.Op > Delete || c.Schema == "" || c.Table == "" {
			t.Fatalf("accepted a malformed change %+v", c)
		}
	})
}
