package config

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// CDC is a MySQL or MariaDB server whose tables are mirrored, each into an
// Iceberg table kept upserted by its primary key.
type CDC struct {
	// Name is unique in the pipeline; it names the tables' commit streams
	// ("<name>/<db>.<table>") and labels metrics. Required.
	Name string `yaml:"name"`
	// Host and Port of the server (port default 3306). Host is required.
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// User needs REPLICATION SLAVE, REPLICATION CLIENT and SELECT on the
	// mirrored tables. Use ${ENV_VAR} for the password.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// Flavor is "mariadb" (default) or "mysql".
	Flavor string `yaml:"flavor"`
	// ServerID is the replica id Sluice reads the binary log under; unique
	// among the server's replicas. Required.
	ServerID uint32 `yaml:"server_id"`
	// Tables are "database.table" patterns (path.Match syntax, e.g.
	// "shop.*"); empty mirrors every table outside the system schemas.
	// Every table needs a primary key.
	Tables []string `yaml:"tables"`
	// Namespace is the Iceberg namespace of the mirrors; a source table
	// db.t becomes <namespace>.<db>_<t>. Required.
	Namespace string `yaml:"namespace"`
	// Snapshot reads the rows a table already has before following its
	// changes.
	Snapshot CDCSnapshot `yaml:"snapshot"`
	// MaxBufferedRows of one table's changes trigger its checkpoint before
	// the interval ends (default 100000); a single transaction four times
	// as big is committed in parts.
	MaxBufferedRows int `yaml:"max_buffered_rows"`
	// ReconnectTimeout is how long a lost server connection is retried
	// before the daemon exits (default 5m).
	ReconnectTimeout Duration `yaml:"reconnect_timeout"`
	// IdleCheckpoints: a table without changes records the log position it
	// reached every this many checkpoint intervals (default 10).
	IdleCheckpoints int `yaml:"idle_checkpoints"`
	// Retention of the mirrors' snapshots, as for a stream's table.
	Retention Retention `yaml:"retention"`
	// Compaction rewrites a mirror with its equality deletes applied.
	Compaction CDCCompaction `yaml:"compaction"`
}

// CDCCompaction keeps reads of a mirror fast as upserts pile up.
type CDCCompaction struct {
	// DeleteFiles: a mirror is rewritten with its deletes applied once it
	// holds this many delete files (default 32; -1: never).
	DeleteFiles int `yaml:"delete_files"`
	// TargetFileSize is the size rewritten files roll at (default
	// writer.target_file_size).
	TargetFileSize ByteSize `yaml:"target_file_size"`
}

// CDCSnapshot tunes the initial snapshot.
type CDCSnapshot struct {
	// Disabled starts tables without progress at the log's current end,
	// without their existing rows.
	Disabled bool `yaml:"disabled"`
	// ChunkRows is the most rows read by one query (default 10000).
	ChunkRows int `yaml:"chunk_rows"`
	// Parallelism is how many tables are read at once (default 4).
	Parallelism int `yaml:"parallelism"`
}

// CDC defaults.
const (
	DefaultCDCChunkRows        = 10000
	DefaultCDCParallelism      = 4
	DefaultCDCMaxBufferedRows  = 100000
	DefaultCDCReconnectTimeout = 5 * time.Minute
	DefaultCDCIdleCheckpoints  = 10
)

func (c *CDC) applyDefaults() {
	if c.Port == 0 {
		c.Port = 3306
	}
	if c.Flavor == "" {
		c.Flavor = "mariadb"
	}
	if c.Snapshot.ChunkRows == 0 {
		c.Snapshot.ChunkRows = DefaultCDCChunkRows
	}
	if c.Snapshot.Parallelism == 0 {
		c.Snapshot.Parallelism = DefaultCDCParallelism
	}
	if c.MaxBufferedRows == 0 {
		c.MaxBufferedRows = DefaultCDCMaxBufferedRows
	}
	if c.ReconnectTimeout == 0 {
		c.ReconnectTimeout = Duration(DefaultCDCReconnectTimeout)
	}
	if c.IdleCheckpoints == 0 {
		c.IdleCheckpoints = DefaultCDCIdleCheckpoints
	}
	c.Retention.applyDefaults()
	if c.Compaction.DeleteFiles == 0 {
		c.Compaction.DeleteFiles = DefaultCompactDeleteFiles
	}
}

func (c *CDC) validate(at string) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", at, key, fmt.Sprintf(format, args...)))
	}
	if c.Name == "" {
		bad("name", "required")
	} else if !validName.MatchString(c.Name) {
		bad("name", "%q may hold only letters, digits, '_', '-' and '.'", c.Name)
	}
	if c.Host == "" {
		bad("host", "required")
	}
	if c.Port < 1 || c.Port > 65535 {
		bad("port", "%d is not a port", c.Port)
	}
	if c.User == "" {
		bad("user", "required")
	}
	if c.Flavor != "mariadb" && c.Flavor != "mysql" {
		bad("flavor", "%q is not mariadb or mysql", c.Flavor)
	}
	if c.ServerID == 0 {
		bad("server_id", "required, unique among the server's replicas")
	}
	for i, p := range c.Tables {
		if _, err := path.Match(p, "x.y"); err != nil || !strings.Contains(p, ".") {
			bad(fmt.Sprintf("tables[%d]", i), "%q is not a database.table pattern", p)
		}
	}
	if c.Namespace == "" {
		bad("namespace", "required")
	} else if !validName.MatchString(c.Namespace) {
		bad("namespace", "%q may hold only letters, digits, '_', '-' and '.'", c.Namespace)
	}
	if c.Snapshot.ChunkRows < 1 {
		bad("snapshot.chunk_rows", "%d must be at least 1", c.Snapshot.ChunkRows)
	}
	if c.Snapshot.Parallelism < 1 {
		bad("snapshot.parallelism", "%d must be at least 1", c.Snapshot.Parallelism)
	}
	if c.MaxBufferedRows < 1 {
		bad("max_buffered_rows", "%d must be at least 1", c.MaxBufferedRows)
	}
	if c.ReconnectTimeout < 0 {
		bad("reconnect_timeout", "%s is negative", c.ReconnectTimeout)
	}
	if c.Compaction.DeleteFiles < -1 {
		bad("compaction.delete_files", "%d is below -1", c.Compaction.DeleteFiles)
	}
	if c.Compaction.TargetFileSize < 0 {
		bad("compaction.target_file_size", "%s is negative", c.Compaction.TargetFileSize)
	}
	if c.IdleCheckpoints < 1 {
		bad("idle_checkpoints", "%d must be at least 1", c.IdleCheckpoints)
	}
	return errs
}
