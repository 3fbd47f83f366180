package parse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/sluicehq/sluice/ingest/schema"
)

// col declares a column of a test schema.
type col struct {
	name, typ string
	required  bool
}

func opt(name, typ string) col { return col{name: name, typ: typ} }
func req(name, typ string) col { return col{name: name, typ: typ, required: true} }

// newLayout builds the layout of a schema the way streams do: types parsed
// from config syntax, Iceberg IDs assigned.
func newLayout(tb testing.TB, cols ...col) *schema.Layout {
	tb.Helper()
	var s schema.Schema
	for _, c := range cols {
		t, err := schema.ParseType(c.typ)
		if err != nil {
			tb.Fatalf("column %s: %v", c.name, err)
		}
		s.Fields = append(s.Fields, schema.Field{Name: c.name, Type: t, Required: c.required})
	}
	s.AssignIDs()
	return schema.NewLayout(s, "test")
}

func newDecoder(tb testing.TB, l *schema.Layout, opts Options) *JSON {
	tb.Helper()
	d, err := NewJSON(l, opts)
	if err != nil {
		tb.Fatalf("NewJSON: %v", err)
	}
	return d
}

// clickColumns is the schema of the benchmark's click event.
var clickColumns = []col{
	req("event_id", "string"),
	req("user_id", "int64"),
	req("event_time", "timestamptz(ms)"),
	req("event_type", "string"),
	opt("page", "string"),
	opt("referrer", "string"),
	opt("device", "string"),
	opt("country", "string"),
	opt("duration_ms", "int32"),
	opt("amount", "decimal(12,2)"),
	opt("session_id", "string"),
	opt("is_new_user", "bool"),
}

// clickEvent is a typical record of a web analytics topic (~330 bytes).
const clickEvent = `{"event_id":"7f9c2ba4-e88f-4a2b-9b7e-3c1d5f8a9e01","user_id":18446744,` +
	`"event_time":"2026-11-23T07:00:00.123Z","event_type":"page_view",` +
	`"page":"/products/widgets/blue-widget-2000","referrer":"https://www.google.com/search?q=blue+widget",` +
	`"device":"mobile","country":"DE","duration_ms":5234,"amount":19.99,` +
	`"session_id":"s-2b9e3c1d5f8a4e7b","is_new_user":false}`

// roundTrip writes rows with parquet-go, reads them back both as rows and
// as maps, and checks that the rows survived unchanged: the writer would
// misplace or reject values whose levels do not fit the schema.
func roundTrip(tb testing.TB, l *schema.Layout, rows ...parquet.Row) []map[string]any {
	tb.Helper()
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, l.Parquet)
	if _, err := w.WriteRows(rows); err != nil {
		tb.Fatalf("write rows: %v", err)
	}
	if err := w.Close(); err != nil {
		tb.Fatalf("close writer: %v", err)
	}
	file := bytes.NewReader(buf.Bytes())

	rr := parquet.NewReader(file)
	defer rr.Close()
	got := make([]parquet.Row, len(rows))
	n, err := rr.ReadRows(got)
	if err != nil && !errors.Is(err, io.EOF) || n != len(rows) {
		tb.Fatalf("read rows: got %d of %d: %v", n, len(rows), err)
	}
	for i := range rows {
		if !got[i].Equal(rows[i]) {
			tb.Fatalf("row %d changed in a round trip through parquet-go:\nwrote %s\nread  %s", i, fmtRow(rows[i]), fmtRow(got[i]))
		}
	}

	mr := parquet.NewReader(file)
	defer mr.Close()
	maps := make([]map[string]any, len(rows))
	for i := range maps {
		maps[i] = map[string]any{}
		if err := mr.Read(&maps[i]); err != nil {
			tb.Fatalf("read row %d as a map: %v", i, err)
		}
	}
	return maps
}

// fmtRow renders a row with its levels, one value per line.
func fmtRow(row parquet.Row) string {
	var b strings.Builder
	for _, v := range row {
		fmt.Fprintf(&b, "\n  col %d rep %d def %d %s", v.Column(), v.RepetitionLevel(), v.DefinitionLevel(), v)
	}
	return b.String()
}

// orderColumns is a schema with every kind of nesting.
var orderColumns = []col{
	req("order_id", "int64"),
	req("event_time", "timestamp(us)"),
	opt("customer", "struct<id:int64,name:string,tags:list<string>>"),
	opt("items", "list<struct<sku:string,qty:int32,price:decimal(20,4)>>"),
	opt("notes", "list<string>"),
}

const orderEvent = `{"order_id":981273,"event_time":"2026-11-23 07:00:00.123456",` +
	`"customer":{"id":42,"name":"Ada","tags":["vip","beta"]},` +
	`"items":[{"sku":"A-1","qty":2,"price":"12.5000"},{"sku":"B-7","qty":1,"price":3.25}],` +
	`"notes":[]}`
