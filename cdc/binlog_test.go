package cdc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/cdc/mariadbtest"
)

func position(t *testing.T, db *mariadbtest.Server) Position {
	t.Helper()
	file, pos := db.Position(t)
	return Position{File: file, Pos: pos}
}

// TestReaderFollowsChanges reads inserts, updates (a primary-key change
// among them), deletes and a DDL of the followed tables, in log order,
// each with the position after its transaction; other tables are skipped.
func TestReaderFollowsChanges(t *testing.T) {
	db := mariadbtest.Start(t)
	db.Exec(t,
		"CREATE DATABASE shop", "CREATE DATABASE other",
		"CREATE TABLE shop.orders (id INT PRIMARY KEY, name VARCHAR(20), amount DECIMAL(10,2))",
		"CREATE TABLE other.noise (id INT PRIMARY KEY)")
	from := position(t, db)
	db.Exec(t,
		"BEGIN",
		"INSERT INTO shop.orders VALUES (1, 'a', 1.50), (2, 'b', 2.00)",
		"INSERT INTO other.noise VALUES (1)",
		"COMMIT",
		"UPDATE shop.orders SET name = 'bb', id = 20 WHERE id = 2",
		"DELETE FROM shop.orders WHERE id = 1",
		"ALTER TABLE shop.orders ADD COLUMN note TEXT",
		"INSERT INTO shop.orders VALUES (3, 'c', 3.25, 'hi')",
		"INSERT INTO other.noise VALUES (2)",
		"GRANT SELECT ON other.* TO 'nobody'@'%' IDENTIFIED BY 'x'")
	end := position(t, db)
	r, err := NewReader(Config{Host: db.Host, Port: db.Port, User: "root", Flavor: "mariadb", ServerID: 101, Tables: []string{"shop.*"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []Event
	err = r.Run(ctx, from, func(e Event) error {
		mu.Lock()
		defer mu.Unlock()
		if e.Op == 0 && e.Query == "" {
			// Progress alone: the log's end is reached exactly.
			if e.Next == end {
				cancel()
			}
			if e.Next.Compare(end) > 0 {
				t.Errorf("progress %s passed the end %s", e.Next, end)
			}
			return nil
		}
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range got {
		if e.Query != "" {
			lines = append(lines, "ddl "+e.Query)
			continue
		}
		lines = append(lines, fmt.Sprintf("%s %s.%s %v %v → %v", e.Op, e.Schema, e.Table, e.Columns, e.Before, e.After))
	}
	want := []string{
		"insert shop.orders [id name amount] [] → [1 a 1.50]",
		"insert shop.orders [id name amount] [] → [2 b 2.00]",
		"update shop.orders [id name amount] [2 b 2.00] → [20 bb 2.00]",
		"delete shop.orders [id name amount] [1 a 1.50] → []",
		"ddl ALTER TABLE shop.orders ADD COLUMN note TEXT",
		// TEXT and BLOB share a wire type: values come as bytes, for the
		// column mapping to type.
		"insert shop.orders [id name amount note] [] → [3 c 3.25 [104 105]]",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	// Both rows of the first transaction resume after it; positions grow.
	if len(got) == 6 {
		if got[0].Next != got[1].Next {
			t.Errorf("rows of one transaction resume at %s and %s", got[0].Next, got[1].Next)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Next.File == got[i-1].Next.File && got[i].Next.Pos < got[i-1].Next.Pos {
				t.Errorf("position went back: %s after %s", got[i].Next, got[i-1].Next)
			}
		}
	}
}

func TestNewReaderRefuses(t *testing.T) {
	_, err := NewReader(Config{Flavor: "oracle", Tables: []string{"nodot", "a.[b"}}, nil)
	for _, want := range []string{"host and port", `flavor "oracle"`, "server_id", `"nodot"`, `"a.[b"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
