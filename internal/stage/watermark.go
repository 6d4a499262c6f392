package stage

import (
	"fmt"
	"slices"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/pipeline"
)

// NewWatermark is the watermark stage's state before its first message.
func (p *Pipeline) NewWatermark() pipeline.WatermarkState {
	st := pipeline.WatermarkState{Sources: make([]pipeline.SourceState, p.Sources), Aggs: make([]pipeline.AggProgress, len(p.Aggs))}
	for i := range st.Sources {
		st.Sources[i].Last = -1
	}
	return st
}

// Repair reads the input records (from, to] of source partition src that
// decode, for the watermark stage to derive again what lost clock writes
// produced.
type Repair func(src int32, from, to int64) ([]pipeline.ClockIn, error)

// What a watermark step did.
const (
	WatermarkNone       = iota // nothing to write
	WatermarkApplied           // the state changed
	WatermarkDuplicate         // a clock write applied before: skipped
	WatermarkOutOfChain        // follows a lost write of route's: skipped, route sends both again
	WatermarkRepaired          // clock writes were missing (lost, or compacted away): derived again from the input, then applied
	WatermarkOverlap           // a clock write that overlaps what was applied: a bug upstream, skipped
)

// WatermarkStep applies one watermark topic message to st: a clock write's
// Progress, or route's Ack. It returns the next state, with the messages
// for the window keys in Outs, and what it did.
//
// A Progress is applied when it continues its source: its records start
// where the last applied write of that source ended. One that starts
// further on follows clock writes that never reached the stage (lost after
// retries, or compacted away while route was down): their outputs are
// derived again from the input with the clock's transition, from the
// source's clock as of its last applied write (repair). Then its partials
// go to their window keys, the watermark G (the lowest stream time of all
// partitions) moves, and every window and session that G has passed by L
// is finalized (docs/contract.md, "Finality").
func (p *Pipeline) WatermarkStep(st *pipeline.WatermarkState, msg any, repair Repair) (pipeline.WatermarkState, int, error) {
	switch m := msg.(type) {
	case pipeline.Ack:
		return p.watermarkAck(st, m)
	case pipeline.Progress:
		return p.watermarkProgress(st, m, repair)
	}
	return *st, WatermarkNone, fmt.Errorf("watermark: unexpected message %T", msg)
}

func (p *Pipeline) successor(st *pipeline.WatermarkState) (pipeline.WatermarkState, *outbox) {
	next := pipeline.WatermarkState{Seq: st.Seq + 1, Sources: slices.Clone(st.Sources), Aggs: make([]pipeline.AggProgress, len(st.Aggs))}
	for i, ap := range st.Aggs {
		next.Aggs[i] = pipeline.AggProgress{Open: slices.Clone(ap.Open), Final: slices.Clone(ap.Final),
			Groups: slices.Clone(ap.Groups), Forget: slices.Clone(ap.Forget)}
	}
	return next, &outbox{seq: next.Seq, at: map[string]int{}}
}

func (p *Pipeline) watermarkProgress(st *pipeline.WatermarkState, m pipeline.Progress, repair Repair) (pipeline.WatermarkState, int, error) {
	if m.Src < 0 || int(m.Src) >= len(st.Sources) {
		return *st, WatermarkNone, fmt.Errorf("watermark: source partition %d outside the input's %d", m.Src, len(st.Sources))
	}
	src := st.Sources[m.Src]
	switch {
	case m.To <= src.Last:
		return *st, WatermarkDuplicate, nil
	case m.Prev != pipeline.NoPrev && m.Prev != src.ClockSeq:
		return *st, WatermarkOutOfChain, nil
	case m.From < src.Last:
		return *st, WatermarkOverlap, nil
	}
	next, out := p.successor(st)
	effect := WatermarkApplied
	if m.From > src.Last {
		items, err := repair(m.Src, src.Last, m.From)
		if err != nil {
			return *st, WatermarkNone, fmt.Errorf("repair source %d (%d, %d]: %w", m.Src, src.Last, m.From, err)
		}
		lost := p.ClockApply(pipeline.ClockState{Src: m.Src, LastOffset: src.Last, Seq: src.ClockSeq, ST: src.ST, Valid: src.Valid,
			Pending: src.Pending}, pipeline.ClockBatch{Prev: pipeline.NoPrev, Items: items})
		p.forward(&next, out, lost.Partials)
		for _, l := range lost.Late {
			next.Late = append(next.Late, pipeline.SourcedLate{Src: m.Src, LateOut: l})
		}
		for _, r := range lost.Rejected {
			next.Rejected = append(next.Rejected, pipeline.SourcedReject{Src: m.Src, RejectOut: r})
		}
		effect = WatermarkRepaired
	}
	next.Sources[m.Src] = pipeline.SourceState{Last: m.To, ClockSeq: m.Seq, ST: m.ST, Valid: m.Valid, Pending: m.Pending}
	p.forward(&next, out, m.Partials)
	p.finalize(&next, out)
	next.Outs = out.msgs
	return next, effect, nil
}

