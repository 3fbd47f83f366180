package cdc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/sluicehq/sluice/cdc/mariadbtest"
)

// TestColumnsMapEveryType reads a row with a column of every supported
// type from a real server's log and checks each column's type and value.
func TestColumnsMapEveryType(t *testing.T) {
	db := mariadbtest.Start(t)
	db.Exec(t, "CREATE DATABASE d", `CREATE TABLE d.t (
		id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, iu INT UNSIGNED,
		bi BIGINT, bu BIGINT UNSIGNED, de DECIMAL(12,3), fl FLOAT, do DOUBLE,
		ch CHAR(3), vc VARCHAR(10), tx TEXT, bl BLOB, bn BINARY(3), vb VARBINARY(5),
		da DATE, dt DATETIME, dt6 DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(2), yr YEAR,
		js JSON, en ENUM('x','y','z'), st SET('a','b','c'), bt BIT(10), ge GEOMETRY, nu INT)`)
	from := position(t, db)
	db.Exec(t, "SET NAMES utf8mb4", "SET time_zone = '+00:00'",
		`INSERT INTO d.t VALUES (1, -5, 250, -300, -70000, 4000000000, -9000000000, 18446744073709551615, -123.456,
		1.5, 2.25, 'ab', 'héllo', 'texté', 'blob', 'abc', 'vb', '2026-11-23', '2026-11-23 07:08:09', '2026-11-23 07:08:09.123456',
		'2026-11-23 07:08:09.123', '-12:34:56.78', 2026, '{"a": [1, 2]}', 'y', 'a,c', b'1000000001', ST_GeomFromText('POINT(1 2)'), NULL)`)
	r, err := NewReader(Config{Host: db.Host, Port: db.Port, User: "root", Flavor: "mariadb", ServerID: 9}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got Event
	if err := r.Run(ctx, from, func(e Event) error {
		if e.Op != 0 {
			got = e
			cancel()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got.Map == nil {
		t.Fatal("no row event")
	}
	cols, err := Columns(got.Map)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"id": "int32 1", "ti": "int32 -5", "tu": "int32 250", "si": "int32 -300", "mi": "int32 -70000",
		"iu": "int64 4000000000", "bi": "int64 -9000000000", "bu": "decimal(20,0) 18446744073709551615",
		"de": "decimal(12,3) -123.456", "fl": "float32 1.5", "do": "float64 2.25",
		"ch": "string ab", "vc": "string héllo", "tx": "string texté", "bl": "binary [98 108 111 98]",
		"bn": "binary [97 98 99]", "vb": "binary [118 98]", "da": "date 2026-11-23 00:00:00 +0000 UTC",
		"dt": "timestamp(us) 2026-11-23 07:08:09 +0000 UTC", "dt6": "timestamp(us) 2026-11-23 07:08:09.123456 +0000 UTC",
		"ts": "timestamptz(us) 2026-11-23 07:08:09.123 +0000 UTC", "tm": "int64 -45296780000", "yr": "int32 2026",
		"js": `string {"a": [1, 2]}`, "en": "string y", "st": "string a,c", "bt": "int64 513",
		"ge": "binary [1 1 0 0 0 0 0 0 0 0 0 240 63 0 0 0 0 0 0 0 64]", "nu": "int32 <nil>",
	}
	var problems []string
	for i, c := range cols {
		v, err := c.Value(got.After[i])
		if err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("%s %v", c.Type, v)
		if want[c.Name] != line {
			problems = append(problems, fmt.Sprintf("%s: got %q, want %q", c.Name, line, want[c.Name]))
		}
	}
	if len(problems) > 0 {
		t.Error(strings.Join(problems, "\n"))
	}
}

func TestTimeMicros(t *testing.T) {
	for in, want := range map[string]int64{
		"00:00:00": 0, "01:02:03": 3723e6, "-838:59:59": -(838*3600 + 59*60 + 59) * 1e6,
		"12:34:56.7": 45296700000, "-00:00:00.000001": -1,
	} {
		got, err := timeMicros(in)
		if err != nil || got != want {
			t.Errorf("timeMicros(%q) = %v, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []any{"1:2", "aa:bb:cc", 5} {
		if _, err := timeMicros(bad); err == nil {
			t.Errorf("timeMicros(%v) did not fail", bad)
		}
	}
}

func TestColumnsNeedFullMetadata(t *testing.T) {
	_, err := Columns(&replication.TableMapEvent{Schema: []byte("d"), Table: []byte("t"), ColumnCount: 2, ColumnType: []byte{3, 3}})
	if err == nil || !strings.Contains(err.Error(), "binlog_row_metadata=FULL") {
		t.Fatalf("error = %v", err)
	}
}
