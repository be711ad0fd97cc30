package tasks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"pier/internal/store"
)

// drainBatch bounds how many journal records one round of the drain
// stores at once (JetStream's outstanding asynchronous publishes).
const drainBatch = 1000

// drainEvery spaces the drain's rounds (when no barrier waits): a round
// takes every record at least DrainDelay old, so rounds this far apart
// take this long a stretch of records each. Without it the drain ran a
// round whenever the next record came of age — under a steady load a
// round of a few records every millisecond — and each round's purge of
// deleted tasks costs JetStream a walk of the queue's stored subjects:
// measured under bench/tasks, purges were a quarter of the engine's CPU.
const drainEvery = 100 * time.Millisecond

// drainState is the drain's progress, for barriers.
type drainState struct {
	mu      sync.Mutex // guards done, changed
	done    uint64     // records drained
	changed chan struct{}
	// purgeTook is how long the last round's purges took, 0 when it had
	// none (the drain's goroutine's own: see roundSpacing).
	purgeTook time.Duration
}

// purgeShare: the drain's rounds are spaced so that their purges take at
// most 1/purgeShare of the time (see roundSpacing).
const purgeShare = 10

// roundSpacing is the least time between two rounds of the drain:
// drainEvery, or longer when the last round's purges took more than a
// tenth of that. A purge walks every subject its queue holds in the
// stream (JetStream's PurgeEx with a wildcard filter visits each stored
// subject that matches, whatever the sequence bound), so its cost grows
// with the backlog, not with the tasks deleted: with 100,000 tasks stored
// each on a subject of its own (before drainedSubject), purges every
// drainEvery took a seventh of the engine's CPU while workers reserved and
// deleted them. The spacing never passes the drain delay,
// which bounds how far the stream lags behind the journal (records wait
// in the journal meanwhile: durability does not change).
func (s *Service) roundSpacing(delay time.Duration) time.Duration {
	base := min(drainEvery, delay)
	return max(base, min(purgeShare*s.dr.purgeTook, max(delay, base)))
}

// runDrain stores journaled puts and deletes in the stream, in journal
// order, each once it is Options.DrainDelay old (at once when a barrier
// waits), until ctx ends; then it drains what is left.
func (s *Service) runDrain(ctx context.Context, stopped chan<- struct{}) {
	defer close(stopped)
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("task drain crashed", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	var left []queued // taken from the journal, not stored yet
	final := func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if left = s.drainOnce(fctx, left, time.Time{}); len(left) > 0 {
			s.log.Warn("journaled tasks left for the next start", "records", len(left))
		}
		s.jl.close(len(left) == 0)
	}
	delay := s.opts.DrainDelay
	var lastRound time.Time
	for {
		all := false
		select {
		case <-s.jl.kick:
		case <-s.jl.urgent:
			all = true
		case <-ctx.Done():
			final()
			return
		}
		if oldest := s.jl.oldestAt(); !all && !oldest.IsZero() && delay > 0 {
			wait := max(delay-time.Since(oldest), s.roundSpacing(delay)-time.Since(lastRound))
			if wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-s.jl.urgent:
					all = true
				case <-ctx.Done():
					t.Stop()
					final()
					return
				}
				t.Stop()
			}
		}
		cutoff := time.Time{}
		if !all && delay > 0 {
			cutoff = time.Now().Add(-delay)
		}
		left = s.drainOnce(ctx, left, cutoff)
		lastRound = time.Now()
		if !s.jl.oldestAt().IsZero() {
			select { // more to come: look again
			case s.jl.kick <- struct{}{}:
			default:
			}
		}
	}
}

