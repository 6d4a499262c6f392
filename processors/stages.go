package processors

import (
	"fmt"
	"sync"
	"time"

	"github.com/lovoo/goka"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/stage"
)

// Stage names, for --stages.
const (
	StageRoute     = "route"
	StageClock     = "clock"
	StageWatermark = "watermark"
	StageWindows   = "windows"
)

// AllStages in topology order.
var AllStages = []string{StageRoute, StageClock, StageWatermark, StageWindows}

// RouteGraph decodes input and forwards the clock's and the watermark
// stage's outputs.
func (t *Topology) RouteGraph() *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(t.RouteGroup),
		goka.Input(goka.Stream(t.Input), pipeline.RawCodec{}, t.routeInput),
		goka.Input(goka.Stream(t.ClockTable), pipeline.ClockStateCodec{Wire: t.Wire}, t.routeClockOutput),
		goka.Input(goka.Stream(t.WatermarkTable), pipeline.WatermarkStateCodec{Wire: t.Wire}, t.routeWatermarkOutput),
		goka.Output(goka.Stream(t.Clock), pipeline.ClockBatchCodec{Wire: t.Wire}),
		goka.Output(goka.Stream(t.Watermark), pipeline.WatermarkMsgCodec{Wire: t.Wire}),
		goka.Output(goka.Stream(t.Windows), pipeline.WindowMsgCodec{Wire: t.Wire}),
		goka.Output(goka.Stream(t.Late), pipeline.RawCodec{}),
		goka.Output(goka.Stream(t.Rejected), pipeline.RawCodec{}),
	)
}

// ClockGraph keeps each source partition's stream time.
func (t *Topology) ClockGraph() *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(t.ClockGroup),
		goka.Input(goka.Stream(t.Clock), pipeline.ClockBatchCodec{Wire: t.Wire}, t.clock),
		goka.Persist(pipeline.ClockStateCodec{Wire: t.Wire}),
	)
}

// WatermarkGraph keeps every partition's clock and decides finality.
func (t *Topology) WatermarkGraph() *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(t.WatermarkGroup),
		goka.Input(goka.Stream(t.Watermark), pipeline.WatermarkMsgCodec{Wire: t.Wire}, t.watermark),
		goka.Persist(pipeline.WatermarkStateCodec{Wire: t.Wire}),
	)
}

// WindowsGraph sums windows and sessions and emits finals.
func (t *Topology) WindowsGraph() *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(t.WindowsGroup),
		goka.Input(goka.Stream(t.Windows), pipeline.WindowMsgCodec{Wire: t.Wire}, t.windows),
		goka.Persist(pipeline.WindowStateCodec{Wire: t.Wire}),
		goka.Output(goka.Stream(t.Finals), pipeline.RawCodec{}),
		goka.Output(goka.Stream(t.Windows), pipeline.WindowMsgCodec{Wire: t.Wire}), // a Forget sent again
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
		in.Ride = rec.Ride
		in.Ride.Has &= t.Wire.Fields()
	}
	t.batch.Load().add(ctx, in)
}

// clock applies a batch of records to its source's clock (docs/contract.md,
// "Stream time and outliers", "Lateness").
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
		st = stage.NewClock(p)
	}
	b := msg.(pipeline.ClockBatch)
	next, effect, err := t.Stages.ClockStep(st, b, t.repairer.read)
	if err != nil {
		ctx.Fail(err)
	}
	switch effect {
	case stage.ClockSkipped:
		return
	case stage.ClockRepaired:
		metricRepairs.WithLabelValues(StageClock).Inc()
		t.Logger.Warn("clock batches missing (a lost write, or removed by the clock topic's retention): read again from the input",
			"partition", st.Src, "from", st.LastOffset, "to", b.Prev)
	}
	ctx.SetValue(&next)
	countLate.Add(float64(len(next.Late)))
	countOutliers.Add(float64(len(next.Rejected)))
	if next.Valid {
		metricStreamTime.WithLabelValues(partitionLabel(next.Src)).Set(float64(next.ST) / 1000)
	}
}

