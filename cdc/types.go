package cdc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"golang.org/x/text/encoding/charmap"

	"github.com/sluicehq/sluice/ingest/schema"
)

// Column is a source column and the column type it becomes:
//
//	| MySQL / MariaDB                         | Column          | Value                                  |
//	|-----------------------------------------|-----------------|----------------------------------------|
//	| TINYINT, SMALLINT, MEDIUMINT, INT       | int32           | INT UNSIGNED: int64                    |
//	| BIGINT                                  | int64           | BIGINT UNSIGNED: decimal(20,0)         |
//	| DECIMAL(p,s)                            | decimal(p,s)    | exact text                             |
//	| FLOAT, DOUBLE                           | float32, float64|                                        |
//	| CHAR, VARCHAR, TEXT (and JSON, MariaDB) | string          |                                        |
//	| BINARY, VARBINARY, BLOB                 | binary          |                                        |
//	| DATE                                    | date            | zero dates are null                    |
//	| DATETIME(0..6)                          | timestamp(us)   | as written, no zone; zero is null      |
//	| TIMESTAMP(0..6)                         | timestamptz(us) | UTC                                    |
//	| TIME(0..6)                              | int64           | microseconds, signed (-838h..838h)     |
//	| YEAR                                    | int32           |                                        |
//	| JSON (MySQL)                            | string          | JSON text                              |
//	| ENUM                                    | string          | the value's name                       |
//	| SET                                     | string          | the names, comma-separated             |
//	| BIT(n)                                  | int64           |                                        |
//	| GEOMETRY and its kinds                  | binary          | WKB (the SRID prefix dropped)          |
//
// Names, signedness, character sets and ENUM/SET values come from the
// log's row metadata: the server must run with binlog_row_metadata=FULL.
type Column struct {
	Name string
	Type schema.Type
	conv func(v any) (any, error)
	// plain: conv changes no value's meaning (only its Go type), so store
	// may take the reader's value directly (see values).
	plain bool
}

// binaryCollation is the collation of binary strings.
const binaryCollation = 63

// latin1Collations are the ids of latin1's collations. Text reaches Sluice
// in its column's character set; latin1 (MySQL's is Windows-1252), the
// old default, is converted to UTF-8. utf8mb3, utf8mb4 and ascii need
// nothing; other character sets are taken as they are.
var latin1Collations = map[uint64]bool{5: true, 8: true, 15: true, 31: true, 47: true, 48: true, 49: true, 94: true}

// latin1Text converts latin1 text to UTF-8.
func latin1Text(v any) (any, error) {
	b, err := toBytes(v)
	if err != nil {
		return nil, err
	}
	raw := b.([]byte)
	ascii := true
	for _, c := range raw {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return string(raw), nil
	}
	out, err := charmap.Windows1252.NewDecoder().Bytes(raw)
	if err != nil {
		return nil, fmt.Errorf("latin1 text: %w", err)
	}
	return string(out), nil
}

// textNames converts ENUM or SET value names of a latin1 column.
func textNames(names []string, latin1 bool) []string {
	if !latin1 {
		return names
	}
	out := make([]string, len(names))
	for i, n := range names {
		s, _ := latin1Text(n)
		out[i] = s.(string)
	}
	return out
}

// fixedLength is the byte length of a CHAR or BINARY column from its
// metadata in the log (as the log's reader decodes it).
func fixedLength(meta uint16) int {
	if meta >= 256 {
		b0, b1 := uint8(meta>>8), uint8(meta&0xff)
		if b0&0x30 != 0x30 {
			return int(uint16(b1) | uint16((b0&0x30)^0x30)<<4)
		}
		return int(b1)
	}
	return int(meta)
}

// padBytes restores the trailing zero bytes of a BINARY(n) value.
func padBytes(v any, n int) (any, error) {
	b, err := toBytes(v)
	if err != nil {
		return nil, err
	}
	raw := b.([]byte)
	if len(raw) >= n {
		return raw, nil
	}
	out := make([]byte, n)
	copy(out, raw)
	return out, nil
}

