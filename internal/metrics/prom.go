package metrics

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The exposition is written by hand in the Prometheus text format 0.0.4
// rather than through client_golang: every value already lives in this
// package's own lock-free counters, per app and per statsd series that
// appear at run time, so the library's registry would only rebuild them
// as const metrics on every scrape; the format itself is small and fixed.

// ContentType is the exposition's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// promBounds are the upper bounds (seconds) of the classic latency buckets.
var promBounds = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// promBoundsD are promBounds as durations, for the hot path.
var promBoundsD = func() (out [len(promBounds)]time.Duration) {
	for i, b := range promBounds {
		out[i] = time.Duration(b * float64(time.Second))
	}
	return out
}()

// promBucket returns the classic bucket of d (len(promBounds) = +Inf).
func promBucket(d time.Duration) int {
	for i, b := range promBoundsD {
		if d <= b {
			return i
		}
	}
	return len(promBoundsD)
}

// WritePrometheus writes every app's current counters in the Prometheus
// text format.
func (m *Metrics) WritePrometheus(w io.Writer) error {
	bw := bufio.NewWriter(w)
	apps := *m.apps.Load()
	names := slices.Sorted(maps.Keys(apps))

	family(bw, "pier_http_requests_total", "counter", "Requests the gateway answered for an app, by status class.")
	for _, app := range names {
		status, _ := apps[app].totals()
		for i, v := range status {
			code := "other"
			if i > 0 {
				code = strconv.Itoa(i) + "xx"
			}
			sample(bw, "pier_http_requests_total", labels("app", app, "code", code), float64(v))
		}
	}
	family(bw, "pier_http_response_bytes_total", "counter", "Response body bytes the gateway sent for an app.")
	for _, app := range names {
		sample(bw, "pier_http_response_bytes_total", labels("app", app), float64(apps[app].bytes.Load()))
	}
	family(bw, "pier_http_request_duration_seconds", "histogram", "Time from the request reaching the gateway to the end of the response.")
	for _, app := range names {
		s := apps[app]
		var cum uint64
		for i := range s.prom {
			cum += s.prom[i].Load()
			le := "+Inf"
			if i < len(promBounds) {
				le = strconv.FormatFloat(promBounds[i], 'g', -1, 64)
			}
			sample(bw, "pier_http_request_duration_seconds_bucket", labels("app", app, "le", le), float64(cum))
		}
		sample(bw, "pier_http_request_duration_seconds_sum", labels("app", app), float64(s.lat.sum.Load())/1e6)
		sample(bw, "pier_http_request_duration_seconds_count", labels("app", app), float64(cum))
	}
	family(bw, "pier_http_cache_requests_total", "counter", "Requests the gateway answered for an app, by cache result (none: no cache answered).")
	for _, app := range names {
		_, cache := apps[app].totals()
		for i, v := range cache {
			result := "none"
			if i != cacheNone {
				result = strings.ToLower(cacheNames[i])
			}
			sample(bw, "pier_http_cache_requests_total", labels("app", app, "result", result), float64(v))
		}
	}

	m.histMu.RLock()
	queues := slices.Clone(m.src.lastQueues)
	errTotal := maps.Clone(m.src.errTotal)
	insts := slices.SortedFunc(maps.Values(m.instances), func(a, b *instState) int {
		return strings.Compare(a.p.App+"/"+a.p.Instance, b.p.App+"/"+b.p.Instance)
	})
	type row struct {
		l             string
		cpu, rss, rst float64
	}
	rows := make([]row, len(insts))
	for i, st := range insts {
		rows[i] = row{labels("app", st.p.App, "process", st.p.Process, "instance", st.p.Instance),
			float64(st.ticks) / clockTicks, float64(st.rss), float64(st.restarts)}
	}
	m.histMu.RUnlock()
	family(bw, "pier_process_cpu_seconds_total", "counter", "CPU time of an instance's living processes (its process group).")
	for _, r := range rows {
		sample(bw, "pier_process_cpu_seconds_total", r.l, r.cpu)
	}
	family(bw, "pier_process_resident_memory_bytes", "gauge", "Resident memory of an instance's processes.")
	for _, r := range rows {
		sample(bw, "pier_process_resident_memory_bytes", r.l, r.rss)
	}
	family(bw, "pier_process_restarts_total", "counter", "Times the supervisor restarted an instance.")
	for _, r := range rows {
		sample(bw, "pier_process_restarts_total", r.l, r.rst)
	}
	slices.SortFunc(queues, func(a, b QueueSample) int {
		return strings.Compare(a.App+"\x00"+a.Queue, b.App+"\x00"+b.Queue)
	})
	family(bw, "pier_task_queue_tasks", "gauge", "Tasks in an app's queue, by state, at the last window.")
	for _, q := range queues {
		for _, st := range []struct {
			state string
			n     int
		}{{"ready", q.Ready}, {"delayed", q.Delayed}, {"reserved", q.Reserved}, {"dead", q.Dead}} {
			sample(bw, "pier_task_queue_tasks", labels("app", q.App, "queue", q.Queue, "state", st.state), float64(st.n))
		}
	}
	family(bw, "pier_task_events_per_second", "gauge", "Tasks of an app's queue enqueued, done or failed per second over the tasks service's last minute.")
	for _, q := range queues {
		sample(bw, "pier_task_events_per_second", labels("app", q.App, "queue", q.Queue, "event", "enqueued"), q.Enqueued)
		sample(bw, "pier_task_events_per_second", labels("app", q.App, "queue", q.Queue, "event", "done"), q.Done)
		sample(bw, "pier_task_events_per_second", labels("app", q.App, "queue", q.Queue, "event", "failed"), q.Failed)
	}
	family(bw, "pier_error_events_total", "counter", "Error events the error tracker took for an app since the engine started.")
	for _, app := range slices.Sorted(maps.Keys(errTotal)) {
		sample(bw, "pier_error_events_total", labels("app", app), float64(errTotal[app]))
	}
	m.statsd.writePrometheus(bw)
	return bw.Flush()
}

