package parquet

import (
	"errors"
	"fmt"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
)

// Defaults and bounds of WriterOptions.
const (
	DefaultCompression     = "zstd"
	DefaultPageBufferBytes = 64 << 10
	DefaultRowGroupBytes   = 32 << 20

	// A page buffer is held per leaf column of every open file, so it is
	// kept small; below 1 KiB pages become mostly header.
	MinPageBufferBytes = 1 << 10
	MaxPageBufferBytes = 16 << 20
	MinRowGroupBytes   = 1 << 10
)

// WriterOptions tune a File. The zero value selects every default.
type WriterOptions struct {
	// Compression is the page codec: "zstd" (default), "snappy", "gzip" or
	// "none".
	Compression string
	// PageBufferBytes is the uncompressed size at which a column's buffered
	// values are encoded into a page; default 64 KiB. Every leaf column of
	// an open file may hold this much, so it bounds per-file memory.
	PageBufferBytes int
	// RowGroupBytes flushes a row group once about this many bytes are
	// buffered (compressed pages plus values not yet encoded); default
	// 32 MiB.
	RowGroupBytes int64
}

// EnsureDefaults fills zero fields with their defaults.
func (o *WriterOptions) EnsureDefaults() {
	if o.Compression == "" {
		o.Compression = DefaultCompression
	}
	if o.PageBufferBytes == 0 {
		o.PageBufferBytes = DefaultPageBufferBytes
	}
	if o.RowGroupBytes == 0 {
		o.RowGroupBytes = DefaultRowGroupBytes
	}
}

// Validate reports every invalid field, after defaults, with its key.
func (o WriterOptions) Validate() error {
	o.EnsureDefaults()
	var errs []error
	if _, ok := codecs[o.Compression]; !ok {
		errs = append(errs, fmt.Errorf("compression: %q is not zstd, snappy, gzip or none", o.Compression))
	}
	if o.PageBufferBytes < MinPageBufferBytes || o.PageBufferBytes > MaxPageBufferBytes {
		errs = append(errs, fmt.Errorf("page_buffer_bytes: %d is outside %d..%d", o.PageBufferBytes, MinPageBufferBytes, MaxPageBufferBytes))
	}
	if o.RowGroupBytes < MinRowGroupBytes {
		errs = append(errs, fmt.Errorf("row_group_bytes: %d is below the minimum %d", o.RowGroupBytes, MinRowGroupBytes))
	}
	return errors.Join(errs...)
}

// The codec values are parquet-go's shared instances: they pool their
// encoders, so an open file holds no compressor state between pages.
var codecs = map[string]compress.Codec{
	"zstd":   &parquet.Zstd,
	"snappy": &parquet.Snappy,
	"gzip":   &parquet.Gzip,
	"none":   &parquet.Uncompressed,
}
