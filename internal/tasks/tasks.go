// Package tasks gives every app durable task queues: enqueue over HTTP or
// the beanstalkd protocol, pull delivery (beanstalkd reserve), push
// delivery to the app's handler through the gateway, and cron.
//
// # Storage
//
// All tasks of all apps live in one JetStream work-queue stream, TASKS,
// through internal/store. A task's subject says where it is:
//
//	tasks.<app>.<queue>.r.<id>   ready (or reserved): stored by a named put or
//	                             a kick
//	tasks.<app>.<queue>.r.b<ms>  ready (or reserved): journaled puts the drain
//	                             stored, those whose ids were made in
//	                             millisecond ms (id>>16) together, each with
//	                             its id in a Pier-Id header
//	tasks.<app>.<queue>.f.<id>   ready: the copy a schedule made at its time
//	                             (a delayed task whose ETA came; cron ticks land
//	                             on f.c<n>)
//	tasks.<app>.<queue>.d.<id>   delayed: a one-shot message schedule that the
//	                             server turns into tasks.<app>.<queue>.f.<id> at
//	                             its ETA
//	tasks.<app>.<queue>.x.<id>   buried (beanstalkd) / dead (push): kept until
//	                             kicked, retried or dropped
//	tasks.<app>.<queue>.c.<n>    the queue's n-th cron entry: a repeating schedule
//
// # The index and the journal
//
// Ready and reserved tasks are also held in memory, per queue, in a heap
// ordered as beanstalkd orders them: lowest priority number first, then
// oldest id (index.go). Reserving is taking the top of the heap — no
// round trip to the server — and reservations (TTR timers, which
// connection holds what) live only in memory: a task reserved when the
// engine dies is ready again when it starts, as with beanstalkd. At start
// the index is taken from the snapshot a clean stop wrote (snapshot.go),
// else rebuilt from the stream's r.* and f.* subjects; a poll every 100 ms
// picks up the f.* copies schedules make.
//
// A plain put (no name, no delay) and every delete of a ready or reserved
// task are acknowledged once written to a local journal, a file mapped
// into memory (journal.go, under Options.Dir) — in the kernel, the durability of
// beanstalkd's binlog — and a drain stores them in the stream in journal
// order, a batch at a time, once they are Options.DrainDelay (1 s) old
// (drain.go). A task deleted within that time is never stored: the put
// and its delete cancel out, as a worker that keeps up costs the stream
// nothing. What the drain has not stored yet is in the journal only. Everything else (named or delayed
// puts, release with a delay or a new priority, bury, kick) is stored in
// the stream before it is answered; those wait for the drain first when
// the task's put is still only journaled. At start, journal files left
// behind are applied to the stream (idempotently), then removed.
//
// Dedup by task name is JetStream's Nats-Msg-Id window (Options.Dedup,
// 10 minutes). Queue settings (created on first use, or from the
// manifest) live in the KV bucket "queues" under "<app>.<queue>".
//
// A task id is a uint64 made from the engine clock (milliseconds << 16,
// plus a counter) and appears in every subject the task moves through but
// the drain's, so peek/delete/kick by id of a delayed or buried task is a
// last-message-by-subject lookup on tasks.<app>.*.*.<id> (ready tasks are
// in the index). Tasks made by cron use their stream sequence as id.
//
// # What is approximate
//
// Figures per queue for delayed and buried tasks are computed from the
// stream when asked (a walk of the queue's subjects). Rates, the queue's
// delete and pause counts are this engine's own, since it started. Each
// task's stats-job counters (reserves, timeouts, releases, buries, kicks)
// are kept in memory, written into its message (Pier-Counts) each time it
// is stored again, and in between journaled and kept in the KV bucket
// "taskcounts" when it is ready again after a reservation (jobcounts.go):
// a reserve in flight when the engine is killed is what can be lost.
// A push retry with a delay counts as delayed.
//
// # What assumes one engine per store
//
// The index, the reservations and the journal belong to the engine that
// made them. When several engines share one NATS cluster, each queue
// will need one owner (the placement step), and the journal replicated
// or dropped for synchronous stores.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"pier/internal/store"
)