// forward sends partials to their window keys and records what they open.
func (p *Pipeline) forward(next *pipeline.WatermarkState, out *outbox, partials []pipeline.Partials) {
	for i, part := range partials {
		a, ap := p.Aggs[i], &next.Aggs[i]
		for _, wp := range part.Windows {
			for _, g := range wp.Groups {
				m := out.msg(pipeline.WindowKey(a.Name, wp.Start, pipeline.Shard(g.Group, a.Shards)), i)
				m.Groups = append(m.Groups, g) // ascending: wp.Groups are
			}
			ap.Open = p.openWindow(i, ap.Open, wp.Start)
		}
		for _, gr := range part.Runs {
			m := out.msg(pipeline.SessionKey(a.Name, len(a.GroupBy), gr.Group), i)
			for _, r := range gr.Runs {
				m.Runs = a.MergeRun(m.Runs, r)
			}
			j, found := slices.BinarySearchFunc(ap.Groups, gr.Group, func(x pipeline.GroupSpans, g aggregate.Group) int {
				return aggregate.CompareGroups(x.Group, g)
			})
			if !found {
				ap.Groups = slices.Insert(ap.Groups, j, pipeline.GroupSpans{Group: gr.Group})
			}
			spans := slices.Clone(ap.Groups[j].Spans)
			for _, r := range gr.Runs {
				spans = mergeSpan(spans, pipeline.Span{First: r.First, Last: r.Last}, a.Gap.Milliseconds())
			}
			ap.Groups[j].Spans = spans
		}
	}
}

// mergeSpan adds x to spans (ascending, pairwise at least gap apart),
// merging those it joins: what a session key does with its clusters.
func mergeSpan(spans []pipeline.Span, x pipeline.Span, gap int64) []pipeline.Span {
	lo, hi := aggregate.Joined(spans, x.First, x.Last, gap, func(s pipeline.Span) (int64, int64) { return s.First, s.Last })
	if lo == hi {
		return slices.Insert(spans, lo, x)
	}
	spans[lo] = pipeline.Span{First: min(x.First, spans[lo].First), Last: max(x.Last, spans[hi-1].Last)}
	return slices.Delete(spans, lo+1, hi)
}

// openWindow adds the window starting at w to the open ranges of tumbling
// aggregation i (ascending, disjoint, each a run of consecutive windows).
func (p *Pipeline) openWindow(i int, open []pipeline.WindowRange, w int64) []pipeline.WindowRange {
	end := p.Windows[i].End
	j, _ := slices.BinarySearchFunc(open, w, func(r pipeline.WindowRange, w int64) int { return compareInt(r.From, w) })
	// open[j-1] starts before w, open[j] at or after it.
	switch {
	case j < len(open) && open[j].From == w:
		return open
	case j > 0 && w <= open[j-1].To:
		return open // inside open[j-1]
	case j > 0 && end(open[j-1].To) == w:
		open[j-1].To = w
		if j < len(open) && end(w) == open[j].From {
			open[j-1].To = open[j].To
			open = slices.Delete(open, j, j+1)
		}
		return open
	case j < len(open) && end(w) == open[j].From:
		open[j].From = w
		return open
	}
	return slices.Insert(open, j, pipeline.WindowRange{From: w, To: w})
}

