package logs

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pier/internal/store"
)

// Drain is where an app's lines are sent as they are written: a syslog
// server (syslog+tcp://host:port, syslog+tls://host:port) or an HTTP(S)
// endpoint taking NDJSON batches.
type Drain struct {
	ID      string    `json:"id"`
	App     string    `json:"app"`
	URL     string    `json:"url"` // with any password masked in listings
	Created time.Time `json:"created"`

	// What this engine did since it started (not stored).
	Sent      uint64 `json:"sent"`
	Dropped   uint64 `json:"dropped"` // dropped oldest-first while the drain was down
	Waiting   int    `json:"waiting"`
	LastError string `json:"last_error,omitempty"`
}

// MaxDrainsPerApp bounds how many drains one app may have.
const MaxDrainsPerApp = 10

// Errors the API turns into 4xx answers.
var (
	ErrBadDrain      = errors.New("logs: bad drain")
	ErrDrainNotFound = errors.New("logs: no such drain")
	ErrDrainExists   = errors.New("logs: drain already exists")
)

// DrainOptions configure NewDrains.
type DrainOptions struct {
	// Store holds the drains bucket. Required.
	Store *store.Store
	// Logger receives the drains' own logs. Nil discards them.
	Logger *slog.Logger
	// Buffer is how many lines each drain keeps while it cannot deliver
	// them; beyond, the oldest are dropped and counted. Zero means 10,000.
	Buffer int
	// BatchSize is the most lines one delivery carries. Zero means 500.
	BatchSize int
	// Linger is how long an HTTP drain waits for a batch to fill before
	// posting it. Zero means 1 s.
	Linger time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed deliveries,
	// doubling from one to the other. Zero means 500 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient posts to HTTP drains. Nil means a client with default
	// transport settings.
	HTTPClient *http.Client
	// TLS configures syslog+tls drains. Nil means the system roots.
	TLS *tls.Config
	// Hostname is the HOSTNAME field of syslog messages; empty means
	// os.Hostname.
	Hostname string
}

// Drains keeps each app's drains in the store (bucket "drains", key
// <app>.<id>) and runs one sender per drain on every engine watching it.
// Create it with NewDrains, then Start it.
type Drains struct {
	opts DrainOptions
	log  *slog.Logger
	kv   *store.Bucket

	mu    sync.RWMutex      // guards byKey, byApp
	byKey map[string]*drain // by store key
	byApp map[string][]*drain
}

// drain is one running sender.
type drain struct {
	cfg    Drain
	buf    *buffer
	sink   sink
	linger time.Duration
	sent   atomic.Uint64
	err    atomic.Pointer[string] // the last delivery error, nil after a success
	stop   context.CancelFunc
	done   chan struct{}
}

