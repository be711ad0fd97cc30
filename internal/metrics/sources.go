package metrics

import (
	"context"
	"slices"
	"time"
)

// QueueSource tells the collector about every app's task queues. The
// engine adapts the tasks service to it.
type QueueSource interface {
	// QueueSamples returns the current figures of every queue of every
	// app. It may take a store round trip per queue: the collector calls
	// it once per window, with a deadline.
	QueueSamples(ctx context.Context) ([]QueueSample, error)
}

// QueueSample is one queue's figures at one moment.
type QueueSample struct {
	App, Queue                     string
	Ready, Delayed, Reserved, Dead int
	// Per second, as the tasks service measures them (over its last
	// minute): tasks enqueued, done, and failed.
	Enqueued, Done, Failed float64
}

// ErrorSource tells the collector how many error events each app has
// reported. The engine adapts the error tracker to it.
type ErrorSource interface {
	// ErrorEvents returns, per app, a count that grows by one with each
	// error event. The collector keeps its increases: a count that falls
	// (issues leaving by retention) only sets a new baseline.
	ErrorEvents() map[string]int64
}

// sourceTimeout bounds the collector's reads of the sources, so a slow
// store delays one window's queue figures and not the collector.
const sourceTimeout = 5 * time.Second

// QueuePoint is what one queue looked like at the end of a window (1 min
// beyond the last hour: depths at the minute's end, rates averaged).
type QueuePoint struct {
	T                              int64 // end of the window, Unix seconds
	Ready, Delayed, Reserved, Dead uint32
	Enqueued, Done, Failed         float32 // per second
}

func (p QueuePoint) time() int64 { return p.T }

// merge folds the next window of the same minute into p.
func (p QueuePoint) merge(q QueuePoint) QueuePoint {
	p.Ready, p.Delayed, p.Reserved, p.Dead = q.Ready, q.Delayed, q.Reserved, q.Dead
	p.Enqueued += q.Enqueued
	p.Done += q.Done
	p.Failed += q.Failed
	return p
}

// closed is the minute's point, from the merge of its n windows.
func (p QueuePoint) closed(n int, t int64) QueuePoint {
	p.T = t
	p.Enqueued /= float32(n)
	p.Done /= float32(n)
	p.Failed /= float32(n)
	return p
}

// ErrorPoint is how many error events an app reported in one window.
type ErrorPoint struct {
	T      int64 // end of the window, Unix seconds
	Events uint32
}

func (p ErrorPoint) time() int64 { return p.T }

func (p ErrorPoint) merge(q ErrorPoint) ErrorPoint {
	p.Events += q.Events
	return p
}

func (p ErrorPoint) closed(_ int, t int64) ErrorPoint {
	p.T = t
	return p
}

// minutePoint is a point a rollup can fold into 1 min points.
type minutePoint[P any] interface {
	timed
	merge(P) P
	closed(n int, t int64) P
}

// rollup is a history of 10 s points for the last hour and 1 min points
// for 24 h, like series, for figures without a latency distribution.
type rollup[P minutePoint[P]] struct {
	fine, coarse ring[P]
	acc          P     // the minute being built
	accKey       int64 // its minute (Unix seconds / 60), 0 = none
	accN         int   // 10 s points in acc
}

func newRollup[P minutePoint[P]]() *rollup[P] {
	return &rollup[P]{fine: newRing[P](fineCap), coarse: newRing[P](coarseCap)}
}

func (s *rollup[P]) add(p P) {
	s.fine.add(p)
	key := (p.time() - 1) / 60 // the window (T-10, T] lies in this minute
	if s.accKey != 0 && key != s.accKey {
		s.flush()
	}
	if s.accKey == 0 {
		s.accKey = key
	}
	if s.accN == 0 {
		s.acc = p
	} else {
		s.acc = s.acc.merge(p)
	}
	s.accN++
}

func (s *rollup[P]) flush() {
	if s.accN == 0 {
		return
	}
	s.coarse.add(s.acc.closed(s.accN, (s.accKey+1)*60))
	var zero P
	s.acc, s.accN, s.accKey = zero, 0, 0
}

// points returns the points after t: 10 s ones when t is within the last
// hour, else 1 min ones.
func (s *rollup[P]) points(t, now int64) []P {
	if now-t <= int64(FineSpan/time.Second) {
		return s.fine.since(t, nil)
	}
	return s.coarse.since(t, nil)
}

