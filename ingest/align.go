package ingest

import (
	"sync"

	"github.com/sluicehq/sluice/watermark"
)

// aligner keeps the live event-time progress of a stream's partitions, so
// the poll loop can pause those that run ahead (watermark.max_drift).
type aligner struct {
	cfg watermark.Config

	mu    sync.Mutex
	parts map[watermark.Key]watermark.Partition
}

func (a *aligner) observe(k watermark.Key, p watermark.Partition) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if have, ok := a.parts[k]; ok {
		p = have.Merge(p)
	}
	a.parts[k] = p
}
