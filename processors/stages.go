package processors

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ridestream/ridestream/internal/pipeline"

	"github.com/lovoo/goka"

	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/window"
)

// Stage names, for --stages.
const (
	StageRoute   = "route"
	StageClock   = "clock"
	StageWindows = "windows"
)

// AllStages in topology order.
var AllStages = []string{StageRoute, StageClock, StageWindows}

// RouteGraph decodes input and fans clock outputs out.
func (t *Topology) RouteGraph() *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(t.RouteGroup),
		goka.Input(goka.Stream(t.Input), pipeline.RawCodec{}, t.routeInput),
		goka.Input(goka.Stream(t.ClockTable), pipeline.ClockStateCodec{}, t.routeClockOutput),
		goka.Output(goka.Stream(t.Clock), pipeline.ClockMsgCodec{}),
		goka.Output(goka.Stream(t.Windows), pipeline.WindowMsgCodec{}),
		goka.Output(goka.Stream(t.Late), pipeline.RawCodec{}),
		goka.Output(goka.Stream(t.Rejected), pipeline.RawCodec{}),
	)
}

// ClockGraph keeps each source partition's stream time.
func (t *Topology) ClockGraph() *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(t.ClockGroup),
		goka.Input(goka.Stream(t.Clock), pipeline.ClockMsgCodec{}, t.clock),
		goka.Persist(pipeline.ClockStateCodec{}),
	)
}

// WindowsGraph sums window shards and emits finals.
func (t *Topology) WindowsGraph() *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(t.WindowsGroup),
		goka.Input(goka.Stream(t.Windows), pipeline.WindowMsgCodec{}, t.windows),
		goka.Persist(pipeline.WindowStateCodec{}),
		goka.Output(goka.Stream(t.Finals), pipeline.RawCodec{}),
		goka.Output(goka.Stream(t.Clock), pipeline.ClockMsgCodec{}), // subscriptions
	)
}

// routeInput: decode; add to the partition's next clock batch or reject.
func (t *Topology) routeInput(ctx goka.Context, msg any) {
	t.counted(countRouteInput)
	value, _ := msg.([]byte)
	p := ctx.Partition()
	rec, err := t.Decode.Decode(value)
	if err != nil {
		countRejected.Inc()
		ctx.Emit(goka.Stream(t.Rejected), t.ClockKeys[p], pipeline.NewRejected(p, ctx.Offset(), value, err.Error()).Encode())
		return
	}
	in := pipeline.ClockIn{Offset: ctx.Offset(), Heartbeat: rec.Kind == ride.KindHeartbeat, EventMs: rec.EventMs}
	if !in.Heartbeat {
		in.Ride = amountsOf(rec.Ride)
	}
	t.batch.Load().add(ctx, in)
}

func amountsOf(r ride.Ride) pipeline.Amounts {
	return pipeline.Amounts{Zone: int32(r.Vals[ride.PULocationID]), Cents: r.Vals[ride.TotalAmount],
		DistCenti: r.Vals[ride.TripDistance], TipCents: r.Vals[ride.TipAmount], Passengers: r.Vals[ride.PassengerCount]}
}

// clock applies a batch of records to its source's stream time, or a window
// key's subscription (docs/contract.md, "Stream time and lateness").
func (t *Topology) clock(ctx goka.Context, msg any) {
	t.counted(countClock)
	var st pipeline.ClockState
	if v := ctx.Value(); v != nil {
		st = *v.(*pipeline.ClockState)
	} else {
		p, ok := t.keyIndex[ctx.Key()]
		if !ok {
			ctx.Fail(fmt.Errorf("clock: unknown key %q", ctx.Key()))
		}
		st = pipeline.ClockState{Src: p, LastOffset: -1}
	}
	var next pipeline.ClockState
	switch m := msg.(type) {
	case pipeline.Subscribe:
		var changed bool
		if next, changed = ClockSubscribe(t.Window, st, m); !changed {
			return
		}
		if len(next.Outs) == 0 {
			countSubscriptions.Inc()
		}
	case pipeline.ClockBatch:
		if !acceptClock(st, m) {
			if m.Last() > st.LastOffset {
				metricOutOfChain.WithLabelValues(StageClock).Inc()
			}
			return
		}
		next = ClockApply(t.Window, st, m)
	default:
		ctx.Fail(fmt.Errorf("clock: unexpected message %T", msg))
	}
	ctx.SetValue(&next)
	for _, o := range next.Outs {
		countOuts[o.Out].Inc()
	}
	src := strconv.Itoa(int(next.Src))
	if next.Valid {
		metricStreamTime.WithLabelValues(src).Set(float64(next.ST) / 1000)
	}
	metricPending.WithLabelValues(src).Set(float64(len(next.Pending)))
}

