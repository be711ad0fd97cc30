package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testToken = "s3cret"

// fakeEngine is an httptest.Server speaking the engine routes with canned
// answers; it records what it was sent.
type fakeEngine struct {
	t   *testing.T
	srv *httptest.Server

	deployEvents []Event // streamed by deploy, rollback and env changes
	logs         []LogLine
	run          []RunOutput

	gotBody  []byte // last request body
	gotQuery string // last request query
}

func newFakeEngine(t *testing.T) (*fakeEngine, *Client) {
	t.Helper()
	f := &fakeEngine{t: t}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, Health{OK: true, Version: "v1.2.3"})
	})
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+testToken {
				w.WriteHeader(http.StatusUnauthorized)
				writeJSON(w, Error{Error: "invalid token"})
				return
			}
			body, _ := io.ReadAll(r.Body)
			f.gotBody, f.gotQuery = body, r.URL.RawQuery
			if r.PathValue("app") == "missing" {
				w.WriteHeader(http.StatusNotFound)
				writeJSON(w, Error{Error: `no app "missing"`})
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /v1/apps", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, []App{{Name: "blog", Release: 3}, {Name: "shop"}})
	}))
	mux.HandleFunc("GET /v1/apps/{app}", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, App{Name: r.PathValue("app"), Release: 3, URLs: []string{"http://blog.localhost:8080"}})
	}))
	mux.HandleFunc("DELETE /v1/apps/{app}", auth(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /v1/apps/{app}/releases", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, []Release{{App: "blog", Number: 2, Status: ReleaseActive}, {App: "blog", Number: 1, Status: ReleaseRetired}})
	}))
	mux.HandleFunc("GET /v1/apps/{app}/env", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"A": "1"})
	}))
	mux.HandleFunc("GET /v1/apps/{app}/ps", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, []Instance{{Instance: "web.1", State: "running"}})
	}))
	mux.HandleFunc("PUT /v1/apps/{app}/scale", auth(func(w http.ResponseWriter, r *http.Request) {
		var s map[string]int
		if err := json.Unmarshal(f.gotBody, &s); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		writeJSON(w, App{Name: r.PathValue("app"), Scale: s})
	}))
	stream := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		for _, ev := range f.deployEvents {
			writeJSON(w, ev)
			w.(http.Flusher).Flush()
		}
	}
	mux.HandleFunc("POST /v1/apps/{app}/deploy", auth(stream))
	mux.HandleFunc("POST /v1/apps/{app}/rollback", auth(stream))
	mux.HandleFunc("PATCH /v1/apps/{app}/env", auth(stream))
	mux.HandleFunc("GET /v1/apps/{app}/logs", auth(func(w http.ResponseWriter, r *http.Request) {
		for _, l := range f.logs {
			writeJSON(w, l)
		}
		w.(http.Flusher).Flush()
		if r.URL.Query().Get("follow") == "1" {
			<-r.Context().Done()
		}
	}))
	mux.HandleFunc("POST /v1/apps/{app}/run", auth(func(w http.ResponseWriter, r *http.Request) {
		for _, o := range f.run {
			writeJSON(w, o)
		}
	}))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f, &Client{BaseURL: f.srv.URL, Token: testToken}
}

func writeJSON(w io.Writer, v any) {
	json.NewEncoder(w).Encode(v)
}

func TestClientGets(t *testing.T) {
	_, c := newFakeEngine(t)
	ctx := context.Background()

	h, err := c.Health(ctx)
	if err != nil || !h.OK || h.Version != "v1.2.3" {
		t.Fatalf("Health = %+v, %v", h, err)
	}
	apps, err := c.Apps(ctx)
	if err != nil || len(apps) != 2 || apps[0].Name != "blog" {
		t.Fatalf("Apps = %+v, %v", apps, err)
	}
	app, err := c.App(ctx, "blog")
	if err != nil || app.Name != "blog" || app.Release != 3 {
		t.Fatalf("App = %+v, %v", app, err)
	}
	rs, err := c.Releases(ctx, "blog")
	if err != nil || len(rs) != 2 || rs[0].Number != 2 {
		t.Fatalf("Releases = %+v, %v", rs, err)
	}
	env, err := c.Env(ctx, "blog")
	if err != nil || !reflect.DeepEqual(env, map[string]string{"A": "1"}) {
		t.Fatalf("Env = %v, %v", env, err)
	}
	ps, err := c.PS(ctx, "blog")
	if err != nil || len(ps) != 1 || ps[0].Instance != "web.1" {
		t.Fatalf("PS = %+v, %v", ps, err)
	}
	if err := c.Destroy(ctx, "blog"); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
}

