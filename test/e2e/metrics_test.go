package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
)

// metricsApp is a Python web app that sends statsd with the standard
// library's socket to STATSD_ADDR on every request, answers 500 on /fail
// and lets the gateway's cache keep /cached; its queue "work" has no
// pusher, so tasks stay ready.
var metricsApp = map[string]string{
	"pier.yaml": "name: metered\nprocesses:\n  web: python3 app.py\nqueues:\n  work: {}\n",
	"app.py": `import os, socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

host, port = os.environ["STATSD_ADDR"].rsplit(":", 1)
statsd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        statsd.sendto(b"e2e.hits:1|c|#path:" + self.path.strip("/").encode() + b"\ne2e.work:12|ms", (host, int(port)))
        code = 500 if self.path == "/fail" else 200
        body = b"metered " + self.path.encode()
        self.send_response(code)
        if self.path == "/cached":
            self.send_header("Cache-Control", "max-age=600")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`,
}

type appMetrics struct {
	Step      int `json:"step"`
	Processes []struct {
		Process string `json:"process"`
		Points  []struct {
			Requests  int     `json:"requests"`
			Status    [5]int  `json:"status"`
			Bytes     int     `json:"bytes"`
			P99       float64 `json:"p99_ms"`
			RSS       int64   `json:"rss"`
			Instances int     `json:"instances"`
			Cache     [5]int  `json:"cache"`
		} `json:"points"`
	} `json:"processes"`
	Queues []struct {
		Queue  string `json:"queue"`
		Points []struct {
			Ready int `json:"ready"`
			Dead  int `json:"dead"`
		} `json:"points"`
	} `json:"queues"`
	Errors []struct {
		Events int `json:"events"`
	} `json:"errors"`
	Instances []struct {
		Instance string `json:"instance"`
		RSS      int64  `json:"rss"`
	} `json:"instances"`
	Statsd []struct {
		Name   string    `json:"name"`
		Type   string    `json:"type"`
		Tags   []string  `json:"tags"`
		Values []float64 `json:"values"`
	} `json:"statsd"`
}

