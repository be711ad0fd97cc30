package logs

import "sync"

// buffer holds the lines a drain has not delivered yet, up to a bound;
// beyond it the oldest go and are counted. Lines are numbered so that a
// sender can take a batch, try it for as long as it needs, and then
// commit it even if older lines were dropped meanwhile.
type buffer struct {
	max    int
	notify chan struct{} // gets a value when a line is pushed

	mu      sync.Mutex // guards lines, first, dropped
	lines   []Line
	first   uint64 // the number of lines[0]
	dropped uint64
}

func newBuffer(max int) *buffer {
	return &buffer{max: max, notify: make(chan struct{}, 1)}
}

// push adds a line, dropping the oldest one when full. It never blocks.
func (b *buffer) push(l Line) {
	b.mu.Lock()
	if len(b.lines) >= b.max {
		b.lines[0] = Line{}
		b.lines = b.lines[1:]
		b.first++
		b.dropped++
	}
	b.lines = append(b.lines, l)
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// peek returns a copy of up to n of the oldest lines and the number
// following the last of them, for commit.
func (b *buffer) peek(n int) ([]Line, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, len(b.lines))
	return append([]Line(nil), b.lines[:n]...), b.first + uint64(n)
}

// commit forgets the lines numbered below upTo (delivered).
func (b *buffer) commit(upTo uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if upTo <= b.first {
		return
	}
	n := min(int(upTo-b.first), len(b.lines))
	clear(b.lines[:n])
	b.lines = b.lines[n:]
	b.first += uint64(n)
	if len(b.lines) == 0 {
		b.lines = nil // let the backing array go
	}
}

// size returns how many lines wait and how many were dropped so far.
func (b *buffer) size() (waiting int, dropped uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.lines), b.dropped
}