// Errors the protocol and API layers turn into answers.
var (
	ErrNotFound  = errors.New("tasks: no such task")
	ErrTimeout   = errors.New("tasks: no task ready in time")
	ErrBadQueue  = errors.New("tasks: invalid queue name")
	ErrDuplicate = errors.New("tasks: a task with this name was enqueued recently")
	ErrTooBig    = errors.New("tasks: task body too big")
	// ErrDeadlineSoon: a reserve found nothing ready while a task the
	// session holds has under a second of its TTR left (beanstalkd's
	// DEADLINE_SOON).
	ErrDeadlineSoon = errors.New("tasks: a reserved task's time to run is about to end")
	// ErrDraining: the service is stopping and takes no more puts or
	// deletes (beanstalkd's DRAINING). Close returns it to callers only
	// after the engine's listeners have stopped, so a client sees it only
	// when something outlived them.
	ErrDraining = errors.New("tasks: the engine is stopping; it takes no new work")
)

// DuplicateError is returned by Enqueue for a name already used inside the
// dedup window; ID is the first task's id.
type DuplicateError struct {
	Name string
	ID   uint64
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("a task named %q was enqueued in this queue within the dedup window (task %d)", e.Name, e.ID)
}

func (e *DuplicateError) Unwrap() error { return ErrDuplicate }

// DefaultMemory is Options.Memory's default.
const DefaultMemory = 256 << 20

// Options configure New. Zero fields get the defaults documented here.
type Options struct {
	Store  *store.Store // required
	Logger *slog.Logger // nil discards
	// Dir holds the journal (required): acknowledged puts and deletes not
	// yet stored in the stream. $PIER_HOME/tasks in the engine.
	Dir string
	// DrainDelay is how long a journaled put or delete waits before the
	// drain stores it in the stream: a task deleted sooner is never
	// stored. Default 1s; negative: at once.
	DrainDelay time.Duration
	// Dedup is how long a task name is remembered. Default 10 minutes.
	Dedup time.Duration
	// MaxBody bounds a task's body. Default 64 KiB (beanstalkd's max-job-size).
	MaxBody int
	// Memory bounds the bytes of task bodies the index holds (see
	// keepBody): past it, bodies of tasks stored in the stream are read
	// back from it when needed. Default 256 MiB; negative: no bound.
	Memory int64
	// GatewayURL and Domain are how push delivery reaches apps: POST
	// GatewayURL+path with Host <app>.<Domain>.
	GatewayURL, Domain string
	// HTTP sends push deliveries; nil uses a client with PushTimeout.
	HTTP *http.Client
	// PushTimeout bounds one push delivery. Default 30s.
	PushTimeout time.Duration
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DrainDelay == 0 {
		o.DrainDelay = time.Second
	}
	if o.Dedup <= 0 {
		o.Dedup = 10 * time.Minute
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 65535
	}
	if o.Memory == 0 {
		o.Memory = DefaultMemory
	}
	if o.PushTimeout <= 0 {
		o.PushTimeout = 30 * time.Second
	}
	if o.HTTP == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 256 // pushes to the gateway reuse their connections
		o.HTTP = &http.Client{Timeout: o.PushTimeout, Transport: tr}
	}
}

