package config

import (
	"fmt"
	"strings"
	"time"
)

// Audit is where the audit trace goes: per committed checkpoint and table,
// the records of each stage by event hour and outcome, and the source
// offset ranges read.
type Audit struct {
	// Disabled turns the trace off.
	Disabled bool `yaml:"disabled"`
	// ClickHouse receives the trace; without it the trace goes to File.
	ClickHouse *AuditClickHouse `yaml:"clickhouse"`
	// File is the JSON-lines trace without ClickHouse (default audit.jsonl
	// beside the pipeline file).
	File string `yaml:"file"`
	// SpoolDir holds batches ClickHouse has not taken yet (default
	// audit-spool beside the pipeline file).
	SpoolDir string `yaml:"spool_dir"`
	// SpoolMaxBytes caps the spool (default 256MiB); beyond it the trace
	// waits in the tables' snapshots until the spool drains.
	SpoolMaxBytes ByteSize `yaml:"spool_max_bytes"`
}

// AuditClickHouse is a ClickHouse server reached over its native protocol.
type AuditClickHouse struct {
	// Addrs are host:port of the native protocol (port 9000 by default).
	// Required.
	Addrs []string `yaml:"addrs"`
	// Database holding the table (default "default").
	Database string `yaml:"database"`
	// Table of the trace, created if missing (default "sluice_audit").
	Table string `yaml:"table"`
	// User and Password (default user "default", no password); use
	// ${ENV_VAR} for the password.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// Timeout of connecting and of each request (default 10s).
	Timeout Duration `yaml:"timeout"`
}

// DefaultAuditSpoolMax caps the audit spool.
const DefaultAuditSpoolMax = 256 << 20

func (a *Audit) applyDefaults(dir string) {
	if dir == "" {
		dir = "."
	}
	if a.File == "" {
		a.File = dir + "/audit.jsonl"
	}
	if a.SpoolDir == "" {
		a.SpoolDir = dir + "/audit-spool"
	}
	if a.SpoolMaxBytes == 0 {
		a.SpoolMaxBytes = DefaultAuditSpoolMax
	}
	if c := a.ClickHouse; c != nil {
		if c.Database == "" {
			c.Database = "default"
		}
		if c.Table == "" {
			c.Table = "sluice_audit"
		}
		if c.User == "" {
			c.User = "default"
		}
		if c.Timeout == 0 {
			c.Timeout = Duration(10 * time.Second)
		}
	}
}

func (a *Audit) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("audit.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if a.SpoolMaxBytes < 1<<20 {
		bad("spool_max_bytes", "%s is below the minimum 1MiB", a.SpoolMaxBytes)
	}
	if c := a.ClickHouse; c != nil {
		if len(c.Addrs) == 0 {
			bad("clickhouse.addrs", "at least one host:port is required")
		}
		for i, addr := range c.Addrs {
			if !strings.Contains(addr, ":") {
				bad(fmt.Sprintf("clickhouse.addrs[%d]", i), "%q is not host:port", addr)
			}
		}
		if !validName.MatchString(c.Table) || strings.Contains(c.Table, ".") {
			bad("clickhouse.table", "%q may hold only letters, digits, '_' and '-'", c.Table)
		}
		if c.Timeout <= 0 {
			bad("clickhouse.timeout", "%s must be positive", c.Timeout)
		}
	}
	return errs
}
