package tasks

import (
	"testing"
	"time"
)

// TestRoundSpacing: the drain's rounds are drainEvery apart, further when
// their purges took more than a tenth of that, never further than the
// drain delay (nor nearer than it when it is shorter than drainEvery).
func TestRoundSpacing(t *testing.T) {
	for _, c := range []struct {
		delay, purge, want time.Duration
	}{
		{time.Second, 0, drainEvery},
		{time.Second, 5 * time.Millisecond, drainEvery},
		{time.Second, 10 * time.Millisecond, drainEvery},
		{time.Second, 30 * time.Millisecond, 300 * time.Millisecond},
		{time.Second, 200 * time.Millisecond, time.Second},
		{5 * time.Second, 200 * time.Millisecond, 2 * time.Second},
		{10 * time.Millisecond, 0, 10 * time.Millisecond},
		{10 * time.Millisecond, 50 * time.Millisecond, 10 * time.Millisecond},
	} {
		s := &Service{}
		s.dr.purgeTook = c.purge
		if got := s.roundSpacing(c.delay); got != c.want {
			t.Errorf("delay %v, purges took %v: spacing %v, want %v", c.delay, c.purge, got, c.want)
		}
	}
}
