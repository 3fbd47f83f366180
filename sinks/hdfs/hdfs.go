// Package hdfs connects Sluice to HDFS through github.com/colinmarc/hdfs/v2:
// a small pool of NameNode connections per cluster, file creation and
// closing as large deployments need them (closes retried while replicas
// are reported, directories created once, calls counted), the iceberg-go
// file IO behind hdfs:// warehouses, and the file system the directory
// tables (sinks/hive) write through.
package hdfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/colinmarc/hdfs/v2"
	"github.com/colinmarc/hdfs/v2/hadoopconf"
	krb "github.com/jcmturner/gokrb5/v8/client"
	krbconfig "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/keytab"
)

// Options configure the connection to a cluster.
type Options struct {
	// NameNodes are host:port of the NameNodes; with HA, all of them (the
	// client fails over to the next on a standby answer or a lost
	// connection). Empty: the authority of the hdfs:// URL, or the
	// Hadoop configuration's.
	NameNodes []string
	// HadoopConfDir is a directory with core-site.xml and hdfs-site.xml
	// (NameNodes, HA, Kerberos and data-transfer protection are read from
	// it); explicit options win.
	HadoopConfDir string
	// User is the HDFS user without Kerberos (default: the OS user).
	User string
	// Kerberos authenticates when set.
	Kerberos *Kerberos
	// DataTransferProtection is "", "authentication", "integrity" or
	// "privacy" (the cluster's dfs.data.transfer.protection).
	DataTransferProtection string
	// UseDatanodeHostname dials DataNodes by host name instead of IP.
	UseDatanodeHostname bool
	// Connections is how many NameNode connections to open per cluster
	// (default 4). The client sends one call at a time per connection; a
	// slow call (a loaded NameNode's complete) holds up only the files on
	// its connection.
	Connections int
	// Replication and BlockSize of new files (default: the cluster's).
	Replication int
	BlockSize   int64
	// CloseTimeout bounds how long a close waits for the NameNode to
	// report the last block replicated (default 2m).
	CloseTimeout time.Duration
	Logger       *slog.Logger
	Metrics      *Metrics
}

// Kerberos is the daemon's Kerberos identity.
type Kerberos struct {
	// Principal is user[/host]@REALM. Required.
	Principal string
	// Keytab authenticates the principal; empty: the credential cache.
	Keytab string
	// CCache is the credential cache (default $KRB5CCNAME or
	// /tmp/krb5cc_<uid>), used without a keytab.
	CCache string
	// Krb5Conf is the Kerberos configuration (default /etc/krb5.conf).
	Krb5Conf string
	// ServicePrincipal is the NameNodes' principal without realm (default
	// nn/_HOST; _HOST is replaced by each NameNode's host name).
	ServicePrincipal string
}

// FS is one HDFS cluster. It is safe for concurrent use.
type FS struct {
	opts    Options
	clients []*hdfs.Client
	next    atomic.Uint32
	log     *slog.Logger
	metrics *Metrics

	defaultsOnce sync.Once
	replication  int
	blockSize    int64
	defaultsErr  error

	dirs sync.Map // directories known to exist
}

// Open connects to a cluster. authority is the host:port of an hdfs://
// URL, used when no NameNodes are configured.
func Open(opts Options, authority string) (*FS, error) {
	copts, err := clientOptions(opts, authority)
	if err != nil {
		return nil, err
	}
	if opts.Connections <= 0 {
		opts.Connections = 4
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 2 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &FS{opts: opts, log: opts.Logger, metrics: opts.Metrics}
	copts.NamenodeDialFunc = f.metrics.dial(copts.NamenodeDialFunc)
	for range opts.Connections {
		c, err := hdfs.NewClient(copts)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("hdfs %s: %w", strings.Join(copts.Addresses, ","), err)
		}
		f.clients = append(f.clients, c)
	}
	return f, nil
}

// clientOptions merges the Hadoop configuration, the options and the URL's
// authority into the client's options.
func clientOptions(opts Options, authority string) (hdfs.ClientOptions, error) {
	var copts hdfs.ClientOptions
	if opts.HadoopConfDir != "" {
		conf, err := hadoopconf.Load(opts.HadoopConfDir)
		if err != nil {
			return copts, fmt.Errorf("hadoop_conf_dir: %w", err)
		}
		copts = hdfs.ClientOptionsFromConf(conf)
		copts.KerberosClient = nil // set below from the kerberos options
	}
	switch {
	case len(opts.NameNodes) > 0:
		copts.Addresses = opts.NameNodes
	case len(copts.Addresses) > 0:
	case authority != "":
		if !strings.Contains(authority, ":") {
			authority += ":8020"
		}
		copts.Addresses = []string{authority}
	default:
		return copts, errors.New("no NameNode: set hdfs.namenodes or put host:port in the hdfs:// URL")
	}
	copts.User = opts.User
	if copts.User == "" {
		copts.User = os.Getenv("HADOOP_USER_NAME")
	}
	if copts.User == "" {
		if u := os.Getenv("USER"); u != "" {
			copts.User = u
		} else {
			copts.User = "sluice"
		}
	}
	if opts.DataTransferProtection != "" {
		copts.DataTransferProtection = opts.DataTransferProtection
	}
	copts.UseDatanodeHostname = copts.UseDatanodeHostname || opts.UseDatanodeHostname
	if k := opts.Kerberos; k != nil {
		kc, err := kerberosClient(k)
		if err != nil {
			return copts, err
		}
		copts.KerberosClient = kc
		copts.User = kc.Credentials.UserName()
		copts.KerberosServicePrincipleName = k.ServicePrincipal
		if copts.KerberosServicePrincipleName == "" {
			copts.KerberosServicePrincipleName = "nn/_HOST"
		}
	}
	return copts, nil
}

