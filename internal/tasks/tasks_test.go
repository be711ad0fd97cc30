package tasks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"pier/internal/store"
)

// newService runs a Service over a real store in a temporary directory;
// push deliveries go to gw (a stand-in for the gateway) when given.
// openStore opens a store of its own for t, closed at its end.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newService(t testing.TB, gw *httptest.Server) *Service {
	t.Helper()
	return newServiceWith(t, gw, nil)
}

// newServiceWith is newService with options changed by edit (nil: none).
func newServiceWith(t testing.TB, gw *httptest.Server, edit func(o *Options)) *Service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Store: st, Dir: t.TempDir(), Domain: "localhost"}
	if gw != nil {
		opts.GatewayURL = gw.URL
	}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start(ctx)
	t.Cleanup(func() { cancel(); s.Close(); st.Close() })
	return s
}

func TestAPIEnqueue(t *testing.T) {
	s := newService(t, nil)
	mux := http.NewServeMux()
	for p, h := range s.Routes(func(_ context.Context, app string) bool { return app == "blog" }) {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	send := func(method, path, ctype, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	const js = "application/json"
	tests := []struct {
		method, path, ctype, body string
		status                    int
		want                      string // in the answer
	}{
		{"POST", "/v1/apps/blog/tasks/email", js, `{"body":"hi"}`, 201, `"id":`},
		{"POST", "/v1/apps/blog/tasks/email", "text/plain", `raw body`, 201, `"id":`},
		{"POST", "/v1/apps/blog/tasks/email", js, `{"body":"a","name":"n1"}`, 201, `"id":`},
		{"POST", "/v1/apps/blog/tasks/email", js, `{"body":"b","name":"n1"}`, 409, `a task named \"n1\"`},
		{"POST", "/v1/apps/blog/tasks/email", js, `[{"body":"1"},{"body":"2","name":"n1"}]`, 201, `"duplicate_of":`},
		{"POST", "/v1/apps/blog/tasks/email", js, `{"body":"x","colour":"red"}`, 400, `unknown field \"colour\"`},
		{"POST", "/v1/apps/blog/tasks/email", js, `{"body":"x","delay":"soon"}`, 400, `delay \"soon\"`},
		{"POST", "/v1/apps/blog/tasks/email", js, `{"body":"x","eta":"tomorrow"}`, 400, `RFC 3339`},
		{"POST", "/v1/apps/blog/tasks/email", js, `{"body_base64":"!!"}`, 400, `body_base64`},
		{"POST", "/v1/apps/blog/tasks/email", js, `{"body":"` + strings.Repeat("x", 70000) + `"}`, 413, `too big`},
		{"POST", "/v1/apps/blog/tasks/Bad.Name", js, `{"body":"x"}`, 400, `invalid queue name`},
		{"POST", "/v1/apps/nope/tasks/email", js, `{"body":"x"}`, 404, `no app named`},
		{"GET", "/v1/apps/blog/tasks/email/dead", "", "", 200, `[]`},
		{"POST", "/v1/apps/blog/tasks/email/dead/123/retry", "", "", 404, `no such task`},
		{"POST", "/v1/apps/blog/tasks/email/dead/abc/retry", "", "", 400, `want a number`},
		{"POST", "/v1/apps/blog/tasks/email/pause", js, `{"for":"1h"}`, 200, `"paused":true`},
		{"POST", "/v1/apps/blog/tasks/email/resume", "", "", 200, `"paused":false`},
	}
	for _, tc := range tests {
		status, body := send(tc.method, tc.path, tc.ctype, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %.40s: got %d %.200s, want %d with %q", tc.method, tc.path, tc.body, status, body, tc.status, tc.want)
		}
	}
	_, body := send("GET", "/v1/apps/blog/tasks", "", "")
	var qs []QueueStats
	if err := json.Unmarshal([]byte(body), &qs); err != nil || len(qs) != 1 || qs[0].Ready != 4 {
		t.Fatalf("queues: %s (%v)", body, err)
	}
}

// TestPushDeadAndRetry pushes to a real HTTP server that fails a task:
// it is tried `attempts` times, lands in the dead set with the reason, and
// a retry puts it back.
func TestPushDeadAndRetry(t *testing.T) {
	var (
		mu    sync.Mutex
		tries []http.Header
	)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "blog.localhost" || r.URL.Path != "/hook" {
			http.Error(w, "wrong place", 404)
			return
		}
		mu.Lock()
		tries = append(tries, r.Header.Clone())
		mu.Unlock()
		w.WriteHeader(503)
	}))
	defer gw.Close()
	s := newService(t, gw)
	ctx := context.Background()
	err := s.Configure(ctx, "blog", map[string]QueueConfig{
		"hooks": {Push: "/hook", Attempts: 2, MinBackoff: Duration(100 * time.Millisecond)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Enqueue(ctx, "blog", "hooks", NewTask{Body: []byte("payload")})
	if err != nil {
		t.Fatal(err)
	}
	var dead []Task
	for deadline := time.Now().Add(20 * time.Second); len(dead) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the failing task never reached the dead set")
		}
		time.Sleep(50 * time.Millisecond)
		if dead, err = s.Dead(ctx, "blog", "hooks", 10); err != nil {
			t.Fatal(err)
		}
	}
	if dead[0].ID != id || !strings.Contains(dead[0].Error, "answered 503") || string(dead[0].Body) != "payload" {
		t.Fatalf("dead task: %+v", dead[0])
	}
	mu.Lock()
	n := len(tries)
	first := tries[0]
	mu.Unlock()
	if n != 2 || first.Get(HeaderAttempt) != "1" || first.Get(HeaderQueue) != "hooks" || first.Get(HeaderTaskID) == "" {
		t.Fatalf("%d tries, first headers %v", n, first)
	}
	if err := s.KickTask(ctx, "blog", id); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		mu.Lock()
		n = len(tries)
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the retried task was not pushed again")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCronSchedules stores every schedule shape the manifest accepts as a
// server-side schedule, and replaces them on the next Configure.
func TestCronSchedules(t *testing.T) {
	s := newService(t, nil)
	ctx := context.Background()
	var crons []Cron
	for _, sched := range []string{"*/5 * * * *", "0 30 9 * * 1-5", "@every 1m", "@hourly", "@daily", "@midnight", "@annually", "@weekly", "@monthly", "@yearly"} {
		crons = append(crons, Cron{Schedule: sched, Queue: "ticks", Body: sched})
	}
	crons = append(crons, Cron{Schedule: "@every 1h", Path: "/cron/cleanup"})
	if err := s.Configure(ctx, "blog", map[string]QueueConfig{"ticks": {}}, crons); err != nil {
		t.Fatal(err)
	}
	if n, err := s.q.Count(ctx, "tasks.blog.*.c.*"); err != nil || n != len(crons) {
		t.Fatalf("%d schedules stored (%v), want %d", n, err, len(crons))
	}
	// Configure again with one entry: the others go.
	if err := s.Configure(ctx, "blog", map[string]QueueConfig{"ticks": {}}, crons[:1]); err != nil {
		t.Fatal(err)
	}
	if n, err := s.q.Count(ctx, "tasks.blog.*.c.*"); err != nil || n != 1 {
		t.Fatalf("%d schedules left (%v), want 1", n, err)
	}
	if err := s.Configure(ctx, "blog", nil, []Cron{{Schedule: "61 * * * *", Queue: "ticks"}}); err == nil {
		t.Fatal("a schedule the server refuses was accepted")
	}
}