// Service is the task queues of every app on this engine.
type Service struct {
	opts   Options
	log    *slog.Logger
	q      *store.WorkQueue
	confs  *store.Bucket
	counts *store.Bucket // stats-job counters of tasks kept ready (jobcounts.go)
	ids    idAllocator

	jl   *journal // set by Start
	dr   drainState
	fseq uint64 // the last f.* message indexed; owned by load, then runPoll
	// fromSnap: load took the index from a snapshot (bodies out); set by
	// load, read by Start.
	fromSnap bool

	// mu guards the index — jobs, tomb, every queue's ready heap,
	// waiters and counts, every job, reservation and Session.held —
	// and queues, pushers. Nothing calls into the store or the journal
	// while holding it.
	mu     sync.Mutex
	queues map[qkey]*queue     // by app and queue name
	jobs   map[uint64]*job     // ready and reserved tasks, by id
	tomb   map[uint64]struct{} // deleted tasks whose message the drain has not removed yet
	// bodyBytes is the size of the bodies of jobs in memory (keepBody).
	bodyBytes int64
	// dirty: tasks whose counters runCounts is to journal; countsKick
	// (capacity 1) wakes it.
	dirty      []*job
	countsKick chan struct{}
	// storing counts ready messages being stored outside the drain, not
	// yet in the index: the drain's purges wait until there are none.
	storing int
	pushers map[string]*pusher // by "<app>/<queue>"
	ttr     ttrs               // reservations' deadlines (ttr.go)

	ctx    context.Context // the service's lifetime, set by Start
	cancel context.CancelFunc
	// stopped is closed when the background work but the drain (push
	// deliveries, the poll) has stopped; stopDrain then ends the drain,
	// which stores what is left and closes the journal; drained is
	// closed when it has.
	stopped   chan struct{}
	stopDrain context.CancelFunc
	drained   chan struct{}
}

// New opens the task storage. Call Start before use.
func New(ctx context.Context, opts Options) (*Service, error) {
	opts.defaults()
	if opts.Store == nil {
		return nil, errors.New("tasks: no store")
	}
	if opts.Dir == "" {
		return nil, errors.New("tasks: no journal directory")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	q, err := opts.Store.WorkQueue(ctx, store.WorkQueueConfig{Name: "TASKS", Subjects: []string{"tasks.>"}, Dedup: opts.Dedup})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	confs, err := opts.Store.Bucket(ctx, "queues", 1)
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	counts, err := opts.Store.Bucket(ctx, countsBucket, 1)
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return &Service{
		opts: opts, log: opts.Logger, q: q, confs: confs, counts: counts, countsKick: make(chan struct{}, 1),
		queues: map[qkey]*queue{}, jobs: map[uint64]*job{}, tomb: map[uint64]struct{}{},
		pushers: map[string]*pusher{},
		ctx:     ctx,
		dr:      drainState{changed: make(chan struct{})},
	}, nil
}

// Start applies the journal left by the previous engine, loads the ready
// tasks and runs the service's background work (push delivery, the poll
// for fired schedules) until ctx ends, and the drain until Close: puts and
// deletes keep being journaled after ctx ends, so that the listeners that
// take them (beanstalkd connections finishing their command, API requests
// in flight) can stop after it without an acknowledged task being lost
// or a client being refused.
func (s *Service) Start(ctx context.Context) error {
	ctx, s.cancel = context.WithCancel(ctx)
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	next, err := s.replay(ctx)
	if err != nil {
		return fmt.Errorf("tasks: apply the journal: %w", err)
	}
	if err := s.releaseHeld(ctx); err != nil {
		return fmt.Errorf("tasks: release tasks held by the previous engine: %w", err)
	}
	if err := s.load(ctx); err != nil {
		return fmt.Errorf("tasks: load ready tasks: %w", err)
	}
	if err := s.loadCounts(ctx); err != nil {
		return fmt.Errorf("tasks: load task counters: %w", err)
	}
	if s.jl, err = openJournal(s.opts.Dir, next); err != nil {
		return err
	}
	s.drained, s.stopped = make(chan struct{}), make(chan struct{})
	var dctx context.Context
	dctx, s.stopDrain = context.WithCancel(context.WithoutCancel(ctx))
	go s.runDrain(dctx, s.drained)
	go s.runPoll(ctx)
	counting, warmed := make(chan struct{}), make(chan struct{})
	go s.runCounts(ctx, counting)
	go func() {
		defer close(warmed)
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("task bodies read-back crashed", "panic", v, "stack", string(debug.Stack()))
			}
		}()
		if s.fromSnap {
			s.warmBodies(ctx)
		}
	}()
	go func() {
		<-ctx.Done()
		s.stopAll()
		<-counting
		<-warmed
		close(s.stopped)
	}()
	return nil
}