// routeClockOutput forwards one clock write to the watermark stage and its
// late rides and outliers to the side outputs.
func (t *Topology) routeClockOutput(ctx goka.Context, msg any) {
	t.counted(countRouteClock)
	st := msg.(*pipeline.ClockState)
	t.emitSide(ctx, st.Src, st.Late, st.Rejected)
	prev := t.route.clockForwarded(st.Src, st.Seq)
	ctx.Emit(goka.Stream(t.Watermark), pipeline.WatermarkKey, stage.ProgressOf(st, prev))
}

// emitSide writes late rides and outliers of source src to the side outputs.
func (t *Topology) emitSide(ctx goka.Context, src int32, late []pipeline.LateOut, rejected []pipeline.RejectOut) {
	for _, l := range late {
		a := t.Aggs[l.Agg]
		rec := pipeline.Late{Partition: src, Offset: l.Offset, Aggregation: a.Name, EventTime: pipeline.FormatMs(l.EventMs),
			StreamTime: pipeline.FormatMs(l.STBefore)}
		if a.Kind == aggregate.Tumbling {
			end := t.Stages.Windows[l.Agg].End(l.WindowStart)
			rec.WindowStart, rec.WindowEnd = pipeline.FormatMs(l.WindowStart), pipeline.FormatMs(end)
			rec.LateByMs = t.Stages.Windows[l.Agg].LateBy(end, l.STBefore)
		} else {
			rec.LateByMs = l.STBefore - (l.EventMs + a.Lateness.Milliseconds())
		}
		ctx.Emit(goka.Stream(t.Late), t.ClockKeys[src], rec.Encode(a, &l.Ride))
	}
	for _, r := range rejected {
		ctx.Emit(goka.Stream(t.Rejected), t.ClockKeys[src], pipeline.Rejected{Partition: src, Offset: r.Offset, Error: r.Why}.Encode())
	}
}

// watermark applies a clock write's progress, or route's acknowledgement.
func (t *Topology) watermark(ctx goka.Context, msg any) {
	t.counted(countWatermark)
	var st pipeline.WatermarkState
	if v := ctx.Value(); v != nil {
		st = *v.(*pipeline.WatermarkState)
	} else {
		st = t.Stages.NewWatermark()
	}
	if len(st.Sources) != int(t.Sources) || len(st.Aggs) != len(t.Aggs) {
		ctx.Fail(fmt.Errorf("watermark state of %d input partitions and %d aggregations, the pipeline has %d and %d: reset and replay",
			len(st.Sources), len(st.Aggs), t.Sources, len(t.Aggs)))
	}
	next, effect, err := t.Stages.WatermarkStep(&st, msg, t.repairer.read)
	if err != nil {
		ctx.Fail(err)
	}
	switch effect {
	case stage.WatermarkOutOfChain:
		metricOutOfChain.WithLabelValues(StageWatermark).Inc()
	case stage.WatermarkOverlap:
		t.Logger.Error("a clock write overlaps what the watermark stage applied; skipped", "progress", fmt.Sprintf("%+v", msg))
	case stage.WatermarkRepaired:
		metricRepairs.WithLabelValues(StageWatermark).Inc()
		p := msg.(pipeline.Progress)
		t.Logger.Warn("clock writes missing (lost, or compacted away before route read them): derived again from the input",
			"partition", p.Src, "from", st.Sources[p.Src].Last, "to", p.From)
	}
	if effect == stage.WatermarkApplied || effect == stage.WatermarkRepaired {
		ctx.SetValue(&next)
		if g, ok := next.G(); ok {
			metricWatermark.Set(float64(g) / 1000)
		}
		t.open.observe(t, &next, time.Now())
	}
}

