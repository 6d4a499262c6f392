package stage

import (
	"github.com/ridestream/ridestream/internal/pipeline"
)

// ProgressOf is what route forwards to the watermark stage for the clock
// write st, after the clock write prev it forwarded before for the same
// source in its session (pipeline.NoPrev: none).
func ProgressOf(st *pipeline.ClockState, prev int64) pipeline.Progress {
	return pipeline.Progress{Src: st.Src, Seq: st.Seq, Prev: prev, From: st.From, To: st.LastOffset, ST: st.ST, Valid: st.Valid,
		Pending: st.Pending, Partials: st.Partials}
}

// Chain remembers, in one route session, the last message route sent to
// each window key, so that each message names its predecessor
// (pipeline.WindowMsg.Prev) and a window key can skip a message that
// follows a lost write (docs/design.md, "Lost writes").
//
// A message without predecessor (pipeline.NoPrev) is only safe where it
// cannot overtake a lost message to the same key: at the key's first
// message of a session (route's restart re-sends from at or before any lost
// write), or once every earlier message to the key is known written. So
// entries are dropped only by Prune.
type Chain struct {
	last       map[string]sent
	afterPrune int // len(last) after the last prune
}

type sent struct {
	seq    int64 // the message's watermark Seq
	forget bool  // it was a Forget
	output int64 // the watermark changelog offset whose record sent it
}

// NewChain returns an empty chain.
func NewChain() *Chain { return &Chain{last: map[string]sent{}} }

// Link sets m's predecessor for key and records m, sent for the watermark
// changelog record at offset output.
func (c *Chain) Link(key string, m *pipeline.WindowMsg, output int64) {
	prev, ok := c.last[key]
	c.last[key] = sent{seq: m.Seq, forget: m.Forget, output: output}
	if !ok {
		m.Prev, m.AfterForget = pipeline.NoPrev, false
		return
	}
	m.Prev, m.AfterForget = prev.seq, prev.forget
}

// Prune forgets the keys whose last message was sent for a record before
// committed, route's committed offset of the watermark changelog in this
// session: goka commits an offset only once every write of every message up
// to it is acknowledged, so those messages and all earlier ones to the same
// keys are in Kafka, and the next message to such a key, without
// predecessor, lands after them. It works only when the chain has doubled
// since the last prune, so its cost stays proportional to use.
func (c *Chain) Prune(committed int64) {
	if len(c.last) >= 2*c.afterPrune+64 {
		c.prune(committed)
	}
}

func (c *Chain) prune(committed int64) {
	for k, s := range c.last {
		if s.output < committed {
			delete(c.last, k)
		}
	}
	c.afterPrune = len(c.last)
}

// Len is the number of keys remembered.
func (c *Chain) Len() int { return len(c.last) }
