// Package hdfstest is an HDFS test double: a NameNode and DataNodes in
// this process that speak HDFS's real wire protocols — Hadoop IPC with the
// ClientNamenodeProtocol calls, and the DataNode data-transfer protocol
// with its packets and checksums — to a real client, so tests of code that
// writes to HDFS need no Hadoop cluster. It implements the subset that
// github.com/colinmarc/hdfs/v2 uses to create, write, append, read, list,
// rename and delete files, and it is strict: anything it does not expect
// (an unknown call or protocol, a bad checksum, an out-of-order packet) is
// refused and logged, so a protocol mistake fails a test rather than
// passing silently. It injects faults: slow or failing calls, a complete
// that answers "not yet replicated", a DataNode dropping a write mid-block,
// a NameNode restart, and a standby NameNode for HA.
package hdfstest

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a Cluster.
type Options struct {
	// DataNodes is how many DataNodes run (default 3); each block is
	// placed on all of them, up to the replication a file asked for.
	DataNodes int
	// BlockSize is the default block size getServerDefaults reports
	// (default 1 MiB, so tests cross blocks); a create may ask for another.
	BlockSize int64
	// Logf receives what the double refuses and why (default: nothing).
	Logf func(format string, args ...any)
}

// FileInfo describes a path of the namespace, for tests to inspect.
type FileInfo struct {
	Size              int64
	Dir               bool
	UnderConstruction bool
}

// Cluster is a running NameNode, standby NameNode and DataNodes.
type Cluster struct {
	opts Options
	ns   *namespace

	nn      *server // the active NameNode
	nnAddr  string
	standby *server // answers every call with StandbyException
	dns     []*dataNode

	mu         sync.Mutex
	calls      map[string]int64
	pathCalls  map[callKey]int64
	userCalls  map[string]map[string]int64
	delays     map[string]time.Duration
	pathDelays map[string]pathDelay
	failNext   map[string]int
	replDelay  time.Duration
	dropAfter  int64 // next write pipeline drops after this many bytes; -1: none
	closedOnce sync.Once
}

// New starts a cluster on free ports of 127.0.0.1.
func New(opts Options) (*Cluster, error) {
	if opts.DataNodes <= 0 {
		opts.DataNodes = 3
	}
	if opts.BlockSize <= 0 {
		opts.BlockSize = 1 << 20
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	c := &Cluster{opts: opts, calls: map[string]int64{}, delays: map[string]time.Duration{}, pathDelays: map[string]pathDelay{}, userCalls: map[string]map[string]int64{},
		failNext: map[string]int{}, dropAfter: -1}
	c.ns = newNamespace(c)
	var err error
	if c.nn, err = listen("127.0.0.1:0", c.serveNameNode); err != nil {
		return nil, err
	}
	c.nnAddr = c.nn.addr
	if c.standby, err = listen("127.0.0.1:0", c.serveStandby); err != nil {
		c.Close()
		return nil, err
	}
	for i := range opts.DataNodes {
		dn := &dataNode{c: c, uuid: fmt.Sprintf("dn-%d", i)}
		if dn.srv, err = listen("127.0.0.1:0", dn.serve); err != nil {
			c.Close()
			return nil, err
		}
		c.dns = append(c.dns, dn)
	}
	return c, nil
}

// Start is New for a test: the cluster stops when the test ends, and its
// refusals go to the test log.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	if opts.Logf == nil {
		var mu sync.Mutex
		done := false
		tb.Cleanup(func() { mu.Lock(); done = true; mu.Unlock() })
		opts.Logf = func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			if !done {
				tb.Logf("hdfstest: "+format, args...)
			}
		}
	}
	c, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Addr is the NameNode's host:port.
func (c *Cluster) Addr() string { return c.nnAddr }

// StandbyAddr is a NameNode in standby: it answers every call with
// org.apache.hadoop.ipc.StandbyException, as the standby of an HA pair
// does, so a client given it first must fail over to Addr.
func (c *Cluster) StandbyAddr() string { return c.standby.addr }

// Close stops every server and closes every connection.
func (c *Cluster) Close() error {
	c.closedOnce.Do(func() {
		c.mu.Lock()
		nn := c.nn
		c.mu.Unlock()
		for _, s := range []*server{nn, c.standby} {
			if s != nil {
				s.close()
			}
		}
		for _, dn := range c.dns {
			dn.srv.close()
		}
	})
	return nil
}

// SetCallDelay holds every call of an RPC method for d before serving it
// (0: no delay), like a loaded NameNode. The call is counted when it
// arrives, so a test sees it in Calls while it is held.
func (c *Cluster) SetCallDelay(method string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delays[method] = d
}

// SetPathDelay holds the calls of method whose path (their src) contains
// substr for d (0: no delay), so a test can stop a client inside one
// chosen step, such as the rename of one file.
func (c *Cluster) SetPathDelay(method, substr string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d == 0 {
		delete(c.pathDelays, method)
		return
	}
	c.pathDelays[method] = pathDelay{substr, d}
}