// routeWatermarkOutput forwards one watermark write's messages to the
// window keys, each naming its predecessor, and its repaired side outputs.
func (t *Topology) routeWatermarkOutput(ctx goka.Context, msg any) {
	t.counted(countRouteWatermark)
	st := msg.(*pipeline.WatermarkState)
	if err := t.route.watermarkWrite(ctx.Offset(), st); err != nil {
		ctx.Fail(err)
	}
	for _, l := range st.Late {
		t.emitSide(ctx, l.Src, []pipeline.LateOut{l.LateOut}, nil)
	}
	for _, r := range st.Rejected {
		t.emitSide(ctx, r.Src, nil, []pipeline.RejectOut{r.RejectOut})
	}
	chain := t.route.chain()
	for _, o := range st.Outs {
		m := o.Msg
		chain.Link(o.Key, &m, ctx.Offset())
		ctx.Emit(goka.Stream(t.Windows), o.Key, pipeline.KeyedWindowMsg{Agg: o.Agg, WindowMsg: m})
	}
	chain.Prune(t.route.committedWatermark())
}

// windows applies one message to a tumbling window's or a session group's
// key.
func (t *Topology) windows(ctx goka.Context, msg any) {
	t.counted(countWindows)
	m := msg.(pipeline.KeyedWindowMsg)
	in := stage.WindowIn{Agg: m.Agg, Msg: m.WindowMsg, Offset: ctx.Offset(), Committed: t.commits.get(ctx.Partition())}
	a := t.Aggs[m.Agg]
	var ok bool
	if a.Kind == aggregate.Tumbling {
		_, in.Start, _, ok = pipeline.ParseWindowKey(ctx.Key())
	} else {
		_, in.Group, ok = pipeline.ParseSessionKey(ctx.Key(), len(a.GroupBy))
	}
	if !ok {
		ctx.Fail(fmt.Errorf("windows: key %q is not one of aggregation %s", ctx.Key(), a.Name))
	}
	var st *pipeline.WindowState
	if v := ctx.Value(); v != nil {
		st = v.(*pipeline.WindowState)
	}
	res := t.Stages.WindowStep(st, in)
	switch res.Effect {
	case stage.WindowOutOfChain:
		metricOutOfChain.WithLabelValues(StageWindows).Inc()
	case stage.WindowAfterFinal:
		metricRideAfterFinal.Inc()
		t.Logger.Error("rides reached a window or session already final; they are not counted", "key", ctx.Key())
	case stage.WindowForgetEarly:
		countForgetRetries.Inc()
	}
	for _, f := range res.Finals {
		ctx.Emit(goka.Stream(t.Finals), f.Key(), f.Encode(a))
	}
	if res.Effect == stage.WindowSeen && len(res.Finals) > 0 {
		countFinalReemits.Add(float64(len(res.Finals)))
	} else {
		countFinalRows.Add(float64(len(res.Finals)))
	}
	if res.Retry {
		ctx.Emit(goka.Stream(t.Windows), ctx.Key(), pipeline.KeyedWindowMsg{Agg: m.Agg,
			WindowMsg: pipeline.WindowMsg{Retry: true, Forget: true, Before: m.Before}})
	}
	switch {
	case res.Effect == stage.WindowDeleted:
		ctx.Delete()
		metricKeysDeleted.Inc()
	case res.State != nil && res.State != st:
		if st == nil {
			metricKeysCreated.Inc()
		}
		ctx.SetValue(res.State)
	}
}

// routeSession is what route remembers of its current session: per
// source, the clock write it forwarded last; the chain of its messages to
// the window keys; the watermark writes it forwarded and its commits of
// them, for the acknowledgements. It is cleared whenever route's
// partitions are (re)assigned.
type routeSession struct {
	mu       sync.Mutex
	forward  map[int32]int64 // source → clock Seq forwarded last
	windows  *stage.Chain
	wmLast   int64              // the last watermark Seq seen (-1: none)
	wmSeqs   []offsetSeq        // watermark writes seen and not yet committed
	wmDone   int64              // the highest watermark Seq committed
	wmCommit int64              // committed offset of the watermark changelog partition
	pending  bool               // the last watermark write has windows to forget
	acked    int64              // the last Done acknowledged
	ack      func(pipeline.Ack) // sends an acknowledgement (route's emitter)
}

