// Package stage holds the pure transitions of the processors' stages:
// what the clock, the watermark stage and a window key do with one message,
// given their state. It imports no Kafka or goka package; processors/
// adapts each transition to a goka callback, and the simulation test here
// runs them as actors in random order, with lost writes and crashes,
// against the reference model (docs/design.md, "Topology").
package stage

import (
	"fmt"
	"slices"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/window"
)

// Pipeline is a pipeline's rules, resolved for the transitions.
type Pipeline struct {
	Aggs []aggregate.Aggregation
	// Windows[a] is tumbling aggregation a's window rule.
	Windows []window.Spec
	Stream  window.Stream
	// Sources is the input's partition count.
	Sources int32
}

// New is the pipeline spec describes (its input partition count included).
func New(spec pipeline.Spec) *Pipeline {
	p := &Pipeline{Aggs: spec.Aggs(), Stream: spec.Window.Stream(), Sources: spec.InputPartitions}
	p.Windows = make([]window.Spec, len(p.Aggs))
	for i, a := range p.Aggs {
		p.Windows[i] = spec.AggWindow(a)
	}
	return p
}

// ClockAccepts says whether the clock applies batch b to state st: not when
// all of it was received before a crash (its outputs are in the changelog
// already), and not when a write before it was lost (route sends both
// again after its restart). A batch holds every decodable record in
// (Prev, Last], so it continues what was received when Prev ≤ LastOffset;
// Prev < LastOffset happens when route's restart re-batched records.
func ClockAccepts(st pipeline.ClockState, b pipeline.ClockBatch) bool {
	return b.Last() > st.LastOffset && (b.Prev == pipeline.NoPrev || b.Prev <= st.LastOffset)
}

// What a clock step did.
const (
	ClockSkipped  = iota // received before: nothing to write
	ClockApplied         // the state changed
	ClockRepaired        // records before the batch never arrived: read again from the input, then applied
)

// ClockStep is the clock's step for batch b: skipped when all of it was
// received before (a restart of route re-sent it); applied when it
// continues what was received; and when it starts past that (Prev beyond
// LastOffset: a batch write that was lost while a later one landed, or
// batches the clock topic's retention removed while the clock stage was
// down), the records in between are first read again from the input with
// repair, so a clock never waits for a batch that may not come. The result
// is the same either way: the transition is a pure function of the
// partition's records.
func (p *Pipeline) ClockStep(st pipeline.ClockState, b pipeline.ClockBatch, repair Repair) (pipeline.ClockState, int, error) {
	if b.Last() <= st.LastOffset {
		return st, ClockSkipped, nil
	}
	if ClockAccepts(st, b) {
		return p.ClockApply(st, b), ClockApplied, nil
	}
	items, err := repair(st.Src, st.LastOffset, b.Prev)
	if err != nil {
		return st, ClockSkipped, fmt.Errorf("clock of input partition %d: records (%d, %d] never arrived: %w", st.Src, st.LastOffset, b.Prev, err)
	}
	whole := pipeline.ClockBatch{Prev: st.LastOffset, Items: append(items, b.Items...)}
	return p.ClockApply(st, whole), ClockRepaired, nil
}

// NewClock is a source partition's clock before its first record.
func NewClock(src int32) pipeline.ClockState {
	return pipeline.ClockState{Src: src, LastOffset: -1, From: -1}
}

// ClockApply is the clock's transition for an accepted batch: the state
// after receiving its records that are newer than st, with the outputs of
// every record decided meanwhile (docs/contract.md, "Stream time and
// outliers", "Lateness").
func (p *Pipeline) ClockApply(st pipeline.ClockState, b pipeline.ClockBatch) pipeline.ClockState {
	next := pipeline.ClockState{Src: st.Src, LastOffset: st.LastOffset, From: st.LastOffset, Seq: st.Seq + 1}
	clock := window.Clock{ST: st.ST, Valid: st.Valid}
	pending := slices.Clone(st.Pending)
	for _, in := range pending {
		clock.Pending = append(clock.Pending, window.Item{Offset: in.Offset, Heartbeat: in.Heartbeat, T: in.EventMs})
	}
	out := p.newOutputs()
	for _, in := range b.Items {
		if in.Offset <= next.LastOffset {
			continue // received before route's restart re-batched it
		}
		pending = append(pending, in)
		p.Stream.Feed(&clock, window.Item{Offset: in.Offset, Heartbeat: in.Heartbeat, T: in.EventMs}, func(d window.Decision) {
			x := pending[0]
			pending = pending[1:]
			out.decided(p, st.Src, x, d)
		})
		next.LastOffset = in.Offset
	}
	next.ST, next.Valid = clock.ST, clock.Valid
	if len(pending) > 0 {
		next.Pending = slices.Clone(pending)
	}
	out.into(&next)
	return next
}

