package tasks

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"

	"pier/internal/store"
)

// A task's stats-job counters (reserves, timeouts, releases, buries,
// kicks) are written into its message each time it is stored (Pier-Counts).
// Those that change while it stays ready or reserved — a reserve that ends
// in a release, a timeout or the connection closing — are kept as follows:
//
//   - when such a task is ready again with counters unlike those stored,
//     it is noted (noteCounts, under s.mu), and a recCounts journal record
//     with its counters is written soon after, outside the lock
//     (runCounts; Close writes the last ones before the final drain);
//   - the drain stores the counters of the tasks still there in the KV
//     bucket "taskcounts" under the task id, as "<seq> <counts>": the
//     stream message they go with (drainCounts), and removes the entry of
//     a task deleted;
//   - at start, entries whose message is the task's message are applied to
//     the index; the others are left from tasks deleted or stored again
//     since (with their counters in the headers) and are removed
//     (loadCounts); journal records an engine left are applied to the
//     bucket in replay (replayCounts).
//
// A reserve alone writes nothing (as beanstalkd, whose binlog does not
// record reserves): a task reserved when the engine is killed comes back
// with the reserve counted only if it was released, timed out or handed
// back before the kill.

// countsBucket is the KV bucket of counters.
const countsBucket = "taskcounts"

// noteCounts queues j for a counters record when they differ from those
// stored. Caller holds s.mu.
func (s *Service) noteCounts(j *job) {
	if j.counts == j.saved || j.dirty || j.gone {
		return
	}
	j.dirty = true
	s.dirty = append(s.dirty, j)
	select {
	case s.countsKick <- struct{}{}:
	default:
	}
}

// runCounts writes the records noteCounts asks for until ctx ends.
func (s *Service) runCounts(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("task counters crashed", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.countsKick:
		}
		s.flushCounts()
	}
}

// flushCounts journals the counters of the tasks noted.
func (s *Service) flushCounts() {
	s.mu.Lock()
	js := s.dirty
	s.dirty = nil
	rs := make([]record, 0, len(js))
	for _, j := range js {
		j.dirty = false
		if j.gone {
			continue
		}
		rs = append(rs, record{kind: recCounts, id: j.id, app: j.q.app, queue: j.q.name, body: []byte(j.counts.encode()), j: j})
	}
	s.mu.Unlock()
	for _, r := range rs {
		if err := s.jl.append(r); err != nil {
			s.log.Warn("journal a task's counters", "id", r.id, "err", err)
		}
	}
}

// countsValue is a bucket entry: the message seq the counters go with.
func countsValue(seq uint64, c jobCounts) []byte {
	return []byte(strconv.FormatUint(seq, 10) + " " + c.encode())
}

func parseCountsValue(b []byte) (uint64, jobCounts, bool) {
	seqText, counts, ok := strings.Cut(string(b), " ")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if !ok || err != nil {
		return 0, jobCounts{}, false
	}
	return seq, decodeCounts(counts), true
}

// drainCounts stores the counters of the tasks of rs's counters records
// that are still there, and removes those of its deleted tasks. It is
// idempotent: the drain calls it again after a failure.
func (s *Service) drainCounts(ctx context.Context, rs []queued) error {
	type put struct {
		j   *job
		seq uint64
		c   jobCounts
	}
	var (
		puts []put
		dels []uint64
		seen map[*job]bool
	)
	s.mu.Lock()
	for i := range rs {
		r := &rs[i]
		j := r.j
		switch {
		case r.kind == recDelete && j.countsKey:
			j.countsKey = false
			dels = append(dels, j.id)
		case r.kind == recCounts && !j.gone && j.seq != 0 && j.counts != j.saved && !seen[j]:
			if seen == nil {
				seen = map[*job]bool{}
			}
			seen[j] = true
			puts = append(puts, put{j, j.seq, j.counts})
		}
	}
	s.mu.Unlock()
	for _, p := range puts {
		if _, err := s.counts.Put(ctx, strconv.FormatUint(p.j.id, 10), countsValue(p.seq, p.c)); err != nil {
			return fmt.Errorf("tasks: store the counters of task %d: %w", p.j.id, err)
		}
		s.mu.Lock()
		p.j.saved, p.j.countsKey = p.c, true
		gone := p.j.gone
		s.mu.Unlock()
		if gone {
			dels = append(dels, p.j.id) // deleted meanwhile: its delete may have been drained
		}
	}
	for _, id := range dels {
		if err := s.counts.Delete(ctx, strconv.FormatUint(id, 10)); err != nil {
			return fmt.Errorf("tasks: remove the counters of task %d: %w", id, err)
		}
	}
	return nil
}

// loadCounts applies the stored counters to the tasks just loaded and
// removes the entries left by tasks gone or stored again.
func (s *Service) loadCounts(ctx context.Context) error {
	keys, err := s.counts.Keys(ctx, "")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	applied := 0
	for _, k := range keys {
		id, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			continue
		}
		e, err := s.counts.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		seq, c, ok := parseCountsValue(e.Value)
		s.mu.Lock()
		j := s.jobs[id]
		current := ok && j != nil && j.seq == seq
		if current {
			// Counters only grow: the larger of each is the later (an
			// index snapshot may hold later ones than the bucket).
			c = jobCounts{max(c.reserves, j.counts.reserves), max(c.timeouts, j.counts.timeouts),
				max(c.releases, j.counts.releases), max(c.buries, j.counts.buries), max(c.kicks, j.counts.kicks)}
			j.counts, j.saved, j.countsKey = c, c, true
		}
		s.mu.Unlock()
		if current {
			applied++
			continue
		}
		if err := s.counts.Delete(ctx, k); err != nil {
			return err
		}
	}
	if len(keys) > 0 {
		s.log.Debug("task counters loaded", "applied", applied, "entries", len(keys))
	}
	return nil
}

// replayCounts applies the last counters journaled for each task not
// deleted (counted) to the bucket, with the task's ready message.
func (s *Service) replayCounts(ctx context.Context, counted map[uint64]record, deleted map[uint64]bool, drained *drainedIndex) error {
	for id, r := range counted {
		if deleted[id] {
			continue
		}
		var seq uint64
		m, err := s.q.Last(ctx, fmt.Sprintf("tasks.%s.%s.*.%d", r.app, r.queue, id))
		switch {
		case err == nil:
			if t := taskFrom(m); t.State != StateReady {
				continue // stored since as delayed or buried, counters in its headers
			}
			seq = m.Seq
		case errors.Is(err, store.ErrNotFound):
			if seq, err = drained.seq(ctx, r.app, r.queue, id); err != nil {
				return err
			}
		default:
			return err
		}
		if seq == 0 {
			continue
		}
		if _, err := s.counts.Put(ctx, strconv.FormatUint(id, 10), countsValue(seq, decodeCounts(string(r.body)))); err != nil {
			return err
		}
	}
	return nil
}