// NewDrains returns Drains with opts' defaults filled in.
func NewDrains(opts DrainOptions) (*Drains, error) {
	if opts.Store == nil {
		return nil, errors.New("logs: drains: no store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 10000
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Linger <= 0 {
		opts.Linger = time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	return &Drains{opts: opts, log: opts.Logger, byKey: map[string]*drain{}, byApp: map[string][]*drain{}}, nil
}

// Start opens the bucket and runs a sender for every drain in it, and for
// every drain added later by any engine, until ctx ends.
func (d *Drains) Start(ctx context.Context) error {
	kv, err := d.opts.Store.Bucket(ctx, "drains", 1)
	if err != nil {
		return fmt.Errorf("logs: drains: %w", err)
	}
	d.kv = kv
	context.AfterFunc(ctx, d.stopAll)
	return kv.Watch(ctx, ">", func(e store.Entry) {
		if e.Key == "" {
			return
		}
		if e.Deleted {
			d.stopDrain(e.Key)
			return
		}
		var cfg Drain
		if err := json.Unmarshal(e.Value, &cfg); err != nil {
			d.log.Warn("drain: bad record", "key", e.Key, "err", err)
			return
		}
		d.startDrain(ctx, e.Key, cfg)
	})
}

// Send hands a line to the app's drains. It never blocks.
func (d *Drains) Send(l Line) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, dr := range d.byApp[l.App] {
		dr.buf.push(l)
	}
}

// Add stores a new drain for app; every engine starts sending to it.
func (d *Drains) Add(ctx context.Context, app, rawURL string) (Drain, error) {
	if _, err := newSink(rawURL, d.opts); err != nil {
		return Drain{}, err
	}
	list, err := d.List(ctx, app)
	if err != nil {
		return Drain{}, err
	}
	if len(list) >= MaxDrainsPerApp {
		return Drain{}, fmt.Errorf("%w: %s has %d drains already, the most an app may have", ErrBadDrain, app, len(list))
	}
	for _, other := range list {
		if other.URL == redact(rawURL) {
			return Drain{}, fmt.Errorf("%w: %s already drains to %s (%s)", ErrDrainExists, app, other.URL, other.ID)
		}
	}
	id := make([]byte, 6)
	rand.Read(id)
	cfg := Drain{ID: hex.EncodeToString(id), App: app, URL: rawURL, Created: time.Now().UTC()}
	if _, err := store.PutJSON(ctx, d.kv, key(app, cfg.ID), cfg); err != nil {
		return Drain{}, fmt.Errorf("logs: add drain: %w", err)
	}
	cfg.URL = redact(cfg.URL)
	return cfg, nil
}

// List returns app's drains, oldest first, with what this engine sent.
func (d *Drains) List(ctx context.Context, app string) ([]Drain, error) {
	keys, err := d.kv.Keys(ctx, Token(app)+".*")
	if err != nil {
		return nil, fmt.Errorf("logs: list drains: %w", err)
	}
	out := []Drain{}
	for _, k := range keys {
		var cfg Drain
		if _, err := store.GetJSON(ctx, d.kv, k, &cfg); err != nil {
			continue // removed meanwhile
		}
		cfg.URL = redact(cfg.URL)
		d.mu.RLock()
		if dr := d.byKey[k]; dr != nil {
			cfg.Sent = dr.sent.Load()
			cfg.Waiting, cfg.Dropped = dr.buf.size()
			if e := dr.err.Load(); e != nil {
				cfg.LastError = *e
			}
		}
		d.mu.RUnlock()
		out = append(out, cfg)
	}
	slices.SortFunc(out, func(a, b Drain) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Remove deletes one of app's drains.
func (d *Drains) Remove(ctx context.Context, app, id string) error {
	k := key(app, id)
	if _, err := d.kv.Get(ctx, k); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s has no drain %s", ErrDrainNotFound, app, id)
		}
		return fmt.Errorf("logs: remove drain: %w", err)
	}
	if err := d.kv.Delete(ctx, k); err != nil {
		return fmt.Errorf("logs: remove drain: %w", err)
	}
	return nil
}

// RemoveApp deletes every drain of app (it was destroyed).
func (d *Drains) RemoveApp(ctx context.Context, app string) error {
	keys, err := d.kv.Keys(ctx, Token(app)+".*")
	if err != nil {
		return fmt.Errorf("logs: remove drains: %w", err)
	}
	for _, k := range keys {
		if err := d.kv.Delete(ctx, k); err != nil {
			return fmt.Errorf("logs: remove drains: %w", err)
		}
	}
	return nil
}

func key(app, id string) string { return Token(app) + "." + Token(id) }

// redact masks the password of a URL's user info.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}

// newSink checks a drain URL and returns its sender.
func newSink(raw string, opts DrainOptions) (sink, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadDrain, err)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: %q has no host (want syslog+tcp://host:port, syslog+tls://host:port or https://...)", ErrBadDrain, redact(raw))
	}
	switch u.Scheme {
	case "syslog+tcp", "syslog+tls":
		if u.Port() == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("%w: %q: a syslog drain is %s://host:port, nothing more", ErrBadDrain, redact(raw), u.Scheme)
		}
		s := &syslogSink{addr: u.Host, hostname: opts.Hostname}
		if u.Scheme == "syslog+tls" {
			s.tls = opts.TLS.Clone()
			if s.tls == nil {
				s.tls = &tls.Config{}
			}
			if s.tls.ServerName == "" {
				s.tls.ServerName = u.Hostname()
			}
		}
		return s, nil
	case "http", "https":
		return &httpSink{url: raw, client: opts.HTTPClient}, nil
	}
	return nil, fmt.Errorf("%w: %q: the scheme must be syslog+tcp, syslog+tls, https or http", ErrBadDrain, redact(raw))
}

func (d *Drains) startDrain(ctx context.Context, k string, cfg Drain) {
	s, err := newSink(cfg.URL, d.opts)
	if err != nil {
		d.log.Warn("drain: bad URL", "app", cfg.App, "id", cfg.ID, "err", err)
		return
	}
	d.stopDrain(k) // a changed record replaces the running one
	ctx, cancel := context.WithCancel(ctx)
	dr := &drain{cfg: cfg, buf: newBuffer(d.opts.Buffer), sink: s, stop: cancel, done: make(chan struct{})}
	if _, ok := s.(*httpSink); ok {
		dr.linger = d.opts.Linger
	}
	d.mu.Lock()
	d.byKey[k] = dr
	d.byApp[cfg.App] = append(d.byApp[cfg.App], dr)
	d.mu.Unlock()
	go d.run(ctx, dr)
	d.log.Info("drain started", "app", cfg.App, "id", cfg.ID, "url", redact(cfg.URL))
}

