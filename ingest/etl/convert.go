package etl

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"
	"unsafe"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

const secondsPerDay = 24 * 60 * 60

// celValue converts a non-null input value of a primitive column to CEL.
//
// Strings alias the row's bytes instead of copying them. That is safe
// because a CEL evaluation does not retain its inputs, and a result that
// contains the string ends up in the output row, which already shares byte
// arrays with the input.
func celValue(v parquet.Value, t schema.Type) ref.Val {
	switch t.Kind {
	case schema.KindString:
		b := v.ByteArray()
		return types.String(unsafe.String(unsafe.SliceData(b), len(b)))
	case schema.KindBool:
		return types.Bool(v.Boolean())
	case schema.KindInt32:
		return types.Int(v.Int32())
	case schema.KindInt64:
		return types.Int(v.Int64())
	case schema.KindFloat32:
		return types.Double(v.Float())
	case schema.KindFloat64:
		return types.Double(v.Double())
	case schema.KindDecimal:
		return types.Double(decimalToFloat(v, t.Scale))
	case schema.KindDate:
		return types.Timestamp{Time: time.Unix(int64(v.Int32())*secondsPerDay, 0).UTC()}
	case schema.KindTimestamp, schema.KindTimestampTZ:
		return types.Timestamp{Time: time.UnixMicro(v.Int64()).UTC()}
	case schema.KindBinary:
		return types.Bytes(v.ByteArray())
	}
	return types.NullValue // unreachable: only primitive columns are variables
}

// pow10 holds the powers of ten a float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// decimalToFloat is the nearest float64 to a decimal value stored as Parquet
// INT32, INT64 or big-endian two's complement bytes.
func decimalToFloat(v parquet.Value, scale int) float64 {
	var unscaled int64
	switch v.Kind() {
	case parquet.Int32:
		unscaled = int64(v.Int32())
	case parquet.Int64:
		unscaled = v.Int64()
	default:
		n := twosComplement(v.ByteArray())
		f, _ := strconv.ParseFloat(n.String()+"e-"+strconv.Itoa(scale), 64)
		return f
	}
	// Both operands exact, so the one division rounds correctly.
	if unscaled >= -1<<53 && unscaled <= 1<<53 && scale < len(pow10) {
		return float64(unscaled) / pow10[scale]
	}
	f, _ := strconv.ParseFloat(strconv.FormatInt(unscaled, 10)+"e-"+strconv.Itoa(scale), 64)
	return f
}

func twosComplement(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n
}

// store converts an expression result to a value of a column of type t, with
// the physical type schema gives it in Parquet. A null result gives a null
// value. Levels and the column index are set by the caller.
func (e *Evaluator) store(v ref.Val, t schema.Type) (parquet.Value, error) {
	if _, ok := v.(types.Null); ok {
		return parquet.NullValue(), nil
	}
	switch t.Kind {
	case schema.KindString:
		if s, ok := v.(types.String); ok {
			return parquet.ByteArrayValue(stringBytes(string(s))), nil
		}
	case schema.KindBinary:
		switch x := v.(type) {
		case types.Bytes:
			return parquet.ByteArrayValue(x), nil
		case types.String:
			return parquet.ByteArrayValue(stringBytes(string(x))), nil
		}
	case schema.KindBool:
		if b, ok := v.(types.Bool); ok {
			return parquet.BooleanValue(bool(b)), nil
		}
	case schema.KindInt32, schema.KindInt64:
		var n int64
		switch x := v.(type) {
		case types.Int:
			n = int64(x)
		case types.Uint:
			if x > math.MaxInt64 {
				return parquet.Value{}, fmt.Errorf("value %d overflows %s", uint64(x), t)
			}
			n = int64(x)
		default:
			return parquet.Value{}, cannotStore(v, t)
		}
		if t.Kind == schema.KindInt64 {
			return parquet.Int64Value(n), nil
		}
		if n < math.MinInt32 || n > math.MaxInt32 {
			return parquet.Value{}, fmt.Errorf("value %d overflows int32", n)
		}
		return parquet.Int32Value(int32(n)), nil
	case schema.KindFloat32, schema.KindFloat64:
		var f float64
		switch x := v.(type) {
		case types.Double:
			f = float64(x)
		case types.Int:
			f = float64(x)
		case types.Uint:
			f = float64(x)
		default:
			return parquet.Value{}, cannotStore(v, t)
		}
		if t.Kind == schema.KindFloat64 {
			return parquet.DoubleValue(f), nil
		}
		f32 := float32(f)
		if math.IsInf(float64(f32), 0) && !math.IsInf(f, 0) {
			return parquet.Value{}, fmt.Errorf("value %g overflows float32", f)
		}
		return parquet.FloatValue(f32), nil
	case schema.KindDecimal:
		var s string
		switch x := v.(type) {
		case types.Int:
			e.num = strconv.AppendInt(e.num[:0], int64(x), 10)
			s = bytesString(e.num)
		case types.Uint:
			e.num = strconv.AppendUint(e.num[:0], uint64(x), 10)
			s = bytesString(e.num)
		case types.Double:
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return parquet.Value{}, fmt.Errorf("value %g cannot be stored as %s", float64(x), t)
			}
			// The shortest decimal that reads back as the same double, so
			// 0.1 is 0.1 rather than 0.1000000000000000055511151231257827.
			e.num = strconv.AppendFloat(e.num[:0], float64(x), 'g', -1, 64)
			s = bytesString(e.num)
		case types.String:
			s = string(x)
		default:
			return parquet.Value{}, cannotStore(v, t)
		}
		var (
			pv  parquet.Value
			err error
		)
		pv, e.digits, err = schema.DecimalValue(s, t, e.digits)
		return pv, err
	case schema.KindDate:
		if ts, ok := v.(types.Timestamp); ok {
			sec := ts.Unix()
			days := sec / secondsPerDay
			if sec%secondsPerDay < 0 {
				days-- // floor: the instant's UTC day
			}
			if days < math.MinInt32 || days > math.MaxInt32 {
				return parquet.Value{}, fmt.Errorf("timestamp %v overflows date", ts.Time)
			}
			return parquet.Int32Value(int32(days)), nil
		}
	case schema.KindTimestamp, schema.KindTimestampTZ:
		// CEL timestamps are within years 1..9999, so micros never overflow.
		if ts, ok := v.(types.Timestamp); ok {
			return parquet.Int64Value(ts.UnixMicro()), nil
		}
	}
	return parquet.Value{}, cannotStore(v, t)
}

func cannotStore(v ref.Val, t schema.Type) error {
	return fmt.Errorf("result of type %s cannot be stored as %s", v.Type().TypeName(), t)
}

// stringBytes returns the bytes of s without copying. Parquet values never
// write to their byte arrays, and strings are immutable to everyone else.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// bytesString views b as a string for parsing; the string must not outlive
// the next write to b.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
