package search

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// server is a search API over a real Service in a temporary directory,
// serving the indexes of app "blog".
type server struct {
	t   *testing.T
	svc *Service
	url string
	dir string
}

func newServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{t: t, dir: dir}
	s.open()
	return s
}

func (s *server) open() {
	t := s.t
	svc, err := Open(Options{Dir: s.dir, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(svc.Handler(func(r *http.Request) (string, string, error) {
		return "blog", r.URL.Path, nil
	}))
	s.svc, s.url = svc, ts.URL
	t.Cleanup(func() { ts.Close(); svc.Close() })
}

// reopen closes the service and opens a new one on the same directory.
func (s *server) reopen() {
	s.svc.Close()
	s.open()
}

// do sends a request and decodes the JSON answer.
func (s *server) do(method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(data) > 0 && method != http.MethodHead {
		if err := json.Unmarshal(data, &out); err != nil {
			s.t.Fatalf("%s %s: answer is not a JSON object: %s", method, path, data)
		}
	}
	return resp.StatusCode, out
}

// must sends a request and fails the test on a status other than want.
func (s *server) must(want int, method, path string, body any) map[string]any {
	s.t.Helper()
	code, out := s.do(method, path, body)
	if code != want {
		s.t.Fatalf("%s %s: status %d, want %d: %v", method, path, code, want, out)
	}
	return out
}

// bulk sends NDJSON lines.
func (s *server) bulk(path string, lines ...any) map[string]any {
	s.t.Helper()
	var b strings.Builder
	for _, l := range lines {
		data, _ := json.Marshal(l)
		b.Write(data)
		b.WriteByte('\n')
	}
	return s.must(200, "POST", path, b.String())
}

// ids are the _id of the hits of a search answer, in order.
func ids(out map[string]any) []string {
	var got []string
	for _, h := range hitList(out) {
		got = append(got, h["_id"].(string))
	}
	return got
}

func hitList(out map[string]any) []map[string]any {
	hits, _ := out["hits"].(map[string]any)
	list, _ := hits["hits"].([]any)
	var res []map[string]any
	for _, h := range list {
		res = append(res, h.(map[string]any))
	}
	return res
}

func total(out map[string]any) int {
	hits, _ := out["hits"].(map[string]any)
	tot, _ := hits["total"].(map[string]any)
	n, _ := tot["value"].(float64)
	return int(n)
}

func errType(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["type"].(string)
	return s
}

func errReason(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["reason"].(string)
	return s
}

// obj builds JSON objects tersely: obj("a", 1, "b", 2).
func obj(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func list(v ...any) []any { return v }