// kerberosClient logs the principal in, from its keytab or its credential
// cache.
func kerberosClient(k *Kerberos) (*krb.Client, error) {
	conf := k.Krb5Conf
	if conf == "" {
		conf = "/etc/krb5.conf"
	}
	cfg, err := krbconfig.Load(conf)
	if err != nil {
		return nil, fmt.Errorf("kerberos.krb5_conf %s: %w", conf, err)
	}
	user, realm, ok := strings.Cut(k.Principal, "@")
	if !ok || user == "" || realm == "" {
		return nil, fmt.Errorf("kerberos.principal %q is not user[/host]@REALM", k.Principal)
	}
	var c *krb.Client
	if k.Keytab != "" {
		kt, err := keytab.Load(k.Keytab)
		if err != nil {
			return nil, fmt.Errorf("kerberos.keytab %s: %w", k.Keytab, err)
		}
		c = krb.NewWithKeytab(user, realm, kt, cfg, krb.DisablePAFXFAST(true))
	} else {
		path := k.CCache
		if path == "" {
			path = strings.TrimPrefix(os.Getenv("KRB5CCNAME"), "FILE:")
		}
		if path == "" {
			path = fmt.Sprintf("/tmp/krb5cc_%d", os.Getuid())
		}
		cc, err := credentials.LoadCCache(path)
		if err != nil {
			return nil, fmt.Errorf("kerberos.ccache %s: %w", path, err)
		}
		if c, err = krb.NewFromCCache(cc, cfg, krb.DisablePAFXFAST(true)); err != nil {
			return nil, fmt.Errorf("kerberos.ccache %s: %w", path, err)
		}
	}
	if err := c.Login(); err != nil {
		return nil, fmt.Errorf("kerberos login as %s: %w", k.Principal, err)
	}
	return c, nil
}

// Close closes every NameNode connection.
func (f *FS) Close() error {
	var errs []error
	for _, c := range f.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// client picks a connection, round robin.
func (f *FS) client() *hdfs.Client {
	return f.clients[int(f.next.Add(1))%len(f.clients)]
}

func (f *FS) defaults() (int, int64, error) {
	f.defaultsOnce.Do(func() {
		f.replication, f.blockSize = f.opts.Replication, f.opts.BlockSize
		if f.replication > 0 && f.blockSize > 0 {
			return
		}
		d, err := f.clients[0].ServerDefaults()
		if err != nil {
			f.defaultsErr = fmt.Errorf("hdfs server defaults: %w", err)
			return
		}
		if f.replication <= 0 {
			f.replication = d.Replication
		}
		if f.blockSize <= 0 {
			f.blockSize = d.BlockSize
		}
	})
	return f.replication, f.blockSize, f.defaultsErr
}

// Create creates a file for writing, replacing nothing: it fails if name
// exists. Its directory is created first if this FS has not seen it.
func (f *FS) Create(name string) (*Writer, error) {
	repl, bs, err := f.defaults()
	if err != nil {
		return nil, err
	}
	dir := path.Dir(name)
	if err := f.MkdirAll(dir); err != nil {
		return nil, err
	}
	var w *hdfs.FileWriter
	err = f.retry(func(c *hdfs.Client, again bool) error {
		w, err = c.CreateFile(name, repl, bs, 0o644)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// The directory was removed behind our back: make it again.
			f.dirs.Delete(dir)
			if err = f.MkdirAll(dir); err == nil {
				w, err = c.CreateFile(name, repl, bs, 0o644)
			}
		case again && errors.Is(err, fs.ErrExist):
			// An earlier attempt created it before its answer was lost;
			// the name is this writer's alone.
			if err = c.Remove(name); err == nil {
				w, err = c.CreateFile(name, repl, bs, 0o644)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("hdfs create %s: %w", name, err)
	}
	return &Writer{fs: f, w: w, name: name}, nil
}

// MkdirAll creates dir and its parents, once per directory and FS.
func (f *FS) MkdirAll(dir string) error {
	if _, ok := f.dirs.Load(dir); ok {
		return nil
	}
	err := f.retry(func(c *hdfs.Client, _ bool) error { return c.MkdirAll(dir, 0o755) })
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("hdfs mkdirs %s: %w", dir, err)
	}
	for d := dir; d != "/" && d != "."; d = path.Dir(d) {
		f.dirs.Store(d, true)
	}
	return nil
}

// Rename moves from to to, replacing a file at to. Its directory is
// created first if this FS has not seen it.
func (f *FS) Rename(from, to string) error {
	if err := f.MkdirAll(path.Dir(to)); err != nil {
		return err
	}
	if err := f.retry(func(c *hdfs.Client, _ bool) error { return c.Rename(from, to) }); err != nil {
		return fmt.Errorf("hdfs rename %s to %s: %w", from, to, err)
	}
	return nil
}

// Remove removes a file or an empty directory; a missing one is not an
// error.
func (f *FS) Remove(name string) error {
	err := f.retry(func(c *hdfs.Client, _ bool) error { return c.Remove(name) })
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("hdfs remove %s: %w", name, err)
	}
	f.dirs.Delete(name)
	return nil
}

// Stat describes a file.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	var fi fs.FileInfo
	err := f.retry(func(c *hdfs.Client, _ bool) (err error) { fi, err = c.Stat(name); return err })
	return fi, err
}

