package etl

import (
	"testing"

	"github.com/parquet-go/parquet-go"
)

// BenchmarkApply measures the per-record cost on a flat 12-column input with
// a filter and one computed column, the common shape of a stream.
func BenchmarkApply(b *testing.B) {
	in := newSchema(b,
		"event_id", "string!", "event_type", "string", "user_id", "int64", "session_id", "string",
		"amount", "float64", "currency", "string", "country", "string", "device", "string",
		"ts", "timestamptz(us)", "quantity", "int32", "is_test", "bool", "page", "string")
	cfg := Config{
		Filter:  `event_type != "bot"`,
		Columns: []Column{{Name: "amount_cents", Expr: `int(amount * 100.0)`}},
	}
	for _, bc := range []struct {
		name      string
		eventType string
		keep      bool
	}{
		{"record=kept", "purchase", true},
		{"record=filtered", "bot", false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e, inL, _ := newEvaluator(b, cfg, in)
			src := buildRow(b, inL, map[string]any{
				"event_id": "6f1c2a9e-5b7d-4c1e-9a3f-2d8e7b6c5a41", "event_type": bc.eventType, "user_id": 912345,
				"session_id": "s-81723", "amount": 19.99, "currency": "EUR", "country": "DE", "device": "ios",
				"ts": ts0, "quantity": 2, "is_test": false, "page": "/checkout",
			})
			dst := make(parquet.Row, 0, 16)
			b.ReportAllocs()
			for b.Loop() {
				out, keep, err := e.Apply(dst, src)
				if err != nil || keep != bc.keep {
					b.Fatalf("Apply: keep %t, %v", keep, err)
				}
				dst = out
			}
		})
	}
}
