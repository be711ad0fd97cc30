package tasks

import (
	"testing"
	"time"
)

func TestMeter(t *testing.T) {
	var m meter
	t0 := time.Unix(1_000_000, 0)
	m.add(t0, 30)
	m.add(t0.Add(time.Second), 30)
	tests := []struct {
		at   time.Duration
		want float64
	}{
		{0, 1},                  // 60 events in the window so far
		{59 * time.Second, 1},   // the window is the 60 seconds up to now
		{60 * time.Second, 0.5}, // the first second has left it
		{61 * time.Second, 0},   // both have
		{10 * time.Minute, 0},   // long idle
	}
	for _, tc := range tests {
		if got := m.rate(t0.Add(tc.at)); got != tc.want {
			t.Errorf("rate at +%v: got %v, want %v", tc.at, got, tc.want)
		}
	}
}
