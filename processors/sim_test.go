package processors

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ridestream/ridestream/internal/pipeline"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/window"
)

// simulate runs the topology's pure transitions (ClockApply,
// ClockSubscribe, Fanout, WindowStep) over per-partition logs as a system of
// actors picked in random order, each reading its own inputs in order as
// Kafka delivers them:
//
//   - route's input side sends each partition's records to its clock in
//     batches of random size, with lost batch writes (a later batch or two
//     still arriving) and crashes, each followed by route's restart at or
//     before the first record it had not committed, re-batched without a
//     predecessor;
//   - a clock reads its batches and the window keys' subscriptions, in
//     whatever interleaving the two producers give;
//   - route's output side fans each clock output out to the window keys,
//     with lost writes (a later output or two still arriving) followed by
//     a restart at or before the lost one with a new chain, and plain
//     restarts that send a tail again;
//   - a window key reads its sources' messages in a random interleaving, with
//     redelivered tails as a crash of the window stage causes, subscribes to
//     the clocks when created, and loses subscriptions now and then, which
//     the redelivery of its creating message repairs.
//
// It returns the final rows emitted, the writes it lost and the messages the
// chains skipped, at the clock and at the windows.
func simulate(t *testing.T, top *Topology, parts [][][]byte, rng *rand.Rand) (finals map[model.FinalKey]model.FinalRow, lost, outOfChain int) {
	t.Helper()
	n := len(parts)
	// Route's input side, precomputed: what it writes to each clock.
	batches := make([][]pipeline.ClockBatch, n)
	lastItem := make([]int64, n)
	for p, values := range parts {
		var items []pipeline.ClockIn
		for o, v := range values {
			rec, err := ride.Decode(v)
			if err != nil {
				continue
			}
			in := pipeline.ClockIn{Offset: int64(o), Heartbeat: rec.Kind == ride.KindHeartbeat, EventMs: rec.EventMs}
			if !in.Heartbeat {
				in.Ride = amountsOf(rec.Ride)
			}
			items = append(items, in)
		}
		lastItem[p] = items[len(items)-1].Offset
		batch := func(i int, prev int64) pipeline.ClockBatch {
			return pipeline.ClockBatch{Prev: prev, Items: items[i:min(i+1+rng.IntN(8), len(items))]}
		}
		for i, prev := 0, int64(pipeline.NoPrev); i < len(items); {
			b := batch(i, prev)
			switch rng.IntN(40) {
			case 0: // b is lost; later batches of the session may still arrive
				lost++
				j, after := i+len(b.Items), b.Last()
				for k := rng.IntN(3); k > 0 && j < len(items); k-- {
					nb := batch(j, after)
					batches[p] = append(batches[p], nb)
					j, after = j+len(nb.Items), nb.Last()
				}
				i, prev = max(0, i-rng.IntN(5)), pipeline.NoPrev // restart at or before b
			case 1: // a crash after b: restart at or before its end
				batches[p] = append(batches[p], b)
				i, prev = max(0, i+len(b.Items)-rng.IntN(12)), pipeline.NoPrev
			default:
				batches[p] = append(batches[p], b)
				i, prev = i+len(b.Items), b.Last()
			}
		}
	}

	type clockActor struct {
		st      pipeline.ClockState
		sent    int   // batches of route's input side delivered
		subs    []any // subscriptions and batches waiting, in arrival order
		outputs []pipeline.ClockState
		// route's output side for this source
		cursor    int
		chain     *Chain
		committed int // outputs before this are written: route's commit
		crashIn   int // outputs until route notices a lost write and restarts; -1 none
		lostAt    int
	}
	clocks := make([]*clockActor, n)
	for p := range clocks {
		clocks[p] = &clockActor{st: pipeline.ClockState{Src: int32(p), LastOffset: -1}, chain: NewChain(), crashIn: -1}
	}
	type keyActor struct {
		st      *pipeline.WindowState
		queues  [][]pipeline.WindowMsg
		pos     []int
		created [2]int // source and queue index of the message that created it
	}
	keys := map[string]*keyActor{}
	var keyOrder []string
	finals = map[model.FinalKey]model.FinalRow{}
	emit := func(st *pipeline.WindowState, reemit bool) {
		for _, z := range st.Zones {
			k := model.FinalKey{WindowStart: st.WindowStart, Zone: z.Zone}
			row := model.FinalRow{WindowStart: st.WindowStart, WindowEnd: st.WindowEnd, Zone: z.Zone, Trips: z.Trips,
				Cents: z.Cents, DistCenti: z.DistCenti, TipCents: z.TipCents, Passengers: z.Pass}
			if prev, ok := finals[k]; ok && prev != row {
				t.Fatalf("final %v emitted twice with different rows: %+v then %+v (re-emit %v)", k, prev, row, reemit)
			}
			finals[k] = row
		}
	}
	deliver := func(src int, r Routed) {
		k := keys[r.Key]
		if k == nil {
			k = &keyActor{queues: make([][]pipeline.WindowMsg, n), pos: make([]int, n)}
			keys[r.Key] = k
			keyOrder = append(keyOrder, r.Key)
		}
		k.queues[src] = append(k.queues[src], r.Msg)
	}

	// The actors, picked at random among those with work.
	routeIn := func(p int) bool {
		c := clocks[p]
		if c.sent == len(batches[p]) {
			return false
		}
		c.subs = append(c.subs, batches[p][c.sent])
		c.sent++
		return true
	}
	clockStep := func(p int) bool {
		c := clocks[p]
		if len(c.subs) == 0 {
			return false
		}
		msg := c.subs[0]
		c.subs = c.subs[1:]
		switch m := msg.(type) {
		case pipeline.ClockBatch:
			if !acceptClock(c.st, m) {
				if m.Last() > c.st.LastOffset {
					outOfChain++
				}
				return true
			}
			c.st = ClockApply(top.Window, c.st, m)
		case pipeline.Subscribe:
			next, changed := ClockSubscribe(top.Window, c.st, m)
			if !changed {
				return true
			}
			c.st = next
		}
		c.outputs = append(c.outputs, c.st)
		return true
	}
	routeOut := func(p int) bool {
		c := clocks[p]
		if c.cursor == len(c.outputs) {
			if c.crashIn < 0 {
				return false
			}
			// The failed write stops route even when nothing follows it.
			c.cursor, c.chain, c.crashIn = max(0, c.lostAt-rng.IntN(3)), NewChain(), -1
			c.committed = c.cursor
			return true
		}
		st := c.outputs[c.cursor]
		for _, r := range top.Fanout(&st, c.chain, int64(c.cursor)) {
			if c.crashIn < 0 && rng.IntN(60) == 0 {
				lost++ // this write fails; route goes on for a little while
				c.crashIn, c.lostAt = rng.IntN(3), c.cursor
				continue
			}
			deliver(p, r)
		}
		c.cursor++
		switch {
		case c.crashIn == 0: // route's restart at or before the output it lost
			c.cursor, c.chain, c.crashIn = max(0, c.lostAt-rng.IntN(3)), NewChain(), -1
			c.committed = c.cursor
		case c.crashIn > 0:
			c.crashIn--
		case rng.IntN(80) == 0: // a plain crash: a tail is sent again
			c.cursor, c.chain = max(0, c.cursor-1-rng.IntN(3)), NewChain()
			c.committed = c.cursor
		default:
			c.committed = c.cursor // everything fanned out in this session so far is written
		}
		if rng.IntN(5) == 0 {
			c.chain.prune(int64(c.committed))
		}
		return true
	}
	keyStep := func(key string) bool {
		k := keys[key]
		var ready []int
		for s, q := range k.queues {
			if k.pos[s] < len(q) {
				ready = append(ready, s)
			}
		}
		if len(ready) == 0 {
			return false
		}
		s := ready[rng.IntN(len(ready))]
		i := k.pos[s]
		m := k.queues[s][i]
		k.pos[s]++
		if rng.IntN(50) == 0 && k.pos[s] > 1 { // the window stage crashes: a tail comes again
			k.pos[s] -= 1 + rng.IntN(k.pos[s]-1)
		}
		created := k.st == nil
		next, effect, err := WindowStep(top.Window, top.Sources, k.st, m)
		if err != nil {
			t.Fatal(err)
		}
		if created {
			k.created = [2]int{s, i}
		}
		if NeedsSubscriptions(k.st, next, m) {
			for src, closed := range next.Closed {
				if closed {
					continue
				}
				if rng.IntN(20) == 0 {
					// The subscription's write fails: the window stage
					// restarts before its commit passes the creating message.
					lost++
					k.pos[k.created[0]] = min(k.pos[k.created[0]], k.created[1])
					continue
				}
				clocks[src].subs = append(clocks[src].subs, pipeline.Subscribe{WindowStart: next.WindowStart})
			}
		}
		switch effect {
		case EffectOutOfChain:
			outOfChain++
		case EffectRideAfterFinal:
			t.Fatalf("%s: ride p%d@%d after the window was final", key, m.Src, m.Offset)
		case EffectFinal:
			emit(next, false)
		case EffectReemit:
			emit(next, true)
		}
		if effect == EffectApplied || effect == EffectFinal {
			k.st = next
		}
		return true
	}
	for steps := 0; ; steps++ {
		if steps > 50_000_000 {
			t.Fatal("the simulation does not end")
		}
		var actors []func() bool
		for p := range n {
			c := clocks[p]
			if c.sent < len(batches[p]) {
				actors = append(actors, func() bool { return routeIn(p) })
			}
			if len(c.subs) > 0 {
				actors = append(actors, func() bool { return clockStep(p) })
			}
			if c.cursor < len(c.outputs) || c.crashIn >= 0 {
				actors = append(actors, func() bool { return routeOut(p) })
			}
		}
		for _, key := range keyOrder {
			k := keys[key]
			for s, q := range k.queues {
				if k.pos[s] < len(q) {
					actors = append(actors, func() bool { return keyStep(key) })
					break
				}
			}
		}
		if len(actors) == 0 {
			break
		}
		actors[rng.IntN(len(actors))]()
	}
	for p, c := range clocks {
		if c.st.LastOffset != lastItem[p] {
			t.Fatalf("partition %d: clock stopped at offset %d, the last record is %d", p, c.st.LastOffset, lastItem[p])
		}
	}
	lowest := clocks[0].st.ST
	for _, c := range clocks {
		lowest = min(lowest, c.st.ST)
	}
	for key, k := range keys {
		if k.st != nil && !k.st.Final && k.st.WindowEnd+top.Window.Lateness.Milliseconds() <= lowest {
			t.Errorf("%s: every partition closed the window, but it is not final (closed %v)", key, k.st.Closed)
		}
	}
	return finals, lost, outOfChain
}

