package tasks

import (
	"sync"
	"time"

	"pier/internal/store"
)

// prefetchBatch is how many ready messages one fetch may take at once. The
// surplus waits in the queue's buffer for the next reserve, so a busy queue
// costs one fetch per batch instead of one per task.
const prefetchBatch = 32

// prefetch holds a queue's fetched, not yet reserved messages. The
// consumer's ack wait runs for them already: a message older than a third
// of it goes back (nak) instead of out, so it is never handed out after
// the server could have delivered it again.
type prefetch struct {
	fetch    sync.Mutex // held by the one reserve fetching for the queue; taken before mu
	mu       sync.Mutex // guards items, sweeping
	items    []fetched
	sweeping bool
}

type fetched struct {
	d  *store.Delivery
	at time.Time
}

// next returns a ready message of q: from its buffer, else from a batch
// fetched without waiting, else from a fetch of one that waits up to wait.
// It returns nil when nothing came in time.
func (s *Service) next(q *queue, wait time.Duration) (*store.Delivery, error) {
	if d := s.pop(q); d != nil {
		return d, nil
	}
	// One batch fetch at a time: concurrent reserves wait for it and share
	// its batch instead of each asking the server. Waiting for a task to
	// arrive happens outside the lock, each reserve with its own timeout.
	q.pre.fetch.Lock()
	if d := s.pop(q); d != nil {
		q.pre.fetch.Unlock()
		return d, nil
	}
	var got []*store.Delivery
	collect := func(d *store.Delivery) { got = append(got, d) }
	err := q.cons.Fetch(prefetchBatch, 0, collect)
	q.pre.fetch.Unlock()
	if err != nil {
		return nil, err
	}
	if len(got) == 0 && wait > 0 {
		if err := q.cons.Fetch(1, wait, collect); err != nil {
			return nil, err
		}
	}
	if len(got) == 0 {
		return nil, nil
	}
	if len(got) > 1 {
		s.stash(q, got[1:])
	}
	return got[0], nil
}

func (s *Service) fresh() time.Duration { return s.opts.AckWait / 3 }

// pop takes the oldest fresh message from q's buffer.
func (s *Service) pop(q *queue) *store.Delivery {
	var stale []*store.Delivery
	defer func() {
		for _, d := range stale {
			d.Nak(0)
		}
	}()
	q.pre.mu.Lock()
	defer q.pre.mu.Unlock()
	for len(q.pre.items) > 0 {
		f := q.pre.items[0]
		q.pre.items = q.pre.items[1:]
		if time.Since(f.at) < s.fresh() {
			return f.d
		}
		stale = append(stale, f.d)
	}
	return nil
}

// stash keeps fetched messages for later reserves and makes sure a sweep
// will hand back any left unused.
func (s *Service) stash(q *queue, ds []*store.Delivery) {
	now := time.Now()
	q.pre.mu.Lock()
	for _, d := range ds {
		q.pre.items = append(q.pre.items, fetched{d, now})
	}
	arm := !q.pre.sweeping
	q.pre.sweeping = true
	q.pre.mu.Unlock()
	if arm {
		time.AfterFunc(s.fresh(), func() { s.sweep(q) })
	}
}

// sweep hands back buffered messages that are no longer fresh.
func (s *Service) sweep(q *queue) {
	var stale []*store.Delivery
	q.pre.mu.Lock()
	keep := q.pre.items[:0]
	for _, f := range q.pre.items {
		if time.Since(f.at) >= s.fresh()*9/10 {
			stale = append(stale, f.d)
		} else {
			keep = append(keep, f)
		}
	}
	q.pre.items = keep
	again := len(keep) > 0
	q.pre.sweeping = again
	q.pre.mu.Unlock()
	for _, d := range stale {
		d.Nak(0)
	}
	if again {
		time.AfterFunc(s.fresh()/2, func() { s.sweep(q) })
	}
}

// unstash drops the message at seq from q's buffer (it was deleted).
func (s *Service) unstash(q *queue, seq uint64) {
	q.pre.mu.Lock()
	defer q.pre.mu.Unlock()
	for i, f := range q.pre.items {
		if f.d.Seq == seq {
			q.pre.items = append(q.pre.items[:i], q.pre.items[i+1:]...)
			return
		}
	}
}
