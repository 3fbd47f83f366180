package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/sinks/iceberg"
)

// Options configure an Exporter.
type Options struct {
	Pipeline string
	// SpoolDir holds the batches the sink has not taken yet, and the
	// exporter's progress.
	SpoolDir string
	// SpoolMax bounds the spool; beyond it the next checkpoints' trace
	// waits in the tables' snapshots, to be derived once the spool drains.
	SpoolMax   int64
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Exporter derives the trace of every table's commits and delivers it to
// a sink through a spool: a slow or unreachable sink never holds up a
// commit, and batches are delivered in commit order once it is back.
type Exporter struct {
	sink Sink
	opts Options
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex
	sources map[string]*source

	spooled   prometheus.Gauge
	batches   *prometheus.CounterVec
	spoolFull prometheus.Gauge
}

type source struct {
	stream, table string
	load          func() *table.Table
	seen          int64 // the table's snapshot derived last
}

// NewExporter checks the spool directory.
func NewExporter(sink Sink, opts Options) (*Exporter, error) {
	if err := os.MkdirAll(opts.SpoolDir, 0o755); err != nil {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Exporter{sink: sink, opts: opts, log: opts.Logger, wake: make(chan struct{}, 1), sources: map[string]*source{},
		spooled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_audit_spool_bytes", Help: "Audit batches waiting in the spool for the audit sink.",
		}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_audit_batches_total", Help: "Audit batches (one checkpoint of one table each), by result: spooled, delivered, failed.",
		}, []string{"result"}),
		spoolFull: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_audit_spool_full", Help: "1 while the spool is at its size cap and new checkpoints' audit waits in the tables.",
		}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(e.spooled, e.batches, e.spoolFull)
	}
	return e, nil
}

// Add follows a stream's table; load returns its latest state.
func (e *Exporter) Add(stream, tableName string, load func() *table.Table) {
	e.mu.Lock()
	e.sources[stream] = &source{stream: stream, table: tableName, load: load}
	e.mu.Unlock()
	e.Notify()
}