// Close stops the service, stores what its journal holds and closes the
// journal: from then on puts and deletes fail with ErrDraining. Call it
// after the listeners that feed the service have stopped and before the
// store closes. Safe without Start, and twice.
func (s *Service) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	if s.stopped != nil {
		<-s.stopped // no push delivery deletes or moves a task after the last drain
		s.flushCounts()
	}
	if s.stopDrain != nil {
		s.stopDrain()
	}
	if s.drained != nil {
		<-s.drained
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 30*time.Second)
		defer cancel()
		if err := s.writeSnapshot(ctx); err != nil {
			s.log.Warn("the next start reads the whole stream", "err", err)
		}
	}
}

// MaxBody is the largest task body accepted.
func (s *Service) MaxBody() int { return s.opts.MaxBody }

var queueRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// ValidQueue reports whether name can be a queue name.
func ValidQueue(name string) error {
	if !queueRE.MatchString(name) {
		return fmt.Errorf("%w %q: use lower-case letters, digits, '_' and '-', starting with a letter, at most 64 characters", ErrBadQueue, name)
	}
	return nil
}

// NewTask is what an enqueue gives.
type NewTask struct {
	Body     []byte
	Name     string        // optional; dedups inside the window
	Priority uint32        // beanstalkd priority: lower is reserved first
	Delay    time.Duration // ready after this long
	ETA      time.Time     // or at this time (wins over Delay)
	TTR      time.Duration // time to run once reserved; default 60s
}

// Task is a stored task.
type Task struct {
	ID       uint64    `json:"id"`
	App      string    `json:"-"`
	Queue    string    `json:"queue"`
	Body     []byte    `json:"body"`
	Name     string    `json:"name,omitempty"`
	Priority uint32    `json:"priority"`
	TTR      Duration  `json:"ttr"`
	State    string    `json:"state"` // ready, reserved, delayed, buried
	Created  time.Time `json:"created"`
	ETA      time.Time `json:"eta,omitzero"`
	Delay    Duration  `json:"delay,omitempty"` // how long a delayed task was put off
	Attempt  int       `json:"attempt,omitempty"`
	Error    string    `json:"error,omitempty"` // why a dead task died
	// Events in the task's life (beanstalkd stats-job): see the package
	// doc for what survives a restart.
	Reserves int `json:"reserves,omitempty"`
	Timeouts int `json:"timeouts,omitempty"`
	Releases int `json:"releases,omitempty"`
	Buries   int `json:"buries,omitempty"`
	Kicks    int `json:"kicks,omitempty"`
	seq      uint64
	path     string // push path override (Pier-Path)
	onR      bool   // its message is on tasks.<app>.<queue>.r.<id>
	bodyOut  bool   // Body is not filled in: read it from the stream at seq (withBody)
}

// Duration is a time.Duration that reads and writes as "1.5s" in JSON.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Task states.
const (
	StateReady    = "ready"
	StateReserved = "reserved"
	StateDelayed  = "delayed"
	StateBuried   = "buried"
)

// Message headers that carry a task's attributes.
const (
	hdrPri     = "Pier-Pri"
	hdrTTR     = "Pier-Ttr" // milliseconds
	hdrName    = "Pier-Name"
	hdrCreated = "Pier-Created" // unix nanoseconds
	hdrETA     = "Pier-Eta"     // unix nanoseconds
	hdrDelay   = "Pier-Delay"   // milliseconds a release put the task off
	hdrError   = "Pier-Error"
	hdrID      = "Pier-Id"
	hdrAttempt = "Pier-Attempt" // push deliveries since enqueued, kicked or retried
	hdrCounts  = "Pier-Counts"  // reserves,timeouts,releases,buries,kicks
)

