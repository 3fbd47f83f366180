package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/ingest/schema"
)

// Progress is what a table's destination has committed: the log position
// its changes are applied up to, and how far its initial snapshot got.
type Progress struct {
	// Position: every change before it is committed; zero if none is.
	Position Position
	Snapshot SnapshotProgress
	// Columns are the destination's columns (name and type), in its order.
	Columns []Column
}

// SnapshotProgress is a table's initial snapshot as committed.
type SnapshotProgress struct {
	// Done: every row of the table was read.
	Done bool `json:"done"`
	// After is the key of the last row read; the snapshot resumes after it.
	After Cursor `json:"after,omitempty"`
}

// Target receives one source table's changes. Values come one per
// destination column, in the order of the columns it was opened or last
// evolved with.
type Target interface {
	Put(values []parquet.Value, eventTime int64) error
	Delete(values []parquet.Value) error
	// Buffered is the number of keys changed since the last Checkpoint.
	Buffered() int
	// Checkpoint seals the buffered changes and hands them to be committed
	// with the position they reach and the snapshot's progress. It does
	// not wait for the commit; commits happen in order.
	Checkpoint(ctx context.Context, at Position, snap SnapshotProgress) error
	// Evolve changes the destination's columns to cols, renamed maps old
	// names to new ones. Nothing is buffered when it is called; it returns
	// once every earlier checkpoint is committed and the change is made.
	Evolve(ctx context.Context, cols []Column, renamed map[string]string) error
	// Wait returns once every checkpoint handed over is committed.
	Wait(ctx context.Context) error
}

// Sink opens the destination of each mirrored table.
type Sink interface {
	// Open creates the destination of a source table (with src's columns
	// and key) or loads it, and returns its committed progress.
	Open(ctx context.Context, src TableInfo) (Target, Progress, error)
}

// MirrorConfig tunes a Mirror.
type MirrorConfig struct {
	Source Config
	// Interval between checkpoints of each table.
	Interval time.Duration
	// Snapshot reads the existing rows of tables that have no progress yet.
	Snapshot bool
	// ChunkRows bounds one snapshot read (and the memory it holds).
	ChunkRows int
	// Parallelism is how many tables are snapshotted at once.
	Parallelism int
	// MaxBuffered keys of a table trigger a checkpoint of it before the
	// interval ends, at the next transaction boundary; at four times as
	// many, a transaction too big to hold becomes visible in parts.
	MaxBuffered int
	// ReconnectTimeout: reconnecting to the server is retried this long.
	ReconnectTimeout time.Duration
	// IdleCheckpoints: a table without changes records the log position
	// every this many intervals, so a restart need not re-read far.
	IdleCheckpoints int
}

// Mirror keeps tables equal to their source: an initial snapshot of each,
// consistent with the log, then the log's changes, each table committed
// with the position it reached.
type Mirror struct {
	cfg     MirrorConfig
	sink    Sink
	log     *slog.Logger
	reader  *Reader
	metrics *mirrorMetrics
}

type mirrorMetrics struct {
	changes    *prometheus.CounterVec
	snapRows   *prometheus.CounterVec
	stopped    *prometheus.GaugeVec
	reconnects prometheus.Counter
	lag        prometheus.Gauge
}

