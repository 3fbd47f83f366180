package parse

import (
	"testing"

	"github.com/parquet-go/parquet-go"
)

// BenchmarkDecode measures the hot path of ingestion: one record to one row.
// Reset runs once per batchRows records, as the writer would after writing
// a batch, so arena memory is reused as in production.
func BenchmarkDecode(b *testing.B) {
	const batchRows = 1024
	for _, bc := range []struct {
		name   string
		cols   []col
		record string
	}{
		{"schema=click", clickColumns, clickEvent},
		{"schema=nested", orderColumns, orderEvent},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := newDecoder(b, newLayout(b, bc.cols...), Options{EventTime: "event_time"})
			data := []byte(bc.record)
			var row parquet.Row
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				var err error
				if row, _, err = d.Decode(row, data); err != nil {
					b.Fatal(err)
				}
				if n++; n == batchRows {
					d.Reset()
					n = 0
				}
			}
		})
	}
}
