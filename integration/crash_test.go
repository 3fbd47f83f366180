package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"
)

var base = time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC)

// event is a valid record with a unique id; events spread over 3 hours.
func event(i int) []byte {
	ts := base.Add(time.Duration(i%10800) * time.Second)
	return fmt.Appendf(nil, `{"id":"e-%d","ts":"%s","user":%d,"kind":"%s","amount":"%d.%02d","tags":["a","t%d"],"geo":{"country":"%s","lat":%d.5}}`,
		i, ts.Format("2006-01-02T15:04:05.000Z07:00"), i%977, []string{"view", "click", "buy"}[i%3], i%500, i%100, i%7,
		[]string{"US", "DE", "JP"}[i%3], i%90)
}

// TestCrashLoop kills the real binary with SIGKILL at random moments while a
// producer writes, restarts it each time, and checks that in the end the
// table holds every id exactly once and its positions equal the log end.
// `make soak` runs a longer version (SLUICE_SOAK=1).
func TestCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop runs the real binary many times")
	}
	total, kills := 200_000, 10
	if os.Getenv("SLUICE_SOAK") != "" {
		total, kills = 2_000_000, 60
	}
	e := newEnv(t, 4, "events")
	cfg := e.config("300ms", "")

	// The producer writes in chunks during the kill loop.
	produced := produceDuring(t, e.addr, e.topic, total, 2000, 100*time.Millisecond, 200*time.Millisecond)
	// Kill at a random moment: right away, mid-checkpoint, or after some commits.
	e.killLoop(cfg, kills, 0, 2500*time.Millisecond, func(k int, wait time.Duration) {
		t.Logf("kill %d after %s; committed positions %v", k+1, wait, e.positions("events"))
	})
	produced()

	e.catchUp(cfg, func() bool { return e.caughtUp("events") })
	tbl, done := e.loadTable("it.events")
	defer done()
	checkExactlyOnce(t, tbl, total)
	ends := endOffsets(t, e.addr, e.topic)
	pos := e.positions("events")
	for p, end := range ends {
		if pos[p] != end {
			t.Errorf("partition %d: committed position %d, log end %d", p, pos[p], end)
		}
	}
}

// produceDuring writes events 0..total-1 to topic in the background, chunk
// at a time with a random pause of base..base+spread between chunks, so
// production overlaps what the test does meanwhile. The returned function
// waits for the last chunk.
func produceDuring(t *testing.T, addr, topic string, total, chunk int, base, spread time.Duration) (wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for start := 0; start < total; start += chunk {
			vals := make([][]byte, 0, chunk)
			for i := start; i < min(start+chunk, total); i++ {
				vals = append(vals, event(i))
			}
			if err := produceErr(addr, topic, vals); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			time.Sleep(base + time.Duration(rand.Int64N(int64(spread))))
		}
	}()
	return wg.Wait
}

// killLoop starts the daemon kills times and SIGKILLs each run after a
// random wait of base..base+spread; after is called after each kill.
func (e *env) killLoop(cfg string, kills int, base, spread time.Duration, after func(k int, wait time.Duration)) {
	e.t.Helper()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for k := range kills {
		d := e.start(cfg)
		wait := base + time.Duration(rng.Int64N(int64(spread)))
		select {
		case <-d.done:
			e.t.Fatalf("daemon exited on its own (run %d); log:\n%s", k, d.logTail())
		case <-time.After(wait):
		}
		d.kill()
		if after != nil {
			after(k, wait)
		}
	}
}
