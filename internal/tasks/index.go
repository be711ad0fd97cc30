package tasks

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"pier/internal/store"
)

// job is a ready or reserved task, held in memory: the engine's index of
// what can be reserved is authoritative while it runs (beanstalkd keeps
// its jobs the same way); the stream and the journal are what it is
// rebuilt from at start. Guarded by Service.mu.
type job struct {
	id      uint64
	q       *queue
	ttr     time.Duration
	created time.Time
	name    string
	path    string // push path override (cron entries that call a path)
	body    []byte
	// seq is the stream message holding the task; 0 until the drain has
	// stored a journaled put.
	seq  uint64
	hidx int          // index in q.ready; -1 when not ready
	res  *reservation // set while reserved
	// counts are the task's stats-job counters; saved, counts as last
	// stored (headers or the counters bucket, jobcounts.go).
	counts, saved jobCounts
	pri           uint32
	// attempt counts push deliveries since the task was last enqueued,
	// kicked or retried; it decides when a push task is dead.
	attempt int32
	// bodyOut: the body is not in memory (the index was over
	// Options.Memory when the task was stored); it is read back from the
	// stream message seq when needed (withBody).
	bodyOut bool
	onR     bool // seq is on tasks.<app>.<queue>.r.<id> (else f.<id>)
	// dirty: queued for a counters record; countsKey: the counters bucket
	// has an entry for the task (jobcounts.go).
	dirty, countsKey bool
	// gone: deleted or moved out of the index; the drain must not store a
	// journaled put of it. sent: the drain has sent its journaled put to
	// the stream (a message may exist before seq is known).
	gone, sent bool
}

// The fields are ordered to pack: a million ready tasks are a million
// jobs (184 bytes, a 192-byte allocation each, and their places in the
// maps and heaps).

// jobCounts are a task's beanstalkd event counters (stats-job). They are
// kept in memory and written into the task's headers each time it is
// stored again (release with a delay or a new priority, bury, kick).
type jobCounts struct {
	reserves, timeouts, releases, buries, kicks int32
}

// encode renders counts for the Pier-Counts header ("" when all zero).
func (c jobCounts) encode() string {
	if c == (jobCounts{}) {
		return ""
	}
	return itoa(int64(c.reserves)) + "," + itoa(int64(c.timeouts)) + "," + itoa(int64(c.releases)) + "," +
		itoa(int64(c.buries)) + "," + itoa(int64(c.kicks))
}

func decodeCounts(s string) jobCounts {
	var v [5]int32
	for i := range v {
		var part string
		part, s, _ = strings.Cut(s, ",")
		n, _ := strconv.ParseInt(part, 10, 32)
		v[i] = int32(n)
	}
	return jobCounts{v[0], v[1], v[2], v[3], v[4]}
}

// task describes j; state is ready or reserved.
func (j *job) task() Task {
	t := Task{
		ID: j.id, App: j.q.app, Queue: j.q.name, Body: j.body, Name: j.name, Priority: j.pri,
		TTR: Duration(j.ttr), State: StateReady, Created: j.created, Attempt: int(j.attempt),
		Reserves: int(j.counts.reserves), Timeouts: int(j.counts.timeouts), Releases: int(j.counts.releases),
		Buries: int(j.counts.buries), Kicks: int(j.counts.kicks), seq: j.seq, path: j.path, bodyOut: j.bodyOut,
	}
	if j.res != nil {
		t.State = StateReserved
	}
	return t
}

// jobFrom makes a job of a task read from the stream.
func jobFrom(t Task, q *queue) *job {
	return &job{
		id: t.ID, q: q, pri: t.Priority, ttr: time.Duration(t.TTR), created: t.Created, name: t.Name,
		path: t.path, body: t.Body, bodyOut: t.bodyOut, seq: t.seq, onR: t.onR, attempt: int32(t.Attempt), hidx: -1,
		counts: t.counts(), saved: t.counts(),
	}
}

// Bodies in memory. Every ready and reserved task is in the index, but
// its body need not be: once the bodies held pass Options.Memory, the
// body of each task stored in the stream from then on (the drain storing
// a put, a release with a new priority, a kick, a load at start) is
// dropped, and read back by sequence when the task is reserved, peeked or
// pushed. The tasks the index held before keep theirs; as they are done,
// memory falls under the bound and new tasks keep their bodies again. So
// a queue worked in order (FIFO, one priority) has the bodies of its
// oldest — next — tasks at hand and reads back only those of a backlog
// that did not fit. A journaled put not yet drained keeps its body (the
// stream has none to read back): the bound is passed by at most what the
// journal holds, about Options.DrainDelay of puts.

