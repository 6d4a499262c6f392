package processors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ridestream/ridestream/internal/pipeline"

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

// runIdleHeartbeats is live mode (docs/contract.md, "Heartbeats"). An input
// partition whose stream time has not moved for idle (wall clock) while it
// holds back a window or session that has rides (one the watermark stage
// has open, not closed by that partition yet) gets a heartbeat:
//
//   - at the lowest stream time of the partitions that are still moving,
//     when there are such: an idle or empty partition follows the others
//     however far they run ahead (a backfill);
//   - when every partition is quiet (a bounded input that ended, a lull, a
//     one-partition topic): at the time that closes the last open window or
//     session (its end plus the allowed lateness), but never past the wall
//     clock, so that a live stream in a lull closes only the windows whose
//     time has passed.
//
// The decision lands in the input log, so a replay reproduces it; no window
// ever closes on the wall clock alone.
func (t *Topology) runIdleHeartbeats(ctx context.Context, idle time.Duration) error {
	view, err := goka.NewView(t.Kafka.Brokers, goka.Table(t.WatermarkTable), pipeline.WatermarkStateCodec{Wire: t.Wire},
		ViewOptions(t.Kafka, t.Prefix+"-idle")...)
	if err != nil {
		return fmt.Errorf("open view of %s: %w", t.WatermarkTable, err)
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
			return fmt.Errorf("watermark view: %w", err)
		case <-tick.C:
		}
		if !view.Recovered() {
			continue
		}
		v, err := view.Get(pipeline.WatermarkKey)
		if err != nil {
			return fmt.Errorf("watermark view: %w", err)
		}
		st, ok := v.(*pipeline.WatermarkState)
		if !ok || st == nil || len(st.Sources) != len(clocks) {
			continue
		}
		now := time.Now()
		for p := range clocks {
			clocks[p].See(st.Sources[p], now)
		}
		closeAt, open := t.openUntil(st)
		if !open {
			continue
		}
		for p := range clocks {
			if !t.owned.has(int32(p)) {
				continue
			}
			at, ok := IdleHeartbeat(clocks, p, closeAt, now, idle)
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
				"heartbeat", pipeline.FormatMs(at))
			clocks[p].MovedAt = now
		}
	}
}

// openUntil is the stream time that closes every window and session the
// watermark stage holds open (the latest end plus the allowed lateness),
// and whether it holds one.
func (t *Topology) openUntil(st *pipeline.WatermarkState) (int64, bool) {
	var at int64
	open := false
	for i, ap := range st.Aggs {
		a := t.Aggs[i]
		L := a.Lateness.Milliseconds()
		if n := len(ap.Open); n > 0 {
			at, open = max(at, t.Stages.Windows[i].End(ap.Open[n-1].To)+L), true
		}
		for _, g := range ap.Groups {
			if n := len(g.Spans); n > 0 {
				at, open = max(at, g.Spans[n-1].Last+a.Gap.Milliseconds()+L), true
			}
		}
	}
	return at, open
}

// IdleClock is what live mode knows of one input partition.
type IdleClock struct {
	ST      int64
	Valid   bool
	MovedAt time.Time
}

// See updates c from the partition's clock as the watermark stage has it,
// seen at now.
func (c *IdleClock) See(src pipeline.SourceState, now time.Time) {
	if src.Valid && (!c.Valid || src.ST != c.ST) {
		c.MovedAt = now
	}
	c.ST, c.Valid = src.ST, src.Valid
}

// IdleHeartbeat decides live mode for partition p at wall time now, while
// windows or sessions are open until closeAt: whether to write a heartbeat
// into it, and at which event time.
func IdleHeartbeat(clocks []IdleClock, p int, closeAt int64, now time.Time, idle time.Duration) (int64, bool) {
	c := clocks[p]
	if (c.Valid && c.ST >= closeAt) || now.Sub(c.MovedAt) < idle {
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
		at = min(closeAt, now.UnixMilli())
	}
	if c.Valid && at <= c.ST {
		return 0, false
	}
	return at, true
}
