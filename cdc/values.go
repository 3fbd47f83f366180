package cdc

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

// store turns a column value into the Parquet value of a destination
// column of type t. v is what Column.Value gives or, for a plain column,
// what the log's reader or a snapshot read gives (see Column.plain). The
// destination may be wider than the value's column (a row logged before
// its table's column was widened): int32 values go into int64 columns,
// float32 into float64, decimals into a larger precision. Byte arrays are
// not copied: targets copy what they keep.
func store(v any, t schema.Type) (parquet.Value, error) {
	if v == nil {
		return parquet.NullValue(), nil
	}
	switch t.Kind {
	case schema.KindInt32, schema.KindInt64:
		n, ok := integer(v)
		if !ok {
			break
		}
		if t.Kind == schema.KindInt64 {
			return parquet.Int64Value(n), nil
		}
		if n < math.MinInt32 || n > math.MaxInt32 {
			return parquet.Value{}, fmt.Errorf("%d does not fit int32", n)
		}
		return parquet.Int32Value(int32(n)), nil
	case schema.KindFloat32:
		if x, ok := v.(float32); ok {
			return parquet.FloatValue(x), nil
		}
	case schema.KindFloat64:
		switch x := v.(type) {
		case float64:
			return parquet.DoubleValue(x), nil
		case float32:
			return parquet.DoubleValue(float64(x)), nil
		}
	case schema.KindString, schema.KindBinary:
		switch x := v.(type) {
		case string:
			return parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(x), len(x))), nil
		case []byte:
			return parquet.ByteArrayValue(x), nil
		}
	case schema.KindDecimal:
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case []byte:
			s = string(x)
		default:
			n, ok := integer(v)
			if !ok {
				if u, isU := v.(uint64); isU {
					s = strconv.FormatUint(u, 10)
					break
				}
				return parquet.Value{}, cannotStore(v, t)
			}
			s = strconv.FormatInt(n, 10)
		}
		pv, _, err := schema.DecimalValue(s, t, nil)
		return pv, err
	case schema.KindDate, schema.KindTimestamp, schema.KindTimestampTZ:
		x, ok := v.(time.Time)
		if !ok {
			layout := "2006-01-02 15:04:05.999999"
			if t.Kind == schema.KindDate {
				layout = "2006-01-02"
			}
			p, err := parseTime(v, layout)
			if err != nil || p == nil {
				return parquet.NullValue(), err // zero dates are null
			}
			x = p.(time.Time)
		}
		if t.Kind != schema.KindDate {
			return parquet.Int64Value(x.UnixMicro()), nil
		}
		days := x.Unix() / 86400
		if x.Unix()%86400 < 0 {
			days--
		}
		return parquet.Int32Value(int32(days)), nil
	}
	return parquet.Value{}, cannotStore(v, t)
}

// integer reads any Go integer that fits int64.
func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case int:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	}
	return 0, false
}

func cannotStore(v any, t schema.Type) error {
	return fmt.Errorf("a %T value cannot be stored as %s", v, t)
}

// widens reports whether a column of type from can become one of type to
// in place: the promotions Iceberg allows.
func widens(from, to schema.Type) bool {
	switch {
	case from.Equal(to):
		return true
	case from.Kind == schema.KindInt32 && to.Kind == schema.KindInt64:
		return true
	case from.Kind == schema.KindFloat32 && to.Kind == schema.KindFloat64:
		return true
	case from.Kind == schema.KindDecimal && to.Kind == schema.KindDecimal:
		return from.Scale == to.Scale && to.Precision >= from.Precision
	}
	return false
}
