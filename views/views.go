// Package views reads the processors' state while it forms: a goka view over
// the window stage's table, which holds every tumbling window that has rides
// and is not final yet, and each final one until it is forgotten (a second
// or so after its rows are in the finals topic).
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

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lovoo/goka"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/processors"
)

// Windows is a live view of the window stage.
type Windows struct {
	view      *goka.View
	top       *processors.Topology
	recovered atomic.Bool
	// db and client, when given (WithDatabase): final windows, their
	// status and the partitions come from PostgreSQL and Kafka.
	db     *pgxpool.Pool
	client sarama.Client
}

// NewWindows opens a view over the pipeline's window table.
func NewWindows(top *processors.Topology) (*Windows, error) {
	v, err := goka.NewView(top.Kafka.Brokers, goka.Table(top.WindowsTable), pipeline.WindowStateCodec{Wire: top.Wire},
		processors.ViewOptions(top.Kafka, top.Prefix+"-view")...)
	if err != nil {
		return nil, fmt.Errorf("open view of %s: %w", top.WindowsTable, err)
	}
	return &Windows{view: v, top: top}, nil
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
		metricRecovered.Set(1)
		return true
	}
	return false
}

// Window is one tumbling window of an aggregation, its groups' measures
// merged over its shards.
type Window struct {
	Start, End int64
	// Final is true once every input partition closed the window (its
	// rows are in the finals topic).
	Final bool
	// Groups are the groups' measures (ascending).
	Groups []pipeline.GroupAcc
}

// Aggregation returns the pipeline's tumbling aggregation named name (the
// first tumbling one when name is empty).
func (w *Windows) Aggregation(name string) (int, aggregate.Aggregation, bool) {
	for i, a := range w.top.Aggs {
		if a.Kind == aggregate.Tumbling && (name == "" || a.Name == name) {
			return i, a, true
		}
	}
	return 0, aggregate.Aggregation{}, false
}

// All returns every window of tumbling aggregation agg the view holds, by
// start.
func (w *Windows) All(agg int) ([]Window, error) {
	it, err := w.view.Iterator()
	if err != nil {
		return nil, fmt.Errorf("iterate %s: %w", w.top.WindowsTable, err)
	}
	defer it.Release()
	a := w.top.Aggs[agg]
	byStart := map[int64]*Window{}
	shards := map[int64]int{}
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", it.Key(), err)
		}
		st, ok := v.(*pipeline.WindowState)
		if !ok || st == nil || st.Agg != agg {
			continue
		}
		win := byStart[st.Start]
		if win == nil {
			win = &Window{Start: st.Start, End: st.End, Final: true}
			byStart[st.Start] = win
		}
		shards[st.Start]++
		win.Final = win.Final && st.Final
		for _, g := range st.Groups {
			win.Groups = append(win.Groups, pipeline.GroupAcc{Group: g.Group, Acc: g.Acc.Clone()})
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate %s: %w", w.top.WindowsTable, err)
	}
	out := make([]Window, 0, len(byStart))
	for start, win := range byStart {
		// A window is final only when every shard with rides is; a shard
		// forgotten already leaves the others final too.
		win.Final = win.Final && (shards[start] <= a.Shards)
		slices.SortFunc(win.Groups, func(x, y pipeline.GroupAcc) int { return aggregate.CompareGroups(x.Group, y.Group) })
		out = append(out, *win)
	}
	slices.SortFunc(out, func(x, y Window) int { return cmp.Compare(x.Start, y.Start) })
	return out, nil
}