// drainOnce stores left and the journal's records up to cutoff, retrying
// until done or ctx ends; it returns what is left then (still in the
// journal files, which stay), empty when all is stored.
func (s *Service) drainOnce(ctx context.Context, left []queued, cutoff time.Time) []queued {
	batch, upto := s.jl.take(left, cutoff)
	for len(batch) > 0 {
		err := s.drainRecords(ctx, batch)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return batch
		}
		s.log.Warn("store journaled tasks; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	s.dr.mu.Lock()
	s.dr.done = max(s.dr.done, upto)
	close(s.dr.changed)
	s.dr.changed = make(chan struct{})
	s.dr.mu.Unlock()
	s.jl.removeBefore(s.jl.oldest())
	// Nothing left: the batch's array is reused by the next round
	// (cleared: the records hold jobs and bodies), unless a burst made it
	// big.
	if cap(batch) > drainKeep {
		return nil
	}
	clear(batch)
	return batch[:0]
}

// drainKeep bounds the records' array the drain keeps between rounds:
// a round takes about drainEvery's worth of records (10,000 at 100,000
// a second).
const drainKeep = 1 << 15

// drainRecords stores rs: first the puts (skipping tasks already deleted
// or dropped: nothing to store), drainBatch at a time, then the deletes
// (of what was stored), one purge per queue for the whole of rs.
// It returns an error when something is left to do; done records are
// marked and not done twice.
func (s *Service) drainRecords(ctx context.Context, rs []queued) error {
	var (
		msgs []store.PutMsg
		jobs []*job
		sent *drainedIndex
	)
	s.mu.Lock()
	for i := range rs {
		r := &rs[i]
		if r.kind != recPut || r.j.seq != 0 || r.j.gone {
			continue
		}
		if r.sent {
			// Sent before without an answer: stored or not?
			if sent == nil {
				sent = newDrainedIndex(s.q)
			}
			s.mu.Unlock()
			seq, err := sent.seq(ctx, r.j.q.app, r.j.q.name, r.id)
			s.mu.Lock()
			if err != nil {
				s.mu.Unlock()
				return err
			}
			if seq != 0 {
				s.setSeq(r.j, seq)
				continue
			}
		}
		r.sent, r.j.sent = true, true
		jobs = append(jobs, r.j)
		// A journaled put's body is in its job until it is stored
		// (keepBody drops only those of stored tasks).
		msgs = append(msgs, store.PutMsg{Subject: drainedSubject(r.j.q.app, r.j.q.name, r.id), Data: r.j.body, Header: r.j.header()})
	}
	s.mu.Unlock()
	var first error
	seqs := make([]uint64, min(len(msgs), drainBatch))
	for len(msgs) > 0 {
		n := min(len(msgs), drainBatch)
		clear(seqs)
		// Once sent, a put may be stored whatever happens next: its
		// acknowledgement is waited for even when the service stops.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		first = s.q.PutAll(pctx, msgs[:n], seqs[:n])
		cancel()
		s.mu.Lock()
		for i, j := range jobs[:n] {
			if seqs[i] != 0 {
				s.setSeq(j, seqs[i])
			}
		}
		s.mu.Unlock()
		if first != nil {
			return first
		}
		msgs, jobs = msgs[n:], jobs[n:]
	}
	// Deletes. A queue's deleted tasks on r.* below its lowest live one
	// go in one purge (the usual case: tasks are done roughly in the
	// order they came); the others one request each, a few at a time.
	type purge struct {
		q     *queue
		below uint64 // the queue's lowest live sequence: the purge's bound
		most  uint64 // the highest deleted sequence under it
	}
	var (
		purges = map[*queue]*purge{}
		single []*queued
		done   []uint64
	)
	s.mu.Lock()
	canPurge := s.storing == 0
	for i := range rs {
		r := &rs[i]
		if r.kind != recDelete || r.seq == ^uint64(0) {
			continue
		}
		seq := r.j.seq
		if seq == 0 {
			// Its put was never stored.
			r.seq = ^uint64(0)
			if r.tombed {
				done = append(done, r.id)
			}
			continue
		}
		r.seq = seq
		if canPurge && r.j.onR {
			p := purges[r.j.q]
			if p == nil {
				p = &purge{q: r.j.q, below: r.j.q.lowestLive()}
				purges[r.j.q] = p
			}
			if seq < p.below {
				p.most = max(p.most, seq)
				continue
			}
		}
		single = append(single, r)
	}
	s.mu.Unlock()
	var mu sync.Mutex // guards first, done
	purgeStart, purged := time.Now(), false
	for _, p := range purges {
		if p.most == 0 {
			continue
		}
		purged = true
		err := s.q.PurgeBelow(ctx, "tasks."+p.q.app+"."+p.q.name+".r.*", min(p.below, p.most+1))
		if err != nil {
			// Left for the next round, one by one.
			first = err
			continue
		}
		for i := range rs {
			r := &rs[i]
			if r.kind == recDelete && r.seq != ^uint64(0) && r.j.q == p.q && r.j.onR && r.seq <= p.most {
				r.seq = ^uint64(0)
				done = append(done, r.id)
			}
		}
	}
	s.dr.purgeTook = 0
	if purged {
		s.dr.purgeTook = time.Since(purgeStart)
	}
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, 16)
	)
	for _, r := range single {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := s.q.Delete(ctx, r.seq)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				if first == nil {
					first = err
				}
				return
			}
			r.seq = ^uint64(0)
			done = append(done, r.id)
		}()
	}
	wg.Wait()
	s.mu.Lock()
	for _, id := range done {
		delete(s.tomb, id)
	}
	s.mu.Unlock()
	if err := s.drainCounts(ctx, rs); err != nil && first == nil {
		first = err
	}
	return first
}