// Notify tells the exporter a commit happened.
func (e *Exporter) Notify() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run derives and delivers until ctx ends; it fails only when the spool
// cannot be written.
func (e *Exporter) Run(ctx context.Context) error {
	defer e.sink.Close()
	done, err := e.loadProgress()
	if err != nil {
		return err
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var retryAt time.Time
	backoff := time.Second
	for {
		if err := e.derive(done); err != nil {
			return err
		}
		if time.Now().After(retryAt) {
			if err := e.deliver(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				e.batches.WithLabelValues("failed").Inc()
				e.log.Warn("audit sink unavailable; batches stay in the spool", "err", err, "retry_in", backoff)
				retryAt, backoff = time.Now().Add(backoff), min(2*backoff, time.Minute)
			} else {
				backoff = time.Second
			}
		}
		select {
		case <-ctx.Done():
			// A last delivery attempt, short: what is left stays spooled.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			e.derive(done)
			e.deliver(dctx)
			cancel()
			return nil
		case <-e.wake:
		case <-tick.C:
		}
	}
}

// derive spools the trace of every commit not spooled yet, in commit
// order per table, while the spool has room.
func (e *Exporter) derive(done map[string]int64) error {
	e.mu.Lock()
	sources := make([]*source, 0, len(e.sources))
	for _, s := range e.sources {
		sources = append(sources, s)
	}
	e.mu.Unlock()
	size, err := e.spoolSize()
	if err != nil {
		return err
	}
	full := false
	for _, s := range sources {
		tbl := s.load()
		if tbl == nil || tbl.CurrentSnapshot() == nil || tbl.CurrentSnapshot().SnapshotID == s.seen && !full {
			continue
		}
		seen := tbl.CurrentSnapshot().SnapshotID
		snaps := tbl.Metadata().Snapshots()
		slices.SortFunc(snaps, func(a, b table.Snapshot) int { return int(a.SequenceNumber - b.SequenceNumber) })
		for _, snap := range snaps {
			// Progress is the snapshot's sequence number: a merge commits
			// under the checkpoint number of the commit before it.
			if snap.SequenceNumber <= done[s.stream] || snap.Summary == nil ||
				snap.Summary.Properties[iceberg.PropStream] != s.stream || snap.Summary.Properties[iceberg.PropAudit] == "" {
				continue
			}
			if size >= e.opts.SpoolMax {
				full = true
				break
			}
			rows, err := RowsOf(e.opts.Pipeline, s.stream, s.table, snap)
			if err != nil {
				e.log.Error("audit trace of a commit unreadable; skipped", "table", s.table, "snapshot", snap.SnapshotID, "err", err)
				continue
			}
			n, err := e.spool(rows)
			if err != nil {
				return err
			}
			size += n
			done[s.stream] = snap.SequenceNumber
			if err := e.saveProgress(done); err != nil {
				return err
			}
			e.batches.WithLabelValues("spooled").Inc()
		}
		if !full {
			s.seen = seen
		}
	}
	e.spooled.Set(float64(size))
	if full {
		e.spoolFull.Set(1)
	} else {
		e.spoolFull.Set(0)
	}
	return nil
}

// spool writes a batch as the next file of the spool (temp name, then
// rename, so a crash never leaves half a batch).
func (e *Exporter) spool(rows []Row) (int64, error) {
	b, err := json.Marshal(rows)
	if err != nil {
		return 0, err
	}
	name := fmt.Sprintf("%020d.batch", time.Now().UnixNano())
	tmp := filepath.Join(e.opts.SpoolDir, name+".tmp")
	if err := writeSync(tmp, b); err != nil {
		return 0, fmt.Errorf("audit spool: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(e.opts.SpoolDir, name)); err != nil {
		return 0, fmt.Errorf("audit spool: %w", err)
	}
	return int64(len(b)), nil
}

// batches lists the spool's batches in order.
func (e *Exporter) batchFiles() ([]string, error) {
	entries, err := os.ReadDir(e.opts.SpoolDir)
	if err != nil {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	var out []string
	for _, de := range entries {
		if strings.HasSuffix(de.Name(), ".batch") {
			out = append(out, filepath.Join(e.opts.SpoolDir, de.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

func (e *Exporter) spoolSize() (int64, error) {
	files, err := e.batchFiles()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n, nil
}

// deliver hands the spooled batches to the sink in order, removing each
// once taken; it stops at the first failure.
func (e *Exporter) deliver(ctx context.Context) error {
	files, err := e.batchFiles()
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("audit spool: %w", err)
		}
		var rows []Row
		if err := json.Unmarshal(b, &rows); err != nil {
			e.log.Error("audit spool batch unreadable; removed", "file", f, "err", err)
			os.Remove(f)
			continue
		}
		if err := e.sink.Write(ctx, rows); err != nil {
			return err
		}
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("audit spool: %w", err)
		}
		e.batches.WithLabelValues("delivered").Inc()
	}
	e.spooled.Set(0)
	return nil
}

// progress is, per stream, the sequence number of the last snapshot whose
// trace was spooled.
func (e *Exporter) progressPath() string { return filepath.Join(e.opts.SpoolDir, "progress.json") }

func (e *Exporter) loadProgress() (map[string]int64, error) {
	done := map[string]int64{}
	b, err := os.ReadFile(e.progressPath())
	if os.IsNotExist(err) {
		return done, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	if err := json.Unmarshal(b, &done); err != nil {
		return nil, fmt.Errorf("audit spool: %s: %w", e.progressPath(), err)
	}
	return done, nil
}

func (e *Exporter) saveProgress(done map[string]int64) error {
	b, _ := json.Marshal(done)
	tmp := e.progressPath() + ".tmp"
	if err := writeSync(tmp, b); err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	if err := os.Rename(tmp, e.progressPath()); err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	return nil
}

func writeSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