// finalize sends what the watermark has passed: Finalize to every shard key
// of each open window that every partition has closed (end + L ≤ G), and
// the watermark to every session key with a session that ended at least
// the gap plus L before it.
func (p *Pipeline) finalize(next *pipeline.WatermarkState, out *outbox) {
	g, ok := next.G()
	if !ok {
		return
	}
	for i, a := range p.Aggs {
		ap := &next.Aggs[i]
		L := a.Lateness.Milliseconds()
		switch a.Kind {
		case aggregate.Tumbling:
			end := p.Windows[i].End
			for len(ap.Open) > 0 {
				w := ap.Open[0].From
				if end(w)+L > g {
					break
				}
				for s := range a.Shards {
					out.msg(pipeline.WindowKey(a.Name, w, s), i).Finalize = true
				}
				if n := len(ap.Final); n > 0 && ap.Final[n-1].Seq == next.Seq && end(ap.Final[n-1].To) == w {
					ap.Final[n-1].To = w
				} else {
					ap.Final = append(ap.Final, pipeline.FinalRange{Seq: next.Seq, WindowRange: pipeline.WindowRange{From: w, To: w}})
				}
				if ap.Open[0].To == w {
					ap.Open = ap.Open[1:]
				} else {
					ap.Open[0].From = end(w)
				}
			}
		case aggregate.Session:
			gap := a.Gap.Milliseconds()
			kept := ap.Groups[:0]
			for _, gs := range ap.Groups {
				n := 0
				for n < len(gs.Spans) && gs.Spans[n].Last+gap+L <= g {
					n++
				}
				if n > 0 {
					m := out.msg(pipeline.SessionKey(a.Name, len(a.GroupBy), gs.Group), i)
					m.G, m.HasG = g, true
					ap.Forget = setForget(ap.Forget, gs.Group, next.Seq)
					gs.Spans = gs.Spans[n:]
				}
				if len(gs.Spans) > 0 {
					kept = append(kept, gs)
				}
			}
			ap.Groups = kept
		}
	}
}

// setForget records that group g's key holds sessions finalized by the
// watermark write seq.
func setForget(forget []pipeline.GroupSeq, g aggregate.Group, seq int64) []pipeline.GroupSeq {
	j, found := slices.BinarySearchFunc(forget, g, func(x pipeline.GroupSeq, g aggregate.Group) int { return aggregate.CompareGroups(x.Group, g) })
	if found {
		forget[j].Seq = seq
		return forget
	}
	return slices.Insert(forget, j, pipeline.GroupSeq{Group: g, Seq: seq})
}

// watermarkAck sends Forget to the keys whose finals were emitted by writes
// that route has committed past: route will never send their messages
// again, so a key deleted now cannot come back.
func (p *Pipeline) watermarkAck(st *pipeline.WatermarkState, m pipeline.Ack) (pipeline.WatermarkState, int, error) {
	next, out := p.successor(st)
	for i, a := range p.Aggs {
		ap := &next.Aggs[i]
		kept := ap.Final[:0]
		for _, fr := range ap.Final {
			if fr.Seq > m.Done {
				kept = append(kept, fr)
				continue
			}
			end := p.Windows[i].End
			for w := fr.From; w <= fr.To; w = end(w) {
				for s := range a.Shards {
					f := out.msg(pipeline.WindowKey(a.Name, w, s), i)
					f.Forget, f.Before = true, m.Done
				}
			}
		}
		ap.Final = kept
		keptG := ap.Forget[:0]
		for _, gs := range ap.Forget {
			if gs.Seq > m.Done {
				keptG = append(keptG, gs)
				continue
			}
			f := out.msg(pipeline.SessionKey(a.Name, len(a.GroupBy), gs.Group), i)
			f.Forget, f.Before = true, m.Done
		}
		ap.Forget = keptG
	}
	if len(out.msgs) == 0 {
		return *st, WatermarkNone, nil
	}
	next.Outs = out.msgs
	return next, WatermarkApplied, nil
}

// outbox collects one write's messages, one per key, in the order of their
// keys' first message.
type outbox struct {
	seq  int64
	at   map[string]int
	msgs []pipeline.Routed
}

func (o *outbox) msg(key string, agg int) *pipeline.WindowMsg {
	i, ok := o.at[key]
	if !ok {
		i = len(o.msgs)
		o.at[key] = i
		o.msgs = append(o.msgs, pipeline.Routed{Key: key, Agg: agg, Msg: pipeline.WindowMsg{Seq: o.seq, Prev: pipeline.NoPrev}})
	}
	return &o.msgs[i].Msg
}

// WindowStarts are the starts of the windows of tumbling aggregation i in
// the ranges rs, in order.
func (p *Pipeline) WindowStarts(i int, rs []pipeline.WindowRange) []int64 {
	var out []int64
	for _, r := range rs {
		for w := r.From; w <= r.To; w = p.Windows[i].End(w) {
			out = append(out, w)
		}
	}
	return out
}