// drainWait returns once everything journaled before the call is in the
// stream.
func (s *Service) drainWait(ctx context.Context) error {
	_, target := s.jl.counts()
	select {
	case s.jl.urgent <- struct{}{}:
	default:
	}
	for {
		s.dr.mu.Lock()
		done, ch := s.dr.done, s.dr.changed
		s.dr.mu.Unlock()
		if done >= target {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("tasks: wait for the journal to drain: %w", ctx.Err())
		}
	}
}

// store puts task t in the stream in state code ("r", "x", or "d" with a
// delay: a schedule whose copy lands on f.<id>) and returns its sequence.
func (s *Service) store(ctx context.Context, t Task, code string, delay time.Duration) (uint64, error) {
	hdr := t.header()
	po := store.PutOptions{}
	subj := subject(t.App, t.Queue, code, t.ID)
	if code == "d" {
		eta := time.Now().Add(delay)
		po.At, po.Target = eta, subject(t.App, t.Queue, "f", t.ID)
		hdr[hdrETA] = itoa(eta.UnixNano())
		hdr[hdrDelay] = itoa(delay.Milliseconds())
	}
	return s.q.Put(ctx, subj, t.Body, hdr, po)
}

// drainedIndex finds puts the drain stored (drainedSubject) by id: it reads
// each millisecond's subject once and keeps the ids found on it.
type drainedIndex struct {
	q   *store.WorkQueue
	ids map[string]map[uint64]uint64 // subject → task id → sequence
}

func newDrainedIndex(q *store.WorkQueue) *drainedIndex {
	return &drainedIndex{q: q, ids: map[string]map[uint64]uint64{}}
}

// seq returns the sequence of task id's drained message, 0 when there is
// none.
func (d *drainedIndex) seq(ctx context.Context, app, queue string, id uint64) (uint64, error) {
	subj := drainedSubject(app, queue, id)
	ids, ok := d.ids[subj]
	if !ok {
		ids = map[uint64]uint64{}
		err := d.q.ScanSubject(ctx, subj, 1, func(m store.Message) bool {
			if v, err := strconv.ParseUint(m.Header[hdrID], 10, 64); err == nil {
				ids[v] = m.Seq
			}
			return true
		})
		if err != nil {
			return 0, fmt.Errorf("tasks: look for drained task %d: %w", id, err)
		}
		d.ids[subj] = ids
	}
	return ids[id], nil
}

// stored notes that task id was stored on its drained subject at seq.
func (d *drainedIndex) stored(app, queue string, id, seq uint64) {
	if ids := d.ids[drainedSubject(app, queue, id)]; ids != nil {
		ids[id] = seq
	}
}

// replay applies the journal files an engine left behind (it died, or its
// last drain failed) to the stream, then removes them. Puts already in
// the stream are not stored again; deleted tasks are removed.
func (s *Service) replay(ctx context.Context) (next int, err error) {
	nums, err := journalFiles(s.opts.Dir)
	if err != nil {
		return 0, err
	}
	if len(nums) == 0 {
		return 1, nil
	}
	var rs []record
	for _, n := range nums {
		more, err := readJournal(s.opts.Dir, n)
		if err != nil {
			return 0, err
		}
		rs = append(rs, more...)
	}
	deleted := map[uint64]bool{}
	own := map[uint64]bool{} // the puts replayed: true for an older engine's
	for _, r := range rs {
		switch r.kind {
		case recDelete:
			deleted[r.id] = true
		case recPut:
			own[r.id] = r.ownSubject
		}
	}
	drained := newDrainedIndex(s.q)
	// storedAt returns the sequence of the message the drain stored for
	// task r.id, 0 when it stored none. A delete journaled before its put
	// was stored has no put among the records replayed when the put was
	// stored after all and its file removed: that put may be an older
	// engine's, on r.<id>.
	storedAt := func(r record) (uint64, error) {
		ownSubject, put := own[r.id]
		if !ownSubject {
			seq, err := drained.seq(ctx, r.app, r.queue, r.id)
			if err != nil || seq != 0 || put {
				return seq, err
			}
		}
		m, err := s.q.Last(ctx, subject(r.app, r.queue, "r", r.id))
		if errors.Is(err, store.ErrNotFound) {
			return 0, nil
		}
		return m.Seq, err
	}
	puts, dels := 0, 0
	counted := map[uint64]record{} // the last counters of each task
	for _, r := range rs {
		switch {
		case r.kind == recCounts:
			counted[r.id] = r
		case r.kind == recDelete:
			seq := r.seq
			if seq == 0 {
				var err error
				if seq, err = storedAt(r); err != nil {
					return 0, err
				}
				if seq == 0 {
					continue
				}
			}
			if err := s.q.Delete(ctx, seq); err != nil && !errors.Is(err, store.ErrNotFound) {
				return 0, err
			}
			dels++
		case deleted[r.id]:
		default:
			if seq, err := storedAt(r); err != nil {
				return 0, err
			} else if seq != 0 {
				continue // drained before the engine stopped
			}
			j := &job{id: r.id, pri: r.pri, ttr: r.ttr, created: r.created}
			seq, err := s.q.Put(ctx, drainedSubject(r.app, r.queue, r.id), r.body, j.header(), store.PutOptions{})
			if err != nil {
				return 0, err
			}
			drained.stored(r.app, r.queue, r.id, seq)
			puts++
		}
	}
	if err := s.replayCounts(ctx, counted, deleted, drained); err != nil {
		return 0, err
	}
	for _, n := range nums {
		if err := os.Remove(filepath.Join(s.opts.Dir, journalName(n))); err != nil {
			return 0, fmt.Errorf("tasks: journal: %w", err)
		}
	}
	s.log.Info("journal replayed", "files", len(nums), "records", len(rs), "stored", puts, "deleted", dels)
	return nums[len(nums)-1] + 1, nil
}