// Columns maps the columns of a table as the log describes it.
func Columns(tm *replication.TableMapEvent) ([]Column, error) {
	names := tm.ColumnNameString()
	if len(names) != int(tm.ColumnCount) {
		return nil, fmt.Errorf("table %s.%s: the log has no column names; run the server with binlog_row_metadata=FULL", tm.Schema, tm.Table)
	}
	unsigned := tm.UnsignedMap()
	collations, enumSet := tm.CollationMap(), tm.EnumSetCollationMap()
	enums, sets := tm.EnumStrValueMap(), tm.SetStrValueMap()
	var errs []error
	cols := make([]Column, len(names))
	for i, name := range names {
		coll := collations[i]
		if tm.IsEnumColumn(i) || tm.IsSetColumn(i) {
			coll = enumSet[i]
		}
		c, err := column(tm, i, unsigned[i], coll == binaryCollation, latin1Collations[coll], enums[i], sets[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("column %s: %w", name, err))
			continue
		}
		c.Name = name
		cols[i] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("table %s.%s: %w", tm.Schema, tm.Table, err)
	}
	return cols, nil
}

func column(tm *replication.TableMapEvent, i int, unsigned, binary, latin1 bool, enum, set []string) (Column, error) {
	kind := func(k schema.Kind) schema.Type { return schema.Type{Kind: k} }
	switch {
	case tm.IsEnumColumn(i):
		enum = textNames(enum, latin1)
		return Column{Type: kind(schema.KindString), conv: func(v any) (any, error) { return enumName(v, enum) }}, nil
	case tm.IsSetColumn(i):
		set = textNames(set, latin1)
		return Column{Type: kind(schema.KindString), conv: func(v any) (any, error) { return setNames(v, set) }}, nil
	}
	switch t := tm.ColumnType[i]; t {
	case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24:
		return Column{Type: kind(schema.KindInt32), conv: toInt32, plain: true}, nil
	case mysql.MYSQL_TYPE_LONG:
		if unsigned {
			return Column{Type: kind(schema.KindInt64), conv: toInt64, plain: true}, nil
		}
		return Column{Type: kind(schema.KindInt32), conv: toInt32, plain: true}, nil
	case mysql.MYSQL_TYPE_LONGLONG:
		if unsigned {
			return Column{Type: schema.Type{Kind: schema.KindDecimal, Precision: 20}, conv: toDecimalText}, nil
		}
		return Column{Type: kind(schema.KindInt64), conv: toInt64, plain: true}, nil
	case mysql.MYSQL_TYPE_NEWDECIMAL:
		p, s := int(tm.ColumnMeta[i]>>8), int(tm.ColumnMeta[i]&0xff)
		return Column{Type: schema.Type{Kind: schema.KindDecimal, Precision: p, Scale: s}, conv: toDecimalText, plain: true}, nil
	case mysql.MYSQL_TYPE_FLOAT:
		return Column{Type: kind(schema.KindFloat32), conv: same, plain: true}, nil
	case mysql.MYSQL_TYPE_DOUBLE:
		return Column{Type: kind(schema.KindFloat64), conv: same, plain: true}, nil
	case mysql.MYSQL_TYPE_STRING, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_BLOB:
		switch {
		case binary && t == mysql.MYSQL_TYPE_STRING:
			// BINARY(n): the log drops trailing zero bytes, which are
			// part of the value.
			n := fixedLength(tm.ColumnMeta[i])
			return Column{Type: kind(schema.KindBinary), conv: func(v any) (any, error) { return padBytes(v, n) }}, nil
		case binary:
			return Column{Type: kind(schema.KindBinary), conv: toBytes, plain: true}, nil
		case latin1:
			return Column{Type: kind(schema.KindString), conv: latin1Text}, nil
		}
		return Column{Type: kind(schema.KindString), conv: toString, plain: true}, nil
	case mysql.MYSQL_TYPE_JSON:
		return Column{Type: kind(schema.KindString), conv: toString}, nil
	case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
		return Column{Type: kind(schema.KindDate), conv: func(v any) (any, error) { return parseTime(v, "2006-01-02") }}, nil
	case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2:
		return Column{Type: schema.Type{Kind: schema.KindTimestamp, Unit: schema.Micros}, conv: func(v any) (any, error) { return parseTime(v, "2006-01-02 15:04:05.999999") }, plain: true}, nil
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
		return Column{Type: schema.Type{Kind: schema.KindTimestampTZ, Unit: schema.Micros}, conv: func(v any) (any, error) { return parseTime(v, "2006-01-02 15:04:05.999999") }, plain: true}, nil
	case mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
		return Column{Type: kind(schema.KindInt64), conv: timeMicros}, nil
	case mysql.MYSQL_TYPE_YEAR:
		return Column{Type: kind(schema.KindInt32), conv: toInt32}, nil
	case mysql.MYSQL_TYPE_BIT:
		return Column{Type: kind(schema.KindInt64), conv: toInt64}, nil
	case mysql.MYSQL_TYPE_GEOMETRY:
		return Column{Type: kind(schema.KindBinary), conv: wkb}, nil
	default:
		return Column{}, fmt.Errorf("type %d is not supported", t)
	}
}