// acceptClock says whether the clock applies b: not when all of it was
// applied before a crash (its outputs are in the changelog already), and not
// when a write before it was lost (route sends both again after its restart).
// A batch holds every decodable record in (Prev, Last], so it continues the
// applied records when Prev ≤ LastOffset; Prev < LastOffset happens when
// route's restart re-batched records the clock had applied.
func acceptClock(st pipeline.ClockState, b pipeline.ClockBatch) bool {
	return b.Last() > st.LastOffset && (b.Prev == pipeline.NoPrev || b.Prev <= st.LastOffset)
}

// ClockApply is the clock's pure transition for an accepted batch: the state
// after applying its records that are newer than st, with their outputs
// recorded in it. (A batch without a predecessor may repeat records applied
// before route's restart; they are skipped, not re-derived.)
func ClockApply(spec window.Spec, st pipeline.ClockState, b pipeline.ClockBatch) pipeline.ClockState {
	next := successor(st)
	next.Outs = make([]pipeline.ClockOut, 0, len(b.Items))
	for _, in := range b.Items {
		if in.Offset > next.LastOffset {
			next.Outs = append(next.Outs, clockStep(spec, &next, in))
		}
	}
	return next
}

// MaxRecent bounds pipeline.ClockState.Recent.
const MaxRecent = 32

// ClockSubscribe is the clock's pure transition for a window key's
// subscription: when the source has closed the window already, its output
// closes the window now (unless it closed it recently); otherwise the window
// joins Pending (once). changed is false when nothing is to be written.
func ClockSubscribe(spec window.Spec, st pipeline.ClockState, m pipeline.Subscribe) (next pipeline.ClockState, changed bool) {
	w := m.WindowStart
	if !spec.Closed(window.Clock{ST: st.ST, Valid: st.Valid}, w) {
		i, found := slices.BinarySearch(st.Pending, w)
		if found {
			return st, false
		}
		next = successor(st)
		next.Pending = slices.Insert(slices.Clone(st.Pending), i, w)
		return next, true
	}
	if _, found := slices.BinarySearch(st.Recent, w); found {
		return st, false
	}
	next = successor(st)
	next.Recent = addRecent(st.Recent, w)
	next.Outs = []pipeline.ClockOut{{Offset: st.LastOffset, Out: pipeline.OutClose, Closes: []int64{w}}}
	return next, true
}

// addRecent returns recent (ascending, not modified) with the windows ws
// added, keeping the latest MaxRecent.
func addRecent(recent []int64, ws ...int64) []int64 {
	out := slices.Clone(recent)
	for _, w := range ws {
		if i, found := slices.BinarySearch(out, w); !found {
			out = slices.Insert(out, i, w)
		}
	}
	if len(out) > MaxRecent {
		out = out[len(out)-MaxRecent:]
	}
	return out
}

// successor is the state to write next: the same clock, the next sequence
// number, no outputs yet.
func successor(st pipeline.ClockState) pipeline.ClockState {
	return pipeline.ClockState{Src: st.Src, LastOffset: st.LastOffset, Seq: st.Seq + 1, ST: st.ST, Valid: st.Valid,
		Pending: st.Pending, Recent: st.Recent}
}

// clockStep applies one record to st and returns its output: its verdict and
// the pending windows its stream time closes.
func clockStep(spec window.Spec, st *pipeline.ClockState, in pipeline.ClockIn) pipeline.ClockOut {
	clock := window.Clock{ST: st.ST, Valid: st.Valid}
	o := pipeline.ClockOut{Offset: in.Offset, EventMs: in.EventMs, Ride: in.Ride, STBefore: st.ST}
	if in.Heartbeat {
		clock.Advance(in.EventMs)
		o.Out, o.Ride = pipeline.OutHeartbeat, pipeline.Amounts{}
	} else {
		d := spec.Observe(&clock, in.EventMs)
		o.WindowStart = d.WindowStart
		switch d.Verdict {
		case window.TooFarAhead:
			o.Out = pipeline.OutRejected
		case window.Late:
			o.Out = pipeline.OutLate
		default:
			o.Out = pipeline.OutOnTime
		}
	}
	st.LastOffset, st.ST, st.Valid = in.Offset, clock.ST, clock.Valid
	n := 0
	for n < len(st.Pending) && spec.Closed(clock, st.Pending[n]) {
		o.Closes = append(o.Closes, st.Pending[n])
		n++
	}
	if n > 0 {
		st.Recent = addRecent(st.Recent, st.Pending[:n]...)
		st.Pending = st.Pending[n:len(st.Pending):len(st.Pending)]
	}
	return o
}

