package parquet

import (
	"bytes"
	"encoding/binary"
	"math"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go/format"

	"github.com/sluicehq/sluice/ingest/schema"
)

// boundLength is how long string and binary bounds may be: Iceberg's
// default metrics mode, truncate(16), counted in code points for strings
// and bytes for binary, as the Java and Go implementations do.
const boundLength = 16

// icebergBound converts one Parquet statistics value (PLAIN encoded, byte
// arrays without a length prefix) of a column of type t stored as phys into
// Iceberg's single-value binary serialization. lower says which end of the
// range the value bounds; it matters for signed zeros. ok is false when the
// value cannot serve as a bound: malformed, a NaN, or not valid UTF-8 for a
// string. String and binary values are returned whole; truncate them with
// truncateBound once the file-wide bound is known.
func icebergBound(t schema.Type, phys format.Type, v []byte, lower bool) (b []byte, ok bool) {
	if v == nil { // absent; an empty string is []byte{}
		return nil, false
	}
	switch t.Kind {
	case schema.KindBool:
		if phys != format.Boolean || len(v) != 1 {
			return nil, false
		}
		return []byte{v[0] & 1}, true
	case schema.KindInt32, schema.KindDate:
		if phys != format.Int32 || len(v) != 4 {
			return nil, false
		}
		return bytes.Clone(v), true
	case schema.KindInt64, schema.KindTimestamp, schema.KindTimestampTZ:
		if phys != format.Int64 || len(v) != 8 {
			return nil, false
		}
		return bytes.Clone(v), true
	case schema.KindFloat32:
		if phys != format.Float || len(v) != 4 {
			return nil, false
		}
		f := math.Float32frombits(binary.LittleEndian.Uint32(v))
		if f != f {
			return nil, false
		}
		// Parquet orders -0 and +0 as equal, so a min of +0 may hide a -0
		// and a max of -0 a +0; Iceberg orders -0 first.
		if f == 0 {
			f = float32(math.Copysign(0, boolSign(lower)))
		}
		return binary.LittleEndian.AppendUint32(nil, math.Float32bits(f)), true
	case schema.KindFloat64:
		if phys != format.Double || len(v) != 8 {
			return nil, false
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(v))
		if f != f {
			return nil, false
		}
		if f == 0 {
			f = math.Copysign(0, boolSign(lower))
		}
		return binary.LittleEndian.AppendUint64(nil, math.Float64bits(f)), true
	case schema.KindString:
		if phys != format.ByteArray || !utf8.Valid(v) {
			return nil, false
		}
		return bytes.Clone(v), true
	case schema.KindBinary:
		if phys != format.ByteArray {
			return nil, false
		}
		return bytes.Clone(v), true
	case schema.KindDecimal:
		switch phys {
		case format.Int32:
			if len(v) != 4 {
				return nil, false
			}
			return decimalFromInt64(int64(int32(binary.LittleEndian.Uint32(v)))), true
		case format.Int64:
			if len(v) != 8 {
				return nil, false
			}
			return decimalFromInt64(int64(binary.LittleEndian.Uint64(v))), true
		case format.FixedLenByteArray, format.ByteArray:
			if len(v) == 0 {
				return nil, false
			}
			return bytes.Clone(minimalTwosComplement(v)), true
		}
	}
	return nil, false
}

func boolSign(lower bool) float64 {
	if lower {
		return -1
	}
	return 1
}

// compareBound orders two Iceberg-serialized values of kind k.
func compareBound(k schema.Kind, a, b []byte) int {
	switch k {
	case schema.KindBool:
		return cmp3(a[0], b[0])
	case schema.KindInt32, schema.KindDate:
		return cmp3(int32(binary.LittleEndian.Uint32(a)), int32(binary.LittleEndian.Uint32(b)))
	case schema.KindInt64, schema.KindTimestamp, schema.KindTimestampTZ:
		return cmp3(int64(binary.LittleEndian.Uint64(a)), int64(binary.LittleEndian.Uint64(b)))
	case schema.KindFloat32:
		return compareFloat(float64(math.Float32frombits(binary.LittleEndian.Uint32(a))), float64(math.Float32frombits(binary.LittleEndian.Uint32(b))))
	case schema.KindFloat64:
		return compareFloat(math.Float64frombits(binary.LittleEndian.Uint64(a)), math.Float64frombits(binary.LittleEndian.Uint64(b)))
	case schema.KindDecimal:
		return compareDecimal(a, b)
	}
	// Strings (UTF-8 byte order is code point order) and binary.
	return bytes.Compare(a, b)
}

func cmp3[T int32 | int64 | uint8 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareFloat orders non-NaN floats with -0 before +0, as Iceberg does.
func compareFloat(a, b float64) int {
	if c := cmp3(a, b); c != 0 || a != 0 {
		return c
	}
	switch sa, sb := math.Signbit(a), math.Signbit(b); {
	case sa && !sb:
		return -1
	case !sa && sb:
		return 1
	}
	return 0
}

// compareDecimal orders two unscaled decimals in minimal big-endian two's
// complement. Minimal means a longer value has the larger magnitude.
func compareDecimal(a, b []byte) int {
	an, bn := a[0]&0x80 != 0, b[0]&0x80 != 0
	switch {
	case an && !bn:
		return -1
	case !an && bn:
		return 1
	case len(a) != len(b):
		c := cmp3(int64(len(a)), int64(len(b)))
		if an {
			return -c
		}
		return c
	}
	// Same sign and width: two's complement orders like unsigned bytes.
	return bytes.Compare(a, b)
}

// decimalFromInt64 is the minimal big-endian two's complement of v.
func decimalFromInt64(v int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return bytes.Clone(minimalTwosComplement(b[:]))
}

// minimalTwosComplement drops the leading bytes of a big-endian two's
// complement integer that only extend its sign. It never returns an empty
// slice for a non-empty input.
func minimalTwosComplement(b []byte) []byte {
	for len(b) > 1 && (b[0] == 0x00 && b[1]&0x80 == 0 || b[0] == 0xff && b[1]&0x80 != 0) {
		b = b[1:]
	}
	return b
}

// truncateBound shortens a string or binary bound to boundLength. A lower
// bound becomes its prefix; an upper bound becomes its prefix with the last
// code point (string) or byte (binary) incremented, which is ok=false when
// no prefix can be incremented. Empty bounds are dropped too: they carry no
// information and some readers decode an empty value as absent.
func truncateBound(k schema.Kind, b []byte, lower bool) ([]byte, bool) {
	if k != schema.KindString && k != schema.KindBinary {
		return b, true
	}
	if len(b) == 0 {
		return nil, false
	}
	cut := len(b)
	if k == schema.KindString {
		n := 0
		for i := range string(b) {
			if n == boundLength {
				cut = i
				break
			}
			n++
		}
	} else {
		cut = min(len(b), boundLength)
	}
	if cut == len(b) {
		return b, true
	}
	p := bytes.Clone(b[:cut])
	if lower {
		return p, true
	}
	if k == schema.KindBinary {
		for i := len(p) - 1; i >= 0; i-- {
			if p[i] < 0xff {
				p[i]++
				return p[:i+1], true
			}
		}
		return nil, false
	}
	for len(p) > 0 {
		r, size := utf8.DecodeLastRune(p)
		p = p[:len(p)-size]
		switch {
		case r == 0xd7ff: // the next code point, U+D800, is a surrogate
			return utf8.AppendRune(p, 0xe000), true
		case r < utf8.MaxRune:
			return utf8.AppendRune(p, r+1), true
		}
	}
	return nil, false
}