// NewMirror checks the configuration; Run connects.
func NewMirror(cfg MirrorConfig, sink Sink, log *slog.Logger, reg prometheus.Registerer) (*Mirror, error) {
	r, err := NewReader(cfg.Source, log)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.ChunkRows = max(cfg.ChunkRows, 1)
	cfg.Parallelism = max(cfg.Parallelism, 1)
	cfg.MaxBuffered = max(cfg.MaxBuffered, 1)
	cfg.IdleCheckpoints = max(cfg.IdleCheckpoints, 1)
	src := prometheus.Labels{"source": cfg.Source.Name}
	m := &mirrorMetrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_cdc_changes_total", Help: "Row changes applied from the binary log, by table.", ConstLabels: src,
		}, []string{"table"}),
		snapRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_cdc_snapshot_rows_total", Help: "Rows read by initial snapshots, by table.", ConstLabels: src,
		}, []string{"table"}),
		stopped: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_cdc_table_stopped", Help: "1 while a table is stopped by a change Sluice cannot apply (see the log).", ConstLabels: src,
		}, []string{"table"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_cdc_reconnects_total", Help: "Reconnections to the source server after a failure.", ConstLabels: src,
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_cdc_lag_seconds", Help: "Age of the last change read from the binary log.", ConstLabels: src,
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.changes, m.snapRows, m.stopped, m.reconnects, m.lag} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("cdc source %s: register metrics: %w", cfg.Source.Name, err)
			}
		}
	}
	return &Mirror{cfg: cfg, sink: sink, log: log, reader: r, metrics: m}, nil
}

// mtable is a mirrored table as the applier sees it.
type mtable struct {
	name   string // db.table
	info   TableInfo
	target Target
	cols   []Column // the destination's columns
	key    []int    // indexes of the key columns in cols
	// done is the position its last handed-over checkpoint reached;
	// changes at or before it are already applied (after a restart).
	done  Position
	idle  int // intervals since its last checkpoint
	snap  SnapshotProgress
	shape map[uint64]*shape // by the log's table id, new after a DDL
	// recent holds, while the snapshot runs, the keys changed by the log
	// and where: a snapshot row of such a key is older than the log's.
	recent  map[string]Position
	renames map[string]string // from a DDL, for the next evolution
	stopped error
	// snapMoved: the snapshot progressed since the last checkpoint.
	snapMoved     bool
	keyBuf        []byte
	before, after []parquet.Value
}

// shape maps one logged row layout onto the destination's columns.
type shape struct {
	cols []Column
	to   []int // destination index of each logged column; -1: dropped
}

// chunk is one snapshot read: rows as of some moment between the log
// positions low and high.
type chunk struct {
	t         *mtable
	info      TableInfo
	rows      [][]any
	low, high Position
	after     Cursor
	last      bool
}

// Run mirrors until ctx ends (nil) or something fails that reconnecting
// cannot mend.
func (m *Mirror) Run(ctx context.Context) error {
	conn, err := m.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	names, err := ListTables(conn, m.cfg.Source.Tables)
	if err != nil {
		return fmt.Errorf("cdc source %s: %w", m.cfg.Source.Name, err)
	}
	now, err := MasterPosition(conn)
	if err != nil {
		return fmt.Errorf("cdc source %s: %w", m.cfg.Source.Name, err)
	}
	tables := map[string]*mtable{}
	from := now
	var snapshots []*mtable
	for _, name := range names {
		db, tb, _ := strings.Cut(name, ".")
		info, err := DescribeTable(conn, db, tb)
		if err != nil {
			return fmt.Errorf("cdc source %s: %w", m.cfg.Source.Name, err)
		}
		t, err := m.open(ctx, info)
		if err != nil {
			return err
		}
		tables[name] = t
		if !t.done.IsZero() && t.done.Compare(from) < 0 {
			from = t.done
		}
		if !t.snap.Done {
			if !m.cfg.Snapshot {
				t.snap.Done = true
				continue
			}
			t.recent = map[string]Position{}
			snapshots = append(snapshots, t)
		}
	}
	m.log.Info("cdc source started", "source", m.cfg.Source.Name, "tables", len(tables), "from", from, "snapshots", len(snapshots))
	events := make(chan []Event, 8)
	chunks := make(chan chunk, m.cfg.Parallelism)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return m.read(gctx, from, events) })
	g.Go(func() error { return m.snapshot(gctx, snapshots, chunks) })
	g.Go(func() error { return m.apply(gctx, tables, from, events, chunks) })
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("cdc source %s: %w", m.cfg.Source.Name, err)
	}
	return nil
}