func TestClientScale(t *testing.T) {
	f, c := newFakeEngine(t)
	app, err := c.Scale(context.Background(), "blog", map[string]int{"web": 3, "worker": 0})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(f.gotBody), `{"web":3,"worker":0}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
	if app.Scale["web"] != 3 {
		t.Errorf("scale = %v", app.Scale)
	}
}

func TestClientErrors(t *testing.T) {
	_, c := newFakeEngine(t)
	ctx := context.Background()

	_, err := c.App(ctx, "missing")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Message != `no app "missing"` {
		t.Fatalf("App(missing) err = %#v", err)
	}
	if got, want := err.Error(), `no app "missing"`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}

	bad := &Client{BaseURL: c.BaseURL, Token: "wrong"}
	_, err = bad.Apps(ctx)
	if !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("wrong token err = %#v", err)
	}
	for _, want := range []string{"token", "invalid token", "--token", "$PIER_TOKEN", "$PIER_HOME/token"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("401 message %q lacks %q", err, want)
		}
	}

	// The health route needs no token.
	if _, err := bad.Health(ctx); err != nil {
		t.Errorf("Health with a wrong token: %v", err)
	}
}

func TestClientNonJSONError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream exploded", http.StatusBadGateway)
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL + "/"}
	_, err := c.Apps(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Message != "upstream exploded" {
		t.Fatalf("err = %#v", err)
	}
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv2.Close()
	_, err = (&Client{BaseURL: srv2.URL}).Apps(context.Background())
	if got, want := err.Error(), "the engine answered 503 Service Unavailable"; got != want {
		t.Errorf("empty error body: got %q, want %q", got, want)
	}
}

func TestClientUnreachable(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	base := "http://" + addr
	_, err = (&Client{BaseURL: base}).Apps(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %#v, want *UnreachableError", err)
	}
	want := `cannot reach the engine at ` + base + ` (is "pier up" running?)`
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}

func TestClientDeploy(t *testing.T) {
	f, c := newFakeEngine(t)
	f.deployEvents = []Event{
		{Type: EventBuild, Message: "Building python"},
		{Type: EventLog, Message: "Collecting flask"},
		{Type: EventStart, Release: 3, Message: "Starting v3 (2 web)"},
		{Type: EventDone, Release: 3},
		{Type: EventLog, Message: "after done: never read"},
	}
	var seen []string
	done, err := c.Deploy(context.Background(), "blog", strings.NewReader("BUNDLE"), func(ev Event) {
		seen = append(seen, ev.Type)
	})
	if err != nil {
		t.Fatal(err)
	}
	if done.Type != EventDone || done.Release != 3 {
		t.Errorf("final event = %+v", done)
	}
	if got, want := strings.Join(seen, ","), "build,log,start,done"; got != want {
		t.Errorf("events = %s, want %s", got, want)
	}
	if string(f.gotBody) != "BUNDLE" {
		t.Errorf("uploaded %q", f.gotBody)
	}
}

func TestClientDeployError(t *testing.T) {
	f, c := newFakeEngine(t)
	f.deployEvents = []Event{
		{Type: EventBuild, Message: "Building python"},
		{Type: EventError, Error: "build failed: pip exited 1", LogTail: []string{"ERROR: no such package", "exit 1"}},
	}
	_, err := c.Deploy(context.Background(), "blog", strings.NewReader("x"), nil)
	var de *DeployError
	if !errors.As(err, &de) {
		t.Fatalf("err = %#v, want *DeployError", err)
	}
	want := "build failed: pip exited 1\n  last log lines:\n    ERROR: no such package\n    exit 1"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}

func TestClientStreamEndsEarly(t *testing.T) {
	f, c := newFakeEngine(t)
	f.deployEvents = []Event{{Type: EventBuild, Message: "Building"}}
	if _, err := c.Rollback(context.Background(), "blog", 2, nil); !errors.Is(err, ErrStreamEnded) {
		t.Fatalf("err = %v, want ErrStreamEnded", err)
	}
	if got, want := string(f.gotBody), `{"release":2}`; got != want {
		t.Errorf("rollback body = %s, want %s", got, want)
	}
}

func TestClientSetEnv(t *testing.T) {
	f, c := newFakeEngine(t)
	f.deployEvents = []Event{{Type: EventDone, Release: 4}}
	done, err := c.SetEnv(context.Background(), "blog", EnvChange{Set: map[string]string{"A": "b=c"}, Unset: []string{"B"}}, nil)
	if err != nil || done.Release != 4 {
		t.Fatalf("SetEnv = %+v, %v", done, err)
	}
	if got, want := string(f.gotBody), `{"set":{"A":"b=c"},"unset":["B"]}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
}

func TestClientLogs(t *testing.T) {
	f, c := newFakeEngine(t)
	f.logs = []LogLine{{Instance: "web.1", Text: "one"}, {Instance: "web.1", Text: "two"}}
	var got []string
	err := c.Logs(context.Background(), "blog", LogOptions{Process: "web", Lines: 10}, func(l LogLine) {
		got = append(got, l.Text)
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "one,two" {
		t.Errorf("lines = %v", got)
	}
	if f.gotQuery != "lines=10&process=web" {
		t.Errorf("query = %q", f.gotQuery)
	}

	// Following stops when the context is cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	lines := make(chan string, 10)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Logs(ctx, "blog", LogOptions{Follow: true}, func(l LogLine) { lines <- l.Text })
	}()
	<-lines
	<-lines
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("follow err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Logs did not return after cancel")
	}
}

func TestClientRun(t *testing.T) {
	f, c := newFakeEngine(t)
	exit := 3
	f.run = []RunOutput{
		{Stream: "stdout", Text: "hello"},
		{Stream: "stderr", Text: "oops\n"},
		{Stream: "stdout", Text: "bye"},
		{Exit: &exit},
	}
	var stdout, stderr bytes.Buffer
	code, err := c.Run(context.Background(), "blog", []string{"sh", "-c", "exit 3"}, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 {
		t.Errorf("exit code = %d, want 3", code)
	}
	if stdout.String() != "hello\nbye\n" || stderr.String() != "oops\n" {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	if got, want := string(f.gotBody), `{"command":["sh","-c","exit 3"]}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}

	f.run = []RunOutput{{Error: "no release to run"}}
	if _, err := c.Run(context.Background(), "blog", []string{"true"}, nil, nil); err == nil || err.Error() != "no release to run" {
		t.Errorf("run error = %v", err)
	}
	f.run = nil
	if _, err := c.Run(context.Background(), "blog", []string{"true"}, nil, nil); !errors.Is(err, ErrStreamEnded) {
		t.Errorf("run without exit = %v, want ErrStreamEnded", err)
	}
}
