package processors

import (
	"sync"

	"github.com/ridestream/ridestream/internal/pipeline"
)

// Chain remembers, for one source partition in one route session, the last
// message sent to each window key, so each message can name its predecessor
// (pipeline.WindowMsg.Prev) and the window stage can skip a message that follows a
// lost write (docs/design.md, "Lost writes").
//
// A message without predecessor (pipeline.NoPrev) is only safe where it cannot
// overtake a lost message to the same key: at the key's first message of a
// session (route's restart re-sends from at or before any lost write), or
// once every earlier message to the key is known written. So entries are
// never dropped when a marker is sent (a source may send a key another
// marker later, answering a subscription), only by Prune.
type Chain struct {
	last       map[string]sent
	afterPrune int // len(last) after the last prune
}

type sent struct {
	offset int64 // the message's source offset
	output int64 // the clock changelog offset whose fanout sent it
}

// NewChain returns an empty chain.
func NewChain() *Chain { return &Chain{last: map[string]sent{}} }

// next returns the predecessor of a message with source offset o to key,
// sent for clock output output, and records it.
func (c *Chain) next(key string, o, output int64) int64 {
	prev, ok := c.last[key]
	c.last[key] = sent{offset: o, output: output}
	if !ok {
		return pipeline.NoPrev
	}
	return prev.offset
}

// Prune forgets the keys whose last message was sent for a clock output
// before committed, route's committed offset of that clock changelog
// partition in this session: goka commits an offset only once every write
// of every message up to it is acknowledged, so those messages and all
// earlier ones to the same keys are in Kafka, and the next message to such a
// key, without predecessor, lands after them. It works only when the chain
// has doubled since the last prune, so its cost stays proportional to use.
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

// routeChains is route's memory of what it sent in its current session;
// it is cleared whenever route's partitions are (re)assigned.
type routeChains struct {
	mu        sync.Mutex
	bySource  map[int32]*Chain
	lastClock map[int32]int64
	commit    map[int32]int64 // committed offset of each clock changelog partition
}

func (r *routeChains) reset() {
	r.mu.Lock()
	r.bySource, r.lastClock, r.commit = map[int32]*Chain{}, map[int32]int64{}, map[int32]int64{}
	r.mu.Unlock()
}

// clockOutput returns the last clock sequence number route saw for src in
// this session (ok false if none) and records seq when it is newer.
func (r *routeChains) clockOutput(src int32, seq int64) (last int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastClock == nil {
		r.lastClock = map[int32]int64{}
	}
	last, ok = r.lastClock[src]
	if !ok || seq > last {
		r.lastClock[src] = seq
	}
	return last, ok
}

// forSource returns the chain of one source partition. goka calls route's
// callbacks for one partition from one goroutine, so the chain needs no lock.
func (r *routeChains) forSource(src int32) *Chain {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bySource == nil {
		r.bySource = map[int32]*Chain{}
	}
	c, ok := r.bySource[src]
	if !ok {
		c = NewChain()
		r.bySource[src] = c
	}
	return c
}

// committed is route's committed offset of the clock changelog partition of
// src in this session (0 before its first commit).
func (r *routeChains) committed(src int32) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.commit[src]
}

// setCommitted records a commit of route's consumer group; the clock
// changelog's partition p holds source p's clock key.
func (r *routeChains) setCommitted(partition int32, next int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.commit == nil {
		r.commit = map[int32]int64{}
	}
	if next > r.commit[partition] {
		r.commit[partition] = next
	}
}
