package parse

import (
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/sluicehq/sluice/ingest/schema"
)

// everyColumns has a column of every type, nested in every way.
var everyColumns = []col{
	req("id", "int64"),
	req("event_time", "timestamptz(us)"),
	opt("f32", "float32"),
	opt("f64", "float64"),
	opt("day", "date"),
	opt("bin", "binary"),
	opt("dec9", "decimal(9,3)"),
	opt("dec18", "decimal(18,3)"),
	opt("dec38", "decimal(38,6)"),
	opt("ts", "timestamp"),
	opt("s", "struct<a:int32,b:list<struct<c:string,d:bool>>,e:struct<f:date>>"),
	opt("l", "list<decimal(20,4)>"),
	opt("ls", "list<struct<x:binary,y:list<timestamp(us)>>>"),
}

const everyEvent = `{"id":1,"event_time":"2026-11-23T07:00:00Z","f32":1.5,"f64":"-Infinity","day":"2026-11-23",` +
	`"bin":"aGk=","dec9":"1.5","dec18":2.25,"dec38":"-3.5","ts":1795417200123,` +
	`"s":{"a":1,"b":[{"c":"x","d":true},{"c":"y"},null],"e":{"f":20000}},"l":[1,null,2.5e-3],` +
	`"ls":[{"x":"","y":[1,2,null]},{"y":[]},{}]}`

// FuzzDecode checks that no input makes Decode panic or return anything but
// a *RecordError, that every row it returns is one parquet-go writes and
// reads back unchanged, and that the flat fast path agrees with shredding.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		clickEvent,
		orderEvent,
		everyEvent,
		`{"event_id":"a","user_id":"7","event_time":1795417200123,"event_type":"click","amount":"-0.5","is_new_user":true}`,
		`{"event_id":"a","user_id":7,"event_time":"2026-11-23 07:00:00","event_type":"x","page":null,"duration_ms":1e3}`,
		`{"event_id":"a","user_id":7,"event_time":"2026-11-23T07:00:00+02:00","event_type":"x","amount":1.999}`,
		`{"order_id":1,"event_time":"2026-11-23T07:00:00Z","customer":{},"items":[null,{}],"notes":null}`,
		`{"id":1,"event_time":0,"s":{"b":[]},"l":[],"ls":[{"y":[null]}]}`,
		`{"id":1,"id":2,"event_time":0}`,
		`{"id":9223372036854775808,"event_time":0}`,
		`{"id":1,"event_time":0,"dec38":"99999999999999999999999999999999.999999","dec9":1e-3}`,
		`{"id":1,"event_time":0,"dec38":1e99999999999999999999,"f32":3.5e38}`,
		`{"id":1,"event_time":0,"s":{"b":[{"c":"\ud800"}]}}`,
		`{"id":1,"event_time":"2026-02-29T00:00:00Z"}`,
		`{"id":NaN,"event_time":-inf}`,
		`{"id":1,"event_time":0,"bin":"aGVsbB=="}`,
		"{\"event_id\":\"\xff\",\"user_id\":1}",
		`[]`, `null`, `"x"`, `{`, `{"a":}`, ``, `{}`,
	} {
		f.Add([]byte(seed))
	}
	type decoder struct {
		name string
		d    *JSON
		l    *schema.Layout
	}
	click := newLayout(f, clickColumns...)
	order := newLayout(f, orderColumns...)
	every := newLayout(f, everyColumns...)
	clickFlat := newDecoder(f, click, Options{EventTime: "event_time", MaxRecordBytes: 4096})
	clickNested := newDecoder(f, click, Options{EventTime: "event_time", MaxRecordBytes: 4096})
	clickNested.flat = false
	decoders := []decoder{
		{"click", clickFlat, click},
		{"order", newDecoder(f, order, Options{EventTime: "event_time"}), order},
		{"every", newDecoder(f, every, Options{EventTime: "event_time"}), every},
	}
	var row, nestedRow parquet.Row
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, dec := range decoders {
			var (
				us  int64
				err error
			)
			row, us, err = dec.d.Decode(row, data)
			if err != nil {
				if re, ok := err.(*RecordError); !ok || re.Reason == "" {
					t.Fatalf("%s: error %#v is not a *RecordError with a reason", dec.name, err)
				}
				if len(row) != 0 {
					t.Fatalf("%s: error %v came with a row", dec.name, err)
				}
			} else {
				roundTrip(t, dec.l, row)
			}
			if dec.d == clickFlat {
				var nus int64
				var nerr error
				nestedRow, nus, nerr = clickNested.Decode(nestedRow, data)
				if (err == nil) != (nerr == nil) || err != nil && err.Error() != nerr.Error() ||
					err == nil && (!row.Equal(nestedRow) || us != nus) {
					t.Fatalf("flat path gives%s %d %v\nnested path gives%s %d %v", fmtRow(row), us, err, fmtRow(nestedRow), nus, nerr)
				}
				clickNested.Reset()
			}
			dec.d.Reset()
		}
	})
}
