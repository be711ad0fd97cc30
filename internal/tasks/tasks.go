// Package tasks gives every app durable task queues: enqueue over HTTP or
// the beanstalkd protocol, pull delivery (beanstalkd reserve), push
// delivery to the app's handler through the gateway, and cron.
//
// # Storage
//
// All tasks of all apps live in one JetStream work-queue stream, TASKS,
// through internal/store. A task's subject says where it is:
//
//	tasks.<app>.<queue>.r.<id>   ready (or reserved: delivered, not acknowledged)
//	tasks.<app>.<queue>.d.<id>   delayed: a one-shot message schedule that the
//	                             server turns into tasks.<app>.<queue>.r.<id> at its ETA
//	tasks.<app>.<queue>.x.<id>   buried (beanstalkd) / dead (push): kept until
//	                             kicked, retried or dropped
//	tasks.<app>.<queue>.h.<id>   reserved by id (beanstalkd reserve-job), out of
//	                             the consumer's reach until deleted or released
//	tasks.<app>.<queue>.c.<n>    the queue's n-th cron entry: a repeating schedule
//	                             whose copies land on tasks.<app>.<queue>.r.c<n>
//
// Each queue has one durable pull consumer, "<app>_<queue>", filtering its
// ready subjects. Reserving a task is a fetch from it; deleting is a double
// ack (the server confirms before DELETED / 2xx is answered, so a finished
// task is never delivered again); releasing is a nak (with delay); the
// consumer's ack wait (Options.AckWait, 10 s) is the backstop TTR: a task
// reserved by an engine that died is delivered again after it. While the
// engine lives, each reservation keeps its own TTR with a timer and sends
// in-progress heartbeats so a long TTR outlives the ack wait. Dedup by task
// name is JetStream's Nats-Msg-Id window (Options.Dedup, 10 minutes).
// Queue settings (created on first use, or from the manifest) live in the
// KV bucket "queues" under "<app>.<queue>".
//
// A task id is a uint64 made from the engine clock (milliseconds << 16,
// plus a counter) and appears in every subject the task moves through, so
// peek/delete/kick by id is a last-message-by-subject lookup on
// tasks.<app>.*.*.<id>. Tasks made by cron use their stream sequence as id.
//
// # What is approximate
//
// JetStream delivers in stream order, so a queue is FIFO: beanstalkd
// priorities are stored and reported (stats-job, peek) but do not reorder
// ready tasks. A release with a delay (or a new priority) stores the task
// again, as a delayed put does, and acknowledges the delivery; a push
// retry with a delay is a nak with delay and counts as ready, not
// delayed, in the queue figures. Figures per
// queue (ready, delayed, buried) are computed from the stream when asked,
// which costs a walk of the queue's subjects; the urgent count walks the
// first 10,000 ready tasks. Rates, the reserved count, the queue's delete
// and pause counts and each task's timeouts, releases, buries and kicks
// (stats-job) are this engine's own, since it started.
//
// # What assumes one engine per store
//
// Reservations (TTR timers, "reserved by another connection") are known to
// the engine that made them; a task reserved by id (reserve-job) sits on
// its h.<id> subject and Start moves every such task back to ready. Both
// need revisiting when several engines share one NATS cluster.
//
// # Prefetch
//
// A reserve fetches up to 32 ready tasks at once (one fetch at a time per
// queue) and keeps the rest in the queue's buffer for the next reserves;
// a buffered task older than a third of the ack wait is handed back rather
// than out. Push delivery fetches only as many as it has free slots.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
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