// ReadDir lists a directory.
func (f *FS) ReadDir(dir string) ([]fs.FileInfo, error) {
	var out []fs.FileInfo
	err := f.retry(func(c *hdfs.Client, _ bool) (err error) { out, err = c.ReadDir(dir); return err })
	return out, err
}

// Open opens a file for reading.
func (f *FS) Open(name string) (*hdfs.FileReader, error) {
	var r *hdfs.FileReader
	err := f.retry(func(c *hdfs.Client, _ bool) (err error) { r, err = c.Open(name); return err })
	return r, err
}

// ReadFile reads a whole file.
func (f *FS) ReadFile(name string) ([]byte, error) {
	var out []byte
	err := f.retry(func(c *hdfs.Client, _ bool) (err error) { out, err = c.ReadFile(name); return err })
	return out, err
}

// WriteFile writes a whole file, replacing one that exists: written under
// a temporary name and renamed, so readers see the old file or the new.
func (f *FS) WriteFile(name string, data []byte) error {
	tmp := path.Join(path.Dir(name), fmt.Sprintf(".%s.%d.tmp", path.Base(name), time.Now().UnixNano()))
	w, err := f.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return fmt.Errorf("hdfs write %s: %w", tmp, err)
	}
	if err := w.Close(); err != nil {
		f.Remove(tmp)
		return err
	}
	return f.Rename(tmp, name)
}

// retryFor bounds the retries of one call whose connection failed.
const retryFor = 30 * time.Second

// retry runs call, again on another connection while it fails for a
// reason a retry can cure: a lost connection (a NameNode restarting or
// failing over) or a NameNode asking for one (safe mode, RetriableException).
// The client retries standby answers itself, but after a lost connection
// it refuses that NameNode for a few seconds. again is true on retries.
func (f *FS) retry(call func(c *hdfs.Client, again bool) error) error {
	start := time.Now()
	backoff := 100 * time.Millisecond
	for again := false; ; again = true {
		err := call(f.client(), again)
		if err == nil || !retryable(err) || time.Since(start) > retryFor {
			return err
		}
		f.log.Warn("hdfs call failed, retrying", "err", err)
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

// retryable tells failures of the connection or of a NameNode that is
// busy from answers about the namespace (no such file, permission, ...).
func retryable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"no available namenodes", "RetriableException", "SafeModeException", "StandbyException", "use of closed network connection"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// Writer is a file being written.
type Writer struct {
	fs     *FS
	w      *hdfs.FileWriter
	name   string
	closed bool
}

func (w *Writer) Write(p []byte) (int, error) { return w.w.Write(p) }

// Close flushes the last packets, waits for the DataNodes' acknowledgements
// and completes the file on the NameNode. A NameNode answers "not yet"
// until enough replicas of the last block were reported; the close is
// retried, backing off, up to the close timeout — as Hadoop's own client
// does — so a caller closes many files in parallel to wait about once.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	start := time.Now()
	backoff := 20 * time.Millisecond
	for {
		err := w.w.Close()
		if err == nil {
			w.closed = true
			w.fs.metrics.observeClose(time.Since(start))
			return nil
		}
		switch {
		case hdfs.IsErrReplicating(err):
			if time.Since(start) > w.fs.opts.CloseTimeout {
				return fmt.Errorf("hdfs close %s: last block not replicated after %s: %w",
					w.name, w.fs.opts.CloseTimeout, err)
			}
		case retryable(err) && time.Since(start) < retryFor:
			// The complete's connection was lost: complete again.
		default:
			return fmt.Errorf("hdfs close %s: %w", w.name, err)
		}
		w.fs.metrics.retriedClose()
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
}

// Abort gives the file up unfinished; it stays under construction until
// its lease expires or it is removed (a recovery removes it).
func (w *Writer) Abort() {
	w.closed = true
}

// ReadFrom copies r into the file.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{w}, r) // the struct hides ReadFrom from io.Copy
}

// SplitURL splits an hdfs:// URL into its authority and path.
func SplitURL(raw string) (authority, p string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", err
	}
	if u.Scheme != "hdfs" {
		return "", "", fmt.Errorf("%q is not an hdfs:// URL", raw)
	}
	p = u.Path
	if p == "" {
		p = "/"
	}
	return u.Host, path.Clean(p), nil
}
