package cdc

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sluicehq/sluice/ingest/schema"
)

// The read side of a table's initial snapshot: the rows a table holds now,
// in chunks by primary key, converted exactly as the same rows arriving in
// the binlog would be, so that a snapshot followed by the log from
// MasterPosition gives the same values as the log alone would have.
//
// ListTables, DescribeTable and ReadChunk set their connection's session up
// (see snapshotSession): the caller's later queries on the connection see
// time_zone '+00:00' and results in the columns' own character sets.

// TableInfo describes a source table as the server has it now.
type TableInfo struct {
	Schema, Table string
	// Columns are in ordinal order; their Value accepts the values of
	// ReadChunk's rows (not the binlog's: see Columns for those).
	Columns []Column
	// Key names the primary-key columns in key order.
	Key []string

	// src is how each column is read and compared: ReadChunk needs a
	// TableInfo from DescribeTable.
	src []sourceColumn
}

// sourceColumn is what information_schema says of a column, as far as
// reading it and comparing its key values goes.
type sourceColumn struct {
	name      string
	dataType  string // information_schema DATA_TYPE, lower case
	unsigned  bool
	precision int // decimal
	scale     int
	charset   string // text types
	collation string
}

// snapshotSession makes the server send values as the binlog carries
// them: text in the column's own character set, unconverted
// (character_set_results = NULL), and TIMESTAMPs in UTC. Names and text
// parameters go in as utf8mb4.
func snapshotSession(conn *client.Conn) error {
	_, err := conn.Execute("SET character_set_client = utf8mb4, character_set_connection = utf8mb4, " +
		"character_set_results = NULL, time_zone = '+00:00'")
	return err
}

// prepared runs a statement through the binary protocol even without
// arguments: the text protocol renders FLOATs in 6 digits, not exactly.
func prepared(conn *client.Conn, query string, args ...any) (*mysql.Result, error) {
	stmt, err := conn.Prepare(query)
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	return stmt.Execute(args...)
}

// quoteIdent quotes a name for SQL.
func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

func fieldString(v mysql.FieldValue) string {
	switch v.Type {
	case mysql.FieldValueTypeString:
		return string(v.AsString())
	case mysql.FieldValueTypeNull:
		return ""
	}
	return v.String()
}

func fieldInt(v mysql.FieldValue) int {
	n, _ := strconv.Atoi(fieldString(v))
	return n
}

// systemSchemas hold the server's own tables, never snapshot unless a
// pattern names them.
var systemSchemas = []string{"mysql", "information_schema", "performance_schema", "sys"}

// ListTables lists the "db.table" names of the base tables the patterns
// select, sorted. Patterns select as Config.Tables does for the log
// reader, except that no patterns select every table outside the system
// schemas: the server's own tables are not data to copy, unless named.
func ListTables(conn *client.Conn, patterns []string) ([]string, error) {
	for _, p := range patterns {
		if _, err := path.Match(p, "x.y"); err != nil {
			return nil, fmt.Errorf("snapshot: table pattern %q: %w", p, err)
		}
	}
	if err := snapshotSession(conn); err != nil {
		return nil, fmt.Errorf("snapshot: list tables: %w", err)
	}
	res, err := prepared(conn, "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE'")
	if err != nil {
		return nil, fmt.Errorf("snapshot: list tables: %w", err)
	}
	defer res.Close()
	r := &Reader{cfg: Config{Tables: patterns}}
	var out []string
	for _, row := range res.Values {
		db, table := fieldString(row[0]), fieldString(row[1])
		if len(patterns) == 0 && slices.Contains(systemSchemas, strings.ToLower(db)) {
			continue
		}
		if r.follows(db, table) {
			out = append(out, db+"."+table)
		}
	}
	slices.Sort(out)
	return out, nil
}