// TestMetricsEndToEnd deploys a real app, sends it traffic through the
// gateway, tasks to its queue and exceptions to the error tracker with
// sentry-go, and reads the gateway's figures (cache results included), the
// instance's memory, the queue's depth, the error events and the app's own
// statsd metrics back from the API, the CLI and /metrics.
func TestMetricsEndToEnd(t *testing.T) {
	e := startEngine(t)
	dir := writeApp(t, metricsApp)
	e.must(dir, "deploy")
	// 1 MISS then 4 HIT.
	for range 5 {
		if code, body := e.get("metered", "/cached"); code != 200 || body != "metered /cached" {
			t.Fatalf("GET /cached: %d %q", code, body)
		}
	}
	for i := range 3 {
		if code, out := e.enqueue("metered", "work", map[string]any{"body": fmt.Sprint("task ", i)}); code != 201 {
			t.Fatalf("enqueue: %d %v", code, out)
		}
	}
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: strings.TrimSpace(e.must(dir, "errors", "dsn"))})
	if err != nil {
		t.Fatal(err)
	}
	client.CaptureException(errors.New("metered failed"), nil, sentry.NewScope())
	client.CaptureException(errors.New("metered failed"), nil, sentry.NewScope())
	if !client.Flush(10 * time.Second) {
		t.Fatal("sentry-go did not flush")
	}
	for i := range 30 {
		path := "/ok"
		if i%10 == 0 {
			path = "/fail"
		}
		if code, body := e.get("metered", path); !strings.HasPrefix(body, "metered") {
			t.Fatalf("GET %s: %d %q", path, code, body)
		}
	}

	// The collector closes a window every 10 s: poll until the requests
	// and the statsd samples show up.
	var m appMetrics
	var cacheHits, cacheMisses, errEvents, ready int
	sum := func() (reqs, fails, bytes int, rss int64, hits float64) {
		cacheHits, cacheMisses, errEvents, ready = 0, 0, 0, 0
		for _, p := range m.Processes {
			for _, pt := range p.Points {
				reqs += pt.Requests
				fails += pt.Status[4]
				bytes += pt.Bytes
				rss = max(rss, pt.RSS)
				cacheHits += pt.Cache[0]
				cacheMisses += pt.Cache[1]
			}
		}
		for _, p := range m.Errors {
			errEvents += p.Events
		}
		for _, q := range m.Queues {
			if n := len(q.Points); q.Queue == "work" && n > 0 {
				ready = q.Points[n-1].Ready
			}
		}
		for _, s := range m.Statsd {
			if s.Name == "e2e.hits" {
				for _, v := range s.Values {
					hits += v
				}
			}
		}
		return
	}
	defer func() {
		if t.Failed() {
			t.Logf("last metrics answer: %+v", m)
		}
	}()
	waitFor(t, 60*time.Second, "35 requests, 31 statsd hits, 3 ready tasks and 2 error events in the metrics", func() bool {
		e.apiGet("/v1/apps/metered/metrics?since=10m", &m)
		reqs, _, _, rss, hits := sum()
		return reqs >= 35 && hits >= 31 && rss > 0 && ready >= 3 && errEvents >= 2
	})
	reqs, fails, bytes, rss, _ := sum()
	if reqs != 35 || fails != 3 || bytes < 30*len("metered /ok") {
		t.Errorf("requests %d, 5xx %d, bytes %d; want 35, 3, >= %d", reqs, fails, bytes, 30*len("metered /ok"))
	}
	// Requests without Cache-Control are MISS too: the cache looked.
	if cacheHits != 4 || cacheMisses != 31 || ready != 3 || errEvents != 2 {
		t.Errorf("cache hits %d, misses %d, ready tasks %d, error events %d; want 4, 31, 3, 2", cacheHits, cacheMisses, ready, errEvents)
	}
	var top []struct {
		App           string   `json:"app"`
		CacheHitRatio *float64 `json:"cache_hit_ratio"`
		ErrorEvents   float64  `json:"error_events_per_s"`
		Queued        int      `json:"queued"`
	}
	e.apiGet("/v1/metrics", &top)
	if len(top) != 1 || top[0].App != "metered" || top[0].CacheHitRatio == nil || *top[0].CacheHitRatio != 4.0/35 ||
		top[0].Queued != 3 || top[0].ErrorEvents != 2.0/60 {
		t.Errorf("/v1/metrics %+v", top)
	}
	if rss < 1<<20 || len(m.Instances) != 1 {
		t.Errorf("rss %d, instances %+v", rss, m.Instances)
	}
	kinds := map[string]string{}
	for _, s := range m.Statsd {
		kinds[s.Name] = s.Type
	}
	if kinds["e2e.hits"] != "counter" || kinds["e2e.work"] != "timer" {
		t.Errorf("statsd series %v", kinds)
	}

	// Prometheus exposition: admin token required.
	req, _ := http.NewRequest("GET", "http://"+e.apiAddr+"/metrics", nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d, want 401", resp.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer "+e.token())
	resp, err = httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`pier_http_requests_total{app="metered",code="2xx"} 32`, // 27 /ok, 5 /cached
		`pier_http_requests_total{app="metered",code="5xx"} 3`,
		`pier_process_resident_memory_bytes{app="metered",process="web",instance="web.1"}`,
		`app_e2e_hits_total{app="metered",path="ok"} 27`,
		`pier_http_cache_requests_total{app="metered",result="hit"} 4`,
		`pier_http_cache_requests_total{app="metered",result="miss"} 31`,
		`pier_task_queue_tasks{app="metered",queue="work",state="ready"} 3`,
		`pier_error_events_total{app="metered"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}

	out := e.must(dir, "metrics")
	if !strings.Contains(out, "web") || !strings.Contains(out, "11.4%") || !strings.Contains(out, "work") ||
		!strings.Contains(out, "Error events: 2") {
		t.Errorf("pier metrics (want web with an 11.4%% hit ratio, queue work, 2 error events):\n%s", out)
	}
	out = e.must(dir, "top")
	if !strings.Contains(out, "metered") || !strings.Contains(out, "11.4%") {
		t.Errorf("pier top:\n%s", out)
	}
}