func (m *Mirror) connect() (*client.Conn, error) {
	c := m.cfg.Source
	conn, err := client.Connect(fmt.Sprintf("%s:%d", c.Host, c.Port), c.User, c.Password, "")
	if err != nil {
		return nil, fmt.Errorf("cdc source %s: connect: %w", c.Name, err)
	}
	if _, err := conn.Execute("SET time_zone = '+00:00'"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cdc source %s: %w", c.Name, err)
	}
	return conn, nil
}

// open prepares a table's destination and its state.
func (m *Mirror) open(ctx context.Context, info TableInfo) (*mtable, error) {
	name := info.Schema + "." + info.Table
	target, prog, err := m.sink.Open(ctx, info)
	if err != nil {
		return nil, fmt.Errorf("cdc table %s: %w", name, err)
	}
	t := &mtable{name: name, info: info, target: target, done: prog.Position, snap: prog.Snapshot,
		shape: map[uint64]*shape{}}
	if err := t.setColumns(prog.Columns); err != nil {
		return nil, err
	}
	m.metrics.stopped.WithLabelValues(name).Set(0)
	return t, nil
}

func (t *mtable) setColumns(cols []Column) error {
	t.cols = cols
	t.key = t.key[:0]
	for _, k := range t.info.Key {
		i := slices.IndexFunc(cols, func(c Column) bool { return c.Name == k })
		if i < 0 {
			return fmt.Errorf("cdc table %s: key column %s is not in the destination", t.name, k)
		}
		t.key = append(t.key, i)
	}
	clear(t.shape)
	return nil
}

