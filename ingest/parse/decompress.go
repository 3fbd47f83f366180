package parse

import (
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/pierrec/lz4/v4"
)

// Compressions are the payload compressions Decompressing accepts.
var Compressions = []string{"none", "gzip", "zstd", "snappy", "lz4"}

// RowDecoder is what Decompressing wraps: a decoder of one record format.
type RowDecoder interface {
	Decode(row parquet.Row, data []byte) (parquet.Row, int64, error)
	Reset()
}

// Decompressing decompresses each record value (compressed by the producer
// itself, inside the Kafka record) before decoding it. The buffer is reused;
// the inner decoder copies what rows keep into its own arena.
type Decompressing struct {
	inner RowDecoder
	kind  string
	max   int
	buf   []byte
	zr    *zstd.Decoder
	gz    *gzip.Reader
	lz    *lz4.Reader
}

// NewDecompressing wraps inner for a compression (see Compressions); a
// decompressed value over maxBytes is a bad record (0: no limit).
func NewDecompressing(inner RowDecoder, kind string, maxBytes int) (*Decompressing, error) {
	d := &Decompressing{inner: inner, kind: kind, max: maxBytes}
	switch kind {
	case "gzip", "snappy", "lz4":
	case "zstd":
		zr, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(max(maxBytes, 1<<20))*2))
		if err != nil {
			return nil, err
		}
		d.zr = zr
	default:
		return nil, fmt.Errorf("compression %q is not one of %v", kind, Compressions)
	}
	return d, nil
}

// Decode decompresses then decodes.
func (d *Decompressing) Decode(row parquet.Row, data []byte) (parquet.Row, int64, error) {
	raw, err := d.decompress(data)
	if err != nil {
		return row[:0], 0, &RecordError{Reason: fmt.Sprintf("%s decompression failed: %v", d.kind, err)}
	}
	if d.max > 0 && len(raw) > d.max {
		return row[:0], 0, &RecordError{Reason: fmt.Sprintf("record of %d bytes decompressed exceeds max_record_bytes %d", len(raw), d.max)}
	}
	return d.inner.Decode(row, raw)
}

// UnknownFields passes on the inner decoder's count of unknown fields.
func (d *Decompressing) UnknownFields() int64 {
	if u, ok := d.inner.(interface{ UnknownFields() int64 }); ok {
		return u.UnknownFields()
	}
	return 0
}

// Reset resets the inner decoder.
func (d *Decompressing) Reset() { d.inner.Reset() }

func (d *Decompressing) decompress(data []byte) ([]byte, error) {
	limit := int64(d.max)
	if limit <= 0 {
		limit = 1 << 30
	}
	switch d.kind {
	case "zstd":
		out, err := d.zr.DecodeAll(data, d.buf[:0])
		d.buf = out
		return out, err
	case "snappy":
		n, err := s2.DecodedLen(data)
		if err != nil {
			return nil, err
		}
		if int64(n) > limit {
			return nil, fmt.Errorf("decompressed size %d over the limit", n)
		}
		out, err := s2.Decode(d.buf[:cap(d.buf)], data)
		if err == nil {
			d.buf = out
		}
		return out, err
	case "gzip":
		if d.gz == nil {
			gz, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				return nil, err
			}
			d.gz = gz
		} else if err := d.gz.Reset(bytes.NewReader(data)); err != nil {
			return nil, err
		}
		return d.readAll(d.gz, limit)
	case "lz4":
		if d.lz == nil {
			d.lz = lz4.NewReader(bytes.NewReader(data))
		} else {
			d.lz.Reset(bytes.NewReader(data))
		}
		return d.readAll(d.lz, limit)
	}
	return data, nil
}

func (d *Decompressing) readAll(r io.Reader, limit int64) ([]byte, error) {
	buf := bytes.NewBuffer(d.buf[:0])
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("decompressed size over the limit")
	}
	d.buf = buf.Bytes()
	return d.buf, nil
}
