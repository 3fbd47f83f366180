package schema

import (
	"encoding/binary"
	"math"

	"github.com/parquet-go/parquet-go"
)

// AppendKeyValue encodes one value of a primary key so that distinct
// values never encode alike and a key's values can be concatenated: a
// kind byte, then fixed-width numbers or length-prefixed bytes. Upserts
// collapse changes by it, and the CDC mirror tracks keys by it, so both
// agree on what one key is.
func AppendKeyValue(b []byte, v parquet.Value) []byte {
	b = append(b, byte(v.Kind()))
	switch v.Kind() {
	case parquet.Boolean:
		if v.Boolean() {
			return append(b, 1)
		}
		return append(b, 0)
	case parquet.Int32:
		return binary.BigEndian.AppendUint32(b, uint32(v.Int32()))
	case parquet.Int64:
		return binary.BigEndian.AppendUint64(b, uint64(v.Int64()))
	case parquet.Float:
		return binary.BigEndian.AppendUint32(b, math.Float32bits(v.Float()))
	case parquet.Double:
		return binary.BigEndian.AppendUint64(b, math.Float64bits(v.Double()))
	}
	raw := v.ByteArray()
	b = binary.AppendUvarint(b, uint64(len(raw)))
	return append(b, raw...)
}
