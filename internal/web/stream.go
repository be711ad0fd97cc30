package web

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"pier/internal/api"
)

// heartbeat is how often an idle stream sends a comment, so a browser
// that went away is noticed and proxies keep the connection.
const heartbeat = 15 * time.Second

// sse writes server-sent events whose data are HTML fragments rendered
// from one of a page's templates; safe for concurrent use.
type sse struct {
	mu  sync.Mutex // guards w
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
}

func newSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	e := &sse{w: w, rc: http.NewResponseController(w)}
	e.rc.Flush()
	return e
}

// send writes one event; data may span lines.
func (e *sse) send(event string, data []byte) error {
	var b bytes.Buffer
	b.WriteString("event: " + event + "\n")
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	return e.raw(b.Bytes())
}

func (e *sse) raw(p []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return e.err
	}
	if _, err := e.w.Write(p); err != nil {
		e.err = err
		return err
	}
	e.err = e.rc.Flush()
	return e.err
}

// beat sends comments until ctx ends.
func (e *sse) beat(ctx context.Context) {
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if e.raw([]byte(": beat\n\n")) != nil {
				return
			}
		}
	}
}

// fragment renders one named template of a page.
func (s *Server) fragment(page, name string, data any) ([]byte, error) {
	var b bytes.Buffer
	err := s.pages.byName[page].ExecuteTemplate(&b, name, data)
	return b.Bytes(), err
}

// logStream follows the app's logs: the last 50 lines, then each new one,
// as "line" events of <li> fragments.
func (s *Server) logStream(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	if _, err := s.opts.Engine.App(r.Context(), name); err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	out := newSSE(w)
	go out.beat(ctx)
	err := s.opts.Engine.Logs(ctx, name, api.LogQuery{Follow: true, Lines: 50}, func(l api.LogLine) error {
		frag, err := s.fragment("app", "logline", l)
		if err != nil {
			return err
		}
		return out.send("line", frag)
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("dashboard log stream", "app", name, "err", err)
	}
}

// eventStream follows the app's deploy events (every deploy, rollback and
// config change, from the CLI or the dashboard) as "deploy" events of <li>
// fragments.
func (s *Server) eventStream(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	if _, err := s.opts.Engine.App(r.Context(), name); err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	out := newSSE(w)
	go out.beat(ctx)
	err := s.opts.Engine.Events(ctx, name, 40, func(ev api.Event) error {
		frag, err := s.fragment("deploys", "event", ev)
		if err != nil {
			return err
		}
		return out.send("deploy", frag)
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("dashboard event stream", "app", name, "err", err)
	}
}
