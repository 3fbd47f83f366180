// Package hive keeps tables as Hive-style directories of Parquet files
// (dt=2026-11-23/hour=07/…), for readers that find data by listing
// directories, through a metastore, rather than through Iceberg metadata.
//
// Readers must never see a file half written, nor the files of a
// checkpoint that did not commit. So files are written under a staging
// directory (_sluice/inprogress, hidden from Hive-family readers by its
// leading underscore) and a checkpoint commits in two steps: a checkpoint
// record naming every file and the stream's positions is written under a
// temporary name and renamed over the previous one — the commit point —
// and then each file is renamed into its partition directory. A restart
// redoes the renames of the recorded checkpoint (renaming is idempotent
// here: a file already in place is left alone) and removes every staged
// file no record names: the files of the checkpoint a crash interrupted,
// whose records are read again from the recorded positions. Parquet
// cannot be continued after a crash, so those files are removed rather
// than truncated.
package hive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"golang.org/x/sync/errgroup"
)

// FS is what a directory table needs of its file system (HDFS, or the
// local one). Paths are plain absolute paths, not URLs.
type FS interface {
	// WriteFile replaces path with data atomically: readers see the old
	// file or the new one, and the new one is durable once it returns.
	WriteFile(path string, data []byte) error
	ReadFile(path string) ([]byte, error)
	// Rename moves a file, replacing one at to, creating to's directory.
	Rename(from, to string) error
	// Remove removes a file or an empty directory; a missing one is fine.
	Remove(path string) error
	ReadDir(dir string) ([]fs.FileInfo, error)
	Stat(path string) (fs.FileInfo, error)
}

// Staging is the directory, under a table's root, of files not committed
// yet; RecordFile the checkpoint record's name in the same _sluice
// directory.
const (
	Staging    = "_sluice/inprogress"
	RecordFile = "_sluice/checkpoint.json"
)

// Record is a committed checkpoint: the commit point of a directory table.
type Record struct {
	Version    int    `json:"version"`
	Checkpoint int64  `json:"checkpoint"`
	Token      string `json:"token"`
	// Properties are what an Iceberg snapshot summary would hold: the
	// stream's positions, watermark and notice state.
	Properties  map[string]string `json:"properties"`
	Files       []RecordFileEntry `json:"files"`
	CommittedAt time.Time         `json:"committed_at"`
}

// RecordFileEntry is one file a checkpoint made visible.
type RecordFileEntry struct {
	Staged  string `json:"staged"`
	Path    string `json:"path"`
	Records int64  `json:"records"`
	Bytes   int64  `json:"bytes"`
}

// Table is one directory table.
type Table struct {
	name string
	fs   FS
	// location is the root as a URL (data file paths are URLs under it),
	// root the root as a path of fs.
	location, root string
	log            *slog.Logger
	last           *Record
	// Renames bounds the renames in flight at a checkpoint.
	renames int
}

// Options open a table.
type Options struct {
	// Name is the table's name in logs and errors.
	Name string
	// Location is the table's root directory as a URL (hdfs://nn/lake/t
	// or file:///data/lake/t).
	Location string
	FS       FS
	Logger   *slog.Logger
}

