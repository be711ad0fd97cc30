package metrics

import (
	"bytes"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPrometheusParses feeds the exposition to the reference Python
// parser (Debian's python3-prometheus-client) and checks a few samples.
func TestPrometheusParses(t *testing.T) {
	m := New(Options{})
	m.Observe("blog", 200, 1000, 3*time.Millisecond, "HIT")
	m.Observe("blog", 503, 10, 2*time.Second, "MISS")
	m.Observe(`we"ird\app`, 200, 1, time.Millisecond, "")
	m.statsd.add("blog", Sample{Name: "orders.placed", Kind: KindCounter, Value: 3, Rate: 1, Tags: []string{"canary", "env:prod"}})
	m.statsd.add("blog", Sample{Name: "db.query", Kind: KindTimer, Value: 12, Rate: 1})
	m.statsd.add("blog", Sample{Name: "queue", Kind: KindGauge, Value: 4, Rate: 1})
	m.statsd.add("blog", Sample{Name: "users", Kind: KindSet, Set: "x", Rate: 1})
	m.Collect(time.Now())

	rec := httptest.NewRecorder()
	m.PrometheusHandler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := rec.Body.String()
	for _, want := range []string{
		`pier_http_requests_total{app="blog",code="2xx"} 1`,
		`pier_http_requests_total{app="blog",code="5xx"} 1`,
		`pier_http_request_duration_seconds_bucket{app="blog",le="0.005"} 1`,
		`pier_http_request_duration_seconds_bucket{app="blog",le="+Inf"} 2`,
		`pier_http_response_bytes_total{app="blog"} 1010`,
		`app_orders_placed_total{app="blog",canary="true",env="prod"} 3`,
		`app_db_query_seconds{app="blog",quantile="0.99"} 0.012`,
		`app_queue{app="blog"} 4`,
		`app_users{app="blog"} 1`,
		`{app="we\"ird\\app",code="2xx"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import prometheus_client").Run(); err != nil {
		t.Skip("python3-prometheus-client is not installed (scripts/test-deps.sh installs it)")
	}
	cmd := exec.Command(py, "-c", `
import sys
from prometheus_client.parser import text_string_to_metric_families
n = 0
for fam in text_string_to_metric_families(sys.stdin.read()):
    n += len(fam.samples)
print(n)
`)
	cmd.Stdin = strings.NewReader(out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("the reference parser refused the exposition: %v\n%s\n%s", err, stderr.String(), out)
	}
	if strings.TrimSpace(string(got)) == "0" {
		t.Fatalf("the reference parser found no samples")
	}
}