// Options configure New. Zero fields get the defaults documented here.
type Options struct {
	Store  *store.Store // required
	Logger *slog.Logger // nil discards
	// AckWait is the backstop TTR: a task taken by an engine that died
	// comes back after it. Default 10s.
	AckWait time.Duration
	// Dedup is how long a task name is remembered. Default 10 minutes.
	Dedup time.Duration
	// MaxBody bounds a task's body. Default 64 KiB (beanstalkd's max-job-size).
	MaxBody int
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
	if o.AckWait <= 0 {
		o.AckWait = 10 * time.Second
	}
	if o.Dedup <= 0 {
		o.Dedup = 10 * time.Minute
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 65535
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
	opts  Options
	log   *slog.Logger
	q     *store.WorkQueue
	confs *store.Bucket
	ids   idAllocator

	mu       sync.Mutex              // guards queues, reserved, counts
	queues   map[string]*queue       // by "<app>/<queue>"
	reserved map[uint64]*reservation // tasks reserved through this engine, by id
	counts   map[uint64]*jobCounts   // event counters of tasks, by id
	pushers  map[string]*pusher      // by "<app>/<queue>"; guarded by mu

	ctx context.Context // the service's lifetime, set by Start
}

// New opens the task storage. Call Start before use.
func New(ctx context.Context, opts Options) (*Service, error) {
	opts.defaults()
	if opts.Store == nil {
		return nil, errors.New("tasks: no store")
	}
	q, err := opts.Store.WorkQueue(ctx, store.WorkQueueConfig{Name: "TASKS", Subjects: []string{"tasks.>"}, Dedup: opts.Dedup})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	confs, err := opts.Store.Bucket(ctx, "queues", 1)
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return &Service{
		opts: opts, log: opts.Logger, q: q, confs: confs,
		queues: map[string]*queue{}, reserved: map[uint64]*reservation{},
		counts:  map[uint64]*jobCounts{},
		pushers: map[string]*pusher{},
		ctx:     ctx,
	}, nil
}

// Start runs the service's background work until ctx ends.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	if err := s.releaseHeld(ctx); err != nil {
		return fmt.Errorf("tasks: release tasks held by the previous engine: %w", err)
	}
	go func() {
		<-ctx.Done()
		s.stopAll()
	}()
	return nil
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
	Priority uint32        // beanstalkd priority, lower is more urgent; stored, reported
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
	// Events seen by this engine since it started (beanstalkd stats-job).
	Timeouts int `json:"timeouts,omitempty"`
	Releases int `json:"releases,omitempty"`
	Buries   int `json:"buries,omitempty"`
	Kicks    int `json:"kicks,omitempty"`
	seq      uint64
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
)

func subject(app, queue, state string, id uint64) string {
	return "tasks." + app + "." + queue + "." + state + "." + strconv.FormatUint(id, 10)
}

// Enqueue stores a task; it is durable when Enqueue returns its id.
func (s *Service) Enqueue(ctx context.Context, app, queue string, t NewTask) (uint64, error) {
	if err := ValidQueue(queue); err != nil {
		return 0, err
	}
	if len(t.Body) > s.opts.MaxBody {
		return 0, fmt.Errorf("%w: %d bytes, at most %d", ErrTooBig, len(t.Body), s.opts.MaxBody)
	}
	q, err := s.queue(ctx, app, queue)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	id := s.ids.next(now)
	if t.TTR <= 0 {
		t.TTR = 60 * time.Second
	}
	hdr := map[string]string{
		hdrPri:     strconv.FormatUint(uint64(t.Priority), 10),
		hdrTTR:     strconv.FormatInt(t.TTR.Milliseconds(), 10),
		hdrCreated: strconv.FormatInt(now.UnixNano(), 10),
	}
	var po store.PutOptions
	if t.Name != "" {
		hdr[hdrName] = t.Name
		po.MsgID = app + "/" + queue + "/" + t.Name
	}
	eta := t.ETA
	if eta.IsZero() && t.Delay > 0 {
		eta = now.Add(t.Delay)
	}
	subj := subject(app, queue, "r", id)
	if !eta.IsZero() && eta.After(now) {
		hdr[hdrETA] = strconv.FormatInt(eta.UnixNano(), 10)
		po.At, po.Target = eta, subj
		subj = subject(app, queue, "d", id)
	}
	seq, err := s.q.Put(ctx, subj, t.Body, hdr, po)
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
		case "r":
			t.State = StateReady
		case "d":
			t.State = StateDelayed
		case "x":
			t.State = StateBuried
		case "h":
			t.State = StateReserved
		}
		id, err := strconv.ParseUint(parts[4], 10, 64)
		if err != nil {
			id = m.Seq // made by cron: its subject ends in c<n>
		}
		t.ID = id
	}
	if v, ok := m.Header[hdrID]; ok {
		if id, err := strconv.ParseUint(v, 10, 64); err == nil {
			t.ID = id
		}
	}
	pri, _ := strconv.ParseUint(m.Header[hdrPri], 10, 32)
	t.Priority = uint32(pri)
	ttr, err := strconv.ParseInt(m.Header[hdrTTR], 10, 64)
	if err != nil || ttr <= 0 {
		ttr = 60_000
	}
	t.TTR = Duration(time.Duration(ttr) * time.Millisecond)
	t.Name = m.Header[hdrName]
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
	return t
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
