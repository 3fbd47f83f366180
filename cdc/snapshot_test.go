package cdc

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/sluicehq/sluice/cdc/mariadbtest"
)

func snapshotConn(t *testing.T, db *mariadbtest.Server) *client.Conn {
	t.Helper()
	conn, err := db.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestSnapshotMatchesBinlog reads the same rows, a column of every
// supported type, from the log and by snapshot: the columns must be named
// and typed alike and every value convert to the same.
func TestSnapshotMatchesBinlog(t *testing.T) {
	db := mariadbtest.Start(t)
	// The table of TestColumnsMapEveryType, and more: text in other
	// character sets, extremes of the temporal and numeric types, MariaDB's
	// INET6 and UUID. Fixed-length binary values end in zero bytes, which
	// the log drops (BINARY(3) 'a\0\0' is logged as "a") and Columns
	// restores.
	db.Exec(t, "SET NAMES utf8mb4", "CREATE DATABASE d", `CREATE TABLE d.t (
		id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, iu INT UNSIGNED,
		bi BIGINT, bu BIGINT UNSIGNED, de DECIMAL(12,3), fl FLOAT, do DOUBLE,
		ch CHAR(3), vc VARCHAR(10), tx TEXT, bl BLOB, bn BINARY(3), vb VARBINARY(5),
		da DATE, dt DATETIME, dt6 DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(2), yr YEAR,
		js JSON, en ENUM('x','y','z'), st SET('a','b','c'), bt BIT(10), ge GEOMETRY, nu INT,
		u8 VARCHAR(10) CHARACTER SET utf8mb4, l1 CHAR(5) CHARACTER SET latin1, mu MEDIUMINT UNSIGNED,
		dd DECIMAL(65,30), fd FLOAT(30), ts0 TIMESTAMP NULL, tm0 TIME, b64 BIT(64), pt POINT, i6 INET6, uu UUID)`)
	from := position(t, db)
	db.Exec(t, "SET NAMES utf8mb4", "SET time_zone = '+00:00'", "SET sql_mode = ''",
		`INSERT INTO d.t VALUES (1, -5, 250, -300, -70000, 4000000000, -9000000000, 18446744073709551615, -123.456,
		1.5, 2.25, 'ab', 'héllo', 'texté', 'blob', 'abc', 'vb', '2026-11-23', '2026-11-23 07:08:09', '2026-11-23 07:08:09.123456',
		'2026-11-23 07:08:09.123', '-12:34:56.78', 2026, '{"a": [1, 2]}', 'y', 'a,c', b'1000000001', ST_GeomFromText('POINT(1 2)'), NULL,
		'😀é', 'é€', 16777215, '-12345678901234567890123456789012345.123456789012345678901234567891', 3.141592653589793,
		'2026-11-23 07:08:09', '00:00:00', 1, ST_GeomFromText('POINT(-1.5 1e300)'), 'fe80::1', '6ccd780c-baba-1026-9564-5b8c656024db')`,
		`INSERT INTO d.t VALUES (2, -128, 255, -32768, -8388608, 4294967295, -9223372036854775808, 9223372036854775808, -999999999.999,
		3.1415927, 1.7976931348623157e308, '', '', '', '', 'a\0\0', x'00ff', '0000-00-00', '0000-00-00 00:00:00', '9999-12-31 23:59:59.999999',
		'1970-01-01 00:00:01.001', '-838:59:59', 0, '{"k": "é😀", "n": [1.5e300]}', '', '', b'1111111111', ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'), 0,
		'', 'a  ', 0, 0.000000000000000000000000000001, -1e-30,
		'2038-01-19 03:14:07', '838:59:59', x'ffffffffffffffff', ST_GeomFromText('POINT(0 0)'), '::', '00000000-0000-0000-0000-000000000001')`,
		"INSERT INTO d.t (id) VALUES (3)")

	r, err := NewReader(Config{Host: db.Host, Port: db.Port, User: "root", Flavor: "mariadb", ServerID: 11, Tables: []string{"d.t"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var logged []Event
	err = r.Run(ctx, from, func(e Event) error {
		if e.Op == Insert {
			logged = append(logged, e)
			if len(logged) == 3 {
				cancel()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(logged) != 3 {
		t.Fatalf("%d inserts in the log, want 3", len(logged))
	}
	logCols, err := Columns(logged[0].Map)
	if err != nil {
		t.Fatal(err)
	}

	conn := snapshotConn(t, db)
	ti, err := DescribeTable(conn, "d", "t")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ti.Key, []string{"id"}) {
		t.Errorf("key %v, want [id]", ti.Key)
	}
	if len(ti.Columns) != len(logCols) {
		t.Fatalf("%d columns, the log has %d", len(ti.Columns), len(logCols))
	}
	for i, c := range ti.Columns {
		if c.Name != logCols[i].Name || !c.Type.Equal(logCols[i].Type) {
			t.Errorf("column %d: %s %s, the log has %s %s", i, c.Name, c.Type, logCols[i].Name, logCols[i].Type)
		}
	}
	rows, _, err := ReadChunk(conn, ti, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	snapshot := make([]map[string]any, len(rows))
	for i, row := range rows {
		snapshot[i] = map[string]any{}
		for j, c := range ti.Columns {
			want, err := logCols[j].Value(logged[i].After[j])
			if err != nil {
				t.Fatalf("row %d: log: %v", i+1, err)
			}
			got, err := c.Value(row[j])
			if err != nil {
				t.Fatalf("row %d: snapshot: %v", i+1, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("row %d column %s: snapshot %#v (read %#v), log %#v (logged %#v)", i+1, c.Name, got, row[j], want, logged[i].After[j])
			}
			snapshot[i][c.Name] = got
		}
	}
	// Both sides agreeing, a few values checked against what they must be.
	for name, want := range map[string]any{
		"bu": "9223372036854775808", "fl": float32(3.1415927), "bn": []byte("a\x00\x00"), "vb": []byte{0, 0xff},
		"bl": []byte{}, "tx": "", "da": nil, "dt": nil, "dt6": time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		"ts": time.Date(1970, 1, 1, 0, 0, 1, 1e6, time.UTC), "tm": int64(-(838*3600 + 59*60 + 59) * 1e6), "yr": int32(0),
		"en": "", "st": "", "bt": int64(1023), "l1": "a", "b64": int64(-1), "i6": make([]byte, 16),
		"dd": "0.000000000000000000000000000001", "js": `{"k": "é😀", "n": [1.5e300]}`,
	} {
		if got := snapshot[1][name]; !reflect.DeepEqual(got, want) {
			t.Errorf("row 2 column %s: %#v, want %#v", name, got, want)
		}
	}
	// latin1 text (Windows-1252 in MySQL) is converted to UTF-8.
	if got := snapshot[0]["l1"]; got != "é€" {
		t.Errorf("latin1 é€ reads %q", got)
	}
	if got := snapshot[0]["u8"]; got != "😀é" {
		t.Errorf("utf8mb4 reads %q", got)
	}
	for name, v := range snapshot[2] {
		if name != "id" && v != nil {
			t.Errorf("row 3 column %s: %#v, want nil", name, v)
		}
	}
}

// TestReadChunkResumes reads tables in chunks of several sizes, each
// resumed from the previous chunk's cursor after a JSON round trip: every
// row comes once, in the order the server sorts the key in.
func TestReadChunkResumes(t *testing.T) {
	db := mariadbtest.Start(t)
	db.Exec(t, "SET NAMES utf8mb4", "CREATE DATABASE d")
	shuffled := func(values ...string) string {
		rand.Shuffle(len(values), func(i, j int) { values[i], values[j] = values[j], values[i] })
		return "(" + strings.Join(values, "), (") + ")"
	}
	var composite []string
	for _, a := range []string{"2", "-1", "0"} {
		for _, b := range []string{"''", "'a'", "'B'", "'é'", "'f'", "'ß'", "'z'", "'😀'", "' z'"} {
			composite = append(composite, fmt.Sprintf("%s, %s, 7", a, b))
		}
	}
	for _, tc := range []struct {
		name, create, rows string
		// want is the key order, when it is worth spelling out.
		want []string
	}{{
		name:   "composite int and utf8mb4 text",
		create: "(a INT, b VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, v INT, PRIMARY KEY (a, b))",
		rows:   shuffled(composite...),
	}, {
		name:   "bigint unsigned",
		create: "(k BIGINT UNSIGNED PRIMARY KEY)",
		rows:   shuffled("0", "1", "255", "256", "2147483648", "4294967296", "9223372036854775807", "9223372036854775808", "18446744073709551614", "18446744073709551615"),
		want:   []string{"0", "1", "255", "256", "2147483648", "4294967296", "9223372036854775807", "9223372036854775808", "18446744073709551614", "18446744073709551615"},
	}, {
		name:   "varbinary",
		create: "(k VARBINARY(4) PRIMARY KEY)",
		rows:   shuffled("''", "x'00'", "x'0000'", "x'0001'", "x'01'", "x'7f'", "x'80'", "x'fe'", "x'ff'", "x'ff00'", "x'ffff'", "x'ffffffff'"),
		want:   []string{"0x", "0x00", "0x0000", "0x0001", "0x01", "0x7f", "0x80", "0xfe", "0xff", "0xff00", "0xffff", "0xffffffff"},
	}, {
		name:   "latin1 text",
		create: "(k VARCHAR(5) CHARACTER SET latin1 PRIMARY KEY)",
		rows:   shuffled("'a'", "'B'", "'é'", "'f'", "'Ä'", "'€'", "'z '"),
	}, {
		name:   "decimal beyond double precision and datetime",
		create: "(d DECIMAL(30,10), t DATETIME(6), PRIMARY KEY (d, t))",
		rows: shuffled("12345678901234567890.0000000001, '2026-01-01 00:00:00'", "12345678901234567890.0000000002, '2026-01-01 00:00:00'",
			"12345678901234567890.0000000002, '2026-01-01 00:00:00.000001'", "-0.5, '1000-01-01 00:00:00'", "0, '9999-12-31 23:59:59.999999'"),
		want: []string{"-0.5000000000|1000-01-01 00:00:00 +0000 UTC", "0.0000000000|9999-12-31 23:59:59.999999 +0000 UTC",
			"12345678901234567890.0000000001|2026-01-01 00:00:00 +0000 UTC", "12345678901234567890.0000000002|2026-01-01 00:00:00 +0000 UTC",
			"12345678901234567890.0000000002|2026-01-01 00:00:00.000001 +0000 UTC"},
	}, {
		name:   "enum, in declaration order",
		create: "(k ENUM('z','a','m') PRIMARY KEY)",
		rows:   shuffled("'a'", "'m'", "'z'"),
		want:   []string{"z", "a", "m"},
	}, {
		name:   "uuid",
		create: "(k UUID PRIMARY KEY)",
		rows:   shuffled("'6ccd780c-baba-1026-9564-5b8c656024db'", "'00000000-0000-0000-0000-000000000001'", "'ffffffff-0000-0000-0000-000000000000'", "'11111111-2222-3333-4444-555555555555'"),
	}, {
		name:   "quoted names",
		create: "(`k``1` INT, `v` INT, PRIMARY KEY (`k``1`))",
		rows:   shuffled("3, 0", "1, 0", "2, 0"),
		want:   []string{"1", "2", "3"},
	}, {
		name:   "float and bit",
		create: "(f FLOAT, b BIT(8), PRIMARY KEY (f, b))",
		rows:   shuffled("0.1, 1", "0.1, 255", "-3.4e38, 0", "1e-30, 128"),
		want:   []string{"-3.4e+38|0", "1e-30|128", "0.1|1", "0.1|255"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			table := strings.NewReplacer(" ", "_", ",", "").Replace(tc.name) + "`x"
			quoted := "d." + quoteIdent(table)
			db.Exec(t, "SET NAMES utf8mb4", "CREATE TABLE "+quoted+" "+tc.create, "INSERT INTO "+quoted+" VALUES "+tc.rows)
			conn := snapshotConn(t, db)
			ti, err := DescribeTable(conn, "d", table)
			if err != nil {
				t.Fatal(err)
			}
			whole, end, err := ReadChunk(conn, ti, nil, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(tc.rows, "), (") + 1; len(whole) != n {
				t.Fatalf("%d rows in one chunk, inserted %d", len(whole), n)
			}
			if tc.want != nil {
				var keys []string
				for _, row := range whole {
					keys = append(keys, chunkKey(t, ti, row))
				}
				if !slices.Equal(keys, tc.want) {
					t.Errorf("key order %q, want %q", keys, tc.want)
				}
			}
			if rows, last, err := ReadChunk(conn, ti, end, 1000); err != nil || len(rows) != 0 || !reflect.DeepEqual(last, end) {
				t.Errorf("after the end: %d rows, cursor %q (want %q), %v", len(rows), last, end, err)
			}
			for _, limit := range []int{1, 3, 7} {
				var got [][]any
				var after Cursor
				for calls := 0; ; calls++ {
					if calls > len(whole)+1 {
						t.Fatalf("limit %d: no end after %d chunks", limit, calls)
					}
					rows, last, err := ReadChunk(conn, ti, after, limit)
					if err != nil {
						t.Fatalf("limit %d after %q: %v", limit, after, err)
					}
					if len(rows) > limit {
						t.Fatalf("limit %d: a chunk of %d rows", limit, len(rows))
					}
					if len(rows) == 0 {
						if !reflect.DeepEqual(last, after) {
							t.Errorf("limit %d: empty chunk moved the cursor from %q to %q", limit, after, last)
						}
						break
					}
					text, err := json.Marshal(last)
					if err != nil {
						t.Fatal(err)
					}
					var back Cursor
					if err := json.Unmarshal(text, &back); err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(back, last) {
						t.Fatalf("cursor %q came back from %s as %q", last, text, back)
					}
					got = append(got, rows...)
					after = back
				}
				if !reflect.DeepEqual(got, whole) {
					t.Errorf("limit %d: read %d rows\n%v\nwant %d\n%v", limit, len(got), got, len(whole), whole)
				}
			}
		})
	}
}

// chunkKey renders a row's key for comparison: bytes in hex, the rest as
// fmt does, columns separated by "|".
func chunkKey(t *testing.T, ti TableInfo, row []any) string {
	t.Helper()
	var parts []string
	for _, k := range ti.Key {
		i := slices.IndexFunc(ti.Columns, func(c Column) bool { return c.Name == k })
		v, err := ti.Columns[i].Value(row[i])
		if err != nil {
			t.Fatal(err)
		}
		if b, ok := v.([]byte); ok {
			parts = append(parts, fmt.Sprintf("0x%x", b))
		} else {
			parts = append(parts, fmt.Sprint(v))
		}
	}
	return strings.Join(parts, "|")
}

func TestCursorJSON(t *testing.T) {
	for _, c := range []Cursor{nil, {}, {""}, {"1", "-2.5e-300", "2026-11-23 07:08:09.123456"},
		{"\xe9\x80", "\x00\xff", "é😀", `"\<>&` + "\u2028"}, {string([]byte{0xc3})}} {
		text, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back Cursor
		if err := json.Unmarshal(text, &back); err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("%q → %s → %q", c, text, back)
		}
	}
	// Text stays readable; only other bytes go in hex.
	if text, _ := json.Marshal(Cursor{"é", "\xe9"}); string(text) != `["é",{"hex":"e9"}]` {
		t.Errorf("cursor JSON %s", text)
	}
	for _, bad := range []string{`{}`, `[1]`, `[{"hex":"zz"}]`, `[{"h":"00"}]`} {
		var c Cursor
		if err := json.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("%s read as %q", bad, c)
		}
	}
}

func TestListAndDescribeTables(t *testing.T) {
	db := mariadbtest.Start(t)
	db.Exec(t, "CREATE DATABASE shop", "CREATE DATABASE other",
		"CREATE TABLE shop.orders (id INT PRIMARY KEY)",
		"CREATE TABLE shop.items (a INT, b INT, c INT, PRIMARY KEY (c, a))",
		"CREATE VIEW shop.v AS SELECT id FROM shop.orders",
		"CREATE TABLE other.noise (id INT PRIMARY KEY)",
		"CREATE TABLE other.nokey (id INT, UNIQUE KEY (id))",
		"CREATE TABLE other.odd (id INT PRIMARY KEY, x INT)")
	conn := snapshotConn(t, db)
	for _, tc := range []struct {
		patterns []string
		want     []string
	}{
		{nil, []string{"other.noise", "other.nokey", "other.odd", "shop.items", "shop.orders"}},
		{[]string{"shop.*"}, []string{"shop.items", "shop.orders"}},
		{[]string{"*.no*", "shop.i*"}, []string{"other.noise", "other.nokey", "shop.items"}},
		{[]string{"mysql.db"}, []string{"mysql.db"}}, // named, a system table is listed
		{[]string{"nothing.*"}, nil},
	} {
		got, err := ListTables(conn, tc.patterns)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListTables(%q) = %q, want %q", tc.patterns, got, tc.want)
		}
	}
	if _, err := ListTables(conn, []string{"shop.["}); err == nil || !strings.Contains(err.Error(), `"shop.["`) {
		t.Errorf("bad pattern: %v", err)
	}

	ti, err := DescribeTable(conn, "shop", "items")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ti.Key, []string{"c", "a"}) {
		t.Errorf("key %v, want [c a]", ti.Key)
	}
	for _, tc := range []struct{ table, want string }{
		{"nokey", "snapshot other.nokey: the table has no primary key"},
		{"missing", "snapshot other.missing: no such table"},
	} {
		if _, err := DescribeTable(conn, "other", tc.table); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DescribeTable(other.%s): %v, want %q", tc.table, err, tc.want)
		}
	}

	odd, err := DescribeTable(conn, "other", "odd")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after Cursor
		limit int
		want  string
	}{
		{Cursor{"1", "2"}, 5, "cursor of 2 values for a key of 1 columns"},
		{Cursor{"x"}, 5, `cursor value "x" for key column id`},
		{nil, 0, "chunk limit 0"},
	} {
		if _, _, err := ReadChunk(conn, odd, tc.after, tc.limit); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadChunk(%q, %d): %v, want %q", tc.after, tc.limit, err, tc.want)
		}
	}
	if _, _, err := ReadChunk(conn, TableInfo{Schema: "other", Table: "odd", Key: []string{"id"}}, nil, 5); err == nil {
		t.Error("a table description not from DescribeTable was read")
	}

	got, err := MasterPosition(conn)
	if err != nil {
		t.Fatal(err)
	}
	if want := position(t, db); got != want {
		t.Errorf("MasterPosition = %s, want %s", got, want)
	}
	if !strings.HasPrefix(got.File, "bin.") || got.Pos < 4 {
		t.Errorf("MasterPosition = %s", got)
	}
}
