// Package views reads the processors' state while it forms: goka views over
// the window stage's table (provisional and final sums per window and zone)
// and the clock stage's table (each input partition's stream time).
//
// A view answers Get while it is still recovering; callers gate readiness on
// Recovered.
package views

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/lovoo/goka"

	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/processors"
)

// Windows is a live view of the window stage.
type Windows struct {
	view      *goka.View
	top       *processors.Topology
	shards    int
	recovered atomic.Bool
}

// NewWindows opens a view over the pipeline's window table.
func NewWindows(top *processors.Topology) (*Windows, error) {
	v, err := goka.NewView(top.Kafka.Brokers, goka.Table(top.WindowsTable), pipeline.WindowStateCodec{}, processors.ViewOptions(top.Kafka, top.Prefix+"-view")...)
	if err != nil {
		return nil, fmt.Errorf("open view of %s: %w", top.WindowsTable, err)
	}
	return &Windows{view: v, top: top, shards: top.Shards}, nil
}

// Run keeps the view up to date until ctx ends.
func (w *Windows) Run(ctx context.Context) error { return w.view.Run(ctx) }

// Recovered reports whether the view has caught up with the table once.
// goka's own Recovered turns false again for a moment right after recovery,
// while the view reconnects to follow the table (its partitions go through
// "connecting"): the view still holds every value then, so it stays
// recovered here (the page saw /api/windows answer 503 in that moment).
func (w *Windows) Recovered() bool {
	if w.recovered.Load() {
		return true
	}
	if w.view.Recovered() {
		w.recovered.Store(true)
		return true
	}
	return false
}

// Window is one window's sums per zone, merged over its shards.
type Window struct {
	Start, End int64
	// Final is true once every input partition closed the window.
	Final bool
	// ShardsFound counts the shard keys the view holds for the window.
	ShardsFound int
	Zones       []pipeline.ZoneAgg // sorted by zone
}

// Get returns the window starting at start; ok is false when no shard of it exists.
func (w *Windows) Get(start int64) (Window, bool, error) {
	out := Window{Start: start, Final: true}
	for s := 0; s < w.shards; s++ {
		v, err := w.view.Get(pipeline.WindowKey(start, s))
		if err != nil {
			return out, false, fmt.Errorf("get window %d shard %d: %w", start, s, err)
		}
		if v == nil {
			out.Final = false
			continue
		}
		st := v.(*pipeline.WindowState)
		out.ShardsFound++
		out.End = st.WindowEnd
		out.Final = out.Final && st.Final
		out.Zones = append(out.Zones, st.Zones...)
	}
	slices.SortFunc(out.Zones, func(a, b pipeline.ZoneAgg) int { return int(a.Zone) - int(b.Zone) })
	return out, out.ShardsFound > 0, nil
}

// All returns every window the view holds, merged over shards, by start.
func (w *Windows) All() ([]Window, error) {
	it, err := w.view.Iterator()
	if err != nil {
		return nil, fmt.Errorf("iterate %s: %w", w.top.WindowsTable, err)
	}
	defer it.Release()
	byStart := map[int64]*Window{}
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", it.Key(), err)
		}
		st, ok := v.(*pipeline.WindowState)
		if !ok || st == nil {
			continue
		}
		win := byStart[st.WindowStart]
		if win == nil {
			win = &Window{Start: st.WindowStart, End: st.WindowEnd, Final: true}
			byStart[st.WindowStart] = win
		}
		win.ShardsFound++
		win.Final = win.Final && st.Final
		win.Zones = append(win.Zones, st.Zones...)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate %s: %w", w.top.WindowsTable, err)
	}
	out := make([]Window, 0, len(byStart))
	for _, win := range byStart {
		// A window is final only when every shard key exists and is final.
		win.Final = win.Final && win.ShardsFound == w.shards
		slices.SortFunc(win.Zones, func(a, b pipeline.ZoneAgg) int { return int(a.Zone) - int(b.Zone) })
		out = append(out, *win)
	}
	slices.SortFunc(out, func(a, b Window) int { return cmp.Compare(a.Start, b.Start) })
	return out, nil
}