func subject(app, queue, state string, id uint64) string {
	return "tasks." + app + "." + queue + "." + state + "." + strconv.FormatUint(id, 10)
}

// drainedSubject is where the drain stores a journaled put: with a backlog,
// most tasks are stored before a worker takes them, and a subject per task
// cost JetStream a quarter of storing one (an entry in its index of
// subjects made and removed per task) and made each purge walk every
// stored task's subject. Ids are made from the clock, so one subject per
// millisecond of ids keeps a subject's messages few, to be read when a
// task must be found by id (drainedIndex).
func drainedSubject(app, queue string, id uint64) string {
	return "tasks." + app + "." + queue + ".r.b" + strconv.FormatUint(id>>16, 10)
}

// Enqueue stores a task; it is durable when Enqueue returns its id. A
// plain ready task is journaled (see the package doc); a named or delayed
// one is stored in the stream at once.
func (s *Service) Enqueue(ctx context.Context, app, queue string, t NewTask) (uint64, error) {
	if len(t.Body) > s.opts.MaxBody {
		return 0, fmt.Errorf("%w: %d bytes, at most %d", ErrTooBig, len(t.Body), s.opts.MaxBody)
	}
	q, err := s.queue(ctx, app, queue) // checks the name of a queue it does not know
	if err != nil {
		return 0, err
	}
	now := time.Now()
	id := s.ids.next(now)
	if t.TTR <= 0 {
		t.TTR = 60 * time.Second
	}
	eta := t.ETA
	if eta.IsZero() && t.Delay > 0 {
		eta = now.Add(t.Delay)
	}
	delayed := !eta.IsZero() && eta.After(now)
	j := &job{id: id, q: q, pri: t.Priority, ttr: t.TTR, created: now, name: t.Name, body: t.Body, hidx: -1}
	if t.Name == "" && !delayed {
		err := s.jl.append(record{kind: recPut, id: id, created: now, pri: t.Priority, ttr: t.TTR, app: app, queue: queue, body: t.Body, j: j})
		if err != nil {
			return 0, fmt.Errorf("tasks: enqueue on %s/%s: %w", app, queue, err)
		}
		s.mu.Lock()
		s.index(j)
		s.mu.Unlock()
		q.rates.enqueued.add(now, 1)
		return id, nil
	}
	hdr := j.header()
	var po store.PutOptions
	if t.Name != "" {
		po.MsgID = app + "/" + queue + "/" + t.Name
	}
	subj := subject(app, queue, "r", id)
	if delayed {
		hdr[hdrETA] = strconv.FormatInt(eta.UnixNano(), 10)
		po.At, po.Target = eta, subject(app, queue, "f", id)
		subj = subject(app, queue, "d", id)
	}
	if !delayed {
		s.beginStore()
	}
	seq, err := s.q.Put(ctx, subj, t.Body, hdr, po)
	if err != nil && !delayed {
		s.endStore()
	}
	if errors.Is(err, store.ErrDuplicate) {
		first := uint64(0)
		if m, gerr := s.q.Get(ctx, seq); gerr == nil {
			first = taskFrom(m).ID
		}
		return 0, &DuplicateError{Name: t.Name, ID: first}
	}
	if err != nil {
		return 0, fmt.Errorf("tasks: enqueue on %s/%s: %w", app, queue, err)
	}
	if !delayed {
		s.mu.Lock()
		s.storing--
		s.setSeq(j, seq)
		s.index(j)
		s.mu.Unlock()
	}
	q.rates.enqueued.add(now, 1)
	return id, nil
}

