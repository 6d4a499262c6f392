package processors

import (
	"testing"
	"time"

	"github.com/ridestream/ridestream/internal/window"
)

// TestIdleHeartbeat: live mode writes a heartbeat only into a partition that
// is idle and holds back a window with state; it follows the partitions
// still moving however far ahead they are, and when all are quiet it closes
// its pending windows without passing the wall clock.
func TestIdleHeartbeat(t *testing.T) {
	spec := window.DefaultSpec() // 1h windows, 5m lateness
	h := int64(time.Hour / time.Millisecond)
	base := int64(1730419200000) // 2024-11-01T00:00:00Z
	now := time.UnixMilli(base + 1000*h)
	idle := 10 * time.Second
	quiet, moving := now.Add(-time.Minute), now.Add(-time.Second)
	closes := base + h + 5*60_000 // the last open window [base, base+h) closes at its end + L
	cases := []struct {
		name    string
		clocks  []IdleClock
		closeAt int64
		want    int64
		write   bool
	}{
		{"holds nothing back", []IdleClock{{ST: base + 2*h, Valid: true, MovedAt: quiet}, {ST: base + 3*h, Valid: true, MovedAt: moving}}, closes, 0, false},
		{"not idle yet", []IdleClock{{ST: base, Valid: true, MovedAt: moving}, {ST: base + 3*h, Valid: true, MovedAt: moving}}, closes, 0, false},
		{"follows the lowest moving partition, days ahead", []IdleClock{{MovedAt: quiet},
			{ST: base + 72*h, Valid: true, MovedAt: moving}, {ST: base + 50*h, Valid: true, MovedAt: moving}, {ST: base + 10*h, Valid: true, MovedAt: quiet}},
			closes, base + 50*h, true},
		{"moving partitions behind it: nothing", []IdleClock{{ST: base + 5*h, Valid: true, MovedAt: quiet},
			{ST: base + 2*h, Valid: true, MovedAt: moving}}, base + 6*h + 5*60_000, 0, false},
		{"all quiet: closes the last open window", []IdleClock{{ST: base + 30*60_000, Valid: true, MovedAt: quiet},
			{ST: base + 40*60_000, Valid: true, MovedAt: quiet}}, closes, closes, true},
		{"one partition, quiet", []IdleClock{{ST: base + 30*60_000, Valid: true, MovedAt: quiet}}, closes, closes, true},
		{"all quiet, live: never past the wall clock", []IdleClock{{ST: now.UnixMilli() - 60_000, Valid: true, MovedAt: quiet}},
			spec.End(spec.Start(now.UnixMilli())) + 5*60_000, now.UnixMilli(), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := IdleHeartbeat(c.clocks, 0, c.closeAt, now, idle)
			if ok != c.write || got != c.want {
				t.Fatalf("heartbeat %v at %s, want %v at %s", ok, time.UnixMilli(got).UTC(), c.write, time.UnixMilli(c.want).UTC())
			}
		})
	}
}
