package errortrack

// EventCounts returns, per app with issues, the events counted into its
// issues (what Counts.Events says), for the metrics service, which takes
// the increases as the app's error rate. It reads the in-memory index: no
// store round trip. A count can fall when issues leave by retention. nil
// before Start.
func (t *Tracker) EventCounts() map[string]int64 {
	if t.st == nil {
		return nil
	}
	x := t.st.idx
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[string]int64, len(x.apps))
	for app, a := range x.apps {
		var n int64
		for _, e := range a.order {
			n += e.count
		}
		out[app] = n
	}
	return out
}