func (st *statsdStore) writePrometheus(bw *bufio.Writer) {
	if srv := st.server.Load(); srv != nil {
		family(bw, "pier_statsd_packets_total", "counter", "Datagrams the statsd listener received.")
		sample(bw, "pier_statsd_packets_total", "", float64(srv.packets.Load()))
		family(bw, "pier_statsd_bad_lines_total", "counter", "Statsd lines dropped because they did not parse.")
		sample(bw, "pier_statsd_bad_lines_total", "", float64(srv.badLines.Load()))
		family(bw, "pier_statsd_unattributed_packets_total", "counter", "Statsd datagrams dropped because no app's process sent them.")
		sample(bw, "pier_statsd_unattributed_packets_total", "", float64(srv.unknown.Load()))
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	family(bw, "pier_statsd_dropped_samples_total", "counter", "Statsd samples dropped because their app has too many series.")
	sample(bw, "pier_statsd_dropped_samples_total", "", float64(st.dropped))
	// One family per metric name and kind, across apps.
	type entry struct {
		app string
		ss  *sseries
	}
	fams := make(map[string][]entry)
	for app, series := range st.apps {
		for _, ss := range series {
			n := "app_" + promName(ss.name)
			switch ss.kind {
			case KindCounter:
				n += "_total"
			case KindTimer:
				n += "_seconds"
			}
			fams[n] = append(fams[n], entry{app, ss})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(fams)) {
		es := fams[name]
		slices.SortFunc(es, func(a, b entry) int {
			return strings.Compare(a.app+"\x00"+strings.Join(a.ss.tags, ","), b.app+"\x00"+strings.Join(b.ss.tags, ","))
		})
		kind := es[0].ss.kind
		switch kind {
		case KindCounter:
			family(bw, name, "counter", "statsd counter "+es[0].ss.name+" sent by app code.")
		case KindGauge:
			family(bw, name, "gauge", "statsd gauge "+es[0].ss.name+" sent by app code.")
		case KindSet:
			family(bw, name, "gauge", "statsd set "+es[0].ss.name+": distinct members in the last 10 s.")
		case KindTimer:
			family(bw, name, "summary", "statsd timer "+es[0].ss.name+" (ms in, seconds out); quantiles of the last 10 s.")
		}
		for _, e := range es {
			if e.ss.kind != kind {
				continue // same name sent as two kinds: the first kind wins
			}
			l := statsdLabels(e.app, e.ss.tags)
			switch kind {
			case KindCounter:
				sample(bw, name, l, e.ss.total)
			case KindGauge:
				sample(bw, name, l, e.ss.gauge)
			case KindSet:
				v := float32(0)
				if w := e.ss.hist.fine.newest(1, 1); len(w) == 1 {
					v = w[0][0]
				}
				sample(bw, name, l, float64(v))
			case KindTimer:
				for i, q := range []string{"0.5", "0.95", "0.99"} {
					sample(bw, name, withLabel(l, "quantile", q), e.ss.last[i]/1000)
				}
				sample(bw, name+"_sum", l, e.ss.sum/1000)
				sample(bw, name+"_count", l, e.ss.total)
			}
		}
	}
}

func family(w *bufio.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

func sample(w *bufio.Writer, name, labels string, v float64) {
	w.WriteString(name)
	w.WriteString(labels)
	w.WriteByte(' ')
	switch {
	case math.IsInf(v, 1):
		w.WriteString("+Inf")
	case math.IsInf(v, -1):
		w.WriteString("-Inf")
	case math.IsNaN(v):
		w.WriteString("NaN")
	default:
		w.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	}
	w.WriteByte('\n')
}

// labels renders name/value pairs as {a="x",b="y"}.
func labels(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(kv[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func withLabel(l, k, v string) string {
	return strings.TrimSuffix(l, "}") + "," + k + `="` + escapeLabel(v) + `"}`
}

// statsdLabels turns DogStatsD tags into labels: "env:prod" -> env="prod",
// a bare "canary" -> canary="true"; app is always pier's.
func statsdLabels(app string, tags []string) string {
	kv := []string{"app", app}
	seen := map[string]bool{"app": true}
	for _, t := range tags {
		k, v, ok := strings.Cut(t, ":")
		if !ok {
			v = "true"
		}
		k = promName(k)
		if strings.HasPrefix(k, "__") || seen[k] {
			continue
		}
		seen[k] = true
		kv = append(kv, k, v)
	}
	return labels(kv...)
}

// promName maps a statsd name to a Prometheus one: [a-zA-Z0-9_], not
// starting with a digit.
func promName(s string) string {
	var b strings.Builder
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r >= '0' && r <= '9' && i > 0
		if ok {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}