// Value converts a value as the log reader decodes it into the column's
// value: nil stays nil (NULL).
func (c Column) Value(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	out, err := c.conv(v)
	if err != nil {
		return nil, fmt.Errorf("column %s: %w", c.Name, err)
	}
	return out, nil
}

func same(v any) (any, error) { return v, nil }

func toInt64(v any) (any, error) {
	switch x := v.(type) {
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint64:
		if x > 1<<63-1 {
			return nil, fmt.Errorf("%d does not fit int64", x)
		}
		return int64(x), nil
	}
	return nil, fmt.Errorf("%T is not an integer", v)
}

func toInt32(v any) (any, error) {
	n, err := toInt64(v)
	if err != nil {
		return nil, err
	}
	if x := n.(int64); x < -1<<31 || x > 1<<31-1 {
		return nil, fmt.Errorf("%d does not fit int32", x)
	}
	return int32(n.(int64)), nil
}

func toDecimalText(v any) (any, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	}
	return nil, fmt.Errorf("%T is not a decimal", v)
}

func toString(v any) (any, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	}
	return nil, fmt.Errorf("%T is not text", v)
}

func toBytes(v any) (any, error) {
	switch x := v.(type) {
	case string:
		return []byte(x), nil
	case []byte:
		return x, nil
	}
	return nil, fmt.Errorf("%T is not bytes", v)
}

// parseTime reads a date or time in UTC; MySQL's zero dates become null.
func parseTime(v any, layout string) (any, error) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case string:
		if strings.HasPrefix(x, "0000-00-00") {
			return nil, nil
		}
		t, err := time.ParseInLocation(layout, x, time.UTC)
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	return nil, fmt.Errorf("%T is not a time", v)
}

// timeMicros reads a TIME value, "[-]hhh:mm:ss[.ffffff]", as microseconds.
func timeMicros(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%T is not a time of day", v)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	hms, frac, _ := strings.Cut(s, ".")
	parts := strings.Split(hms, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("time %q is not hh:mm:ss", v)
	}
	var us int64
	for i, mul := range []int64{3600e6, 60e6, 1e6} {
		n, err := strconv.ParseInt(parts[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("time %q: %w", v, err)
		}
		us += n * mul
	}
	if frac != "" {
		frac = (frac + "000000")[:6]
		n, err := strconv.ParseInt(frac, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("time %q: %w", v, err)
		}
		us += n
	}
	if neg {
		us = -us
	}
	return us, nil
}

func enumName(v any, names []string) (any, error) {
	n, err := toInt64(v)
	if err != nil {
		return nil, err
	}
	i := n.(int64)
	switch {
	case i == 0:
		return "", nil // MySQL's error value for a bad enum string
	case i < 1 || int(i) > len(names):
		return nil, fmt.Errorf("enum index %d out of %d values", i, len(names))
	}
	return names[i-1], nil
}

func setNames(v any, names []string) (any, error) {
	n, err := toInt64(v)
	if err != nil {
		return nil, err
	}
	bits := uint64(n.(int64))
	var out []string
	for i, name := range names {
		if bits&(1<<i) != 0 {
			out = append(out, name)
		}
	}
	return strings.Join(out, ","), nil
}

// wkb drops the 4-byte SRID the server stores before the WKB.
func wkb(v any) (any, error) {
	b, err := toBytes(v)
	if err != nil {
		return nil, err
	}
	raw := b.([]byte)
	if len(raw) < 4 {
		return nil, fmt.Errorf("geometry of %d bytes", len(raw))
	}
	return raw[4:], nil
}
