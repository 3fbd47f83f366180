package integration

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPostgresCatalog runs the daemon against a PostgreSQL catalog: it
// commits, survives a SIGKILL mid-way, resumes from the positions stored in
// the table, and the table read back through the PostgreSQL catalog holds
// every id exactly once.
func TestPostgresCatalog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server and runs the real binary")
	}
	pg := startPostgres(t)
	e := newEnv(t, 3, "events")
	cfg := e.configWith(configOpts{Interval: "300ms", CatalogURI: pg})

	const chunk = 2000
	produce(t, e.addr, e.topic, eventRange(0, chunk))
	d := e.start(cfg)
	d.waitReady() // the daemon has created the catalog tables
	waitFor(t, time.Minute, "a first commit", func() bool {
		if d.exited() {
			t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		return len(e.positionsFrom(pg, "events")) > 0
	})
	// More arrives while the daemon runs; it dies while reading it, with
	// files written that no snapshot references.
	produce(t, e.addr, e.topic, eventRange(chunk, 2*chunk))
	d.kill()
	t.Logf("killed with committed positions %v", e.positionsFrom(pg, "events"))
	produce(t, e.addr, e.topic, eventRange(2*chunk, 3*chunk))

	d = e.start(cfg)
	d.waitReady()
	waitFor(t, time.Minute, "the table to catch up", func() bool {
		if d.exited() {
			t.Fatalf("daemon exited; log:\n%s", d.logTail())
		}
		return e.caughtUpIn(pg, "events")
	})
	if code, took := d.stop(); code != 0 {
		t.Fatalf("exit code %d after %s; log:\n%s", code, took, d.logTail())
	}

	tbl, done := e.loadTableFrom(pg, "it.events")
	defer done()
	checkExactlyOnce(t, tbl, 3*chunk)

	// The pointer lives in PostgreSQL, read here without iceberg-go, and no
	// SQLite catalog appeared beside it.
	conn, err := pgx.Connect(context.Background(), pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var loc string
	err = conn.QueryRow(context.Background(),
		`SELECT metadata_location FROM iceberg_tables WHERE table_namespace = 'it' AND table_name = 'events'`).Scan(&loc)
	if err != nil {
		t.Fatal(err)
	}
	if loc != tbl.MetadataLocation() {
		t.Errorf("iceberg_tables says %s, the loaded table %s", loc, tbl.MetadataLocation())
	}
	if _, err := os.Stat(e.sqliteCatalog()); err == nil {
		t.Errorf("a SQLite catalog %s exists; the daemon should use only PostgreSQL", e.sqliteCatalog())
	}
}

// eventRange returns event(i) for i in [from, to).
func eventRange(from, to int) [][]byte {
	vals := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		vals = append(vals, event(i))
	}
	return vals
}

// startPostgres starts a private PostgreSQL server in a temporary directory
// and returns its URL; the server is stopped and its files removed at
// cleanup. It never touches a server the machine may already run.
func startPostgres(t *testing.T) string {
	t.Helper()
	bin, ok := postgresBinDir()
	if !ok {
		t.Fatal("PostgreSQL server binaries (initdb, postgres) not found via pg_config --bindir, " +
			"/usr/lib/postgresql/*/bin or PATH; `make test` installs them (scripts/install-deps.sh)")
	}
	// initdb refuses to run as root: then the server runs as the postgres OS
	// user, which the Debian package creates.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL must run as the postgres OS user: %v; `make test` installs the postgresql package, which creates it", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: its parent is private to this user, and the server's
	// user must reach the data directory.
	dir, err := os.MkdirTemp("", "sluice-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // runs after the server stopped
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if cred != nil {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "--auth=trust", "-U", "postgres",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}

	_, port, _ := net.SplitHostPort(freeAddr(t))
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", port, "-k", sock,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	t.Cleanup(func() {
		// SIGINT is PostgreSQL's fast shutdown: clients are disconnected.
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("postgres did not stop within 30s of SIGINT; killing it")
			cmd.Process.Kill()
			<-done
		}
	})

	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable", port)
	waitFor(t, 30*time.Second, "postgres to accept connections", func() bool {
		select {
		case <-done:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("postgres exited: %v; log:\n%s", cmd.ProcessState, log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return false
		}
		defer conn.Close(ctx)
		return conn.Ping(ctx) == nil
	})
	return url
}

// postgresBinDir finds the directory holding initdb and postgres.
func postgresBinDir() (string, bool) {
	var dirs []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	// Debian keeps server binaries out of PATH, one directory per major
	// version; prefer the newest.
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(p)), 64)
		return v
	}
	slices.SortFunc(versions, func(a, b string) int { return cmp.Compare(major(b), major(a)) })
	dirs = append(dirs, versions...)
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, true
		}
	}
	return "", false
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