// keepBody counts j's body in the index's memory, or drops it when the
// bound is passed and the stream holds it. Caller holds s.mu; j has just
// entered the index, or been stored at a new sequence.
func (s *Service) keepBody(j *job) {
	if j.bodyOut {
		return
	}
	if j.seq != 0 && s.opts.Memory > 0 && s.bodyBytes+int64(len(j.body)) > s.opts.Memory {
		j.body, j.bodyOut = nil, true
		return
	}
	s.bodyBytes += int64(len(j.body))
}

// forgetBody takes j's body out of the index's memory count (j leaves the
// index). Caller holds s.mu.
func (s *Service) forgetBody(j *job) {
	if !j.bodyOut {
		s.bodyBytes -= int64(len(j.body))
	}
}

// withBody fills t.Body from the stream when the index dropped it. j is
// the task's job: if its message moved meanwhile (a release with a new
// priority stores it again), its new sequence is read. ErrNotFound: the
// task is gone.
func (s *Service) withBody(ctx context.Context, j *job, t *Task) error {
	for t.bodyOut {
		m, err := s.q.Get(ctx, t.seq)
		if err == nil {
			t.Body, t.bodyOut = m.Data, false
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("tasks: read the body of task %d: %w", t.ID, err)
		}
		s.mu.Lock()
		seq, gone, body, out := j.seq, j.gone, j.body, j.bodyOut
		s.mu.Unlock()
		if gone || seq == t.seq {
			return ErrNotFound
		}
		t.seq, t.Body, t.bodyOut = seq, body, out
	}
	return nil
}

// counts are t's stats-job counters.
func (t Task) counts() jobCounts {
	return jobCounts{int32(t.Reserves), int32(t.Timeouts), int32(t.Releases), int32(t.Buries), int32(t.Kicks)}
}

// readyHeap orders a queue's ready tasks as beanstalkd does: the most
// urgent (lowest) priority first, then the oldest id. Ids grow with time,
// so a queue whose tasks share one priority is FIFO, and pushing a new
// task costs one comparison. Each entry carries its task's priority and
// id, so sifting through a heap of many thousand tasks compares entries
// side by side in the slice instead of loading two jobs from the heap per
// level (a reserve takes the top: about 2 log2(n) comparisons). A job's
// priority does not change while it is in the heap.
type readyHeap []readyEntry

type readyEntry struct {
	id  uint64
	j   *job
	pri uint32
}

// before reports whether a is more urgent than b.
func (a *readyEntry) before(b *readyEntry) bool {
	if a.pri != b.pri {
		return a.pri < b.pri
	}
	return a.id < b.id
}

// push adds j.
func (h *readyHeap) push(j *job) {
	*h = append(*h, readyEntry{id: j.id, j: j, pri: j.pri})
	h.up(len(*h) - 1)
}

// remove takes out the entry at i.
func (h *readyHeap) remove(i int) {
	old := *h
	n := len(old) - 1
	j := old[i].j
	if i != n {
		old[i] = old[n]
		old[i].j.hidx = i
	}
	old[n] = readyEntry{}
	*h = old[:n]
	if i != n && !h.down(i) {
		h.up(i)
	}
	j.hidx = -1
}

// up moves the entry at i towards the top until its parent is more
// urgent, shifting parents down into the hole.
func (h readyHeap) up(i int) {
	e := h[i]
	for i > 0 {
		p := (i - 1) / 2
		if !e.before(&h[p]) {
			break
		}
		h[i] = h[p]
		h[i].j.hidx = i
		i = p
	}
	h[i] = e
	e.j.hidx = i
}

// down moves the entry at i0 towards the bottom until no child is more
// urgent, shifting children up into the hole; it reports whether it moved.
func (h readyHeap) down(i0 int) bool {
	e := h[i0]
	n := len(h)
	i := i0
	for {
		c := 2*i + 1
		if c >= n || c < 0 {
			break
		}
		if r := c + 1; r < n && h[r].before(&h[c]) {
			c = r
		}
		if !h[c].before(&e) {
			break
		}
		h[i] = h[c]
		h[i].j.hidx = i
		i = c
	}
	h[i] = e
	e.j.hidx = i
	return i > i0
}

// waiter is a reserve (or a push dispatcher) waiting for a task on one or
// more queues; ch (capacity 1) is signalled when one becomes ready.
type waiter struct{ ch chan struct{} }

// makeReady adds j to its queue's ready tasks and wakes the queue's
// waiters. Caller holds s.mu.
func (s *Service) makeReady(j *job) {
	q := j.q
	q.ready.push(j)
	if j.pri < urgentPri {
		q.urgent++
	}
	q.wake()
	s.noteCounts(j) // back from a reservation: keep its counters
}

