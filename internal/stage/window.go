package stage

import (
	"slices"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/pipeline"
)

// What a window step did.
const (
	WindowNone        = iota // a message for nothing: no change
	WindowSeen               // a duplicate (rows it finalized emitted again); the state records it was seen
	WindowApplied            // the state changed
	WindowDeleted            // forgotten: the key is deleted
	WindowOutOfChain         // follows a lost write of route's: skipped, route sends both again
	WindowAfterFinal         // rides for a window or session already final: a broken upstream order, not counted
	WindowForgetEarly        // a Forget before the finals' write is committed: sent again (Retry)
)

// WindowIn is one message at a window key, with where it came from.
type WindowIn struct {
	Agg int
	Msg pipeline.WindowMsg
	// Start is a tumbling key's window start; Group a session key's group.
	Start int64
	Group aggregate.Group
	// Offset is the message's offset in the windows topic, and Committed
	// the window stage's committed offset of that partition: a Forget
	// deletes only what a committed message finalized.
	Offset, Committed int64
}

// WindowResult is what a window step produced.
type WindowResult struct {
	Effect int
	// State is the next state (nil with WindowDeleted).
	State *pipeline.WindowState
	// Finals are the rows to emit (again, when a redelivered finalizing
	// message re-emits them).
	Finals []pipeline.Final
	// Retry: send the Forget to this key again.
	Retry bool
}

// WindowStep is a window key's transition for one message (docs/design.md,
// "Window keys"): partials are added, a Finalize (tumbling) or a watermark
// (sessions) makes what it passed final and emits its rows, a Forget
// deletes what is final once the message that finalized it is committed.
// A message that comes again after a crash is a duplicate; if it was the
// finalizing one, its rows are emitted again (the sink stores each once).
func (p *Pipeline) WindowStep(st *pipeline.WindowState, in WindowIn) WindowResult {
	m := in.Msg
	if m.Retry {
		if st == nil {
			return WindowResult{Effect: WindowNone}
		}
		return p.forget(st.Clone(), in)
	}
	if st != nil && m.Seq <= st.LastSeq {
		return WindowResult{Effect: WindowSeen, State: seen(st, in.Offset), Finals: p.reemit(st, in)}
	}
	// The chain: a message applies after the one route sent this key before
	// it; at a key with no state, after a Forget that deleted it.
	if m.Prev != pipeline.NoPrev && ((st == nil && !m.AfterForget) || (st != nil && m.Prev != st.LastSeq)) {
		if st != nil {
			return WindowResult{Effect: WindowOutOfChain, State: seen(st, in.Offset)}
		}
		return WindowResult{Effect: WindowOutOfChain}
	}
	a := p.Aggs[in.Agg]
	var next *pipeline.WindowState
	if st == nil {
		if len(m.Groups) == 0 && len(m.Runs) == 0 {
			// A Finalize or Forget for a key that holds nothing: a shard
			// without rides, or a key forgotten already.
			return WindowResult{Effect: WindowNone}
		}
		next = &pipeline.WindowState{Agg: in.Agg, Start: in.Start, Group: in.Group}
		if a.Kind == aggregate.Tumbling {
			next.End = p.Windows[in.Agg].End(in.Start)
		}
	} else {
		next = st.Clone()
	}
	next.LastSeq, next.SeenOffset = m.Seq, in.Offset
	res := WindowResult{Effect: WindowApplied, State: next}
	switch a.Kind {
	case aggregate.Tumbling:
		if len(m.Groups) > 0 && next.Final {
			res.Effect = WindowAfterFinal
			return res
		}
		for _, g := range m.Groups {
			next.Groups = addGroup(a, next.Groups, g)
		}
		if m.Finalize && !next.Final {
			next.Final, next.FinalOffset, next.FinalSeq = true, in.Offset, m.Seq
			res.Finals = p.tumblingFinals(next)
		}
	case aggregate.Session:
		for _, r := range m.Runs {
			lo, hi := aggregate.Joined(next.Clusters, r.First, r.Last, a.Gap.Milliseconds(),
				func(c pipeline.Cluster) (int64, int64) { return c.First, c.Last })
			if slices.ContainsFunc(next.Clusters[lo:hi], func(c pipeline.Cluster) bool { return c.Final }) {
				res.Effect = WindowAfterFinal
				continue
			}
			runs := make([]aggregate.Run, 0, hi-lo)
			for _, c := range next.Clusters[lo:hi] {
				runs = append(runs, c.Run)
			}
			merged := a.MergeRun(runs, r)
			next.Clusters = slices.Replace(next.Clusters, lo, hi, pipeline.Cluster{Run: merged[0]})
		}
		if m.HasG {
			L, gap := a.Lateness.Milliseconds(), a.Gap.Milliseconds()
			for i := range next.Clusters {
				c := &next.Clusters[i]
				if !c.Final && c.Last+gap+L <= m.G {
					c.Final, c.FinalOffset, c.FinalSeq = true, in.Offset, m.Seq
					res.Finals = append(res.Finals, p.sessionFinal(next, c.Run))
				}
			}
		}
	}
	if m.Forget {
		f := p.forget(next, in)
		f.Finals = append(res.Finals, f.Finals...)
		if res.Effect == WindowAfterFinal && f.Effect == WindowApplied {
			f.Effect = WindowAfterFinal
		}
		return f
	}
	return res
}