// Routed is one message route sends to a window shard.
type Routed struct {
	Key string
	Msg pipeline.WindowMsg
}

// Fanout returns the window messages of one clock output (a batch, or a
// subscription's answer): per (window, shard) key one message with the
// batch's on-time rides for it and, when an output closed the window, the
// close marker. A marker is a source's last word on a window: no ride after
// it can be on time for that window, so the marker always ends its key's
// message. output is the clock changelog offset of st; chain records it for
// each key (see Chain.Prune).
func (t *Topology) Fanout(st *pipeline.ClockState, chain *Chain, output int64) []Routed {
	var out []Routed
	at := map[string]int{}
	msg := func(key string, start int64) *pipeline.WindowMsg {
		i, ok := at[key]
		if !ok {
			i = len(out)
			at[key] = i
			out = append(out, Routed{key, pipeline.WindowMsg{Src: st.Src, WindowStart: start}})
		}
		return &out[i].Msg
	}
	for _, o := range st.Outs {
		if o.Out == pipeline.OutOnTime {
			m := msg(pipeline.WindowKey(o.WindowStart, t.Shard(o.Ride.Zone)), o.WindowStart)
			m.Rides = append(m.Rides, o.Ride)
			m.Offset = o.Offset
		}
		for _, w := range o.Closes {
			for s := 0; s < t.Shards; s++ {
				m := msg(pipeline.WindowKey(w, s), w)
				m.Marker, m.Offset = true, o.Offset
			}
		}
	}
	for i := range out {
		out[i].Msg.Prev = chain.next(out[i].Key, out[i].Msg.Offset, output)
	}
	return out
}

// routeClockOutput fans one clock output out.
func (t *Topology) routeClockOutput(ctx goka.Context, msg any) {
	t.counted(countRouteClock)
	st := msg.(*pipeline.ClockState)
	src := st.Src
	if last, ok := t.chains.clockOutput(src, st.Seq); ok && st.Seq > last+1 {
		metricClockGaps.Inc()
		t.Logger.Error("clock outputs lost: its changelog skips records; their rides or close markers are missing from the windows",
			"partition", src, "after_seq", last, "seq", st.Seq)
	}
	for _, o := range st.Outs {
		switch o.Out {
		case pipeline.OutLate:
			end := t.Window.End(o.WindowStart)
			late := pipeline.Late{Partition: src, Offset: o.Offset, PickupMs: o.EventMs, Zone: o.Ride.Zone,
				TotalAmount: pipeline.Cents(o.Ride.Cents), WindowStart: msTime(o.WindowStart), WindowEnd: msTime(end),
				StreamTime: msTime(o.STBefore), LateByMs: t.Window.LateBy(end, o.STBefore)}
			ctx.Emit(goka.Stream(t.Late), t.ClockKeys[src], late.Encode())
		case pipeline.OutRejected:
			rej := pipeline.Rejected{Partition: src, Offset: o.Offset, Error: pipeline.SkewReason(o.EventMs, t.Window.MaxFutureSkew, o.STBefore)}
			ctx.Emit(goka.Stream(t.Rejected), t.ClockKeys[src], rej.Encode())
		}
	}
	chain := t.chains.forSource(src)
	for _, r := range t.Fanout(st, chain, ctx.Offset()) {
		ctx.Emit(goka.Stream(t.Windows), r.Key, r.Msg)
	}
	chain.Prune(t.chains.committed(src))
}

// windows applies rides and close markers to one (window, shard).
func (t *Topology) windows(ctx goka.Context, msg any) {
	t.counted(countWindows)
	m := msg.(pipeline.WindowMsg)
	var st *pipeline.WindowState
	if v := ctx.Value(); v != nil {
		st = v.(*pipeline.WindowState)
	} else {
		metricWindowsOpened.Inc()
	}
	next, effect, err := WindowStep(t.Window, t.Sources, st, m)
	if err != nil {
		ctx.Fail(fmt.Errorf("windows %s: %w", ctx.Key(), err))
	}
	if NeedsSubscriptions(st, next, m) {
		for src, closed := range next.Closed {
			if !closed {
				ctx.Emit(goka.Stream(t.Clock), t.ClockKeys[src], pipeline.Subscribe{WindowStart: next.WindowStart})
			}
		}
	}
	switch effect {
	case EffectOutOfChain:
		metricOutOfChain.WithLabelValues(StageWindows).Inc()
	case EffectRideAfterFinal:
		metricRideAfterFinal.Inc()
		t.Logger.Error("ride arrived after its window was final; it is not counted",
			"window", msTime(next.WindowStart), "partition", m.Src, "offset", m.Offset)
	case EffectFinal:
		metricWindowsFinal.Inc()
		countFinalRows.Add(float64(len(next.Zones)))
		t.emitFinals(ctx, next)
	case EffectReemit:
		countFinalReemits.Add(float64(len(next.Zones)))
		t.emitFinals(ctx, next) // the finalizing message again: its emits may have been lost
	}
	if effect == EffectApplied || effect == EffectFinal {
		ctx.SetValue(next)
	}
}