func (d *Drains) stopDrain(k string) {
	d.mu.Lock()
	dr := d.byKey[k]
	if dr != nil {
		delete(d.byKey, k)
		d.byApp[dr.cfg.App] = slices.DeleteFunc(d.byApp[dr.cfg.App], func(x *drain) bool { return x == dr })
		if len(d.byApp[dr.cfg.App]) == 0 {
			delete(d.byApp, dr.cfg.App)
		}
	}
	d.mu.Unlock()
	if dr != nil {
		dr.stop()
		<-dr.done
	}
}

func (d *Drains) stopAll() {
	d.mu.RLock()
	keys := make([]string, 0, len(d.byKey))
	for k := range d.byKey {
		keys = append(keys, k)
	}
	d.mu.RUnlock()
	for _, k := range keys {
		d.stopDrain(k)
	}
}

// run delivers dr's lines until ctx ends: waits for lines (and, for HTTP,
// up to the linger for a full batch), sends a batch, and after a failure
// waits a backoff that doubles up to MaxBackoff before trying the same
// batch again. Lines that arrive meanwhile wait in the bounded buffer.
func (d *Drains) run(ctx context.Context, dr *drain) {
	defer close(dr.done)
	defer dr.sink.close()
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("drain: panic", "app", dr.cfg.App, "id", dr.cfg.ID, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	backoff := d.opts.MinBackoff
	timer := time.NewTimer(0)
	<-timer.C
	wait := func(dur time.Duration) bool {
		timer.Reset(dur)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
			return true
		}
	}
	for {
		if n, _ := dr.buf.size(); n == 0 {
			select {
			case <-ctx.Done():
				return
			case <-dr.buf.notify:
				continue
			}
		}
		if n, _ := dr.buf.size(); n < d.opts.BatchSize && dr.linger > 0 {
			if !wait(dr.linger) {
				return
			}
		}
		batch, upTo := dr.buf.peek(d.opts.BatchSize)
		if err := dr.sink.send(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return
			}
			msg := err.Error()
			if dr.err.Swap(&msg) == nil {
				d.log.Warn("drain: delivery failed; retrying", "app", dr.cfg.App, "id", dr.cfg.ID, "err", err)
			}
			if !wait(backoff) {
				return
			}
			backoff = min(backoff*2, d.opts.MaxBackoff)
			continue
		}
		dr.buf.commit(upTo)
		dr.sent.Add(uint64(len(batch)))
		if dr.err.Swap(nil) != nil {
			d.log.Info("drain: delivering again", "app", dr.cfg.App, "id", dr.cfg.ID)
		}
		backoff = d.opts.MinBackoff
	}
}

// Routes returns the drains API: GET and POST /v1/apps/{app}/drains,
// DELETE /v1/apps/{app}/drains/{id}. exists says whether an app exists.
func (d *Drains) Routes(exists func(r *http.Request, app string) bool) map[string]http.Handler {
	withApp := func(h func(w http.ResponseWriter, r *http.Request, app string)) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			app := r.PathValue("app")
			if !exists(r, app) {
				reply(w, http.StatusNotFound, errorBody{"no app named " + app})
				return
			}
			h(w, r, app)
		})
	}
	return map[string]http.Handler{
		"GET /v1/apps/{app}/drains": withApp(func(w http.ResponseWriter, r *http.Request, app string) {
			list, err := d.List(r.Context(), app)
			d.answer(w, http.StatusOK, list, err)
		}),
		"POST /v1/apps/{app}/drains": withApp(func(w http.ResponseWriter, r *http.Request, app string) {
			var req struct {
				URL string `json:"url"`
			}
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				reply(w, http.StatusBadRequest, errorBody{"bad request body: " + err.Error()})
				return
			}
			dr, err := d.Add(r.Context(), app, strings.TrimSpace(req.URL))
			d.answer(w, http.StatusCreated, dr, err)
		}),
		"DELETE /v1/apps/{app}/drains/{id}": withApp(func(w http.ResponseWriter, r *http.Request, app string) {
			if err := d.Remove(r.Context(), app, r.PathValue("id")); err != nil {
				d.answer(w, 0, nil, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}),
	}
}

type errorBody struct {
	Error string `json:"error"`
}

func (d *Drains) answer(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		status = http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrBadDrain):
			status = http.StatusBadRequest
		case errors.Is(err, ErrDrainNotFound):
			status = http.StatusNotFound
		case errors.Is(err, ErrDrainExists):
			status = http.StatusConflict
		default:
			d.log.Error("drains api", "err", err)
		}
		msg := err.Error()
		for _, e := range []error{ErrBadDrain, ErrDrainNotFound, ErrDrainExists} {
			msg = strings.TrimPrefix(msg, e.Error()+": ")
		}
		reply(w, status, errorBody{msg})
		return
	}
	reply(w, status, v)
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