// load indexes every ready task in the stream: stored puts and kicks
// (r.*) and fired schedules (f.*), which poll then keeps following. It
// reads the whole stream in order, a batch at a time (store.Scan), and
// skips the other states: asking the server for the next r.* message one
// at a time costs it a walk of every r.* subject — each ready task has its
// own — per message, which a million ready tasks made minutes long.
func (s *Service) load(ctx context.Context) error {
	n, f := 0, 0
	var last, from uint64 = 0, 1
	if sn, ok := s.takeSnapshot(); ok { // a clean stop's index: read only what came after
		used, err := s.fromSnapshot(ctx, sn)
		if err != nil {
			return err
		}
		if used {
			n, from, last = len(sn.tasks), sn.last+1, sn.last
			s.fromSnap = true
		}
	}
	err := s.q.Scan(ctx, from, func(m store.Message) bool {
		last = m.Seq
		switch state(m.Subject) {
		case "r":
			if s.indexMessage(ctx, m) {
				n++
			}
		case "f":
			if s.indexMessage(ctx, m) {
				f++
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	s.fseq = last // every f.* message up to here is indexed
	more, err := s.poll(ctx)
	s.log.Debug("tasks loaded", "ready", n, "fired", f+more)
	return err
}

// state is the state token of a task subject (tasks.<app>.<queue>.<state>.<id>).
func state(subject string) string {
	rest, ok := strings.CutPrefix(subject, "tasks.")
	for i := 0; ok && i < 2; i++ {
		_, rest, ok = strings.Cut(rest, ".")
	}
	st, _, _ := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	return st
}

// poll indexes schedule copies (delayed tasks whose time came, cron
// ticks) stored since the last poll; it returns how many.
func (s *Service) poll(ctx context.Context) (int, error) {
	// A lookup that finds nothing clears the stream up to known: the
	// next poll starts past it instead of searching that stretch again
	// (a search from a sequence amid 100,000 stored tasks took 1.8 ms,
	// every pollEvery).
	known := s.q.Acked()
	n := 0
	for {
		m, err := s.q.Next(ctx, "tasks.*.*.f.*", s.fseq+1)
		if errors.Is(err, store.ErrNotFound) {
			s.fseq = max(s.fseq, known)
			return n, nil
		}
		if err != nil {
			return n, err
		}
		s.fseq = m.Seq
		if s.indexMessage(ctx, m) {
			n++
		}
	}
}

// pollEvery is how often fired schedules are looked for: the latest a
// delayed task or a cron tick becomes ready after its time.
const pollEvery = 100 * time.Millisecond

func (s *Service) runPoll(ctx context.Context) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("task poll crashed", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.poll(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("look for fired schedules", "err", err)
		}
	}
}

// indexMessage adds a ready task read from the stream to the index.
func (s *Service) indexMessage(ctx context.Context, m store.Message) bool {
	t := taskFrom(m)
	if t.App == "" || ValidQueue(t.Queue) != nil {
		return false
	}
	q, err := s.queue(ctx, t.App, t.Queue)
	if err != nil {
		s.log.Warn("index task", "subject", m.Subject, "err", err)
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index(jobFrom(t, q))
}