type queueKey struct{ app, queue string }

// sources is what the collector keeps of the queue and error sources.
// Owned by Collect, under Metrics.histMu.
type sources struct {
	queues     map[queueKey]*rollup[QueuePoint]
	lastQueues []QueueSample // the last window's samples, for Prometheus
	errors     map[string]*rollup[ErrorPoint]
	errPrev    map[string]int64  // the source's count at the last window
	errRead    bool              // errPrev holds a reading
	errTotal   map[string]uint64 // events counted since the engine started
}

func newSources() sources {
	return sources{
		queues:   map[queueKey]*rollup[QueuePoint]{},
		errors:   map[string]*rollup[ErrorPoint]{},
		errPrev:  map[string]int64{},
		errTotal: map[string]uint64{},
	}
}

// readSources asks the sources for this window's figures, before Collect
// takes its lock. ok is false when the queue source failed: its series
// then get no point rather than a false zero.
func (m *Metrics) readSources() (qs []QueueSample, qok bool, errs map[string]int64) {
	ctx, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	if m.queueSrc != nil {
		var err error
		if qs, err = m.queueSrc.QueueSamples(ctx); err != nil {
			m.log.Warn("read task queues", "err", err)
		} else {
			qok = true
		}
	}
	if m.errorSrc != nil {
		errs = m.errorSrc.ErrorEvents()
	}
	return qs, qok, errs
}

// collect appends this window's queue and error points, but for the apps
// stale says were forgotten since the figures were read. Called by Collect
// under histMu.
func (s *sources) collect(now int64, qs []QueueSample, qok bool, errs map[string]int64, stale func(app string) bool) {
	if qok {
		qs = slices.DeleteFunc(slices.Clone(qs), func(q QueueSample) bool { return stale(q.App) })
		seen := make(map[queueKey]bool, len(qs))
		for _, q := range qs {
			k := queueKey{q.App, q.Queue}
			seen[k] = true
			r := s.queues[k]
			if r == nil {
				r = newRollup[QueuePoint]()
				s.queues[k] = r
			}
			r.add(QueuePoint{T: now, Ready: u32(q.Ready), Delayed: u32(q.Delayed), Reserved: u32(q.Reserved), Dead: u32(q.Dead),
				Enqueued: float32(q.Enqueued), Done: float32(q.Done), Failed: float32(q.Failed)})
		}
		for k := range s.queues {
			if !seen[k] {
				delete(s.queues, k) // the queue is gone
			}
		}
		s.lastQueues = qs
	}
	if errs != nil {
		for app, n := range errs {
			if stale(app) {
				continue
			}
			// The first reading is a baseline: the counts include events
			// from before this engine started. An app that appears later
			// had no count, so all of its count is new.
			prev, known := s.errPrev[app]
			s.errPrev[app] = n
			var d uint32
			if (known || s.errRead) && n > prev {
				d = uint32(min(n-prev, int64(^uint32(0))))
			}
			s.errTotal[app] += uint64(d)
			r := s.errors[app]
			if r == nil {
				r = newRollup[ErrorPoint]()
				s.errors[app] = r
			}
			r.add(ErrorPoint{T: now, Events: d})
		}
		for app, r := range s.errors {
			if _, ok := errs[app]; !ok {
				r.add(ErrorPoint{T: now}) // no count: no events
				delete(s.errPrev, app)    // its issues are gone: a new count starts at 0
			}
		}
		s.errRead = true
	}
}

// baseline takes errs as the counts new events are counted from.
func (s *sources) baseline(errs map[string]int64) {
	if errs == nil {
		return
	}
	for app, n := range errs {
		s.errPrev[app] = n
	}
	s.errRead = true
}

// forget drops app's queue and error history.
func (s *sources) forget(app string) {
	for k := range s.queues {
		if k.app == app {
			delete(s.queues, k)
		}
	}
	delete(s.errors, app)
	delete(s.errPrev, app)
	delete(s.errTotal, app)
	kept := s.lastQueues[:0:0]
	for _, q := range s.lastQueues {
		if q.App != app {
			kept = append(kept, q)
		}
	}
	s.lastQueues = kept
}

func u32(n int) uint32 { return uint32(max(0, min(n, int(^uint32(0))))) }
