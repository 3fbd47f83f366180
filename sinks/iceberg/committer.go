package iceberg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/ingest/checkpoint"
)

// Acker hears about every committed checkpoint, in order per stream.
type Acker interface {
	Committed(stream string, cp checkpoint.DataWritten, snapshotID int64)
}

// CommitterOptions configure a Committer.
type CommitterOptions struct {
	Pipeline string
	// RunID makes commit tokens unique across daemon runs.
	RunID string
	// FailureTimeout is how long commits of a table may keep failing before
	// Run returns an error, so the daemon exits and its supervisor notices.
	FailureTimeout time.Duration
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Committer is the one committer of a pipeline. It gathers every worker's
// DataWritten of a checkpoint and commits each table once per checkpoint,
// as one snapshot whose summary records the positions covered.
type Committer struct {
	opts    CommitterOptions
	cat     catalog.Catalog
	acker   Acker
	in      chan checkpoint.DataWritten
	log     *slog.Logger
	metrics committerMetrics

	// jobs are closing partitions for compactLoop; compacted its results.
	jobs      *jobQueue
	compacted chan compactDone

	mu      sync.Mutex
	streams map[string]*tableState
}

// tableRef is one table a stream commits to and its latest loaded state:
// an Iceberg table, or a directory table (dir).
type tableRef struct {
	name string
	tbl  *table.Table
	dir  DirTable
}

// DirTable is a table kept as plain directories of data files (see
// sinks/hive), committed by a checkpoint record of its own instead of a
// snapshot. Commit makes files visible with the checkpoint's properties
// (the summary a snapshot would carry) and returns the checkpoint's commit
// number; committing the same commit id again after an error must only
// finish what the first attempt left undone.
type DirTable interface {
	Commit(ctx context.Context, files []iceberg.DataFile, props map[string]string) (int64, error)
}

type tableState struct {
	stream string
	main   tableRef
	late   tableRef // late.policy table; zero otherwise
	// name is main.name, the label of the stream's metrics.
	name        string
	workers     int
	positions   checkpoint.Positions
	gathering   *checkpoint.Gatherer
	tidied      time.Time // last snapshot expiry (see tidy)
	compactions int       // rewrites committed by this run, for their tokens
	failing     time.Time // zero when healthy
	// props are the source's summary properties of the last checkpoint
	// (checkpoint.DataWritten.Props), carried by compactions' snapshots
	// too, since a restart reads the newest snapshot of the stream.
	props         map[string]string
	upsertsQueued bool
	lastErr       error
	announce      *announceState
}

type committerMetrics struct {
	commits      *prometheus.CounterVec
	failures     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	failing      *prometheus.GaugeVec
	filesAdded   *prometheus.CounterVec
	recordsAdded *prometheus.CounterVec
	lastCommit   *prometheus.GaugeVec
	watermark    *prometheus.GaugeVec
	notices      *prometheus.CounterVec
	compacted    *prometheus.CounterVec
	expired      *prometheus.CounterVec
}

// NewCommitter creates the committer; tables are added with AddTable.
func NewCommitter(cat catalog.Catalog, acker Acker, opts CommitterOptions) *Committer {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := committerMetrics{
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_commits_total", Help: "Snapshots committed, by table.",
		}, []string{"table"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_commit_failures_total", Help: "Failed commit attempts, by table and kind (conflict, error).",
		}, []string{"table", "kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_commit_duration_seconds", Help: "Time to commit one checkpoint of a table, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"table"}),
		failing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_commit_failing_seconds", Help: "How long commits of a table have been failing (0 when healthy).",
		}, []string{"table"}),
		filesAdded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_committed_files_total", Help: "Data files committed, by table.",
		}, []string{"table"}),
		recordsAdded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_committed_records_total", Help: "Rows committed, by table.",
		}, []string{"table"}),
		lastCommit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_last_commit_timestamp_seconds", Help: "Unix time of the last successful commit, by table.",
		}, []string{"table"}),
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_watermark_seconds", Help: "Committed event-time watermark of a table's stream, as Unix time.",
		}, []string{"table"}),
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_partitions_announced_total", Help: "Partition notices committed, by table and kind (ready, empty, updated).",
		}, []string{"table", "kind"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_expired_snapshots_total", Help: "Snapshots expired by the table's retention, by table.",
		}, []string{"table"}),
		compacted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_compacted_files_total", Help: "Small data files merged away by compaction, by table.",
		}, []string{"table"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(m.commits, m.failures, m.duration, m.failing, m.filesAdded, m.recordsAdded, m.lastCommit,
			m.watermark, m.notices, m.compacted, m.expired)
	}
	return &Committer{
		opts: opts, cat: cat, acker: acker, log: opts.Logger, metrics: m,
		in: make(chan checkpoint.DataWritten, 64), streams: map[string]*tableState{},
		jobs: newJobQueue(), compacted: make(chan compactDone),
	}
}

