package hdfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	icebergio "github.com/apache/iceberg-go/io"
	"github.com/colinmarc/hdfs/v2"
)

// Clients are the connections of a daemon to its HDFS clusters, one FS per
// URL authority (or one for all, when NameNodes are configured: the
// authority is then a logical nameservice name).
type Clients struct {
	opts Options
	mu   sync.Mutex
	fss  map[string]*FS
}

// NewClients makes the connection set; clusters are connected on first use.
func NewClients(opts Options) *Clients {
	return &Clients{opts: opts, fss: map[string]*FS{}}
}

// FS is the cluster of an hdfs:// URL's authority.
func (c *Clients) FS(authority string) (*FS, error) {
	key := authority
	if len(c.opts.NameNodes) > 0 || c.opts.HadoopConfDir != "" {
		key = ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.fss[key]; f != nil {
		return f, nil
	}
	f, err := Open(c.opts, authority)
	if err != nil {
		return nil, err
	}
	c.fss[key] = f
	return f, nil
}

// Close closes every cluster's connections.
func (c *Clients) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for k, f := range c.fss {
		errs = append(errs, f.Close())
		delete(c.fss, k)
	}
	return errors.Join(errs...)
}

// installed are the clients behind iceberg-go's hdfs scheme. iceberg-go
// finds file IOs in a process-wide registry by URL scheme, so the daemon's
// HDFS options reach it through this one process-wide value.
var installed atomic.Pointer[Clients]

// Install makes c serve hdfs:// table locations from now on.
func Install(c *Clients) { installed.Store(c) }

func init() {
	icebergio.Register("hdfs", func(_ context.Context, u *url.URL, _ map[string]string) (icebergio.IO, error) {
		c := installed.Load()
		if c == nil {
			c = NewClients(Options{})
			if !installed.CompareAndSwap(nil, c) {
				c = installed.Load()
			}
		}
		f, err := c.FS(u.Host)
		if err != nil {
			return nil, err
		}
		return &IO{fs: f, authority: u.Host}, nil
	})
}

// IO is iceberg-go's file IO over one cluster. Names are full hdfs://
// URLs, as iceberg-go passes them.
type IO struct {
	fs        *FS
	authority string
}

// NewIO is the file IO of a cluster, for URLs with this authority.
func NewIO(f *FS, authority string) *IO { return &IO{fs: f, authority: authority} }

func (i *IO) path(op, name string) (string, error) {
	if !strings.Contains(name, "://") {
		return path.Clean("/" + name), nil
	}
	_, p, err := SplitURL(name)
	if err != nil {
		return "", &fs.PathError{Op: op, Path: name, Err: err}
	}
	return p, nil
}

// Open opens a file for reading.
func (i *IO) Open(name string) (icebergio.File, error) {
	p, err := i.path("open", name)
	if err != nil {
		return nil, err
	}
	r, err := i.fs.Open(p)
	if err != nil {
		return nil, err
	}
	return reader{r}, nil
}

// reader adapts the client's reader to fs.File's Stat.
type reader struct{ *hdfs.FileReader }

func (r reader) Stat() (fs.FileInfo, error) { return r.FileReader.Stat(), nil }

// ReadFile reads a whole file.
func (i *IO) ReadFile(name string) ([]byte, error) {
	p, err := i.path("read", name)
	if err != nil {
		return nil, err
	}
	return i.fs.ReadFile(p)
}

// Remove removes a file.
func (i *IO) Remove(name string) error {
	p, err := i.path("remove", name)
	if err != nil {
		return err
	}
	return i.fs.Remove(p)
}

// Create creates a new file; iceberg-go names every file it writes
// uniquely, so an existing one is an error.
func (i *IO) Create(name string) (icebergio.FileWriter, error) {
	p, err := i.path("create", name)
	if err != nil {
		return nil, err
	}
	return i.fs.Create(p)
}

// WriteFile writes a whole file, replacing one that exists.
func (i *IO) WriteFile(name string, data []byte) error {
	p, err := i.path("write", name)
	if err != nil {
		return err
	}
	return i.fs.WriteFile(p, data)
}

// WalkDir walks the tree at root in lexical order, with full URLs.
func (i *IO) WalkDir(root string, fn fs.WalkDirFunc) error {
	p, err := i.path("walk", root)
	if err != nil {
		return err
	}
	fi, err := i.fs.Stat(p)
	if err != nil {
		return fn(root, nil, err)
	}
	err = i.walk(p, fs.FileInfoToDirEntry(fi), fn)
	if errors.Is(err, fs.SkipDir) || errors.Is(err, fs.SkipAll) {
		return nil
	}
	return err
}

func (i *IO) walk(p string, d fs.DirEntry, fn fs.WalkDirFunc) error {
	full := i.url(p)
	if err := fn(full, d, nil); err != nil || !d.IsDir() {
		if errors.Is(err, fs.SkipDir) && d.IsDir() {
			return nil
		}
		return err
	}
	entries, err := i.fs.ReadDir(p)
	if err != nil {
		if err := fn(full, d, err); err != nil && !errors.Is(err, fs.SkipDir) {
			return err
		}
		return nil
	}
	for _, e := range entries {
		if err := i.walk(path.Join(p, e.Name()), fs.FileInfoToDirEntry(e), fn); err != nil {
			if errors.Is(err, fs.SkipDir) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (i *IO) url(p string) string {
	return (&url.URL{Scheme: "hdfs", Host: i.authority, Path: p}).String()
}

var (
	_ icebergio.ReadFileIO  = (*IO)(nil)
	_ icebergio.WriteFileIO = (*IO)(nil)
	_ icebergio.ListableIO  = (*IO)(nil)
)

// String names the IO in errors.
func (i *IO) String() string { return fmt.Sprintf("hdfs://%s", i.authority) }
