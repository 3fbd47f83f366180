// Package iceberg writes streams into Apache Iceberg tables: it opens the
// catalog, creates tables from a stream's schema and partition spec, writes
// rolling Parquet files per (table, partition), and commits each checkpoint
// as one snapshot that records the source positions it covers.
package iceberg

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL catalogs
	_ "modernc.org/sqlite"             // SQLite catalogs, no cgo

	"github.com/sluicehq/sluice/ingest/config"
)

// OpenCatalog opens the SQL catalog described by cfg, creating its tables
// when missing. The caller closes the returned closer.
func OpenCatalog(ctx context.Context, cfg config.Catalog) (catalog.Catalog, func() error, error) {
	driver, dialect, dsn, err := catalogDSN(cfg.URI)
	if err != nil {
		return nil, nil, err
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("open catalog %s: %w", redact(cfg.URI), err)
	}
	if driver == "sqlite" {
		// SQLite allows one writer; a single connection avoids "database is
		// locked" between our own goroutines.
		db.SetMaxOpenConns(1)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("open catalog %s: %w", redact(cfg.URI), err)
	}
	cat, err := sqlcat.NewCatalog(cfg.Name, db, dialect, iceberg.Properties{"warehouse": cfg.Warehouse})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("open catalog %s: %w", redact(cfg.URI), err)
	}
	return cat, db.Close, nil
}

func catalogDSN(uri string) (driver string, dialect sqlcat.SupportedDialect, dsn string, err error) {
	switch {
	case strings.HasPrefix(uri, "postgres://"), strings.HasPrefix(uri, "postgresql://"):
		return "pgx", sqlcat.Postgres, uri, nil
	case strings.HasPrefix(uri, "sqlite://"), !strings.Contains(uri, "://"):
		path := strings.TrimPrefix(uri, "sqlite://")
		if path == "" {
			return "", "", "", fmt.Errorf("catalog uri %q has no file path", uri)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", "", "", err
		}
		return "sqlite", sqlcat.SQLite, "file:" + abs + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)", nil
	}
	return "", "", "", fmt.Errorf("catalog uri %q: want a SQLite path or a postgres:// URL", redact(uri))
}

// redact hides a password in a URL.
func redact(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return uri
	}
	user, _, _ := strings.Cut(rest[:at], ":")
	return scheme + "://" + user + ":***" + rest[at:]
}