type pathDelay struct {
	substr string
	d      time.Duration
}

// PathCalls counts the calls of method whose path contains substr.
func (c *Cluster) PathCalls(method, substr string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for k, v := range c.pathCalls {
		if k.method == method && strings.Contains(k.path, substr) {
			n += v
		}
	}
	return n
}

// SetCompleteDelay holds every complete for d.
func (c *Cluster) SetCompleteDelay(d time.Duration) { c.SetCallDelay("complete", d) }

// SetReplicationDelay makes complete answer false ("not yet replicated")
// until d has passed since the file's last block was finalized by its
// DataNodes, as a NameNode does until DataNodes report the block.
func (c *Cluster) SetReplicationDelay(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replDelay = d
}

// FailNext makes the next n calls of method fail with an IOException,
// before they change anything.
func (c *Cluster) FailNext(method string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failNext[method] += n
}

// DropWriteAfter makes the next block write, on any DataNode, drop its
// connection once it received that many bytes of data (a DataNode dying
// mid-block). One write only.
func (c *Cluster) DropWriteAfter(bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropAfter = bytes
}

// RestartNameNode closes the NameNode's listener and every connection to
// it, then listens again on the same address. The namespace and the
// blocks survive, as they would from the NameNode's edit log, and so do
// leases: clients must reconnect and carry on.
func (c *Cluster) RestartNameNode() {
	c.mu.Lock()
	old := c.nn
	c.mu.Unlock()
	old.close()
	s, err := listenRetry(c.nnAddr, c.serveNameNode)
	if err != nil {
		c.opts.Logf("namenode restart: %v", err)
		return
	}
	c.mu.Lock()
	c.nn = s
	c.mu.Unlock()
}

// Calls is how many calls of each RPC method the active NameNode received
// since the start or the last ResetCalls.
func (c *Cluster) Calls() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.calls))
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

// ResetCalls zeroes the call counts.
func (c *Cluster) ResetCalls() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = map[string]int64{}
	c.pathCalls = map[callKey]int64{}
	c.userCalls = map[string]map[string]int64{}
}

// UserCalls is Calls of the connections of one user (the user a client
// names in its connection context).
func (c *Cluster) UserCalls(user string) map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int64{}
	for k, v := range c.userCalls[user] {
		out[k] = v
	}
	return out
}

// Files lists every path of the namespace but the root.
func (c *Cluster) Files() map[string]FileInfo { return c.ns.files() }

// Paths lists Files' paths in order, for messages.
func (c *Cluster) Paths() []string {
	var out []string
	for p := range c.Files() {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// arrive counts a call and applies its injected delay and failure.
type callKey struct{ method, path string }

func (c *Cluster) arrive(method, path, user string) (fail bool) {
	c.mu.Lock()
	c.calls[method]++
	if c.userCalls[user] == nil {
		c.userCalls[user] = map[string]int64{}
	}
	c.userCalls[user][method]++
	if c.pathCalls == nil {
		c.pathCalls = map[callKey]int64{}
	}
	c.pathCalls[callKey{method, path}]++
	d := c.delays[method]
	if pd, ok := c.pathDelays[method]; ok && strings.Contains(path, pd.substr) {
		d = max(d, pd.d)
	}
	if c.failNext[method] > 0 {
		c.failNext[method]--
		fail = true
	}
	c.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
	return fail
}

func (c *Cluster) replicationDelay() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replDelay
}

// takeDrop returns the byte count after which this write drops, or -1.
func (c *Cluster) takeDrop() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.dropAfter
	c.dropAfter = -1
	return d
}

// server is one TCP listener and the connections it accepted.
type server struct {
	addr  string
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func listen(addr string, serve func(net.Conn)) (*server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &server{addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.conns == nil {
				s.mu.Unlock()
				conn.Close()
				return
			}
			s.conns[conn] = true
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				defer func() {
					conn.Close()
					s.mu.Lock()
					delete(s.conns, conn)
					s.mu.Unlock()
				}()
				serve(conn)
			}()
		}
	}()
	return s, nil
}

// listenRetry listens on an address just closed; the port may take a
// moment to be free again.
func listenRetry(addr string, serve func(net.Conn)) (*server, error) {
	var err error
	for range 100 {
		var s *server
		if s, err = listen(addr, serve); err == nil {
			return s, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, err
}

// close stops accepting, closes every connection and waits for their
// goroutines.
func (s *server) close() {
	s.ln.Close()
	s.mu.Lock()
	for conn := range s.conns {
		conn.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}

// errProtocol marks a refusal: the peer broke the protocol.
var errProtocol = errors.New("protocol violation")

func protocolErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errProtocol, fmt.Sprintf(format, args...))
}

func isClosed(err error) bool {
	return err != nil && (errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection reset") ||
		strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "broken pipe"))
}
