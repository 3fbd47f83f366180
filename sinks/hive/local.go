package hive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/partition"
)

// LocalFS is the local file system, for directory tables at file://
// locations. Renames and writes are synced, as the commit protocol needs
// them durable in order; WriteFile and Stat are the notice markers'.
type LocalFS struct{ partition.LocalStore }

func (LocalFS) ReadFile(path string) ([]byte, error) { return os.ReadFile(filepath.FromSlash(path)) }

func (LocalFS) Rename(from, to string) error {
	to = filepath.FromSlash(to)
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	if err := os.Rename(filepath.FromSlash(from), to); err != nil {
		return err
	}
	return syncDir(filepath.Dir(to))
}

func (LocalFS) Remove(path string) error {
	err := os.Remove(filepath.FromSlash(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (LocalFS) ReadDir(dir string) ([]fs.FileInfo, error) {
	entries, err := os.ReadDir(filepath.FromSlash(dir))
	if err != nil {
		return nil, err
	}
	out := make([]fs.FileInfo, 0, len(entries))
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		out = append(out, fi)
	}
	return out, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