// AddTable registers a stream's table, the number of workers that report
// each checkpoint, the state it resumes from and how its event-time
// progress is tracked and announced. Notices an earlier run committed but
// may not have delivered are handed to ann.Notify again.
func (c *Committer) AddTable(stream string, tbl *table.Table, workers int, st State, ann Announcing) {
	name := strings.Join(tbl.Identifier(), ".")
	c.addTable(stream, tableRef{name: name, tbl: tbl}, workers, st, ann)
}

// AddDirTable registers a stream's directory table, as AddTable does.
// Compaction, retention, upserts and a late table are Iceberg's and must
// be off in ann.
func (c *Committer) AddDirTable(stream, name string, dt DirTable, workers int, st State, ann Announcing) {
	c.addTable(stream, tableRef{name: name, dir: dt}, workers, st, ann)
}

func (c *Committer) addTable(stream string, ref tableRef, workers int, st State, ann Announcing) {
	as := newAnnounceState(ann, st, c.opts.Now())
	c.mu.Lock()
	name := ref.name
	ts := &tableState{
		stream: stream, name: name, main: ref, workers: workers,
		positions: st.Positions.Clone(), gathering: checkpoint.NewGatherer(workers, st.Checkpoint),
		announce: as, props: sourceProps(st.Summary),
	}
	if ann.LateTable != nil {
		ts.late = tableRef{name: strings.Join(ann.LateTable.Identifier(), "."), tbl: ann.LateTable}
	}
	c.streams[stream] = ts
	c.mu.Unlock()
	as.resend()
	c.queueClosing(ts)
	if ann.LateBefore != nil && ann.notices() {
		ann.LateBefore(ann.Slicing.LateBefore(&as.state))
	}
}

// SourcePropPrefix starts the keys of the summary properties a source
// records with its checkpoints (checkpoint.DataWritten.Props).
const SourcePropPrefix = "sluice.source."

// sourceProps picks, from a snapshot summary, the properties a source
// recorded.
func sourceProps(summary map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range summary {
		if strings.HasPrefix(k, SourcePropPrefix) {
			out[k] = v
		}
	}
	return out
}

// RemoveTable forgets a stream whose last checkpoint was committed (it was
// stopped by a config reload).
func (c *Committer) RemoveTable(stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.streams, stream)
}

// Submit hands a worker's part of a checkpoint to the committer. It blocks
// while the committer is behind, which slows writers and in turn pauses
// fetching; it never stops the consumer from polling.
func (c *Committer) Submit(ctx context.Context, dw checkpoint.DataWritten) error {
	select {
	case c.in <- dw:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Health reports whether every table commits; the error names the failing
// tables and their last error.
func (c *Committer) Health() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.streams {
		if !st.failing.IsZero() {
			errs = append(errs, fmt.Errorf("table %s: commits failing for %s: %w",
				st.name, c.opts.Now().Sub(st.failing).Round(time.Second), st.lastErr))
		}
	}
	return errors.Join(errs...)
}

// Run commits checkpoints until ctx ends. It returns an error only when a
// table's commits kept failing for longer than FailureTimeout.
func (c *Committer) Run(ctx context.Context) error {
	// Compaction works beside the commits, and its results are committed
	// here between checkpoints: it never holds a checkpoint up.
	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.compactLoop(cctx) }()
	defer wg.Wait()
	defer stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case dw := <-c.in:
			err = c.gather(ctx, dw)
		case d := <-c.compacted:
			err = c.finishCompaction(ctx, d)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while retrying: the stream reports the lost checkpoint
			}
			return err
		}
	}
}

