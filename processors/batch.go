package processors

import (
	"context"
	"sync"
	"time"

	"github.com/ridestream/ridestream/internal/pipeline"

	"github.com/lovoo/goka"
)

// batcher collects route's decoded input records per source partition and
// sends them to the clock stage as one pipeline.ClockBatch when BatchMax records are
// waiting or BatchLinger has passed. Each record's input offset is committed
// only once its batch is written (goka's DeferCommit), so a crash loses no
// record: route reads it again, and the clock skips what it applied before.
//
// The chain (pipeline.ClockBatch.Prev) belongs to a partition's session, the goka
// partition processor that consumed the records: a batch of a session that
// ended keeps its own predecessor, so it cannot hide a write lost before it.
type batcher struct {
	max  int
	emit func(key string, b pipeline.ClockBatch) (*goka.Promise, error)
	keys []string

	mu    sync.Mutex
	parts map[int32]*pending
}

type pending struct {
	session context.Context
	items   []pipeline.ClockIn
	commits []func(error)
	sent    int64 // last offset sent in this session, or pipeline.NoPrev
}

func newBatcher(max int, keys []string, emit func(string, pipeline.ClockBatch) (*goka.Promise, error)) *batcher {
	return &batcher{max: max, emit: emit, keys: keys, parts: map[int32]*pending{}}
}

// add queues in, consumed in ctx; goka calls it from the partition's goroutine.
func (b *batcher) add(ctx goka.Context, in pipeline.ClockIn) {
	commit := ctx.DeferCommit()
	p := ctx.Partition()
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.parts[p]
	if cur == nil || cur.session != ctx.Context() {
		if cur != nil {
			b.flush(p, cur)
		}
		cur = &pending{session: ctx.Context(), sent: pipeline.NoPrev}
		b.parts[p] = cur
	}
	cur.items = append(cur.items, in)
	cur.commits = append(cur.commits, commit)
	if len(cur.items) >= b.max {
		b.flush(p, cur)
	}
}

// flush sends cur's records; b.mu is held.
func (b *batcher) flush(p int32, cur *pending) {
	if len(cur.items) == 0 {
		return
	}
	batch := pipeline.ClockBatch{Prev: cur.sent, Items: cur.items}
	commits := cur.commits
	cur.sent = batch.Last()
	cur.items, cur.commits = make([]pipeline.ClockIn, 0, len(batch.Items)), make([]func(error), 0, len(commits))
	metricBatches.Inc()
	done := func(err error) {
		for _, c := range commits {
			c(err)
		}
	}
	promise, err := b.emit(b.keys[p], batch)
	if err != nil {
		done(err)
		return
	}
	promise.Then(done)
}

// flushAll sends every waiting batch and forgets the partitions whose
// session ended.
func (b *batcher) flushAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for p, cur := range b.parts {
		b.flush(p, cur)
		if cur.session.Err() != nil {
			delete(b.parts, p)
		}
	}
}

// run flushes every linger until stop is closed, then once more.
func (b *batcher) run(linger time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(linger)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			b.flushAll()
			return
		case <-tick.C:
			b.flushAll()
		}
	}
}
