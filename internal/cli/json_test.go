package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestJSONOnListings runs every listing command with --json against canned
// engine answers: each prints valid JSON (NDJSON for logs) that carries
// what the engine said.
func TestJSONOnListings(t *testing.T) {
	const marker = "m4rker"
	canned := map[string]string{
		"GET /v1/apps":                          `[{"name":"m4rker","scale":{"web":1}}]`,
		"GET /v1/apps/blog/releases":            `[{"app":"blog","number":1,"cause":"m4rker","status":"active"}]`,
		"GET /v1/apps/blog/ps":                  `[{"instance":"m4rker","process":"web","state":"running"}]`,
		"GET /v1/apps/blog/env":                 `{"KEY":"m4rker"}`,
		"GET /v1/apps/blog/logs":                `{"app":"blog","instance":"web.1","text":"m4rker 1"}` + "\n" + `{"app":"blog","instance":"web.1","text":"m4rker 2"}` + "\n",
		"GET /v1/apps/blog/tasks":               `[{"name":"m4rker","ready":1}]`,
		"GET /v1/apps/blog/tasks/email/dead":    `[{"id":1,"queue":"email","name":"m4rker"}]`,
		"GET /v1/apps/blog/errors":              `[{"id":"m4rker","title":"boom","count":1}]`,
		"GET /v1/apps/blog/search/_cat/indices": `[{"index":"m4rker","docs.count":"1"}]`,
		"GET /v1/apps/blog/drains":              `[{"id":"m4rker","app":"blog","url":"syslog+tcp://127.0.0.1:1"}]`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := canned[r.Method+" "+r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"error": "no canned answer for " + r.Method + " " + r.URL.Path})
			return
		}
		w.Write([]byte(body))
	}))
	defer srv.Close()

	tests := []struct {
		args   []string
		ndjson bool
	}{
		{args: []string{"apps"}},
		{args: []string{"releases", "--app", "blog"}},
		{args: []string{"ps", "--app", "blog"}},
		{args: []string{"env", "list", "--app", "blog"}},
		{args: []string{"logs", "--app", "blog"}, ndjson: true},
		{args: []string{"tasks", "--app", "blog"}},
		{args: []string{"tasks", "dead", "email", "--app", "blog"}},
		{args: []string{"errors", "blog"}},
		{args: []string{"search", "--app", "blog"}},
		{args: []string{"drains", "--app", "blog"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			a := testCLI(t, map[string]string{"PIER_API": srv.URL, "PIER_TOKEN": testToken})
			r := a.execute(t, "", append(tt.args, "--json")...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			docs := []string{r.stdout}
			if tt.ndjson {
				docs = strings.Split(strings.TrimSpace(r.stdout), "\n")
				if len(docs) != 2 {
					t.Fatalf("got %d NDJSON lines, want 2: %q", len(docs), r.stdout)
				}
			}
			for _, d := range docs {
				var v any
				dec := json.NewDecoder(bytes.NewReader([]byte(d)))
				if err := dec.Decode(&v); err != nil || dec.More() {
					t.Fatalf("not one JSON value (%v): %q", err, d)
				}
				if !strings.Contains(d, marker) {
					t.Errorf("got %q, want it to carry %q", d, marker)
				}
			}
		})
	}
}