func (c *Committer) gather(ctx context.Context, dw checkpoint.DataWritten) error {
	c.mu.Lock()
	st := c.streams[dw.Stream]
	c.mu.Unlock()
	if st == nil {
		return fmt.Errorf("checkpoint %d of unknown stream %q", dw.Checkpoint, dw.Stream)
	}
	for _, merged := range st.gathering.Add(dw) {
		snap, err := c.commit(ctx, st, merged)
		if err != nil {
			return err
		}
		if c.acker != nil {
			c.acker.Committed(st.stream, merged, snap)
		}
	}
	return nil
}

func (c *Committer) commit(ctx context.Context, st *tableState, cp checkpoint.DataWritten) (int64, error) {
	positions := st.positions.Clone()
	positions.Merge(cp.Positions)
	start := c.opts.Now()
	ann := st.announce.prepare(st.name, c.opts.Pipeline, st.stream, cp, start)
	if len(cp.Files) == 0 && len(cp.DeleteFiles) == 0 && len(cp.LateFiles) == 0 && positions.Encode() == st.positions.Encode() &&
		len(ann.due) == 0 && len(cp.Props) == 0 {
		return 0, nil // nothing new: no snapshot
	}
	token := c.token(st, cp.Checkpoint)
	props := c.streamProps(st, cp.Checkpoint, positions, token)
	props[PropMaxEventTime] = strconv.FormatInt(cp.MaxEventTime, 10)
	maps.Copy(props, cp.Props)
	if len(cp.Tally) > 0 {
		props[PropAudit] = cp.Tally.Encode()
		props[PropAuditOffsets] = offsetRanges(st.positions, cp)
	}
	if len(cp.LateFiles) > 0 {
		// The late table first: a crash before the stream's own commit
		// leaves it a checkpoint ahead, which the next start rolls back
		// (RollBackAhead) before the records are read again.
		late := &st.late
		lateProps := maps.Clone(props)
		lateProps[PropCommitID] = token + "/late"
		lateProps[PropRecords] = strconv.FormatInt(CountRecords(cp.LateFiles), 10)
		if _, err := c.retry(ctx, st, late, changeSet{files: cp.LateFiles}, lateProps, nil, cp.Checkpoint); err != nil {
			return 0, err
		}
	}
	records := CountRecords(cp.Files)
	props[PropRecords] = strconv.FormatInt(records, 10)
	maps.Copy(props, ann.props)
	snap, err := c.retry(ctx, st, &st.main, changeSet{files: cp.Files, deletes: cp.DeleteFiles}, props, ann.tableProp, cp.Checkpoint)
	if err != nil {
		return 0, err
	}
	st.positions = positions
	if len(cp.Props) > 0 {
		st.props = maps.Clone(cp.Props)
	}
	st.announce.committed(ann, snap)
	c.queueClosing(st)
	c.queueUpserts(st)
	c.tidy(ctx, st)
	for _, n := range ann.due {
		c.metrics.notices.WithLabelValues(st.name, string(n.Kind)).Inc()
		c.log.Info("partition announced", "table", st.name, "partition", n.Path, "kind", n.Kind,
			"records", n.Records, "snapshot", snap, "watermark", n.Watermark)
	}
	c.metrics.watermark.WithLabelValues(st.name).Set(float64(ann.next.Watermark) / 1e6)
	c.metrics.commits.WithLabelValues(st.name).Inc()
	c.metrics.filesAdded.WithLabelValues(st.name).Add(float64(len(cp.Files)))
	c.metrics.recordsAdded.WithLabelValues(st.name).Add(float64(records))
	c.metrics.duration.WithLabelValues(st.name).Observe(c.opts.Now().Sub(start).Seconds())
	c.metrics.lastCommit.WithLabelValues(st.name).Set(float64(c.opts.Now().Unix()))
	c.log.Debug("committed", "table", st.name, "checkpoint", cp.Checkpoint, "files", len(cp.Files),
		"records", records, "snapshot", snap)
	return snap, nil
}

