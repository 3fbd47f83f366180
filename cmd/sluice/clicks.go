package main

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"time"
)

// clickGen generates realistic click events as JSON, with an optional share
// of bad records of every kind the pipeline must dead-letter.
type clickGen struct {
	rng      *rand.Rand
	prefix   string
	seq      int64
	start    time.Time
	span     time.Duration
	total    int64 // 0: event times follow the wall clock
	badEvery int64 // one bad record every badEvery records (0: none)
	buf      []byte
}

var (
	eventTypes = weighted{{"view", 70}, {"click", 20}, {"scroll", 4}, {"purchase", 3}, {"signup", 2}, {"bot", 1}}
	pages      = []string{"/", "/search", "/cart", "/checkout", "/account", "/product/", "/category/shoes", "/category/books", "/help", "/blog/launch"}
	referrers  = []string{"https://www.google.com/", "https://news.example.com/", "", "https://t.co/x", "https://www.bing.com/", "https://mail.example.org/"}
	devices    = weighted{{"mobile", 58}, {"desktop", 36}, {"tablet", 6}}
	countries  = weighted{{"US", 30}, {"DE", 10}, {"GB", 9}, {"FR", 8}, {"JP", 8}, {"BR", 7}, {"IN", 12}, {"CA", 5}, {"ES", 5}, {"NL", 6}}
	badKinds   = []string{"malformed_json", "wrong_type", "missing_required", "oversized", "binary_garbage", "missing_event_time"}
)

type weighted []struct {
	v string
	w int
}

func (ws weighted) pick(r *rand.Rand) string {
	total := 0
	for _, w := range ws {
		total += w.w
	}
	n := r.IntN(total)
	for _, w := range ws {
		if n < w.w {
			return w.v
		}
		n -= w.w
	}
	return ws[0].v
}

// newClickGen spreads total events over span from start (total 0: live event
// times). prefix makes event IDs unique across runs.
func newClickGen(seed uint64, prefix string, start time.Time, span time.Duration, total, badEvery int64) *clickGen {
	return &clickGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), prefix: prefix, start: start,
		span: span, total: total, badEvery: badEvery}
}

// next returns the next record value (valid until the next call) and, for a
// bad record, its kind.
func (g *clickGen) next() ([]byte, string) {
	g.seq++
	if g.badEvery > 0 && g.seq%g.badEvery == 0 {
		kind := badKinds[(g.seq/g.badEvery)%int64(len(badKinds))]
		return g.bad(kind), kind
	}
	return g.good(true, true), ""
}

func (g *clickGen) eventTime() time.Time {
	if g.total == 0 {
		return time.Now().Add(-time.Duration(g.rng.IntN(5000)) * time.Millisecond)
	}
	t := g.start.Add(time.Duration(float64(g.span) * float64(g.seq) / float64(g.total)))
	// Up to a minute out of order, as real clients deliver.
	return t.Add(-time.Duration(g.rng.IntN(60_000)) * time.Millisecond)
}

func (g *clickGen) good(withID, withTime bool) []byte {
	r := g.rng
	b := g.buf[:0]
	b = append(b, '{')
	if withID {
		b = append(b, `"event_id":"`...)
		b = append(b, g.prefix...)
		b = append(b, '-')
		b = strconv.AppendInt(b, g.seq, 10)
		b = append(b, `",`...)
	}
	user := int64(1 + r.IntN(1000)*r.IntN(1000))
	b = append(b, `"user_id":`...)
	b = strconv.AppendInt(b, user, 10)
	if withTime {
		b = append(b, `,"event_time":"`...)
		b = g.eventTime().UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, '"')
	}
	et := eventTypes.pick(r)
	b = append(b, `,"event_type":"`...)
	b = append(b, et...)
	b = append(b, `","page":"`...)
	page := pages[r.IntN(len(pages))]
	b = append(b, page...)
	if page == "/product/" {
		b = strconv.AppendInt(b, int64(r.IntN(50000)), 10)
	}
	b = append(b, `","referrer":"`...)
	b = append(b, referrers[r.IntN(len(referrers))]...)
	b = append(b, `","device":"`...)
	b = append(b, devices.pick(r)...)
	b = append(b, `","country":"`...)
	b = append(b, countries.pick(r)...)
	b = append(b, `","duration_ms":`...)
	b = strconv.AppendInt(b, int64(r.IntN(120_000)), 10)
	b = append(b, `,"amount":`...)
	if et == "purchase" {
		cents := 99 + r.IntN(50000)
		b = strconv.AppendInt(b, int64(cents/100), 10)
		b = append(b, '.')
		if cents%100 < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, int64(cents%100), 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"session_id":"s-`...)
	b = strconv.AppendUint(b, uint64(user)*7919+uint64(g.seq/50), 36)
	b = append(b, `","is_new_user":`...)
	b = strconv.AppendBool(b, r.IntN(10) == 0)
	b = append(b, '}')
	g.buf = b
	return b
}

func (g *clickGen) bad(kind string) []byte {
	switch kind {
	case "malformed_json":
		v := g.good(true, true)
		return v[:len(v)/2]
	case "wrong_type":
		v := g.good(true, true)
		i := bytes.LastIndex(v, []byte(`"is_new_user":`))
		return append(v[:i], `"is_new_user":"maybe"}`...)
	case "missing_required":
		return g.good(false, true)
	case "oversized":
		v := g.good(true, true)
		pad := make([]byte, 0, 128<<10)
		pad = append(pad, `{"padding":"`...)
		for range 120 << 10 {
			pad = append(pad, 'x')
		}
		pad = append(pad, `",`...)
		return append(pad, v[1:]...)
	case "binary_garbage":
		b := make([]byte, 64+g.rng.IntN(200))
		for i := range b {
			b[i] = byte(g.rng.Uint32())
		}
		return b
	case "missing_event_time":
		return g.good(true, false)
	}
	return nil
}