// wake signals q's waiters. Caller holds s.mu.
func (q *queue) wake() {
	for w := range q.waiters {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
}

// unready takes j out of its queue's ready tasks. Caller holds s.mu.
func (s *Service) unready(j *job) {
	if j.hidx < 0 {
		return
	}
	j.q.ready.remove(j.hidx)
	if j.pri < urgentPri {
		j.q.urgent--
	}
}

// index adds a job to the index as ready, unless a task with its id is
// known already. Caller holds s.mu.
func (s *Service) index(j *job) bool {
	if _, ok := s.jobs[j.id]; ok {
		return false
	}
	if _, ok := s.tomb[j.id]; ok {
		return false // deleted; the drain has not removed its message yet
	}
	s.jobs[j.id] = j
	s.keepBody(j)
	if j.seq != 0 && j.onR {
		heap.Push(&j.q.stored, stored{j.seq, j})
	}
	s.makeReady(j)
	return true
}

// setSeq records that j is stored at seq on its r.<id> subject. Caller
// holds s.mu.
func (s *Service) setSeq(j *job, seq uint64) {
	j.seq, j.onR = seq, true
	if s.jobs[j.id] == j || j.hidx >= 0 || j.res != nil {
		heap.Push(&j.q.stored, stored{seq, j})
	}
	if s.jobs[j.id] == j && !j.bodyOut {
		s.forgetBody(j)
		s.keepBody(j)
	}
}

// stored is a ready message of a queue in the stream, for purges.
type stored struct {
	seq uint64
	j   *job
}

// storedHeap holds the stream sequences of a queue's indexed tasks on r.*
// subjects, lowest first; entries of tasks deleted or stored again since
// are dropped when they reach the top.
type storedHeap []stored

func (h storedHeap) Len() int           { return len(h) }
func (h storedHeap) Less(a, b int) bool { return h[a].seq < h[b].seq }
func (h storedHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *storedHeap) Push(x any)        { *h = append(*h, x.(stored)) }
func (h *storedHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = stored{}
	*h = old[:len(old)-1]
	return e
}

// lowestLive is the lowest sequence of q's live tasks on r.* subjects
// (^0 when none): every r.* message of q below it is deleted or being
// deleted. Caller holds s.mu.
func (q *queue) lowestLive() uint64 {
	for len(q.stored) > 0 {
		top := q.stored[0]
		if top.j.seq == top.seq && top.j.onR && !top.j.gone {
			return top.seq
		}
		heap.Pop(&q.stored)
	}
	return ^uint64(0)
}

// beginStore and endStore bracket a ready message stored outside the
// drain until it is in the index (endStore, or storing-- under s.mu).
func (s *Service) beginStore() {
	s.mu.Lock()
	s.storing++
	s.mu.Unlock()
}

func (s *Service) endStore() {
	s.mu.Lock()
	s.storing--
	s.mu.Unlock()
}

// drop removes j from the index (it was deleted or moved to the stream
// only). Caller holds s.mu.
func (s *Service) drop(j *job) {
	s.unready(j)
	if r := j.res; r != nil {
		r.end()
	}
	j.gone = true
	if s.jobs[j.id] == j {
		delete(s.jobs, j.id)
		s.forgetBody(j)
	}
}

// best returns the most urgent ready task of qs (nil when none), as
// beanstalkd picks among the watched tubes. Caller holds s.mu.
func best(qs []*queue) *job {
	var b *job
	for _, q := range qs {
		if len(q.ready) == 0 {
			continue
		}
		j := q.ready[0].j
		if b == nil || j.pri < b.pri || (j.pri == b.pri && j.id < b.id) {
			b = j
		}
	}
	return b
}

// unreserve undoes reservation r, whose task's body could not be read
// (err, from withBody): the task is ready again or, when its message is
// gone (ErrNotFound) while r still held it, out of the index. It reports
// whether the caller may look for another task.
func (s *Service) unreserve(r *reservation, err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := r.j
	mine := j.res == r // else the TTR ended meanwhile: the task is someone else's
	if mine {
		r.end()
		j.counts.reserves--
		if r.owner == nil {
			j.attempt--
		}
	}
	if errors.Is(err, ErrNotFound) {
		if mine && !j.gone && s.jobs[j.id] == j {
			s.log.Warn("a task's message is gone from the stream; dropped from the index", "id", j.id, "seq", j.seq)
			s.drop(j)
		}
		return true
	}
	if mine && !j.gone {
		s.makeReady(j)
	}
	return false
}