// token names a commit of checkpoint cp uniquely across runs, so an
// ambiguous commit can be looked for (see tryCommit).
func (c *Committer) token(st *tableState, cp int64) string {
	return fmt.Sprintf("%s/%s/%s/%d", c.opts.Pipeline, st.stream, c.opts.RunID, cp)
}

// streamProps is the summary every snapshot of a stream carries: a
// restarted stream resumes from the newest one (see LoadState).
func (c *Committer) streamProps(st *tableState, cp int64, positions checkpoint.Positions, token string) iceberg.Properties {
	return iceberg.Properties{
		PropPipeline:   c.opts.Pipeline,
		PropStream:     st.stream,
		PropCheckpoint: strconv.FormatInt(cp, 10),
		PropCommitID:   token,
		PropPositions:  positions.Encode(),
	}
}

// CountRecords is the number of rows of files, as their manifests say.
func CountRecords(files []iceberg.DataFile) int64 {
	var n int64
	for _, f := range files {
		n += f.Count()
	}
	return n
}

// retryingRewrite commits, to the stream's own table, the replacement of
// merged by written (a rewrite snapshot), or an empty snapshot when there
// is nothing to replace, retrying as retrying does.
func (c *Committer) retryingRewrite(ctx context.Context, st *tableState, merged, written []iceberg.DataFile, props, tableProps iceberg.Properties, cp int64) (int64, error) {
	if len(merged) == 0 {
		written = nil
	}
	return c.retry(ctx, st, &st.main, changeSet{replace: merged, files: written}, props, tableProps, cp)
}

// offsetRanges renders the source ranges a checkpoint covers:
// {"topic":{"0":[from,to]}}, from the first offset processed (or the
// previous position) up to the next position.
func offsetRanges(prev checkpoint.Positions, cp checkpoint.DataWritten) string {
	out := map[string]map[string][2]int64{}
	for t, parts := range cp.Positions {
		for part, to := range parts {
			from, ok := prev.Get(t, part)
			if start, has := cp.Starts.Get(t, part); !ok || has && start < from {
				from = start
			}
			if out[t] == nil {
				out[t] = map[string][2]int64{}
			}
			out[t][strconv.Itoa(int(part))] = [2]int64{from, to}
		}
	}
	b, _ := json.Marshal(out) // maps of strings and ints always marshal
	return string(b)
}

// changeSet is what one commit changes: files appended, replacing
// replace (a rewrite, whose added files take the sequence number dataSeq
// when it is set), or with deletes (a row delta).
type changeSet struct {
	replace, files, deletes []iceberg.DataFile
	dataSeq                 *int64
}

