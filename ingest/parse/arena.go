package parse

// arena hands out byte slices that stay valid until reset. Strings and binary
// values are copied out of the parser's buffer, which the next record
// overwrites, into the arena, and rows point into it until they are written.
//
// It grows by whole chunks and never moves bytes it has handed out: appending
// to one growing slice would reallocate and leave the rows decoded earlier
// pointing at a stale copy.
type arena struct {
	chunks [][]byte // chunks[:cur+1] are in use; later ones are spares
	cur    int
}

const (
	arenaChunk = 64 << 10
	// arenaLarge is the size above which a value gets its own allocation
	// rather than wasting the tail of a chunk.
	arenaLarge = arenaChunk / 4
	// arenaKeep is how many chunks reset keeps for reuse (4 MiB), so that one
	// batch of huge records does not pin its memory for the decoder's life.
	arenaKeep = 64
)

// alloc returns n bytes, not zeroed, that nothing else refers to.
func (a *arena) alloc(n int) []byte {
	if n == 0 {
		return nil
	}
	if n > arenaLarge {
		return make([]byte, n)
	}
	if len(a.chunks) == 0 {
		a.chunks = append(a.chunks, make([]byte, 0, arenaChunk))
	}
	c := a.chunks[a.cur]
	if cap(c)-len(c) < n {
		a.cur++
		if a.cur == len(a.chunks) {
			a.chunks = append(a.chunks, make([]byte, 0, arenaChunk))
		}
		c = a.chunks[a.cur][:0]
	}
	end := len(c) + n
	a.chunks[a.cur] = c[:end]
	return c[len(c):end:end]
}

// arenaMark is a position in the arena to roll back to.
type arenaMark struct{ cur, len int }

func (a *arena) mark() arenaMark {
	if len(a.chunks) == 0 {
		return arenaMark{}
	}
	return arenaMark{a.cur, len(a.chunks[a.cur])}
}

// rollback frees what was allocated since m. Only the record being decoded
// may have used that memory, and it failed, so no row refers to it.
func (a *arena) rollback(m arenaMark) {
	if len(a.chunks) == 0 {
		return
	}
	for i := m.cur + 1; i <= a.cur; i++ {
		a.chunks[i] = a.chunks[i][:0]
	}
	a.cur = m.cur
	a.chunks[a.cur] = a.chunks[a.cur][:m.len]
}

// reset frees everything allocated so far.
func (a *arena) reset() {
	for i := 0; i <= a.cur && i < len(a.chunks); i++ {
		a.chunks[i] = a.chunks[i][:0]
	}
	if len(a.chunks) > arenaKeep {
		clear(a.chunks[arenaKeep:])
		a.chunks = a.chunks[:arenaKeep]
	}
	a.cur = 0
}