// Open opens a directory table and recovers it: the recorded checkpoint's
// renames are finished and staged files no record names are removed. It
// must run before any writer of the table starts.
func Open(ctx context.Context, o Options) (*Table, error) {
	u, err := url.Parse(o.Location)
	if err != nil {
		return nil, fmt.Errorf("table %s location: %w", o.Name, err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Table{name: o.Name, fs: o.FS, location: strings.TrimSuffix(o.Location, "/"),
		root: path.Clean("/" + u.Path), log: o.Logger, renames: 32}
	raw, err := t.fs.ReadFile(t.path(RecordFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("table %s: read checkpoint record: %w", o.Name, err)
	default:
		var rec Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, fmt.Errorf("table %s: checkpoint record %s: %w", o.Name, t.path(RecordFile), err)
		}
		if rec.Version != 1 {
			return nil, fmt.Errorf("table %s: checkpoint record version %d is not supported", o.Name, rec.Version)
		}
		t.last = &rec
		if err := t.publish(ctx, rec.Files, true); err != nil {
			return nil, fmt.Errorf("table %s: finish checkpoint %d: %w", o.Name, rec.Checkpoint, err)
		}
	}
	removed, err := t.removeStaged(t.path(Staging))
	if err != nil {
		return nil, fmt.Errorf("table %s: remove uncommitted files: %w", o.Name, err)
	}
	if removed > 0 {
		t.log.Info("removed uncommitted files of an earlier run", "table", o.Name, "files", removed)
	}
	// A record written under its temporary name by a crashed commit.
	entries, err := t.fs.ReadDir(t.path("_sluice"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("table %s: %w", o.Name, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && strings.HasSuffix(e.Name(), ".tmp") {
			if err := t.fs.Remove(t.path("_sluice/" + e.Name())); err != nil {
				return nil, fmt.Errorf("table %s: %w", o.Name, err)
			}
		}
	}
	return t, nil
}

func (t *Table) path(rel string) string { return path.Join(t.root, rel) }

// StagingURL is where writers put the table's files: a URL under the
// table's location.
func (t *Table) StagingURL() string { return t.location + "/" + Staging }

// Root is the table's root directory as a path of its file system.
func (t *Table) Root() string { return t.root }

// Last is the recorded checkpoint; nil before the first.
func (t *Table) Last() *Record { return t.last }

// removeStaged removes every file under dir, and the directories it
// empties, returning how many files it removed.
func (t *Table) removeStaged(dir string) (int, error) {
	entries, err := t.fs.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		if e.IsDir() {
			k, err := t.removeStaged(p)
			n += k
			if err != nil {
				return n, err
			}
		} else {
			n++
		}
		if err := t.fs.Remove(p); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Commit commits a checkpoint: the record naming files and holding props
// replaces the previous record, then the files are renamed into place. It
// returns the checkpoint number (props' sluice.checkpoint). Committing
// the checkpoint the record already holds (a retry after an error) only
// finishes its renames.
func (t *Table) Commit(ctx context.Context, files []iceberg.DataFile, props map[string]string) (int64, error) {
	token := props["sluice.commit-id"]
	if t.last == nil || t.last.Token != token || token == "" {
		cp, err := strconv.ParseInt(props["sluice.checkpoint"], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("table %s: commit without a checkpoint number", t.name)
		}
		rec := &Record{Version: 1, Checkpoint: cp, Token: token, Properties: props, CommittedAt: time.Now().UTC()}
		for _, f := range files {
			staged, final, err := t.finalPath(f.FilePath())
			if err != nil {
				return 0, err
			}
			rec.Files = append(rec.Files, RecordFileEntry{Staged: staged, Path: final, Records: f.Count(), Bytes: f.FileSizeBytes()})
		}
		raw, err := json.MarshalIndent(rec, "", " ")
		if err != nil {
			return 0, fmt.Errorf("table %s: encode checkpoint record: %w", t.name, err)
		}
		if err := t.fs.WriteFile(t.path(RecordFile), raw); err != nil {
			return 0, fmt.Errorf("table %s: write checkpoint record: %w", t.name, err)
		}
		t.last = rec
	}
	if err := t.publish(ctx, t.last.Files, false); err != nil {
		return 0, fmt.Errorf("table %s: checkpoint %d: %w", t.name, t.last.Checkpoint, err)
	}
	return t.last.Checkpoint, nil
}

// finalPath maps a staged file's URL to its staged and final paths.
func (t *Table) finalPath(fileURL string) (staged, final string, err error) {
	prefix := t.StagingURL() + "/"
	if !strings.HasPrefix(fileURL, prefix) {
		return "", "", fmt.Errorf("table %s: file %s is not under %s", t.name, fileURL, prefix)
	}
	u, err := url.Parse(fileURL)
	if err != nil {
		return "", "", fmt.Errorf("table %s: file %s: %w", t.name, fileURL, err)
	}
	staged = path.Clean(u.Path)
	rel := strings.TrimPrefix(staged, t.path(Staging)+"/")
	if rel == staged || strings.HasPrefix(rel, "../") {
		return "", "", fmt.Errorf("table %s: file %s is not under %s", t.name, fileURL, prefix)
	}
	return staged, t.path(rel), nil
}

// publish renames staged files into their partition directories, several
// at a time. A file no longer staged but in place was renamed before. A
// recovery looks before it renames: most files of the recorded checkpoint
// are in place already, and a look is one NameNode call where a failed
// rename costs four.
func (t *Table) publish(ctx context.Context, files []RecordFileEntry, recovering bool) error {
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(t.renames)
	for _, f := range files {
		g.Go(func() error {
			if recovering {
				if _, err := t.fs.Stat(f.Staged); errors.Is(err, fs.ErrNotExist) {
					if _, err := t.fs.Stat(f.Path); err != nil {
						t.log.Warn("a committed file is missing: neither staged nor in its partition", "table", t.name,
							"file", f.Path, "checkpoint", t.last.Checkpoint)
					}
					return nil
				}
			}
			err := t.fs.Rename(f.Staged, f.Path)
			if err == nil {
				return nil
			}
			if _, serr := t.fs.Stat(f.Staged); !errors.Is(serr, fs.ErrNotExist) {
				return err
			}
			if _, serr := t.fs.Stat(f.Path); serr == nil {
				return nil // renamed by an earlier attempt
			}
			t.log.Warn("a committed file is missing: neither staged nor in its partition", "table", t.name,
				"file", f.Path, "checkpoint", t.last.Checkpoint)
			return nil
		})
	}
	return g.Wait()
}
