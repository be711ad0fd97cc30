package tasks

import (
	"sync"
	"time"
)

// rateWindow is how far back the rates in QueueStats look.
const rateWindow = 60

// meter counts events per second over the last minute. The figures are
// this engine's: in a cluster each node counts what it handled.
type meter struct {
	mu      sync.Mutex // guards buckets, at
	buckets [rateWindow]int
	at      int64 // unix second of the newest bucket
}

func (m *meter) add(now time.Time, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now.Unix())
	m.buckets[m.at%rateWindow] += n
}

// advance clears the buckets between the newest one and sec.
func (m *meter) advance(sec int64) {
	if sec <= m.at {
		return
	}
	for s := max(m.at+1, sec-rateWindow+1); s <= sec; s++ {
		m.buckets[s%rateWindow] = 0
	}
	m.at = sec
}

// rate is the events per second over the last minute.
func (m *meter) rate(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now.Unix())
	total := 0
	for _, n := range m.buckets {
		total += n
	}
	return float64(total) / rateWindow
}

// meters are a queue's rates.
type meters struct {
	enqueued, done, failed meter
}