// seen is st having seen a message at offset (a duplicate, or one out of
// chain): a copy when it changes.
func seen(st *pipeline.WindowState, offset int64) *pipeline.WindowState {
	if offset <= st.SeenOffset {
		return st
	}
	c := st.Clone()
	c.SeenOffset = offset
	return c
}

// forget drops what is final in st and was finalized by a watermark write
// ≤ Before, once the window-stage message that finalized it is committed
// (until then a crash could redeliver it, and it must find its state to
// emit its rows again), and deletes the key when nothing is left, once
// every message the key got is committed (one of them, redelivered to a key
// without state, could start it again).
func (p *Pipeline) forget(st *pipeline.WindowState, in WindowIn) WindowResult {
	m := in.Msg
	early := WindowResult{Effect: WindowForgetEarly, State: st, Retry: true}
	switch p.Aggs[in.Agg].Kind {
	case aggregate.Tumbling:
		switch {
		case !st.Final || st.FinalSeq > m.Before:
			return WindowResult{Effect: WindowApplied, State: st}
		case st.SeenOffset >= in.Committed:
			return early
		}
		return WindowResult{Effect: WindowDeleted}
	default:
		res := WindowResult{Effect: WindowApplied, State: st}
		kept := st.Clusters[:0]
		for _, c := range st.Clusters {
			switch {
			case !c.Final || c.FinalSeq > m.Before:
				kept = append(kept, c)
			case c.FinalOffset >= in.Committed:
				kept = append(kept, c)
				res = early
			}
		}
		st.Clusters = kept
		if len(kept) > 0 {
			return res
		}
		if st.SeenOffset >= in.Committed {
			return early
		}
		return WindowResult{Effect: WindowDeleted}
	}
}

// reemit is what a redelivered message emits again: the rows it made final.
func (p *Pipeline) reemit(st *pipeline.WindowState, in WindowIn) []pipeline.Final {
	if p.Aggs[in.Agg].Kind == aggregate.Tumbling {
		if st.Final && st.FinalOffset == in.Offset {
			return p.tumblingFinals(st)
		}
		return nil
	}
	var out []pipeline.Final
	for _, c := range st.Clusters {
		if c.Final && c.FinalOffset == in.Offset {
			out = append(out, p.sessionFinal(st, c.Run))
		}
	}
	return out
}

// addGroup merges g into groups (ascending by group).
func addGroup(a aggregate.Aggregation, groups []pipeline.GroupAcc, g pipeline.GroupAcc) []pipeline.GroupAcc {
	i, found := slices.BinarySearchFunc(groups, g.Group, func(x pipeline.GroupAcc, g aggregate.Group) int {
		return aggregate.CompareGroups(x.Group, g)
	})
	if !found {
		return slices.Insert(groups, i, pipeline.GroupAcc{Group: g.Group, Acc: g.Acc.Clone()})
	}
	a.Merge(&groups[i].Acc, g.Acc)
	return groups
}

func (p *Pipeline) tumblingFinals(st *pipeline.WindowState) []pipeline.Final {
	a := p.Aggs[st.Agg]
	out := make([]pipeline.Final, len(st.Groups))
	for i, g := range st.Groups {
		out[i] = finalRow(a, st.Start, st.End, g.Group, g.Acc)
	}
	return out
}

func (p *Pipeline) sessionFinal(st *pipeline.WindowState, r aggregate.Run) pipeline.Final {
	return finalRow(p.Aggs[st.Agg], r.First, r.Last, st.Group, r.Acc)
}

func finalRow(a aggregate.Aggregation, start, end int64, g aggregate.Group, acc aggregate.Acc) pipeline.Final {
	f := pipeline.Final{Aggregation: a.Name, Start: start, End: end, Group: make([]pipeline.Value, len(a.GroupBy)),
		Measures: make([]pipeline.Value, len(a.Measures))}
	for i := range a.GroupBy {
		f.Group[i] = pipeline.Value{V: g.V[i], Null: g.Null&(1<<i) != 0}
	}
	for i := range a.Measures {
		v, ok := a.Value(acc, i)
		f.Measures[i] = pipeline.Value{V: v, Null: !ok}
	}
	return f
}