type offsetSeq struct{ offset, seq int64 }

func (r *routeSession) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forward, r.windows = map[int32]int64{}, stage.NewChain()
	r.wmLast, r.wmSeqs, r.wmDone, r.wmCommit, r.pending = -1, nil, 0, 0, false
}

// clockForwarded returns the clock Seq forwarded before for src in this
// session (pipeline.NoPrev: none) and records seq.
func (r *routeSession) clockForwarded(src int32, seq int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.forward == nil {
		r.forward = map[int32]int64{}
	}
	prev, ok := r.forward[src]
	r.forward[src] = seq
	if !ok {
		return pipeline.NoPrev
	}
	return prev
}

// chain is the session's chain of messages to the window keys. goka calls
// route's callbacks for one partition from one goroutine, and the
// watermark changelog has its one key on one partition.
func (r *routeSession) chain() *stage.Chain {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.windows == nil {
		r.windows = stage.NewChain()
	}
	return r.windows
}

// watermarkWrite records the watermark write st read at offset. A write
// that skips a sequence number means one was lost: its messages to the
// window keys are missing, and only a replay can restore them, so route
// stops there rather than let a window become final without them.
func (r *routeSession) watermarkWrite(offset int64, st *pipeline.WatermarkState) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wmLast >= 0 && st.Seq > r.wmLast+1 {
		metricWatermarkGaps.Inc()
		return &WatermarkGapError{After: r.wmLast, Seq: st.Seq}
	}
	if st.Seq > r.wmLast {
		r.wmLast = st.Seq
	}
	r.wmSeqs = append(r.wmSeqs, offsetSeq{offset, st.Seq})
	r.pending = false
	for _, ap := range st.Aggs {
		r.pending = r.pending || len(ap.Final) > 0 || len(ap.Forget) > 0
	}
	return nil
}

// WatermarkGapError says that the watermark stage's changelog lost a write.
type WatermarkGapError struct{ After, Seq int64 }

func (e *WatermarkGapError) Error() string {
	return fmt.Sprintf("the watermark stage's changelog skips from write %d to %d: the messages of the lost writes to the window keys are gone, "+
		"so route stops here rather than let a window become final without them. Stop the pipeline, `ridestream reset --prefix <prefix> --postgres finals`, and replay",
		e.After, e.Seq)
}

// committed records route's commit of the watermark changelog partition
// (next is the next offset to read) and acknowledges the writes it passed
// when some have windows to forget.
func (r *routeSession) committed(next int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if next <= r.wmCommit {
		return
	}
	r.wmCommit = next
	i := 0
	for i < len(r.wmSeqs) && r.wmSeqs[i].offset < next {
		r.wmDone = max(r.wmDone, r.wmSeqs[i].seq)
		i++
	}
	r.wmSeqs = r.wmSeqs[i:]
	if r.pending && r.wmDone > r.acked && r.ack != nil {
		r.acked = r.wmDone
		r.ack(pipeline.Ack{Done: r.wmDone})
	}
}

// committedWatermark is route's committed offset of the watermark
// changelog partition in this session.
func (r *routeSession) committedWatermark() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wmCommit
}

// commitTracker keeps the window stage's committed offset per partition.
type commitTracker struct {
	mu   sync.Mutex
	next map[int32]int64
}

func (c *commitTracker) set(partition int32, next int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.next == nil {
		c.next = map[int32]int64{}
	}
	c.next[partition] = max(c.next[partition], next)
}

func (c *commitTracker) get(partition int32) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next[partition]
}
