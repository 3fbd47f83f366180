package cdc

import (
	"fmt"
	"strconv"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluicehq/sluice/ingest/schema"
)

// store turns a column value (as Column.Value gives it) into the Parquet
// value of a destination column of type t. The destination may be wider
// than the value's column (a row logged before its table's column was
// widened): int32 values go into int64 columns, float32 into float64,
// decimals into a larger precision.
func store(v any, t schema.Type) (parquet.Value, error) {
	if v == nil {
		return parquet.NullValue(), nil
	}
	switch t.Kind {
	case schema.KindInt32:
		if x, ok := v.(int32); ok {
			return parquet.Int32Value(x), nil
		}
	case schema.KindInt64:
		switch x := v.(type) {
		case int64:
			return parquet.Int64Value(x), nil
		case int32:
			return parquet.Int64Value(int64(x)), nil
		}
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
	case schema.KindString:
		if x, ok := v.(string); ok {
			return parquet.ByteArrayValue([]byte(x)), nil
		}
	case schema.KindBinary:
		if x, ok := v.([]byte); ok {
			return parquet.ByteArrayValue(x), nil
		}
	case schema.KindDecimal:
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case int32:
			s = strconv.FormatInt(int64(x), 10)
		case int64:
			s = strconv.FormatInt(x, 10)
		default:
			return parquet.Value{}, cannotStore(v, t)
		}
		pv, _, err := schema.DecimalValue(s, t, nil)
		return pv, err
	case schema.KindDate:
		if x, ok := v.(time.Time); ok {
			days := x.Unix() / 86400
			if x.Unix()%86400 < 0 {
				days--
			}
			return parquet.Int32Value(int32(days)), nil
		}
	case schema.KindTimestamp, schema.KindTimestampTZ:
		if x, ok := v.(time.Time); ok {
			return parquet.Int64Value(x.UnixMicro()), nil
		}
	}
	return parquet.Value{}, cannotStore(v, t)
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