// outputs collects what decided records produce, per aggregation.
type outputs struct {
	windows  []map[windowGroup]*aggregate.Acc // tumbling
	runs     []map[aggregate.Group][]aggregate.Run
	late     []pipeline.LateOut
	rejected []pipeline.RejectOut
}

type windowGroup struct {
	start int64
	group aggregate.Group
}

func (p *Pipeline) newOutputs() *outputs {
	o := &outputs{windows: make([]map[windowGroup]*aggregate.Acc, len(p.Aggs)), runs: make([]map[aggregate.Group][]aggregate.Run, len(p.Aggs))}
	for i := range p.Aggs {
		o.windows[i] = map[windowGroup]*aggregate.Acc{}
		o.runs[i] = map[aggregate.Group][]aggregate.Run{}
	}
	return o
}

// decided records what decision d on record x of source src produces.
func (o *outputs) decided(p *Pipeline, src int32, x pipeline.ClockIn, d window.Decision) {
	switch d.Outcome {
	case window.Outlier:
		o.rejected = append(o.rejected, pipeline.RejectOut{Offset: x.Offset, EventMs: x.EventMs, Why: d.Why})
	case window.Accepted:
		for i, a := range p.Aggs {
			t := x.EventMs
			switch a.Kind {
			case aggregate.Tumbling:
				start, _, late := p.Windows[i].Late(t, d.STBefore, d.HadST)
				if late {
					o.late = append(o.late, pipeline.LateOut{Offset: x.Offset, Agg: i, EventMs: t, WindowStart: start, STBefore: d.STBefore, Ride: x.Ride})
					continue
				}
				k := windowGroup{start, a.GroupOf(&x.Ride)}
				acc := o.windows[i][k]
				if acc == nil {
					nacc := a.NewAcc()
					acc = &nacc
					o.windows[i][k] = acc
				}
				a.Add(acc, &x.Ride)
			case aggregate.Session:
				if SessionLate(a, t, d.STBefore, d.HadST) {
					o.late = append(o.late, pipeline.LateOut{Offset: x.Offset, Agg: i, EventMs: t, STBefore: d.STBefore, Ride: x.Ride})
					continue
				}
				g := a.GroupOf(&x.Ride)
				o.runs[i][g] = a.AddToRuns(o.runs[i][g], t, &x.Ride)
			}
		}
	}
}

// SessionLate is the session rule of lateness: a ride at t that met its
// partition's stream time st is late iff st ≥ t + L.
func SessionLate(a aggregate.Aggregation, t, st int64, hadST bool) bool {
	return hadST && st >= t+a.Lateness.Milliseconds()
}

// into writes the outputs into next, sorted so that equal outputs encode
// equally.
func (o *outputs) into(next *pipeline.ClockState) {
	next.Late, next.Rejected = o.late, o.rejected
	next.Partials = make([]pipeline.Partials, len(o.windows))
	empty := true
	for i := range o.windows {
		for k, acc := range o.windows[i] {
			next.Partials[i].Windows = addToWindow(next.Partials[i].Windows, k, *acc)
		}
		slices.SortFunc(next.Partials[i].Windows, func(x, y pipeline.WindowPartial) int { return compareInt(x.Start, y.Start) })
		for _, w := range next.Partials[i].Windows {
			slices.SortFunc(w.Groups, func(x, y pipeline.GroupAcc) int { return aggregate.CompareGroups(x.Group, y.Group) })
		}
		for g, runs := range o.runs[i] {
			next.Partials[i].Runs = append(next.Partials[i].Runs, pipeline.GroupRuns{Group: g, Runs: runs})
		}
		slices.SortFunc(next.Partials[i].Runs, func(x, y pipeline.GroupRuns) int { return aggregate.CompareGroups(x.Group, y.Group) })
		empty = empty && next.Partials[i].Empty()
	}
	if empty {
		next.Partials = nil
	}
}

func addToWindow(ws []pipeline.WindowPartial, k windowGroup, acc aggregate.Acc) []pipeline.WindowPartial {
	for i := range ws {
		if ws[i].Start == k.start {
			ws[i].Groups = append(ws[i].Groups, pipeline.GroupAcc{Group: k.group, Acc: acc})
			return ws
		}
	}
	return append(ws, pipeline.WindowPartial{Start: k.start, Groups: []pipeline.GroupAcc{{Group: k.group, Acc: acc}}})
}

func compareInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
