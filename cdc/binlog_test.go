package cdc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// mariaDB is a private MariaDB server with a row-based binary log, in a
// temporary directory on a free port.
type mariaDB struct {
	host string
	port uint16
}

func startMariaDB(t *testing.T) *mariaDB {
	t.Helper()
	bin, err := exec.LookPath("mariadbd")
	if err != nil {
		bin = "/usr/sbin/mariadbd"
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	args := []string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db"}
	root := os.Geteuid() == 0
	if root {
		args = append(args, "--user=root")
	}
	if out, err := exec.Command("mariadb-install-db", args...).CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	srv := []string{"--no-defaults", "--datadir=" + data, fmt.Sprintf("--port=%d", port), "--bind-address=127.0.0.1",
		"--socket=" + filepath.Join(dir, "sock"), "--pid-file=" + filepath.Join(dir, "pid"),
		"--log-bin=" + filepath.Join(data, "bin"), "--binlog-format=ROW", "--binlog-row-metadata=FULL",
		"--server-id=1", "--skip-name-resolve", "--innodb-buffer-pool-size=32M"}
	if root {
		srv = append(srv, "--user=root")
	}
	cmd := exec.Command(bin, srv...)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		logf.Close()
	})
	m := &mariaDB{host: "127.0.0.1", port: port}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := m.connect()
		if err == nil {
			c.Close()
			return m
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Fatalf("mariadbd exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mariadbd not ready after 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *mariaDB) connect() (*client.Conn, error) {
	return client.Connect(fmt.Sprintf("%s:%d", m.host, m.port), "root", "", "")
}

func (m *mariaDB) exec(t *testing.T, stmts ...string) {
	t.Helper()
	c, err := m.connect()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, s := range stmts {
		if _, err := c.Execute(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func (m *mariaDB) position(t *testing.T) Position {
	t.Helper()
	c, err := m.connect()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Execute("SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	file, _ := res.GetString(0, 0)
	pos, _ := res.GetUint(0, 1)
	return Position{File: file, Pos: uint32(pos)}
}

// TestReaderFollowsChanges reads inserts, updates (a primary-key change
// among them), deletes and a DDL of the followed tables, in log order,
// each with the position after its transaction; other tables are skipped.
func TestReaderFollowsChanges(t *testing.T) {
	db := startMariaDB(t)
	db.exec(t,
		"CREATE DATABASE shop", "CREATE DATABASE other",
		"CREATE TABLE shop.orders (id INT PRIMARY KEY, name VARCHAR(20), amount DECIMAL(10,2))",
		"CREATE TABLE other.noise (id INT PRIMARY KEY)")
	from := db.position(t)
	db.exec(t,
		"BEGIN",
		"INSERT INTO shop.orders VALUES (1, 'a', 1.50), (2, 'b', 2.00)",
		"INSERT INTO other.noise VALUES (1)",
		"COMMIT",
		"UPDATE shop.orders SET name = 'bb', id = 20 WHERE id = 2",
		"DELETE FROM shop.orders WHERE id = 1",
		"ALTER TABLE shop.orders ADD COLUMN note TEXT",
		"INSERT INTO shop.orders VALUES (3, 'c', 3.25, 'hi')")
	r, err := NewReader(Config{Host: db.host, Port: db.port, User: "root", Flavor: "mariadb", ServerID: 101, Tables: []string{"shop.*"}}, nil)
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
		got = append(got, e)
		if len(got) == 6 {
			cancel()
		}
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
