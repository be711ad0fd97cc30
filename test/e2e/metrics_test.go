package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// metricsApp is a Python web app that sends statsd with the standard
// library's socket to STATSD_ADDR on every request, and answers 500 on
// /fail.
var metricsApp = map[string]string{
	"pier.yaml": "name: metered\nprocesses:\n  web: python3 app.py\n",
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
		} `json:"points"`
	} `json:"processes"`
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
// gateway, and reads the gateway's figures, the instance's memory and the
// app's own statsd metrics back from the API, the CLI and /metrics.
func TestMetricsEndToEnd(t *testing.T) {
	e := startEngine(t)
	dir := writeApp(t, metricsApp)
	e.must(dir, "deploy")
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
	sum := func() (reqs, fails, bytes int, rss int64, hits float64) {
		for _, p := range m.Processes {
			for _, pt := range p.Points {
				reqs += pt.Requests
				fails += pt.Status[4]
				bytes += pt.Bytes
				rss = max(rss, pt.RSS)
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
	waitFor(t, 60*time.Second, "30 requests and 30 statsd hits in the metrics", func() bool {
		e.apiGet("/v1/apps/metered/metrics?since=10m", &m)
		reqs, _, _, rss, hits := sum()
		return reqs >= 30 && hits >= 30 && rss > 0
	})
	reqs, fails, bytes, rss, _ := sum()
	if reqs != 30 || fails != 3 || bytes < 30*len("metered /ok") {
		t.Errorf("requests %d, 5xx %d, bytes %d; want 30, 3, >= %d", reqs, fails, bytes, 30*len("metered /ok"))
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
		`pier_http_requests_total{app="metered",code="2xx"} 27`,
		`pier_http_requests_total{app="metered",code="5xx"} 3`,
		`pier_process_resident_memory_bytes{app="metered",process="web",instance="web.1"}`,
		`app_e2e_hits_total{app="metered",path="ok"} 27`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}

	out := e.must(dir, "metrics")
	if !strings.Contains(out, "web") {
		t.Errorf("pier metrics:\n%s", out)
	}
	out = e.must(dir, "top")
	if !strings.Contains(out, "metered") {
		t.Errorf("pier top:\n%s", out)
	}
}
