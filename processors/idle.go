package processors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lovoo/goka"
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

// runIdleHeartbeats is live mode (SPEC §3): when an input partition's stream
// time has not moved for idle (wall clock) while every other partition is
// ahead of it, it writes a heartbeat into that partition at the lowest stream
// time among the others. The decision lands in the input log, so a replay
// reproduces it; no window ever closes on the wall clock alone.
func (t *Topology) runIdleHeartbeats(ctx context.Context, idle time.Duration) error {
	view, err := goka.NewView(t.Brokers, goka.Table(t.ClockTable), ClockStateCodec{}, ViewOptions(t.Prefix+"-idle")...)
	if err != nil {
		return fmt.Errorf("open view of %s: %w", t.ClockTable, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	viewErr := make(chan error, 1)
	go func() { viewErr <- view.Run(ctx) }()

	type seen struct {
		st      int64
		valid   bool
		movedAt time.Time
	}
	last := make([]seen, t.Sources)
	now := time.Now()
	for p := range last {
		last[p].movedAt = now
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
		for p := range last {
			v, err := view.Get(t.ClockKeys[p])
			if err != nil {
				return fmt.Errorf("clock view: %w", err)
			}
			if st, ok := v.(*ClockState); ok && st != nil && (!last[p].valid || st.ST != last[p].st) {
				last[p] = seen{st: st.ST, valid: st.Valid, movedAt: now}
			}
		}
		for p := range last {
			if !t.owned.has(int32(p)) || now.Sub(last[p].movedAt) < idle {
				continue
			}
			var lowest int64
			others := 0
			for q := range last {
				if q == p {
					continue
				}
				if !last[q].valid {
					others = -1 // a partition with no records yet: nothing to follow
					break
				}
				if others == 0 || last[q].st < lowest {
					lowest = last[q].st
				}
				others++
			}
			if others <= 0 || (last[p].valid && lowest <= last[p].st) {
				continue
			}
			if _, err := WriteHeartbeats(t.Brokers, t.Input, []int32{int32(p)}, lowest); err != nil {
				log.Warn("idle heartbeat failed", "partition", p, "err", err)
				continue
			}
			log.Info("partition idle, heartbeat written", "partition", p, "idle_for", now.Sub(last[p].movedAt).Round(time.Second),
				"heartbeat", msTime(lowest))
			last[p].movedAt = now
		}
	}
}