// retry commits to one of a stream's tables, retrying until it succeeds
// or the table's commits have failed for FailureTimeout.
func (c *Committer) retry(ctx context.Context, st *tableState, ref *tableRef, cf changeSet, props, tableProps iceberg.Properties, cp int64) (int64, error) {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		snap, err := c.tryCommit(ctx, st, ref, cf, props, tableProps)
		if err == nil {
			if !st.failing.IsZero() {
				c.log.Info("commits recovered", "table", ref.name, "checkpoint", cp, "attempts", attempt)
			}
			c.setFailing(st, time.Time{}, nil)
			return snap, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		kind := "error"
		if errors.Is(err, table.ErrCommitFailed) {
			kind = "conflict"
		}
		c.metrics.failures.WithLabelValues(ref.name, kind).Inc()
		now := c.opts.Now()
		if st.failing.IsZero() {
			c.setFailing(st, now, err)
		} else {
			c.setFailing(st, st.failing, err)
		}
		c.log.Warn("commit failed", "table", ref.name, "checkpoint", cp, "attempt", attempt, "kind", kind, "err", err)
		if since := now.Sub(st.failing); since >= c.opts.FailureTimeout {
			return 0, fmt.Errorf("commit table %s: failing for %s, giving up: %w", ref.name, since.Round(time.Second), err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// tryCommit makes one attempt. Before retrying after an error whose outcome
// is unknown (the catalog may have applied it), it reloads the table and
// looks for the commit token, so an ambiguous commit is never applied twice.
func (c *Committer) tryCommit(ctx context.Context, st *tableState, ref *tableRef, cf changeSet, props, tableProps iceberg.Properties) (int64, error) {
	replace, files, deletes := cf.replace, cf.files, cf.deletes
	if ref.dir != nil {
		if len(replace) > 0 || len(deletes) > 0 {
			return 0, fmt.Errorf("table %s: a directory table takes only appends", ref.name)
		}
		return ref.dir.Commit(ctx, files, props)
	}
	if st.lastErr != nil {
		tbl, err := c.cat.LoadTable(ctx, ref.tbl.Identifier())
		if err != nil {
			return 0, fmt.Errorf("reload table: %w", err)
		}
		c.setTable(ref, tbl)
		if snap, ok := findToken(tbl, props[PropCommitID]); ok {
			c.log.Info("ambiguous commit had succeeded", "table", ref.name, "snapshot", snap)
			return snap, nil
		}
	}
	tx := ref.tbl.NewTransaction()
	if err := setTableProps(tx, tableProps); err != nil {
		return 0, fmt.Errorf("stage table properties: %w", err)
	}
	var err error
	if len(deletes) > 0 {
		err = tx.NewRowDelta(props).AddRows(files...).AddDeletes(deletes...).Commit(ctx)
	} else if len(replace) > 0 {
		// The transaction starts from the latest table: a rewrite
		// validates against commits made after its start, and the
		// committer is the table's only writer.
		rw := tx.NewRewrite(props)
		if cf.dataSeq != nil {
			rw.DataSequenceNumber(*cf.dataSeq)
		}
		for _, f := range replace {
			rw.DeleteFile(f)
		}
		for _, f := range files {
			rw.AddDataFile(f)
		}
		err = rw.Commit(ctx)
	} else if len(files) == 0 {
		// Positions moved but every record was filtered or dead-lettered:
		// an empty snapshot still records the progress.
		err = tx.AddFiles(ctx, nil, props, true)
	} else {
		err = tx.AddDataFiles(ctx, files, props, table.WithoutDuplicateCheck())
	}
	if err != nil {
		return 0, fmt.Errorf("stage commit: %w", err)
	}
	tbl, err := tx.Commit(ctx)
	if err != nil {
		return 0, err
	}
	c.setTable(ref, tbl)
	return tbl.CurrentSnapshot().SnapshotID, nil
}

// setTable records a table's latest state. Only Run writes ref.tbl, and
// reads it without the lock; Table reads it from other goroutines.
func (c *Committer) setTable(ref *tableRef, tbl *table.Table) {
	c.mu.Lock()
	ref.tbl = tbl
	c.mu.Unlock()
}

func (c *Committer) setFailing(st *tableState, since time.Time, err error) {
	c.mu.Lock()
	st.failing, st.lastErr = since, err
	c.mu.Unlock()
	if since.IsZero() {
		c.metrics.failing.WithLabelValues(st.name).Set(0)
	} else {
		c.metrics.failing.WithLabelValues(st.name).Set(c.opts.Now().Sub(since).Seconds())
	}
}

// Table returns the latest loaded state of a stream's table.
func (c *Committer) Table(stream string) *table.Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.streams[stream]; st != nil {
		return st.main.tbl
	}
	return nil
}