// DescribeTable reads a table's columns and primary key from
// information_schema. A table without a primary key is refused: its rows
// have no order to resume a chunked read in, nor an identity for the
// log's changes to apply to.
func DescribeTable(conn *client.Conn, schemaName, table string) (TableInfo, error) {
	ti := TableInfo{Schema: schemaName, Table: table}
	fail := func(err error) (TableInfo, error) {
		return TableInfo{}, fmt.Errorf("snapshot %s.%s: %w", schemaName, table, err)
	}
	if err := snapshotSession(conn); err != nil {
		return fail(err)
	}
	res, err := prepared(conn, `SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE,
		CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, schemaName, table)
	if err != nil {
		return fail(fmt.Errorf("read columns: %w", err))
	}
	defer res.Close()
	if len(res.Values) == 0 {
		return fail(errors.New("no such table"))
	}
	var errs []error
	for _, row := range res.Values {
		src := sourceColumn{
			name: fieldString(row[0]), dataType: fieldString(row[1]),
			unsigned:  strings.Contains(strings.ToLower(fieldString(row[2])), "unsigned"),
			precision: fieldInt(row[3]), scale: fieldInt(row[4]),
			charset: fieldString(row[5]), collation: fieldString(row[6]),
		}
		c, err := snapshotColumn(src)
		if err != nil {
			errs = append(errs, fmt.Errorf("column %s: %w", src.name, err))
			continue
		}
		c.Name = src.name
		ti.Columns = append(ti.Columns, c)
		ti.src = append(ti.src, src)
	}
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	keys, err := prepared(conn, `SELECT COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`, schemaName, table)
	if err != nil {
		return fail(fmt.Errorf("read primary key: %w", err))
	}
	defer keys.Close()
	for _, row := range keys.Values {
		ti.Key = append(ti.Key, fieldString(row[0]))
	}
	if len(ti.Key) == 0 {
		return fail(errors.New("the table has no primary key; a snapshot reads tables in primary-key order"))
	}
	for _, k := range ti.Key {
		if _, err := ti.keyColumn(k); err != nil {
			return fail(err)
		}
	}
	return ti, nil
}

// snapshotColumn types a column as Columns types it from the log, with a
// conversion of the values a binary-protocol SELECT gives (int64, uint64,
// float64, or bytes) into the same values Columns' conversion makes of
// the log's.
func snapshotColumn(c sourceColumn) (Column, error) {
	kind := func(k schema.Kind) schema.Type { return schema.Type{Kind: k} }
	fromText := func(f func(any) (any, error)) func(any) (any, error) {
		return func(v any) (any, error) {
			s, err := toString(v)
			if err != nil {
				return nil, err
			}
			return f(s)
		}
	}
	switch c.dataType {
	case "tinyint", "smallint", "mediumint", "year":
		return Column{Type: kind(schema.KindInt32), conv: toInt32}, nil
	case "int":
		if c.unsigned {
			return Column{Type: kind(schema.KindInt64), conv: toInt64}, nil
		}
		return Column{Type: kind(schema.KindInt32), conv: toInt32}, nil
	case "bigint":
		if c.unsigned {
			return Column{Type: schema.Type{Kind: schema.KindDecimal, Precision: 20}, conv: toDecimalText}, nil
		}
		return Column{Type: kind(schema.KindInt64), conv: toInt64}, nil
	case "decimal":
		return Column{Type: schema.Type{Kind: schema.KindDecimal, Precision: c.precision, Scale: c.scale}, conv: toString}, nil
	case "float":
		// Sent as 4 bytes, widened to float64 by the client: narrowing is
		// exact.
		return Column{Type: kind(schema.KindFloat32), conv: func(v any) (any, error) {
			f, ok := v.(float64)
			if !ok {
				return nil, fmt.Errorf("%T is not a float", v)
			}
			return float32(f), nil
		}}, nil
	case "double":
		return Column{Type: kind(schema.KindFloat64), conv: func(v any) (any, error) {
			if _, ok := v.(float64); !ok {
				return nil, fmt.Errorf("%T is not a double", v)
			}
			return v, nil
		}}, nil
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json", "enum", "set":
		// ENUM and SET come by name, where the log has an index and a
		// bitmask to look the names up by.
		if c.charset == "latin1" {
			return Column{Type: kind(schema.KindString), conv: latin1Text}, nil
		}
		return Column{Type: kind(schema.KindString), conv: toString, plain: true}, nil
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "inet4", "inet6", "uuid":
		return Column{Type: kind(schema.KindBinary), conv: toBytes}, nil
	case "date":
		return Column{Type: kind(schema.KindDate), conv: fromText(func(v any) (any, error) { return parseTime(v, "2006-01-02") })}, nil
	case "datetime":
		return Column{Type: schema.Type{Kind: schema.KindTimestamp, Unit: schema.Micros},
			conv: fromText(func(v any) (any, error) { return parseTime(v, "2006-01-02 15:04:05.999999") })}, nil
	case "timestamp":
		return Column{Type: schema.Type{Kind: schema.KindTimestampTZ, Unit: schema.Micros},
			conv: fromText(func(v any) (any, error) { return parseTime(v, "2006-01-02 15:04:05.999999") })}, nil
	case "time":
		return Column{Type: kind(schema.KindInt64), conv: fromText(timeMicros)}, nil
	case "bit":
		return Column{Type: kind(schema.KindInt64), conv: bitValue}, nil
	}
	if slices.Contains(geometryTypes, c.dataType) {
		return Column{Type: kind(schema.KindBinary), conv: wkb}, nil
	}
	return Column{}, fmt.Errorf("type %s is not supported", c.dataType)
}

// geometryTypes are the DATA_TYPEs of spatial columns (MySQL 8 says
// geomcollection).
var geometryTypes = []string{"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
	"multipolygon", "geometrycollection", "geomcollection"}

// bitValue reads a BIT as the log reader does: big-endian, its 64 bits as
// an int64 (BIT(64) may be negative).
func bitValue(v any) (any, error) {
	b, ok := v.([]byte)
	if !ok || len(b) > 8 {
		return nil, fmt.Errorf("%T of %d bytes is not a bit value", v, len(b))
	}
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return int64(n), nil
}

// selectExpr reads a column in the form the log carries it: the
// MariaDB INET and UUID types as their 4 or 16 stored bytes, not text.
func (c sourceColumn) selectExpr() string {
	switch c.dataType {
	case "inet4":
		return "CAST(" + quoteIdent(c.name) + " AS BINARY(4))"
	case "inet6", "uuid":
		return "CAST(" + quoteIdent(c.name) + " AS BINARY(16))"
	}
	return quoteIdent(c.name)
}

// keyColumn is a primary-key column and how its cursor value is read and
// compared.
type keyColumn struct {
	index int // in the table's columns
	src   sourceColumn
	// extra is an expression read besides the columns for the cursor, when
	// the column's own value does not compare as the server orders it:
	// ENUM and SET order by number, not name, and BIT as a number, not
	// bytes; INET and UUID values are read as bytes but compare as text.
	extra string
}

func (ti TableInfo) keyColumn(name string) (keyColumn, error) {
	i := slices.IndexFunc(ti.src, func(c sourceColumn) bool { return c.name == name })
	if i < 0 {
		return keyColumn{}, fmt.Errorf("key column %s is not a column", name)
	}
	k := keyColumn{index: i, src: ti.src[i]}
	switch k.src.dataType {
	case "enum", "set", "bit":
		k.extra = quoteIdent(name) + "+0"
	case "inet4", "inet6", "uuid":
		k.extra = quoteIdent(name)
	case "json":
		return keyColumn{}, fmt.Errorf("key column %s: a json key is not supported", name)
	}
	if slices.Contains(geometryTypes, k.src.dataType) {
		return keyColumn{}, fmt.Errorf("key column %s: a %s key is not supported", name, k.src.dataType)
	}
	return k, nil
}

// param is the placeholder and argument comparing the key column with a
// cursor value, so that the server compares as it orders the column:
// numbers as numbers (MySQL compares a DECIMAL with a string as doubles),
// text in the column's collation, binary strings bytewise (a BLOB
// parameter is binary, whatever the connection's character set).
func (k keyColumn) param(v string) (string, any, error) {
	blob := func(s string) mysql.TypedBytes {
		return mysql.TypedBytes{Type: mysql.MYSQL_TYPE_BLOB, Bytes: []byte(s)}
	}
	switch k.src.dataType {
	case "tinyint", "smallint", "mediumint", "int", "bigint", "year", "bit", "enum", "set":
		if k.src.unsigned || k.src.dataType == "year" || k.extra != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			return "?", n, err
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return "?", n, err
	case "float", "double":
		f, err := strconv.ParseFloat(v, 64)
		return "?", f, err
	case "decimal":
		return fmt.Sprintf("CAST(? AS DECIMAL(%d,%d))", k.src.precision, k.src.scale), v, nil
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		if !isPlainName(k.src.charset) || !isPlainName(k.src.collation) {
			return "", nil, fmt.Errorf("character set %q, collation %q", k.src.charset, k.src.collation)
		}
		return fmt.Sprintf("CONVERT(? USING %s) COLLATE %s", k.src.charset, k.src.collation), blob(v), nil
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return "?", blob(v), nil
	}
	// Dates and times as the server wrote them (TIMESTAMPs in the
	// session's UTC), INET and UUID as text.
	return "?", v, nil
}

// isPlainName reports whether a character set or collation name can go
// into SQL as it is.
func isPlainName(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
}

// cursorValue renders the key value read from the server as cursor text.
func cursorValue(v any) (string, error) {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case []byte:
		return string(x), nil
	case nil:
		return "", errors.New("a key value is NULL")
	}
	return "", fmt.Errorf("key value of type %T", v)
}

// Cursor is where a chunked read resumes: the primary key of the last row
// read, a value per key column as text. Integers, decimals and floats are
// in decimal (floats in the shortest form that reads back exactly), dates
// and times as the server writes them, ENUM and SET as their number, BIT
// as an unsigned integer, INET and UUID as text, and text and binary
// strings as their stored bytes. Nil or empty reads from the start.
type Cursor []string

// MarshalJSON writes each value as a JSON string when it is UTF-8 and
// as {"hex": "…"} when not: a JSON string cannot carry other bytes
// (encoding/json would replace them), and a cursor must resume exactly.
func (c Cursor) MarshalJSON() ([]byte, error) {
	if c == nil {
		return []byte("null"), nil
	}
	type hexValue struct {
		Hex string `json:"hex"`
	}
	out := make([]any, len(c))
	for i, v := range c {
		if utf8.ValidString(v) {
			out[i] = v
		} else {
			out[i] = hexValue{hex.EncodeToString([]byte(v))}
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Cursor) UnmarshalJSON(data []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("cursor: %w", err)
	}
	if raw == nil {
		*c = nil
		return nil
	}
	out := make(Cursor, len(raw))
	for i, r := range raw {
		if r = bytes.TrimSpace(r); len(r) > 0 && r[0] == '"' {
			if err := json.Unmarshal(r, &out[i]); err != nil {
				return fmt.Errorf("cursor: %w", err)
			}
			continue
		}
		var h struct {
			Hex *string `json:"hex"`
		}
		if err := json.Unmarshal(r, &h); err != nil || h.Hex == nil {
			return fmt.Errorf(`cursor: value %s is neither a string nor {"hex": "…"}`, r)
		}
		b, err := hex.DecodeString(*h.Hex)
		if err != nil {
			return fmt.Errorf("cursor: %w", err)
		}
		out[i] = string(b)
	}
	*c = out
	return nil
}

// ReadChunk reads up to limit rows with a key greater than after, in key
// order, and the cursor of the last (after itself when there is none).
// The rows' values are as the binary protocol gives them (nil, int64,
// uint64, float64 or bytes) for ti.Columns' Value to convert: each
// converts to what the same row logged and converted by Columns would,
// but for BINARY(n), INET and UUID values ending in zero bytes, which the
// log carries without them.
//
// Keyset pagination keeps each chunk's cost and memory at limit rows
// however the keys are spread, and the expanded condition
// `a > ? OR (a = ? AND b > ?)` lets every server use the key's index.
func ReadChunk(conn *client.Conn, ti TableInfo, after Cursor, limit int) ([][]any, Cursor, error) {
	fail := func(err error) ([][]any, Cursor, error) {
		return nil, nil, fmt.Errorf("snapshot %s.%s: %w", ti.Schema, ti.Table, err)
	}
	switch {
	case limit < 1:
		return fail(fmt.Errorf("chunk limit %d is not positive", limit))
	case len(ti.src) != len(ti.Columns) || len(ti.Key) == 0:
		return fail(errors.New("the table description is not from DescribeTable"))
	case len(after) != 0 && len(after) != len(ti.Key):
		return fail(fmt.Errorf("cursor of %d values for a key of %d columns", len(after), len(ti.Key)))
	}
	keys := make([]keyColumn, len(ti.Key))
	for i, name := range ti.Key {
		k, err := ti.keyColumn(name)
		if err != nil {
			return fail(err)
		}
		keys[i] = k
	}
	exprs := make([]string, 0, len(ti.src)+len(keys))
	for _, c := range ti.src {
		exprs = append(exprs, c.selectExpr())
	}
	cursorAt := make([]int, len(keys)) // where each key's cursor value is in a row read
	order := make([]string, len(keys))
	for i, k := range keys {
		cursorAt[i] = k.index
		if k.extra != "" {
			cursorAt[i] = len(exprs)
			exprs = append(exprs, k.extra)
		}
		order[i] = quoteIdent(k.src.name)
	}
	q := "SELECT " + strings.Join(exprs, ", ") + " FROM " + quoteIdent(ti.Schema) + "." + quoteIdent(ti.Table)
	var args []any
	if len(after) > 0 {
		places := make([]string, len(keys))
		values := make([]any, len(keys))
		for i, k := range keys {
			p, v, err := k.param(after[i])
			if err != nil {
				return fail(fmt.Errorf("cursor value %q for key column %s: %w", after[i], k.src.name, err))
			}
			places[i], values[i] = p, v
		}
		var or []string
		for i := range keys {
			var and []string
			for j := range i {
				and = append(and, order[j]+" = "+places[j])
				args = append(args, values[j])
			}
			and = append(and, order[i]+" > "+places[i])
			args = append(args, values[i])
			or = append(or, "("+strings.Join(and, " AND ")+")")
		}
		q += " WHERE " + strings.Join(or, " OR ")
	}
	q += " ORDER BY " + strings.Join(order, ", ") + " LIMIT " + strconv.Itoa(limit)
	if err := snapshotSession(conn); err != nil {
		return fail(err)
	}
	res, err := prepared(conn, q, args...)
	if err != nil {
		return fail(fmt.Errorf("read chunk: %w", err))
	}
	// The result's buffers go back to a pool for reuse: the rows keep
	// copies.
	defer res.Close()
	rows := make([][]any, len(res.Values))
	for i, fields := range res.Values {
		row := make([]any, len(ti.src))
		for j := range row {
			v := fields[j].Value()
			if b, ok := v.([]byte); ok {
				// An empty string is empty, not nil, as in the log.
				v = append([]byte{}, b...)
			}
			row[j] = v
		}
		rows[i] = row
	}
	if len(rows) == 0 {
		return rows, after, nil
	}
	lastRow := res.Values[len(res.Values)-1]
	last := make(Cursor, len(keys))
	for i, at := range cursorAt {
		if last[i], err = cursorValue(lastRow[at].Value()); err != nil {
			return fail(fmt.Errorf("key column %s: %w", keys[i].src.name, err))
		}
	}
	return rows, last, nil
}

// MasterPosition is the end of the server's binary log now: a transaction
// boundary, where the log of changes after a snapshot begins. It is that
// only if the rows are read as of the same moment: under a read lock
// taken before, or, on MariaDB, in a transaction begun WITH CONSISTENT
// SNAPSHOT, whose position the status variables binlog_snapshot_file and
// binlog_snapshot_position give instead.
func MasterPosition(conn *client.Conn) (Position, error) {
	res, err := conn.Execute("SHOW MASTER STATUS")
	if err != nil {
		// MySQL 8.4 knows only the new name.
		var again error
		if res, again = conn.Execute("SHOW BINARY LOG STATUS"); again != nil {
			return Position{}, fmt.Errorf("snapshot: binary log position: %w", err)
		}
	}
	defer res.Close()
	if res.RowNumber() == 0 {
		return Position{}, errors.New("snapshot: binary log position: the server's binary log is off")
	}
	file, err := res.GetString(0, 0)
	if err != nil {
		return Position{}, fmt.Errorf("snapshot: binary log position: %w", err)
	}
	pos, err := res.GetUint(0, 1)
	if err != nil {
		return Position{}, fmt.Errorf("snapshot: binary log position: %w", err)
	}
	// The client returns the text without copying it out of a buffer
	// that Close hands back to a pool for the next result: a position kept
	// after Close would change under the caller (bin.000001 read later as
	// idn.000001), and a snapshot chunk waiting for that position would be
	// skipped or applied early.
	return Position{File: strings.Clone(file), Pos: uint32(pos)}, nil
}