// TestClockSkipsOutOfChain: a clock batch whose predecessor is not the last
// applied offset follows a lost write and must not be applied; a batch
// without predecessor applies only its records newer than the state.
func TestClockSkipsOutOfChain(t *testing.T) {
	st := pipeline.ClockState{Src: 0, LastOffset: 100}
	in := func(offsets ...int64) []pipeline.ClockIn {
		var r []pipeline.ClockIn
		for _, o := range offsets {
			r = append(r, pipeline.ClockIn{Offset: o, Heartbeat: true, EventMs: 1730419200000 + o})
		}
		return r
	}
	for _, c := range []struct {
		b     pipeline.ClockBatch
		apply []int64
	}{
		{pipeline.ClockBatch{Prev: 100, Items: in(101, 103)}, []int64{101, 103}},
		{pipeline.ClockBatch{Prev: 101, Items: in(102)}, nil}, // 101 was lost
		{pipeline.ClockBatch{Prev: pipeline.NoPrev, Items: in(101)}, []int64{101}},
		{pipeline.ClockBatch{Prev: pipeline.NoPrev, Items: in(98, 100, 101, 102)}, []int64{101, 102}}, // re-batched after a restart
		{pipeline.ClockBatch{Prev: 99, Items: in(100)}, nil},                                          // a duplicate
		{pipeline.ClockBatch{Prev: 99, Items: in(100, 101)}, []int64{101}},                            // re-batched after a restart
		{pipeline.ClockBatch{Prev: pipeline.NoPrev, Items: in(99, 100)}, nil},                         // a duplicate
	} {
		var got []int64
		if acceptClock(st, c.b) {
			for _, o := range ClockApply(window.DefaultSpec(), st, c.b).Outs {
				got = append(got, o.Offset)
			}
		}
		if !slices.Equal(got, c.apply) {
			t.Errorf("last %d, batch %+v: applied %v, want %v", st.LastOffset, c.b, got, c.apply)
		}
	}
}

