package processors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ridestream/ridestream/internal/pipeline"

	"github.com/lovoo/goka"

	"github.com/ridestream/ridestream/internal/window"
)

// ownership tracks the clock-stage partitions this instance processes, so
// only one instance writes a partition's idle heartbeat.
type ownership struct {
	mu    sync.Mutex
	owned map[int32]bool
}

func (o *ownership) set(a goka.Assignment) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.owned = map[int32]bool{}
	for p := range a {
		o.owned[p] = true
	}
}

func (o *ownership) has(p int32) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.owned[p]
}

// runIdleHeartbeats is live mode (docs/contract.md, "Heartbeats"). An input
// partition whose stream time has not moved for idle (wall clock) while it
// holds back a window that has state (its clock has a pending subscription)
// gets a heartbeat:
//
//   - at the lowest stream time of the partitions that are still moving,
//     when there are such: an idle or empty partition follows the others
//     however far they run ahead (a backfill);
//   - when every partition is quiet (a bounded input that ended, a lull, a
//     one-partition topic): at the end of its last pending window plus the
//     allowed lateness, but never past the wall clock, so that a live stream
//     in a lull closes only the windows whose time has passed.
//
// The decision lands in the input log, so a replay reproduces it; no window
// ever closes on the wall clock alone.
func (t *Topology) runIdleHeartbeats(ctx context.Context, idle time.Duration) error {
	view, err := goka.NewView(t.Kafka.Brokers, goka.Table(t.ClockTable), pipeline.ClockStateCodec{}, ViewOptions(t.Kafka, t.Prefix+"-idle")...)
	if err != nil {
		return fmt.Errorf("open view of %s: %w", t.ClockTable, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	viewErr := make(chan error, 1)
	go func() { viewErr <- view.Run(ctx) }()

	var hb *heartbeatWriter
	defer func() {
		if hb != nil {
			hb.Close()
		}
	}()
	clocks := make([]IdleClock, t.Sources)
	now := time.Now()
	for p := range clocks {
		clocks[p].MovedAt = now
	}
	tick := time.NewTicker(max(idle/4, 50*time.Millisecond))
	defer tick.Stop()
	log := t.Logger.With("component", "idle-heartbeat")
	for {
		select {
		case <-ctx.Done():
			return <-viewErr
		case err := <-viewErr:
			return fmt.Errorf("clock view: %w", err)
		case <-tick.C:
		}
		if !view.Recovered() {
			continue
		}
		now := time.Now()
		for p := range clocks {
			v, err := view.Get(t.ClockKeys[p])
			if err != nil {
				return fmt.Errorf("clock view: %w", err)
			}
			if st, ok := v.(*pipeline.ClockState); ok && st != nil {
				clocks[p].See(st, now)
			}
		}
		for p := range clocks {
			if !t.owned.has(int32(p)) {
				continue
			}
			at, ok := IdleHeartbeat(t.Window, clocks, p, now, idle)
			if !ok {
				continue
			}
			if hb == nil {
				if hb, err = newHeartbeatWriter(t.Kafka); err != nil {
					log.Warn("idle heartbeat failed", "partition", p, "err", err)
					continue
				}
			}
			if err := hb.Write(t.Input, []int32{int32(p)}, at); err != nil {
				log.Warn("idle heartbeat failed", "partition", p, "err", err)
				continue
			}
			log.Info("partition idle, heartbeat written", "partition", p, "idle_for", now.Sub(clocks[p].MovedAt).Round(time.Second),
				"heartbeat", msTime(at))
			clocks[p].MovedAt = now
		}
	}
}

// IdleClock is what live mode knows of one input partition.
type IdleClock struct {
	ST      int64
	Valid   bool
	Pending []int64 // subscribed windows the partition has not closed
	MovedAt time.Time
}

// See updates c from the partition's clock state seen at now.
func (c *IdleClock) See(st *pipeline.ClockState, now time.Time) {
	if st.Valid && (!c.Valid || st.ST != c.ST) {
		c.MovedAt = now
	}
	c.ST, c.Valid, c.Pending = st.ST, st.Valid, st.Pending
}

// IdleHeartbeat decides live mode for partition p at wall time now: whether
// to write a heartbeat into it, and at which event time.
func IdleHeartbeat(spec window.Spec, clocks []IdleClock, p int, now time.Time, idle time.Duration) (int64, bool) {
	c := clocks[p]
	if len(c.Pending) == 0 || now.Sub(c.MovedAt) < idle {
		return 0, false // holds nothing back, or not idle
	}
	var at int64
	moving := false
	for q, o := range clocks {
		if q == p || !o.Valid || now.Sub(o.MovedAt) >= idle {
			continue
		}
		if !moving || o.ST < at {
			at = o.ST
		}
		moving = true
	}
	if !moving {
		last := c.Pending[len(c.Pending)-1]
		at = min(spec.End(last)+spec.Lateness.Milliseconds(), now.UnixMilli())
	}
	if c.Valid && at <= c.ST {
		return 0, false
	}
	return at, true
}
