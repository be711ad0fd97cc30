package metrics

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// StatsdServer receives statsd datagrams on UDP and adds them to a
// Metrics. Every app gets the same address (STATSD_ADDR); the app a
// datagram belongs to is found from its source port (AppFor), so any
// statsd client works unchanged.
type StatsdServer struct {
	m      *Metrics
	appFor func(src netip.AddrPort) (string, bool)

	packets, badLines, unknown atomic.Uint64
}

// NewStatsdServer returns a server adding to m. appFor names the app that
// sent a datagram from src (see ProcOwners); false drops the datagram.
func (m *Metrics) NewStatsdServer(appFor func(src netip.AddrPort) (string, bool)) *StatsdServer {
	s := &StatsdServer{m: m, appFor: appFor}
	m.statsd.server.Store(s)
	return s
}

// Serve reads datagrams from conn until ctx ends or conn is closed.
func (s *StatsdServer) Serve(ctx context.Context, conn *net.UDPConn) error {
	defer func() {
		if r := recover(); r != nil {
			s.m.log.Error("statsd listener panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		s.Handle(src, buf[:n])
	}
}

// Handle adds one datagram from src.
func (s *StatsdServer) Handle(src netip.AddrPort, p []byte) {
	s.packets.Add(1)
	app, ok := s.appFor(src)
	if !ok {
		s.unknown.Add(1)
		return
	}
	bad := ParsePacket(p, func(smp Sample) { s.m.statsd.add(app, smp) })
	if bad > 0 {
		s.badLines.Add(uint64(bad))
		s.m.log.Debug("statsd: bad lines dropped", "app", app, "count", bad)
	}
}

// statsdStore keeps every app's statsd series: live values for the window
// being built and a history like the gateway's (10 s for an hour, 1 min
// for 24 h). A mutex is enough: statsd is not on the request path.
type statsdStore struct {
	max    int
	server atomic.Pointer[StatsdServer] // for its counters in the exposition

	mu      sync.Mutex // guards the fields below
	apps    map[string]map[string]*sseries
	dropped uint64 // samples of series beyond max
	last    int64  // end of the last window collected, Unix seconds
}

// sseries is one statsd metric with one set of tags.
type sseries struct {
	name string
	tags []string
	kind byte

	// the window being built
	n      float64   // counter: sum; timer: count (weighted by sample rate)
	gauge  float64   // gauge: current value (kept across windows)
	values []float64 // timer: the values (a reservoir of at most maxTimerValues)
	seenN  int       // timer: values offered to the reservoir
	set    map[string]struct{}

	// totals since the series appeared, for Prometheus
	total, sum float64
	last       [3]float64 // timer: p50, p95, p99 of the last window

	hist shist
}

const (
	maxTimerValues = 4096
	maxSetMembers  = 10000
)

func newStatsdStore(max int) *statsdStore {
	return &statsdStore{max: max, apps: make(map[string]map[string]*sseries)}
}

func (st *statsdStore) add(app string, s Sample) {
	key := s.Name + "|" + string(s.Kind) + "|" + strings.Join(s.Tags, ",")
	st.mu.Lock()
	defer st.mu.Unlock()
	series := st.apps[app]
	if series == nil {
		series = make(map[string]*sseries)
		st.apps[app] = series
	}
	ss := series[key]
	if ss == nil {
		if len(series) >= st.max {
			st.dropped++
			return
		}
		ss = &sseries{name: s.Name, tags: slices.Clone(s.Tags), kind: s.Kind}
		ss.hist.init(s.Kind)
		series[key] = ss
	}
	switch s.Kind {
	case KindCounter:
		ss.n += s.Value / s.Rate
		ss.total += s.Value / s.Rate
	case KindGauge:
		if s.Delta {
			ss.gauge += s.Value
		} else {
			ss.gauge = s.Value
		}
	case KindTimer:
		w := 1 / s.Rate
		ss.n += w
		ss.total += w
		ss.sum += s.Value * w
		ss.seenN++
		if len(ss.values) < maxTimerValues {
			ss.values = append(ss.values, s.Value)
		} else if i := rand.IntN(ss.seenN); i < maxTimerValues {
			ss.values[i] = s.Value
		}
	case KindSet:
		if ss.set == nil {
			ss.set = make(map[string]struct{})
		}
		if len(ss.set) < maxSetMembers {
			ss.set[s.Set] = struct{}{}
		}
	}
}

// collect closes the window ending at now for every series.
func (st *statsdStore) collect(now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.last = now.Unix()
	for _, series := range st.apps {
		for _, ss := range series {
			var v [4]float32
			switch ss.kind {
			case KindCounter:
				v[0] = float32(ss.n)
			case KindGauge:
				v[0] = float32(ss.gauge)
			case KindSet:
				v[0] = float32(len(ss.set))
				clear(ss.set)
			case KindTimer:
				v[0] = float32(ss.n)
				if len(ss.values) > 0 {
					slices.Sort(ss.values)
					for i, q := range []float64{0.5, 0.95, 0.99} {
						ss.last[i] = exactQuantile(ss.values, q)
						v[i+1] = float32(ss.last[i])
					}
				}
				ss.values, ss.seenN = ss.values[:0], 0
			}
			ss.n = 0
			ss.hist.add(now.Unix(), v)
		}
	}
}

func (st *statsdStore) forget(app string) {
	st.mu.Lock()
	delete(st.apps, app)
	st.mu.Unlock()
}

// exactQuantile reads the q-quantile of sorted values (nearest rank).
func exactQuantile(sorted []float64, q float64) float64 {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// shist is a statsd series' history: per point, the value (counter sum,
// gauge, set size, timer count) and for timers p50, p95, p99. Times are
// implicit: every window adds a point to every series.
type shist struct {
	width         int // floats per point: 1, or 4 for timers
	fine, coarse  vring
	acc           [4]float32
	accKey, fineT int64
	coarseT       int64
	accN          int
	kind          byte
}

type vring struct {
	buf  []float32
	n    int // points stored, at most cap
	next int // where the next point goes
	cap  int
}

func (r *vring) add(v []float32) {
	w := len(v)
	if len(r.buf) < r.cap*w {
		r.buf = append(r.buf, v...) // grows until full, then wraps
	} else {
		copy(r.buf[r.next*w:], v)
	}
	r.next = (r.next + 1) % r.cap
	r.n = min(r.n+1, r.cap)
}

// newest returns the k newest points, oldest first.
func (r *vring) newest(k, w int) [][]float32 {
	k = min(k, r.n)
	out := make([][]float32, 0, k)
	for j := k; j >= 1; j-- {
		i := (r.next - j + r.cap) % r.cap
		out = append(out, r.buf[i*w:(i+1)*w])
	}
	return out
}

func (h *shist) init(kind byte) {
	h.kind, h.width = kind, 1
	if kind == KindTimer {
		h.width = 4
	}
	h.fine.cap, h.coarse.cap = fineCap, coarseCap
}

func (h *shist) add(t int64, v [4]float32) {
	h.fine.add(v[:h.width])
	h.fineT = t
	key := (t - 1) / 60
	if h.accN > 0 && key != h.accKey {
		h.flush()
	}
	h.accKey = key
	switch h.kind {
	case KindCounter:
		h.acc[0] += v[0]
	case KindGauge:
		h.acc[0] = v[0]
	case KindSet: // the largest window (members are not kept)
		h.acc[0] = max(h.acc[0], v[0])
	case KindTimer: // counts add up, quantiles keep the worst window
		h.acc[0] += v[0]
		for i := 1; i < h.width; i++ {
			h.acc[i] = max(h.acc[i], v[i])
		}
	}
	h.accN++
}

func (h *shist) flush() {
	h.coarse.add(h.acc[:h.width])
	h.coarseT = (h.accKey + 1) * 60
	h.acc, h.accN = [4]float32{}, 0
}

// AddStatsd adds a datagram's lines to app directly (tests, benchmarks)
// and returns how many lines were bad.
func (m *Metrics) AddStatsd(app string, p []byte) int {
	return ParsePacket(p, func(s Sample) { m.statsd.add(app, s) })
}