func TestSimulatedTopologyEqualsModel(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		rule model.Rule
		w    generate.Config
	}{
		{"utc hourly", model.DefaultRule(), generate.Config{Rides: 6000, Partitions: 4, Hours: 8, OutOfOrder: 0.1, Late: 0.03,
			Malformed: 0.01, Lateness: 5 * time.Minute, IdlePartitions: 1, IdleAfter: 0.5, Heartbeats: true}},
		{"no lateness", model.Rule{Size: time.Hour, MaxFutureSkew: 24 * time.Hour}, generate.Config{Rides: 4000, Partitions: 3,
			Hours: 6, OutOfOrder: 0.1, Late: 0.05, Lateness: 10 * time.Minute, Heartbeats: true}},
		{"new york dst 15m", model.Rule{Size: 15 * time.Minute, Lateness: 2 * time.Minute, MaxFutureSkew: 24 * time.Hour, Location: ny},
			generate.Config{Rides: 5000, Partitions: 5, Hours: 5, Start: time.Date(2024, 11, 3, 4, 0, 0, 0, time.UTC),
				OutOfOrder: 0.05, Late: 0.02, Lateness: 2 * time.Minute, IdlePartitions: 2, IdleAfter: 0.3, Heartbeats: true}},
		// A 72-hour backfill: partition 3 gets no rides at all (only the
		// closing heartbeat), partition 0 its first ride 43 hours after the
		// others' first; every window must still become final.
		{"backfill empty and late partitions", model.DefaultRule(), generate.Config{Rides: 6000, Partitions: 4, Hours: 72,
			OutOfOrder: 0.05, Late: 0.02, Malformed: 0.01, Lateness: 5 * time.Minute, IdlePartitions: 1, IdleAfter: 0,
			LateStartPartitions: 1, LateStartAfter: 0.6, Heartbeats: true}},
	}
	for _, c := range cases {
		for seed := uint64(1); seed <= 4; seed++ {
			t.Run(fmt.Sprintf("%s seed %d", c.name, seed), func(t *testing.T) {
				w := c.w
				w.Seed = seed
				parts := make([][][]byte, w.Partitions)
				for m := range w.All {
					parts[m.Partition] = append(parts[m.Partition], m.Value)
				}
				spec := window.Spec{Size: c.rule.Size, Lateness: c.rule.Lateness, MaxFutureSkew: c.rule.MaxFutureSkew, Location: c.rule.Location}
				top := &Topology{Config: Config{Spec: pipeline.Spec{Window: spec, Shards: 4}}, Sources: w.Partitions}
				want := model.Finals(c.rule, parts, model.Run(c.rule, parts))
				if len(want) == 0 {
					t.Fatal("workload produced no final windows")
				}
				got, lost, skipped := simulate(t, top, parts, rand.New(rand.NewPCG(seed, 99)))
				for k, w := range want {
					if got[k] != w {
						t.Fatalf("final %v (shard %d): got %+v, model %+v", k, top.Shard(k.Zone), got[k], w)
					}
				}
				if len(got) != len(want) {
					t.Fatalf("%d final rows, model says %d", len(got), len(want))
				}
				windows := map[int64]bool{}
				for k := range want {
					windows[k.WindowStart] = true
				}
				if c.w.Heartbeats && len(windows) < c.w.Hours {
					t.Fatalf("the model finalizes %d windows of the %d hours with rides", len(windows), c.w.Hours)
				}
				if lost == 0 || skipped == 0 {
					t.Fatalf("the simulation lost %d writes and skipped %d messages out of chain: it tested no lost write", lost, skipped)
				}
			})
		}
	}
}