// read streams the log into events, a transaction's events in one batch,
// reconnecting from the last transaction boundary it handed over when the
// connection fails.
func (m *Mirror) read(ctx context.Context, from Position, events chan<- []Event) error {
	defer close(events)
	var failing time.Time
	backoff := 200 * time.Millisecond
	var batch []Event
	for {
		err := m.reader.Run(ctx, from, func(e Event) error {
			batch = append(batch, e)
			if e.Op != 0 && len(batch) < 4096 {
				return nil // the transaction goes on
			}
			select {
			case events <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			batch = make([]Event, 0, min(2*len(batch), 4096))
			if e.Op == 0 {
				// Only a boundary is a place to resume: a batch cut inside
				// a big transaction resumes before it, and the rows already
				// handed over are applied again (upserts of the same values).
				from = e.Next
			}
			failing = time.Time{}
			return nil
		})
		if ctx.Err() != nil {
			return nil
		}
		batch = batch[:0] // a cut transaction is read again whole
		if failing.IsZero() {
			failing, backoff = time.Now(), 200*time.Millisecond
		}
		if time.Since(failing) > m.cfg.ReconnectTimeout {
			return fmt.Errorf("binary log unreadable for %s: %w", m.cfg.ReconnectTimeout, err)
		}
		m.log.Warn("cdc source connection lost; reconnecting", "source", m.cfg.Source.Name, "at", from, "err", err)
		m.metrics.reconnects.Inc()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// snapshot reads the tables' rows in key order, chunk by chunk, each
// chunk between two log positions, up to Parallelism tables at once.
func (m *Mirror) snapshot(ctx context.Context, tables []*mtable, chunks chan<- chunk) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.cfg.Parallelism)
	for _, t := range tables {
		g.Go(func() error {
			if err := m.snapshotTable(gctx, t, chunks); err != nil && gctx.Err() == nil {
				return err // named by the snapshot read
			}
			return nil
		})
	}
	return g.Wait()
}

func (m *Mirror) snapshotTable(ctx context.Context, t *mtable, chunks chan<- chunk) error {
	var conn *client.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	after := t.snap.After
	m.log.Info("snapshot started", "table", t.name, "after", after)
	var failing time.Time
	backoff := 200 * time.Millisecond
	for {
		c, err := m.readChunk(&conn, t, after)
		if err != nil {
			// A lost connection (a restarted server) is reconnected and the
			// chunk read again, as the log reader does.
			if conn != nil {
				conn.Close()
				conn = nil
			}
			if failing.IsZero() {
				failing = time.Now()
			}
			if time.Since(failing) > m.cfg.ReconnectTimeout {
				return err
			}
			m.log.Warn("snapshot read failed; retrying", "table", t.name, "after", after, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		failing, backoff = time.Time{}, 200*time.Millisecond
		select {
		case chunks <- c:
		case <-ctx.Done():
			return nil
		}
		if c.last {
			return nil
		}
		after = c.after
	}
}

// readChunk reads the chunk after a key between two log positions,
// connecting first if needed.
func (m *Mirror) readChunk(conn **client.Conn, t *mtable, after Cursor) (chunk, error) {
	if *conn == nil {
		c, err := m.connect()
		if err != nil {
			return chunk{}, err
		}
		*conn = c
	}
	// Described per chunk: a DDL while the snapshot runs changes what the
	// next read returns.
	info, err := DescribeTable(*conn, t.info.Schema, t.info.Table)
	if err != nil {
		return chunk{}, err
	}
	low, err := MasterPosition(*conn)
	if err != nil {
		return chunk{}, err
	}
	rows, last, err := ReadChunk(*conn, info, after, m.cfg.ChunkRows)
	if err != nil {
		return chunk{}, err
	}
	high, err := MasterPosition(*conn)
	if err != nil {
		return chunk{}, err
	}
	return chunk{t: t, info: info, rows: rows, low: low, high: high, after: last, last: len(rows) < m.cfg.ChunkRows}, nil
}

// apply is the one goroutine that changes the targets: log events in
// order, snapshot chunks once the log is read past them, checkpoints.
func (m *Mirror) apply(ctx context.Context, tables map[string]*mtable, at Position, events <-chan []Event, chunks <-chan chunk) error {
	tick := time.NewTicker(m.cfg.Interval)
	defer tick.Stop()
	var waiting []chunk
	// mid: rows of a transaction were applied and its end was not seen
	// yet. Checkpoints wait for the end, so none shows half a transaction.
	mid, due := false, false
	for {
		in := chunks
		if len(waiting) >= m.cfg.Parallelism {
			in = nil // hold the snapshot readers back
		}
		select {
		case <-ctx.Done():
			if mid {
				return nil // the transaction is read again after a restart
			}
			return m.last(tables, at)
		case batch, ok := <-events:
			if !ok {
				return nil
			}
			for _, e := range batch {
				if err := m.event(ctx, tables, &at, e); err != nil {
					return err
				}
				mid = e.Op != 0
			}
		case c := <-in:
			waiting = append(waiting, c)
		case <-tick.C:
			due = true
		}
		if mid {
			continue
		}
		// Chunks apply once every change up to their high position is:
		// then each row is as of at, or a newer change of its key is.
		// A table's chunks come in order, their high positions growing.
		kept := waiting[:0]
		for _, c := range waiting {
			if c.high.Compare(at) > 0 {
				kept = append(kept, c)
				continue
			}
			if err := m.applyChunk(ctx, c, at); err != nil {
				return err
			}
		}
		clear(waiting[len(kept):])
		waiting = kept
		if due {
			for _, t := range tables {
				if err := m.checkpoint(ctx, t, at, false); err != nil {
					return err
				}
			}
			due = false
		}
	}
}

// last takes a final checkpoint of every table when the mirror stops, so
// a restart re-reads little.
func (m *Mirror) last(tables map[string]*mtable, at Position) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(context.Background()), 20*time.Second)
	defer cancel()
	var errs []error
	for _, t := range tables {
		if t.target.Buffered() > 0 || t.snapMoved {
			errs = append(errs, m.checkpoint(ctx, t, at, true))
		}
	}
	for _, t := range tables {
		errs = append(errs, t.target.Wait(ctx))
	}
	return errors.Join(errs...)
}

func (m *Mirror) event(ctx context.Context, tables map[string]*mtable, at *Position, e Event) error {
	switch {
	case e.Op == 0 && e.Query == "":
		*at = e.Next
		// A transaction boundary: the moment for a checkpoint of a table
		// that buffers much.
		for _, t := range tables {
			if t.stopped == nil && t.target.Buffered() >= m.cfg.MaxBuffered {
				if err := m.checkpoint(ctx, t, *at, true); err != nil {
					return err
				}
			}
		}
		return nil
	case e.Query != "":
		*at = e.Next
		m.ddl(tables, e)
		return nil
	}
	t := tables[e.Schema+"."+e.Table]
	if t == nil || t.stopped != nil || (!t.done.IsZero() && e.Next.Compare(t.done) <= 0) {
		return nil // a table created after start, stopped, or replayed
	}
	m.metrics.lag.Set(time.Since(e.Time).Seconds())
	sh, err := m.shapeOf(ctx, t, e.Map, *at)
	if err != nil || sh == nil {
		return err
	}
	if t.target.Buffered() >= 4*m.cfg.MaxBuffered {
		// A transaction too big to hold: commit its start; a restart
		// re-reads it whole from the boundary before it.
		if err := m.checkpoint(ctx, t, *at, true); err != nil {
			return err
		}
	}
	m.metrics.changes.WithLabelValues(t.name).Inc()
	before, after := t.scratch(&t.before), t.scratch(&t.after)
	if e.Op != Insert {
		if err := t.values(sh, e.Before, before); err != nil {
			return m.stop(ctx, t, *at, fmt.Errorf("row before %s at %s: %w", e.Op, e.Next, err))
		}
	}
	if e.Op != Delete {
		if err := t.values(sh, e.After, after); err != nil {
			return m.stop(ctx, t, *at, fmt.Errorf("row after %s at %s: %w", e.Op, e.Next, err))
		}
	}
	switch e.Op {
	case Delete:
		t.touch(before, e.Next)
		return t.target.Delete(before)
	case Update:
		if old := t.keyOf(before); old != t.keyOf(after) {
			// A primary-key change: the old key's row goes away.
			t.recentAt(old, e.Next)
			if err := t.target.Delete(before); err != nil {
				return err
			}
		}
	}
	t.touch(after, e.Next)
	return t.target.Put(after, e.Time.UnixMicro())
}

// scratch reuses a row buffer sized to the destination's columns; targets
// do not keep the values they are given.
func (t *mtable) scratch(b *[]parquet.Value) []parquet.Value {
	if cap(*b) < len(t.cols) {
		*b = make([]parquet.Value, len(t.cols))
	}
	*b = (*b)[:len(t.cols)]
	return *b
}

func (t *mtable) recentAt(key string, at Position) {
	if t.recent != nil {
		t.recent[key] = at
	}
}

// touch records a key's change while the table's snapshot runs.
func (t *mtable) touch(vals []parquet.Value, at Position) {
	if t.recent != nil {
		t.recentAt(t.keyOf(vals), at)
	}
}

// keyOf encodes the key's values as Upserts does (schema.AppendKeyValue).
func (t *mtable) keyOf(vals []parquet.Value) string {
	b := t.keyBuf[:0]
	for _, i := range t.key {
		b = schema.AppendKeyValue(b, vals[i])
	}
	t.keyBuf = b
	return string(b)
}

// values converts a logged or snapshot row into destination values.
func (t *mtable) values(sh *shape, row []any, out []parquet.Value) error {
	for i := range out {
		out[i] = parquet.NullValue()
	}
	for i, c := range sh.cols {
		to := sh.to[i]
		if to < 0 || i >= len(row) {
			continue
		}
		v := row[i]
		if !c.plain {
			var err error
			if v, err = c.Value(v); err != nil {
				return err
			}
		}
		var err error
		if out[to], err = store(v, t.cols[to].Type); err != nil {
			return fmt.Errorf("column %s: %w", c.Name, err)
		}
	}
	return nil
}

// shapeOf maps a logged row layout onto the destination, evolving the
// destination first when the layout has new or wider columns. A layout
// the destination cannot follow stops the table (nil shape).
func (m *Mirror) shapeOf(ctx context.Context, t *mtable, tm *replication.TableMapEvent, at Position) (*shape, error) {
	if sh := t.shape[tm.TableID]; sh != nil {
		return sh, nil
	}
	cols, err := Columns(tm)
	if err != nil {
		return nil, m.stop(ctx, t, at, err)
	}
	sh, err := m.follow(ctx, t, cols, at)
	if err != nil || sh == nil {
		return nil, err
	}
	t.shape[tm.TableID] = sh
	return sh, nil
}

// follow maps source columns onto the destination, first evolving the
// destination (after committing what came before, at) when they have new
// or wider columns. Columns it cannot follow stop the table: nil shape.
func (m *Mirror) follow(ctx context.Context, t *mtable, cols []Column, at Position) (*shape, error) {
	sh, grow, err := t.mapColumns(cols)
	if err != nil {
		return nil, m.stop(ctx, t, at, err)
	}
	if grow == nil {
		return sh, nil
	}
	if err := m.checkpoint(ctx, t, at, true); err != nil {
		return nil, err
	}
	renamed := t.renames
	if err := t.target.Evolve(ctx, grow, renamed); err != nil {
		return nil, fmt.Errorf("cdc table %s: evolve at %s: %w", t.name, at, err)
	}
	t.renames = nil
	m.log.Info("cdc table schema evolved", "table", t.name, "at", at, "columns", len(grow), "renamed", renamed)
	if err := t.setColumns(grow); err != nil {
		return nil, err
	}
	sh, _, err = t.mapColumns(cols)
	return sh, err
}

// mapColumns maps source columns onto the destination's by name (after
// pending renames). grow is the destination's new column list when the
// source has columns it lacks or wider types; an incompatible type is an
// error.
func (t *mtable) mapColumns(cols []Column) (sh *shape, grow []Column, err error) {
	dest := slices.Clone(t.cols)
	for from, to := range t.renames {
		if i := slices.IndexFunc(dest, func(c Column) bool { return c.Name == from }); i >= 0 {
			dest[i].Name = to
		}
	}
	changed := len(t.renames) > 0
	sh = &shape{cols: cols, to: make([]int, len(cols))}
	for i, c := range cols {
		j := slices.IndexFunc(dest, func(d Column) bool { return d.Name == c.Name })
		switch {
		case j < 0:
			dest = append(dest, Column{Name: c.Name, Type: c.Type})
			j, changed = len(dest)-1, true
		case !dest[j].Type.Equal(c.Type):
			if widens(c.Type, dest[j].Type) {
				break // an older, narrower row
			}
			if !widens(dest[j].Type, c.Type) {
				return nil, nil, fmt.Errorf("column %s changed from %s to %s, which the table cannot follow", c.Name, dest[j].Type, c.Type)
			}
			dest[j].Type, changed = c.Type, true
		}
		sh.to[i] = j
	}
	if changed {
		return sh, dest, nil
	}
	return sh, nil, nil
}

var (
	renameColumn = regexp.MustCompile("(?i)\\bRENAME\\s+COLUMN\\s+`?([^`\\s,]+)`?\\s+TO\\s+`?([^`\\s,]+)`?")
	changeColumn = regexp.MustCompile("(?i)\\bCHANGE\\s+(?:COLUMN\\s+)?(?:IF\\s+EXISTS\\s+)?`?([^`\\s,]+)`?\\s+`?([^`\\s,]+)`?")
	alterTable   = regexp.MustCompile("(?i)^ALTER\\s+(?:ONLINE\\s+|IGNORE\\s+)*TABLE\\s+(?:IF\\s+EXISTS\\s+)?(?:`?([^`\\s.]+)`?\\.)?`?([^`\\s.]+)`?")
)

// ddl notes the column renames of an ALTER TABLE on a followed table: the
// log's row layouts name columns but cannot tell a rename from a drop and
// an add, and the next evolution keeps the column's data under its new name.
func (m *Mirror) ddl(tables map[string]*mtable, e Event) {
	mt := alterTable.FindStringSubmatch(e.Query)
	if mt == nil {
		return
	}
	db := mt[1]
	if db == "" {
		db = e.Schema
	}
	t := tables[db+"."+mt[2]]
	if t == nil || t.stopped != nil || (!t.done.IsZero() && e.Next.Compare(t.done) <= 0) {
		return
	}
	for _, re := range []*regexp.Regexp{renameColumn, changeColumn} {
		for _, r := range re.FindAllStringSubmatch(e.Query, -1) {
			if r[1] != r[2] {
				if t.renames == nil {
					t.renames = map[string]string{}
				}
				t.renames[r[1]] = r[2]
			}
		}
	}
	clear(t.shape) // the next row events describe the new layout
}

// stop takes a table out of the mirror after committing what it had up to
// at: its position stays before the change it cannot apply, so nothing is
// lost, and other tables go on.
func (m *Mirror) stop(ctx context.Context, t *mtable, at Position, cause error) error {
	if err := m.checkpoint(ctx, t, at, true); err != nil {
		return err
	}
	t.stopped = fmt.Errorf("cdc table %s stopped at %s: %w", t.name, at, cause)
	m.metrics.stopped.WithLabelValues(t.name).Set(1)
	m.log.Error("cdc table stopped; fix the cause and restart to resume from its position", "table", t.name, "at", at, "err", cause)
	return nil
}

// checkpoint hands a table's changes up to at over for commit: always
// when it buffers changes or its snapshot moved, and when idle only every
// IdleCheckpoints intervals (or when forced), so the position it records
// keeps up.
func (m *Mirror) checkpoint(ctx context.Context, t *mtable, at Position, force bool) error {
	if t.stopped != nil || at.Compare(t.done) < 0 {
		return nil // stopped, or replaying what is committed
	}
	busy := t.target.Buffered() > 0 || t.snapMoved
	if !busy {
		if at == t.done {
			return nil
		}
		if t.idle++; t.idle < m.cfg.IdleCheckpoints && !force {
			return nil
		}
	}
	if err := t.target.Checkpoint(ctx, at, t.snap); err != nil {
		return fmt.Errorf("cdc table %s: checkpoint at %s: %w", t.name, at, err)
	}
	t.done, t.idle, t.snapMoved = at, 0, false
	return nil
}

// applyChunk puts a snapshot chunk's rows, except those whose key the log
// changed since the chunk's low position: the log's version is newer.
func (m *Mirror) applyChunk(ctx context.Context, c chunk, at Position) error {
	t := c.t
	if t.stopped != nil {
		return nil
	}
	sh, err := m.follow(ctx, t, c.info.Columns, at)
	if err != nil || sh == nil {
		return err
	}
	vals := make([]parquet.Value, len(t.cols))
	for _, row := range c.rows {
		if err := t.values(sh, row, vals); err != nil {
			return m.stop(ctx, t, at, fmt.Errorf("snapshot row: %w", err))
		}
		if p, ok := t.recent[t.keyOf(vals)]; ok && p.Compare(c.low) > 0 {
			continue
		}
		if err := t.target.Put(vals, 0); err != nil {
			return err
		}
	}
	m.metrics.snapRows.WithLabelValues(t.name).Add(float64(len(c.rows)))
	for k, p := range t.recent {
		if p.Compare(c.low) <= 0 {
			delete(t.recent, k)
		}
	}
	t.snap.After, t.snapMoved = c.after, true
	if c.last {
		t.snap.Done, t.recent = true, nil
		m.log.Info("snapshot finished", "table", t.name, "at", at)
	}
	// The snapshot's progress is recorded with the next checkpoint; force
	// one when the table holds a lot.
	if t.target.Buffered() >= m.cfg.MaxBuffered || c.last {
		return m.checkpoint(ctx, t, at, true)
	}
	return nil
}