// taskFrom decodes a stored message into a Task.
func taskFrom(m store.Message) Task {
	t := Task{seq: m.Seq, Body: m.Data}
	parts := strings.Split(m.Subject, ".")
	if len(parts) == 5 {
		t.App, t.Queue = parts[1], parts[2]
		switch parts[3] {
		case "r", "f":
			t.State = StateReady
			t.onR = parts[3] == "r"
		case "d":
			t.State = StateDelayed
		case "x":
			t.State = StateBuried
		case "h":
			t.State = StateReserved
		}
	}
	t.ID = messageID(m)
	pri, _ := strconv.ParseUint(m.Header[hdrPri], 10, 32)
	t.Priority = uint32(pri)
	ttr, err := strconv.ParseInt(m.Header[hdrTTR], 10, 64)
	if err != nil || ttr <= 0 {
		ttr = 60_000
	}
	t.TTR = Duration(time.Duration(ttr) * time.Millisecond)
	t.Name = m.Header[hdrName]
	t.path = m.Header[hdrPath]
	t.Error = m.Header[hdrError]
	if ns, err := strconv.ParseInt(m.Header[hdrCreated], 10, 64); err == nil {
		t.Created = time.Unix(0, ns)
	} else {
		t.Created = m.Time
	}
	if ns, err := strconv.ParseInt(m.Header[hdrETA], 10, 64); err == nil {
		t.ETA = time.Unix(0, ns)
		t.Delay = Duration(t.ETA.Sub(t.Created))
	}
	if ms, err := strconv.ParseInt(m.Header[hdrDelay], 10, 64); err == nil {
		t.Delay = Duration(time.Duration(ms) * time.Millisecond)
	}
	t.Attempt, _ = strconv.Atoi(m.Header[hdrAttempt])
	c := decodeCounts(m.Header[hdrCounts])
	t.Reserves, t.Timeouts, t.Releases, t.Buries, t.Kicks = int(c.reserves), int(c.timeouts), int(c.releases), int(c.buries), int(c.kicks)
	return t
}

// messageID is the id of the task stored in m: its Pier-Id header (a
// drained put's subject ends in the millisecond, not the id), else its
// subject's last token, else — made by cron, the subject ends in c<n> —
// its sequence.
func messageID(m store.Message) uint64 {
	if v, ok := m.Header[hdrID]; ok {
		if id, err := strconv.ParseUint(v, 10, 64); err == nil {
			return id
		}
	}
	if id, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64); err == nil {
		return id
	}
	return m.Seq
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// header re-encodes a task's attributes for a move to another subject.
func (t Task) header() map[string]string {
	h := map[string]string{
		hdrPri:     strconv.FormatUint(uint64(t.Priority), 10),
		hdrTTR:     strconv.FormatInt(time.Duration(t.TTR).Milliseconds(), 10),
		hdrCreated: strconv.FormatInt(t.Created.UnixNano(), 10),
		hdrID:      strconv.FormatUint(t.ID, 10),
	}
	if t.Name != "" {
		h[hdrName] = t.Name
	}
	if t.Error != "" {
		h[hdrError] = t.Error
	}
	if t.Attempt > 0 {
		h[hdrAttempt] = strconv.Itoa(t.Attempt)
	}
	if c := t.counts().encode(); c != "" {
		h[hdrCounts] = c
	}
	if t.path != "" {
		h[hdrPath] = t.path
	}
	return h
}

// header is the headers of a new task's first message. Caller holds s.mu
// or owns j.
func (j *job) header() map[string]string {
	h := map[string]string{
		hdrPri:     strconv.FormatUint(uint64(j.pri), 10),
		hdrTTR:     strconv.FormatInt(j.ttr.Milliseconds(), 10),
		hdrCreated: strconv.FormatInt(j.created.UnixNano(), 10),
		hdrID:      strconv.FormatUint(j.id, 10),
	}
	if j.name != "" {
		h[hdrName] = j.name
	}
	return h
}

// idAllocator hands out increasing ids: milliseconds since the epoch
// shifted left 16 bits, plus a counter.
type idAllocator struct {
	mu   sync.Mutex // guards last
	last uint64
}

func (a *idAllocator) next(now time.Time) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := uint64(now.UnixMilli()) << 16
	if id <= a.last {
		id = a.last + 1
	}
	a.last = id
	return id
}
