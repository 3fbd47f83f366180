package iceberg

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/iceberg-go/table"
)

// Retention is how a table's history is kept short: snapshots older than
// MaxSnapshotAge expire once more than MinSnapshots exist, the files only
// they referenced are deleted, and the current snapshot's manifests are
// merged when there are more than MaxManifests.
type Retention struct {
	MaxSnapshotAge time.Duration
	MinSnapshots   int
	MaxManifests   int
	// Every is how often a table is tidied (after a commit of it).
	Every time.Duration
}

// tidy expires old snapshots and merges manifests when due. It runs on the
// committer goroutine between commits, so it never races the stream's own
// appends; a failure is logged and tried again at the next round.
func (c *Committer) tidy(ctx context.Context, st *tableState) {
	r := st.announce.cfg.Retention
	if r == nil || c.opts.Now().Sub(st.tidied) < r.Every {
		return
	}
	st.tidied = c.opts.Now()
	start := time.Now()
	expired, err := c.expire(ctx, st, *r)
	if err != nil {
		c.log.Warn("snapshot expiry failed", "table", st.name, "err", err)
		return
	}
	rewritten, err := c.rewriteManifests(ctx, st, r.MaxManifests)
	if err != nil {
		c.log.Warn("manifest rewrite failed", "table", st.name, "err", err)
		return
	}
	if expired > 0 || rewritten {
		c.log.Info("table tidied", "table", st.name, "snapshots_expired", expired, "manifests_rewritten", rewritten,
			"took", time.Since(start).Round(time.Millisecond))
	}
	c.metrics.expired.WithLabelValues(st.name).Add(float64(expired))
}

func (c *Committer) expire(ctx context.Context, st *tableState, r Retention) (int, error) {
	tbl := st.main.tbl
	before := len(tbl.Metadata().Snapshots())
	if before <= r.MinSnapshots {
		return 0, nil
	}
	tx := tbl.NewTransaction()
	if err := tx.ExpireSnapshots(table.WithOlderThan(r.MaxSnapshotAge), table.WithRetainLast(max(r.MinSnapshots, 1)), table.WithPostCommit(true)); err != nil {
		return 0, fmt.Errorf("expire snapshots: %w", err)
	}
	next, err := tx.Commit(ctx)
	if err != nil {
		return 0, fmt.Errorf("commit expiry: %w", err)
	}
	c.setTable(&st.main, next)
	return before - len(next.Metadata().Snapshots()), nil
}

func (c *Committer) rewriteManifests(ctx context.Context, st *tableState, most int) (bool, error) {
	tbl := st.main.tbl
	snap := tbl.CurrentSnapshot()
	if snap == nil || most <= 0 {
		return false, nil
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return false, err
	}
	manifests, err := snap.Manifests(fs)
	if err != nil {
		return false, fmt.Errorf("read manifests: %w", err)
	}
	if len(manifests) <= most {
		return false, nil
	}
	tx := tbl.NewTransaction()
	if _, err := tx.RewriteManifests(ctx); err != nil {
		return false, fmt.Errorf("rewrite manifests: %w", err)
	}
	next, err := tx.Commit(ctx)
	if err != nil {
		return false, fmt.Errorf("commit manifest rewrite: %w", err)
	}
	c.setTable(&st.main, next)
	return true, nil
}
