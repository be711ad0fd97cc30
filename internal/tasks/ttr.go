package tasks

import (
	"container/heap"
	"time"
)

// TTRs. Every reservation's deadline is in one heap per service, and one
// timer fires for the earliest. A timer per reservation (time.AfterFunc)
// cost three allocations and a runtime timer-heap insertion and removal
// on every reserve; here a reserve pushes onto a small heap (one entry
// per task reserved) and touches the timer only when its deadline is
// earlier than the one armed. A reservation that ends early is taken out
// of the heap but the timer is left armed: when it fires with nothing due
// it re-arms for the earliest deadline, so a worker reserving and
// deleting in a loop costs about one timer firing per TTR, not one timer
// per task.

// ttrHeap orders reservations by deadline, earliest first.
type ttrHeap []*reservation

func (h ttrHeap) Len() int           { return len(h) }
func (h ttrHeap) Less(a, b int) bool { return h[a].deadline.Before(h[b].deadline) }
func (h ttrHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].tidx, h[b].tidx = a, b
}
func (h *ttrHeap) Push(x any) {
	r := x.(*reservation)
	r.tidx = len(*h)
	*h = append(*h, r)
}
func (h *ttrHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.tidx = -1
	return r
}

// ttrs is the service's TTR clock. Guarded by Service.mu.
type ttrs struct {
	h     ttrHeap
	timer *time.Timer // fires expireDue; nil until the first reservation
	at    time.Time   // when timer is armed to fire; zero when not armed
}

// startTTR puts r (its deadline set) on the clock. Caller holds s.mu.
func (s *Service) startTTR(r *reservation) {
	heap.Push(&s.ttr.h, r)
	s.armTTR(r.deadline)
}

// stopTTR takes r off the clock. Caller holds s.mu.
func (s *Service) stopTTR(r *reservation) {
	if r.tidx >= 0 {
		heap.Remove(&s.ttr.h, r.tidx)
	}
}

// touchTTR gives r a fresh TTR from now. Caller holds s.mu.
func (s *Service) touchTTR(r *reservation) {
	r.deadline = time.Now().Add(r.j.ttr)
	if r.tidx >= 0 {
		heap.Fix(&s.ttr.h, r.tidx)
	}
	s.armTTR(r.deadline)
}

// armTTR makes sure the timer fires no later than d. Caller holds s.mu.
func (s *Service) armTTR(d time.Time) {
	c := &s.ttr
	switch {
	case c.timer == nil:
		c.timer = time.AfterFunc(time.Until(d), s.expireDue)
	case c.at.IsZero() || d.Before(c.at):
		c.timer.Reset(time.Until(d))
	default:
		return // armed for earlier: it re-arms when it fires
	}
	c.at = d
}

// expireDue runs when the timer fires: every reservation whose TTR has
// ended gives its task back, earliest first, and the timer is armed for
// the next deadline.
func (s *Service) expireDue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.ttr
	c.at = time.Time{}
	now := time.Now()
	for len(c.h) > 0 && !c.h[0].deadline.After(now) {
		heap.Pop(&c.h).(*reservation).expire()
	}
	if len(c.h) > 0 {
		s.armTTR(c.h[0].deadline)
	}
}
