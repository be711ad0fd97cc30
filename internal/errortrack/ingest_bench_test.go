package errortrack

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// benchEnvelope is bench/errors' event: a 12-frame stack, breadcrumbs,
// tags and one of 1000 users, in issue k.
func benchEnvelope(i, k int) []byte {
	var frames []string
	for f := 0; f < 12; f++ {
		frames = append(frames, fmt.Sprintf(`{"filename":"app/handlers_%d.py","function":"step_%d","lineno":%d,"in_app":%v,"context_line":"    result = step_%d(request, session)"}`, k%7, f, 10+f, f > 3, f+1))
	}
	now := time.Now().Unix()
	ev := fmt.Sprintf(`{"event_id":"%032x","timestamp":%d.5,"platform":"python","level":"error","release":"v1","environment":"production",`+
		`"exception":{"values":[{"type":"Error%d","value":"order %d failed","stacktrace":{"frames":[%s]}}]},`+
		`"breadcrumbs":{"values":[{"timestamp":%d,"category":"http","message":"GET /orders/%d"},{"timestamp":%d,"category":"db","message":"SELECT * FROM orders WHERE id = %d"}]},`+
		`"tags":{"region":"eu","shard":"%d"},"user":{"id":"u%d"},"request":{"url":"http://shop/orders/%d","method":"GET"}}`,
		i+1, now, k, i, strings.Join(frames, ","), now, i, now, i, i%4, i%1000, i)
	return []byte(`{"event_id":"` + fmt.Sprintf("%032x", i+1) + `"}` + "\n" + `{"type":"event","length":` + strconv.Itoa(len(ev)) + "}\n" + ev + "\n")
}

// BenchmarkIngest posts events over 500 issues from 8 clients and waits
// until all are counted: ingested and grouped, as bench/errors measures
// through the engine (go test -bench Ingest -cpuprofile to see where the
// time goes).
func BenchmarkIngest(b *testing.B) {
	e := newEnv(b, func(o *Options) { o.RatePerSecond, o.Burst, o.NodeRatePerSecond = 1e9, 1e9, -1 })
	e.dsn("app")
	path, hdr := e.envelopePath("app"), e.authHeader("app")
	var next atomic.Int64
	b.SetParallelism(4) // 8 senders on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		client := &http.Client{}
		for pb.Next() {
			i := int(next.Add(1))
			req, _ := http.NewRequest("POST", e.srv.URL+path, bytes.NewReader(benchEnvelope(i, i%500)))
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	want := next.Load()
	for e.tr.st.idx.counts("app").Events < want {
		time.Sleep(5 * time.Millisecond)
	}
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "events/s")
}