// TestModelDependsOnPartitionOrder is the other side of determinism: the
// model takes each partition's log in offset order (how partitions interleave
// is not even an input), and reordering within a partition must matter.
func TestModelDependsOnPartitionOrder(t *testing.T) {
	w := generate.Config{Seed: 5, Rides: 3000, Partitions: 3, Hours: 4, OutOfOrder: 0.1, Late: 0.05, Lateness: 5 * time.Minute, Heartbeats: true}
	rule := model.DefaultRule()
	parts := make([][][]byte, w.Partitions)
	for m := range w.All {
		parts[m.Partition] = append(parts[m.Partition], m.Value)
	}
	base := model.Finals(rule, parts, model.Run(rule, parts))
	// Reversing one partition's order makes most of its rides late.
	rev := make([][][]byte, len(parts))
	copy(rev, parts)
	rev[0] = nil
	for i := len(parts[0]) - 1; i >= 0; i-- {
		rev[0] = append(rev[0], parts[0][i])
	}
	changed := model.Finals(rule, rev, model.Run(rule, rev))
	same := len(changed) == len(base)
	for k, v := range base {
		if changed[k] != v {
			same = false
		}
	}
	if same {
		t.Fatal("reordering within a partition did not change the finals; the model ignores order")
	}
}

// TestRouteSeesClockGaps: route finds a lost clock changelog record by the
// sequence of its writes, and is not fooled by duplicates or a new session.
func TestRouteSeesClockGaps(t *testing.T) {
	spec := window.DefaultSpec()
	st := pipeline.ClockState{Src: 0, LastOffset: -1}
	var states []pipeline.ClockState
	for o := int64(0); o < 5; o++ {
		st = ClockApply(spec, st, pipeline.ClockBatch{Prev: o - 1, Items: []pipeline.ClockIn{{Offset: o, EventMs: 1730419200000 + o*1000}}})
		states = append(states, st)
	}
	gaps := func(seq ...int) int {
		var r routeChains
		r.reset()
		n := 0
		for _, i := range seq {
			s := states[i]
			if last, ok := r.clockOutput(s.Src, s.Seq); ok && s.Seq > last+1 {
				n++
			}
		}
		return n
	}
	if n := gaps(0, 1, 2, 3, 4); n != 0 {
		t.Fatalf("%d gaps in a complete changelog", n)
	}
	if n := gaps(2, 3, 3, 1, 4); n != 0 { // starts mid-way, duplicates
		t.Fatalf("%d gaps reported for duplicates", n)
	}
	if n := gaps(0, 1, 3, 4); n != 1 { // record 2 lost
		t.Fatalf("%d gaps for one lost record", n)
	}
}
