package parse

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

func compressWith(t *testing.T, kind string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case "gzip":
		w := gzip.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case "zstd":
		w, _ := zstd.NewWriter(nil)
		defer w.Close()
		return w.EncodeAll(data, nil)
	case "snappy":
		return s2.EncodeSnappy(nil, data)
	case "lz4":
		w := lz4.NewWriter(&buf)
		w.Write(data)
		w.Close()
	}
	return buf.Bytes()
}

// TestDecompressing decodes producer-compressed values of every kind,
// reusing one decoder, and turns corrupt or oversized values into record
// errors.
func TestDecompressing(t *testing.T) {
	l := newLayout(t, req("id", "string"), req("ts", "timestamptz(ms)"))
	for _, kind := range []string{"gzip", "zstd", "snappy", "lz4"} {
		t.Run("kind="+kind, func(t *testing.T) {
			inner, err := NewJSON(l, Options{EventTime: "ts"})
			if err != nil {
				t.Fatal(err)
			}
			d, err := NewDecompressing(inner, kind, 1<<10)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				rec := []byte(`{"id":"r-` + strings.Repeat("x", i) + `","ts":"2026-11-23T05:00:00Z"}`)
				row, et, err := d.Decode(nil, compressWith(t, kind, rec))
				if err != nil {
					t.Fatalf("decode %d: %v", i, err)
				}
				if got := string(row[0].ByteArray()); got != "r-"+strings.Repeat("x", i) || et == 0 {
					t.Errorf("record %d: id %q, event time %d", i, got, et)
				}
			}
			var re *RecordError
			if _, _, err := d.Decode(nil, []byte("definitely not compressed")); !errors.As(err, &re) {
				t.Errorf("garbage: %v, want a RecordError", err)
			}
			big := []byte(`{"id":"` + strings.Repeat("y", 2000) + `","ts":"2026-11-23T05:00:00Z"}`)
			if _, _, err := d.Decode(nil, compressWith(t, kind, big)); !errors.As(err, &re) || !strings.Contains(err.Error(), "max_record_bytes") && !strings.Contains(err.Error(), "limit") {
				t.Errorf("oversized: %v, want a size RecordError", err)
			}
		})
	}
	if _, err := NewDecompressing(nil, "brotli", 0); err == nil {
		t.Error("unknown compression accepted")
	}
}
