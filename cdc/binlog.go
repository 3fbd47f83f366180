// Package cdc reads the changes of MySQL and MariaDB tables from the
// server's row-based binary log, as events with the position to resume
// from.
package cdc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// Position is a place in the binary log: the file and the offset of the
// next event to read.
type Position struct {
	File string
	Pos  uint32
}

func (p Position) String() string { return fmt.Sprintf("%s:%d", p.File, p.Pos) }

// Compare orders positions in log order: -1, 0 or +1. Log file names share
// a base and end in a fixed-width sequence number, so they sort as text.
func (p Position) Compare(o Position) int {
	if c := strings.Compare(p.File, o.File); c != 0 {
		return c
	}
	return cmp.Compare(p.Pos, o.Pos)
}

// IsZero reports whether p is no position at all.
func (p Position) IsZero() bool { return p.File == "" }

// Op is what a row change did.
type Op uint8

// Row operations.
const (
	Insert Op = iota + 1
	Update
	Delete
)

func (o Op) String() string {
	switch o {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Event is one change read from the log: a row change (Op set), a DDL
// statement (Query set), or, with neither, progress alone: every event
// before Next has been handed over, and Next is a transaction boundary.
type Event struct {
	Schema, Table string
	Op            Op
	// Columns names the values, when the server logs them
	// (binlog_row_metadata=FULL).
	Columns []string
	// Before is the row before an update or delete; After the row after an
	// insert or update. Values are as go-mysql decodes them.
	Before, After []any
	// Map is the table's description in the log (row changes only): see
	// Columns.
	Map *replication.TableMapEvent
	// Query is a DDL statement (Op is 0).
	Query string
	// Next is where reading resumes after this event's transaction.
	Next Position
	Time time.Time
}

// Config is the server to read from and the tables to follow.
type Config struct {
	// Name identifies the source in logs and metrics.
	Name     string
	Host     string
	Port     uint16
	User     string
	Password string
	// Flavor is "mariadb" or "mysql".
	Flavor string
	// ServerID identifies this reader to the server as a replica; unique
	// among the server's replicas.
	ServerID uint32
	// Tables are "database.table" patterns (path.Match syntax, e.g.
	// "shop.*"); empty follows every table.
	Tables []string
}

// Reader streams the binary log of one server.
type Reader struct {
	cfg Config
	log *slog.Logger
}

// NewReader checks cfg and makes a reader; it connects when Run starts.
func NewReader(cfg Config, log *slog.Logger) (*Reader, error) {
	var errs []error
	if cfg.Host == "" || cfg.Port == 0 {
		errs = append(errs, errors.New("host and port are required"))
	}
	if cfg.Flavor != "mariadb" && cfg.Flavor != "mysql" {
		errs = append(errs, fmt.Errorf("flavor %q is not mariadb or mysql", cfg.Flavor))
	}
	if cfg.ServerID == 0 {
		errs = append(errs, errors.New("server_id must not be 0"))
	}
	for _, p := range cfg.Tables {
		if _, err := path.Match(p, "x.y"); err != nil || !strings.Contains(p, ".") {
			errs = append(errs, fmt.Errorf("table pattern %q is not database.table", p))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cdc: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reader{cfg: cfg, log: log}, nil
}

// follows reports whether a table is selected.
func (r *Reader) follows(schema, table string) bool {
	if len(r.cfg.Tables) == 0 {
		return true
	}
	name := schema + "." + table
	for _, p := range r.cfg.Tables {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// Run reads the log from `from` and hands each event of a followed table
// to fn, in log order, until ctx ends (nil) or fn or the connection fails.
// An event's Next is the end of its transaction: resuming there never
// splits a transaction. Between transactions fn also hears the position
// alone, so a caller learns when the log has been read up to a position
// even when nothing there concerns its tables.
func (r *Reader) Run(ctx context.Context, from Position, fn func(Event) error) error {
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: r.cfg.ServerID, Flavor: r.cfg.Flavor, Host: r.cfg.Host, Port: r.cfg.Port,
		User: r.cfg.User, Password: r.cfg.Password, Logger: r.log,
		// The caller reconnects from the last transaction boundary it was
		// handed; the syncer's own retry resumes mid-transaction.
		DisableRetrySync: true,
		// Heartbeats keep an idle connection's reads inside the timeout, so
		// a dead server is noticed within it.
		HeartbeatPeriod: 5 * time.Second, ReadTimeout: 30 * time.Second,
		// DATETIME and TIMESTAMP as time.Time: no text to format and parse.
		ParseTime: true, TimestampStringLocation: time.UTC,
		// Decoded events waiting to be read: the default (10240 events of
		// up to thousands of rows each) would hold gigabytes.
		EventCacheCount: 64,
	})
	defer syncer.Close()
	stream, err := syncer.StartSync(mysql.Position{Name: from.File, Pos: from.Pos})
	if err != nil {
		return fmt.Errorf("cdc: start binlog at %s: %w", from, err)
	}
	file := from.File
	inTx := false
	var pending []Event // the current transaction's events
	for {
		ev, err := stream.GetEvent(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("cdc: read binlog in %s: %w", file, err)
		}
		at := time.Unix(int64(ev.Header.Timestamp), 0).UTC()
		end := Position{file, ev.Header.LogPos}
		switch e := ev.Event.(type) {
		case *replication.RotateEvent:
			file = string(e.NextLogName)
			if !inTx {
				if err := fn(Event{Next: Position{file, uint32(e.Position)}, Time: at}); err != nil {
					return err
				}
			}
		case *replication.GTIDEvent, *replication.MariadbGTIDEvent:
			inTx = true // a group begins: DML up to its XID or COMMIT, or one DDL
		case *replication.RowsEvent:
			schema, table := string(e.Table.Schema), string(e.Table.Table)
			if !r.follows(schema, table) {
				continue
			}
			pending = append(pending, rowEvents(ev.Header.EventType, e, schema, table, at)...)
		case *replication.QueryEvent:
			q := strings.TrimSpace(string(e.Query))
			if strings.EqualFold(q, "BEGIN") {
				inTx = true
				continue
			}
			// Any other statement ends its group: COMMIT of a
			// non-transactional table's changes, or a standalone DDL or
			// administrative statement.
			inTx = false
			if err := flush(&pending, end, fn); err != nil {
				return err
			}
			next := Event{Next: end, Time: at}
			if isDDL(q) {
				next.Schema, next.Query = string(e.Schema), q
			}
			if err := fn(next); err != nil {
				return err
			}
		case *replication.XIDEvent:
			inTx = false
			if err := flush(&pending, end, fn); err != nil {
				return err
			}
			if err := fn(Event{Next: end, Time: at}); err != nil {
				return err
			}
		default:
			if !inTx && ev.Header.LogPos > 0 && ev.Header.EventType != replication.HEARTBEAT_EVENT &&
				ev.Header.EventType != replication.HEARTBEAT_LOG_EVENT_V2 {
				if err := fn(Event{Next: end, Time: at}); err != nil {
					return err
				}
			}
		}
	}
}

// flush hands a committed transaction's events over, all resuming after it.
func flush(pending *[]Event, next Position, fn func(Event) error) error {
	for _, e := range *pending {
		e.Next = next
		if err := fn(e); err != nil {
			return err
		}
	}
	*pending = (*pending)[:0]
	return nil
}

func rowEvents(t replication.EventType, e *replication.RowsEvent, schema, table string, at time.Time) []Event {
	cols := e.Table.ColumnNameString()
	var op Op
	switch t {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2,
		replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		op = Insert
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
		replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1, replication.PARTIAL_UPDATE_ROWS_EVENT:
		op = Update
	default:
		op = Delete
	}
	var out []Event
	if op == Update {
		// Update rows come in pairs: the row before, then after.
		for i := 0; i+1 < len(e.Rows); i += 2 {
			out = append(out, Event{Schema: schema, Table: table, Op: op, Columns: cols, Map: e.Table, Before: e.Rows[i], After: e.Rows[i+1], Time: at})
		}
		return out
	}
	for _, row := range e.Rows {
		ev := Event{Schema: schema, Table: table, Op: op, Columns: cols, Map: e.Table, Time: at}
		if op == Insert {
			ev.After = row
		} else {
			ev.Before = row
		}
		out = append(out, ev)
	}
	return out
}

// isDDL reports whether a statement changes a schema.
func isDDL(q string) bool {
	word := strings.ToUpper(strings.Fields(q + " x")[0])
	switch word {
	case "CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE":
		return true
	}
	return false
}
