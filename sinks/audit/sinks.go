package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Sink stores trace rows. Writing the same rows again must not double
// them.
type Sink interface {
	Write(ctx context.Context, rows []Row) error
	Close() error
}

// Schema is the ClickHouse table of the trace, as the exporter creates it.
// Replacing on its key makes a batch written twice (a retry, a restart
// that derives a checkpoint's trace again) count once; queries read it
// with FINAL. Kept to what ClickHouse 18.16 understands.
const Schema = `CREATE TABLE IF NOT EXISTS %s (
	pipeline String,
	stream String,
	table String,
	checkpoint Int64,
	snapshot_id Int64,
	hour DateTime,
	stage String,
	reason String,
	records Int64,
	topic String,
	partition Int32,
	offset_from Int64,
	offset_to Int64,
	committed_at DateTime
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (pipeline, stream, table, hour, stage, reason, topic, partition, checkpoint, snapshot_id)`

// ClickHouseOptions locate the trace table.
type ClickHouseOptions struct {
	Addr     []string
	Database string
	Table    string
	User     string
	Password string
	Timeout  time.Duration
}

// ClickHouse writes the trace over the native protocol, a batch per call.
type ClickHouse struct {
	conn  driver.Conn
	table string
}

// NewClickHouse connects lazily; the table is created on the first write.
func NewClickHouse(o ClickHouseOptions) (*ClickHouse, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: o.Addr, Protocol: clickhouse.Native,
		Auth:        clickhouse.Auth{Database: o.Database, Username: o.User, Password: o.Password},
		DialTimeout: o.Timeout, ReadTimeout: o.Timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("audit clickhouse %v: %w", o.Addr, err)
	}
	return &ClickHouse{conn: conn, table: o.Table}, nil
}

// Ensure creates the trace table if missing.
func (c *ClickHouse) Ensure(ctx context.Context) error {
	if err := c.conn.Exec(ctx, fmt.Sprintf(Schema, c.table)); err != nil {
		return fmt.Errorf("audit clickhouse: create table %s: %w", c.table, err)
	}
	return nil
}

func (c *ClickHouse) Write(ctx context.Context, rows []Row) error {
	if err := c.Ensure(ctx); err != nil {
		return err
	}
	b, err := c.conn.PrepareBatch(ctx, "INSERT INTO "+c.table+
		" (pipeline, stream, table, checkpoint, snapshot_id, hour, stage, reason, records, topic, partition, offset_from, offset_to, committed_at)")
	if err != nil {
		return fmt.Errorf("audit clickhouse: %w", err)
	}
	for _, r := range rows {
		if err := b.Append(r.Pipeline, r.Stream, r.Table, r.Checkpoint, r.Snapshot, r.Hour, r.Stage, r.Reason, r.Records,
			r.Topic, r.Partition, r.OffsetFrom, r.OffsetTo, r.Committed); err != nil {
			b.Abort()
			return fmt.Errorf("audit clickhouse: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("audit clickhouse: insert %d rows: %w", len(rows), err)
	}
	return nil
}

// Rows reads the trace of a pipeline back, each row once.
func (c *ClickHouse) Rows(ctx context.Context, pipeline string) ([]Row, error) {
	if err := c.Ensure(ctx); err != nil {
		return nil, err
	}
	q := "SELECT pipeline, stream, table, checkpoint, snapshot_id, hour, stage, reason, records, topic, partition, offset_from, offset_to, committed_at FROM " +
		c.table + " FINAL WHERE pipeline = ?"
	res, err := c.conn.Query(ctx, q, pipeline)
	if err != nil {
		return nil, fmt.Errorf("audit clickhouse: %w", err)
	}
	defer res.Close()
	var out []Row
	for res.Next() {
		var r Row
		if err := res.Scan(&r.Pipeline, &r.Stream, &r.Table, &r.Checkpoint, &r.Snapshot, &r.Hour, &r.Stage, &r.Reason, &r.Records,
			&r.Topic, &r.Partition, &r.OffsetFrom, &r.OffsetTo, &r.Committed); err != nil {
			return nil, fmt.Errorf("audit clickhouse: %w", err)
		}
		r.Hour, r.Committed = r.Hour.UTC(), r.Committed.UTC()
		out = append(out, r)
	}
	return out, res.Err()
}

func (c *ClickHouse) Close() error { return c.conn.Close() }

// File appends the trace to a JSON-lines file: the embedded default when
// no ClickHouse is configured. A row written twice is read once (see
// ReadFile).
type File struct {
	path string
}

// NewFile appends to path.
func NewFile(path string) *File { return &File{path: path} }

func (f *File) Write(_ context.Context, rows []Row) error {
	out, err := os.OpenFile(f.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("audit file: %w", err)
	}
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			out.Close()
			return fmt.Errorf("audit file %s: %w", f.path, err)
		}
	}
	if err := w.Flush(); err != nil {
		out.Close()
		return fmt.Errorf("audit file %s: %w", f.path, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("audit file %s: %w", f.path, err)
	}
	return out.Close()
}

func (f *File) Close() error { return nil }

// ReadFile reads a trace file, each row once (the last copy of a row
// written twice wins, as in the ClickHouse table).
func ReadFile(path string) ([]Row, error) {
	in, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit file: %w", err)
	}
	defer in.Close()
	seen := map[string]int{}
	var out []Row
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var r Row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			// A torn last line of a crashed write: the rows are derived and
			// written again.
			continue
		}
		k := fmt.Sprintf("%s|%s|%s|%d|%d|%s", r.Pipeline, r.Stream, r.Table, r.Checkpoint, r.Snapshot, r.key())
		if i, ok := seen[k]; ok {
			out[i] = r
			continue
		}
		seen[k] = len(out)
		out = append(out, r)
	}
	return out, sc.Err()
}
