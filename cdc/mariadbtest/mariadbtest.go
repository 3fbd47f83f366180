// Package mariadbtest runs a private MariaDB server for tests and the
// benchmark: a row-based binary log with full row metadata, in its own
// directory on a free port, as Sluice's CDC needs it. Nothing here depends
// on a server the machine may already run.
package mariadbtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// Server is a running private server. Its user is root without a password.
type Server struct {
	Host string
	Port uint16

	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	logf *os.File
}

// Start installs a fresh data directory and starts the server; it stops
// when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := Launch(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Launch installs a fresh data directory under dir and starts the server
// on a free port; Stop ends it.
func Launch(dir string) (*Server, error) {
	args := []string{"--no-defaults", "--datadir=" + filepath.Join(dir, "data"), "--auth-root-authentication-method=normal", "--skip-test-db"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	if out, err := exec.Command("mariadb-install-db", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	s := &Server{Host: "127.0.0.1", Port: port, dir: dir}
	return s, s.start()
}

// Addr is host:port.
func (s *Server) Addr() string { return fmt.Sprintf("%s:%d", s.Host, s.Port) }

func (s *Server) start() error {
	bin, err := exec.LookPath("mariadbd")
	if err != nil {
		bin = "/usr/sbin/mariadbd"
	}
	data := filepath.Join(s.dir, "data")
	srv := []string{"--no-defaults", "--datadir=" + data, fmt.Sprintf("--port=%d", s.Port), "--bind-address=127.0.0.1",
		"--socket=" + filepath.Join(s.dir, "sock"), "--pid-file=" + filepath.Join(s.dir, "pid"),
		"--log-bin=" + filepath.Join(data, "bin"), "--binlog-format=ROW", "--binlog-row-metadata=FULL",
		"--server-id=1", "--skip-name-resolve", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci", "--innodb-buffer-pool-size=128M", "--max-connections=200"}
	if os.Geteuid() == 0 {
		srv = append(srv, "--user=root")
	}
	s.cmd = exec.Command(bin, srv...)
	s.logf, err = os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	s.cmd.Stdout, s.cmd.Stderr = s.logf, s.logf
	if err := s.cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	s.done = done
	go func() { s.cmd.Wait(); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := s.Connect()
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			return fmt.Errorf("mariadbd exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("mariadbd not ready after 60s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the server (as a crash would) and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.logf.Close()
	s.cmd = nil
}

// Restart stops the server and starts it again on the same data and port.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
}

// Connect opens a client connection as root.
func (s *Server) Connect() (*client.Conn, error) {
	return client.Connect(s.Addr(), "root", "", "")
}

// Exec runs statements on one connection, failing the test on an error.
func (s *Server) Exec(tb testing.TB, stmts ...string) {
	tb.Helper()
	c, err := s.Connect()
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	for _, q := range stmts {
		if _, err := c.Execute(q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
}

// Position is the end of the binary log: its file and offset.
func (s *Server) Position(tb testing.TB) (file string, pos uint32) {
	tb.Helper()
	c, err := s.Connect()
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	res, err := c.Execute("SHOW MASTER STATUS")
	if err != nil {
		tb.Fatal(err)
	}
	file, _ = res.GetString(0, 0)
	p, _ := res.GetUint(0, 1)
	// The client's text aliases a pooled buffer: copy it out.
	return strings.Clone(file), uint32(p)
}