// Effects of WindowStep.
const (
	EffectNone           = iota // a duplicate: nothing to do
	EffectApplied               // state changed
	EffectFinal                 // state changed and the window became final: emit its rows
	EffectReemit                // the finalizing marker again: emit the same rows again
	EffectRideAfterFinal        // a ride after finality: a broken upstream order, not counted
	EffectOutOfChain            // a message after a lost write: skipped, route sends both again
)

// NeedsSubscriptions says whether the window stage subscribes the window of
// next to every source that has not closed it, after m reached a key whose
// state was st: when m, carrying rides, created the key, or when that
// creating message comes again (the crash that redelivers it may have lost
// the subscriptions). A key that a close marker created needs none: its
// source closed the window because a key of the window with rides had
// subscribed every source, and every source sends its close markers to
// every shard key of a subscribed window.
func NeedsSubscriptions(st, next *pipeline.WindowState, m pipeline.WindowMsg) bool {
	return next.CreatedSrc >= 0 && (st == nil || (m.Src == next.CreatedSrc && m.Offset == next.CreatedOffset))
}

// WindowStep is the window stage's pure transition for one message.
func WindowStep(spec window.Spec, sources int32, st *pipeline.WindowState, m pipeline.WindowMsg) (*pipeline.WindowState, int, error) {
	if m.Src < 0 || m.Src >= sources {
		return st, EffectNone, fmt.Errorf("source partition %d outside the input's %d partitions", m.Src, sources)
	}
	if st == nil {
		st = &pipeline.WindowState{WindowStart: m.WindowStart, WindowEnd: spec.End(m.WindowStart),
			LastSeen: slices.Repeat([]int64{-1}, int(sources)), Closed: make([]bool, sources),
			CreatedSrc: m.Src, CreatedOffset: m.Offset}
		if len(m.Rides) == 0 {
			st.CreatedSrc, st.CreatedOffset = -1, -1 // created by a close marker
		}
	} else {
		st = st.Clone()
	}
	if len(st.LastSeen) != int(sources) {
		return st, EffectNone, fmt.Errorf("state was built for %d input partitions, the input has %d: reset and replay", len(st.LastSeen), sources)
	}
	if m.Offset <= st.LastSeen[m.Src] {
		if m.Marker && st.Final && st.FinalSrc == m.Src && st.FinalOffset == m.Offset {
			return st, EffectReemit, nil
		}
		return st, EffectNone, nil // a duplicate after a crash upstream
	}
	if m.Prev != pipeline.NoPrev && m.Prev != st.LastSeen[m.Src] {
		return st, EffectOutOfChain, nil
	}
	st.LastSeen[m.Src] = m.Offset
	if len(m.Rides) > 0 {
		if st.Final {
			return st, EffectRideAfterFinal, nil
		}
		for _, a := range m.Rides {
			st.Add(a)
		}
	}
	if !m.Marker || st.Closed[m.Src] { // (a repeated marker answers a repeated subscription)
		return st, EffectApplied, nil
	}
	st.Closed[m.Src] = true
	if !slices.Contains(st.Closed, false) {
		st.Final, st.FinalSrc, st.FinalOffset = true, m.Src, m.Offset
		return st, EffectFinal, nil
	}
	return st, EffectApplied, nil
}

func (t *Topology) emitFinals(ctx goka.Context, st *pipeline.WindowState) {
	for _, z := range st.Zones {
		f := pipeline.Final{WindowStart: msTime(st.WindowStart), WindowEnd: msTime(st.WindowEnd), Zone: z.Zone,
			Trips: z.Trips, RevenueCents: z.Cents, DistanceCenti: z.DistCenti,
			TipCents: z.TipCents, TotalPassengers: z.Pass}
		ctx.Emit(goka.Stream(t.Finals), f.Key(), f.Encode())
	}
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
