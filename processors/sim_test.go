package processors

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/window"
)

// simulate runs the topology's pure transitions (ClockApply, Fanout,
// WindowStep) over per-partition logs. Route sends each partition's records
// to the clock in batches of random size, with lost batch writes (a later
// batch or two still arriving) and crashes, each followed by route's restart
// at or before the first record it had not committed, re-batched without a
// predecessor. Each window key's messages arrive in a random interleaving of
// the sources (each source in its own order, as Kafka guarantees), with
// random redeliveries of already-delivered tails as a crash upstream would
// cause, and with lost writes followed by route's restart. It returns the
// final rows emitted and how many writes it lost and messages the chains
// skipped, at the clock and at the windows.
func simulate(t *testing.T, top *Topology, parts [][][]byte, rng *rand.Rand) (finals map[model.FinalKey]model.FinalRow, lost, outOfChain int) {
	t.Helper()
	perKey := map[string][][]WindowMsg{} // key -> source -> messages in order
	var keys []string
	for p, values := range parts {
		var items []ClockIn
		for o, v := range values {
			rec, err := ride.Decode(v)
			if err != nil {
				continue
			}
			in := ClockIn{Offset: int64(o), Heartbeat: rec.Kind == ride.KindHeartbeat, EventMs: rec.EventMs}
			if !in.Heartbeat {
				in.Ride = amountsOf(rec.Ride)
			}
			items = append(items, in)
		}
		st := ClockState{Src: int32(p), LastOffset: -1}
		chain := Chain{}
		send := func(b ClockBatch) {
			if !acceptClock(st, b) {
				if b.Last() > st.LastOffset {
					outOfChain++
				}
				return
			}
			st = ClockApply(top.Window, top.Horizon, st, b)
			for _, r := range top.Fanout(&st, chain) {
				if perKey[r.Key] == nil {
					perKey[r.Key] = make([][]WindowMsg, len(parts))
					keys = append(keys, r.Key)
				}
				perKey[r.Key][p] = append(perKey[r.Key][p], r.Msg)
			}
		}
		batch := func(i int, prev int64) ClockBatch {
			return ClockBatch{Prev: prev, Items: items[i:min(i+1+rng.IntN(8), len(items))]}
		}
		for i, prev := 0, int64(NoPrev); i < len(items); {
			b := batch(i, prev)
			switch rng.IntN(40) {
			case 0: // b is lost; later batches of the session may still arrive
				lost++
				j, after := i+len(b.Items), b.Last()
				for k := rng.IntN(3); k > 0 && j < len(items); k-- {
					nb := batch(j, after)
					send(nb)
					j, after = j+len(nb.Items), nb.Last()
				}
				i, prev = max(0, i-rng.IntN(5)), NoPrev // restart at or before b
			case 1: // a crash after b: restart at or before its end
				send(b)
				i, prev = max(0, i+len(b.Items)-rng.IntN(12)), NoPrev
			default:
				send(b)
				i, prev = i+len(b.Items), b.Last()
			}
		}
		if st.LastOffset != items[len(items)-1].Offset {
			t.Fatalf("partition %d: clock stopped at offset %d, the last record is %d", p, st.LastOffset, items[len(items)-1].Offset)
		}
	}
	finals = map[model.FinalKey]model.FinalRow{}
	emit := func(st *WindowState, reemit bool) {
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
	// lossy is what a window key receives from one source when writes get
	// lost: a lost message, a few later ones that still arrive (out of
	// chain), then route's restart at or before the lost one, whose first
	// message has no predecessor.
	lossy := func(q []WindowMsg) []WindowMsg {
		var out []WindowMsg
		for i := 0; i < len(q); {
			if rng.IntN(30) != 0 {
				out = append(out, q[i])
				i++
				continue
			}
			lost++
			for j := i + 1; j <= i+rng.IntN(3) && j < len(q); j++ {
				out = append(out, q[j])
			}
			i = max(0, i-rng.IntN(2))
			first := q[i]
			first.Prev = NoPrev
			out = append(out, first)
			i++
		}
		return out
	}
	for _, key := range keys {
		queues := perKey[key]
		for s := range queues {
			queues[s] = lossy(queues[s])
		}
		pos := make([]int, len(queues))
		var st *WindowState
		for {
			var ready []int
			for s, q := range queues {
				if pos[s] < len(q) {
					ready = append(ready, s)
				}
			}
			if len(ready) == 0 {
				break
			}
			s := ready[rng.IntN(len(ready))]
			m := queues[s][pos[s]]
			pos[s]++
			if rng.IntN(50) == 0 && pos[s] > 1 { // crash upstream: redeliver a tail
				pos[s] -= 1 + rng.IntN(pos[s]-1)
			}
			next, effect, err := WindowStep(top.Window, top.Sources, st, m)
			if err != nil {
				t.Fatal(err)
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
			st = next
		}
	}
	return finals, lost, outOfChain
}

// TestClockSkipsOutOfChain: a clock batch whose predecessor is not the last
// applied offset follows a lost write and must not be applied; a batch
// without predecessor applies only its records newer than the state.
func TestClockSkipsOutOfChain(t *testing.T) {
	st := ClockState{Src: 0, LastOffset: 100}
	in := func(offsets ...int64) []ClockIn {
		var r []ClockIn
		for _, o := range offsets {
			r = append(r, ClockIn{Offset: o, Heartbeat: true, EventMs: 1730419200000 + o})
		}
		return r
	}
	for _, c := range []struct {
		b     ClockBatch
		apply []int64
	}{
		{ClockBatch{Prev: 100, Items: in(101, 103)}, []int64{101, 103}},
		{ClockBatch{Prev: 101, Items: in(102)}, nil}, // 101 was lost
		{ClockBatch{Prev: NoPrev, Items: in(101)}, []int64{101}},
		{ClockBatch{Prev: NoPrev, Items: in(98, 100, 101, 102)}, []int64{101, 102}}, // re-batched after a restart
		{ClockBatch{Prev: 99, Items: in(100)}, nil},                                 // a duplicate
		{ClockBatch{Prev: 99, Items: in(100, 101)}, []int64{101}},                   // re-batched after a restart
		{ClockBatch{Prev: NoPrev, Items: in(99, 100)}, nil},                         // a duplicate
	} {
		var got []int64
		if acceptClock(st, c.b) {
			for _, o := range ClockApply(window.DefaultSpec(), time.Hour, st, c.b).Outs {
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
				top := &Topology{Config: Config{Window: spec, Horizon: 24 * time.Hour, Shards: 4}, Sources: w.Partitions}
				want := model.Finals(c.rule, parts, model.Run(c.rule, parts))
				if len(want) == 0 {
					t.Fatal("workload produced no final windows")
				}
				got, lost, skipped := simulate(t, top, parts, rand.New(rand.NewPCG(seed, 99)))
				if len(got) != len(want) {
					t.Fatalf("%d final rows, model says %d", len(got), len(want))
				}
				for k, w := range want {
					if got[k] != w {
						t.Fatalf("final %v: got %+v, model %+v", k, got[k], w)
					}
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
// chain of PrevOffset, and is not fooled by duplicates or a new session.
func TestRouteSeesClockGaps(t *testing.T) {
	spec := window.DefaultSpec()
	st := ClockState{Src: 0, LastOffset: -1}
	var states []ClockState
	for o := int64(0); o < 5; o++ {
		st = ClockApply(spec, time.Hour, st, ClockBatch{Prev: o - 1, Items: []ClockIn{{Offset: o, EventMs: 1730419200000 + o*1000}}})
		states = append(states, st)
	}
	gaps := func(seq ...int) int {
		var r routeChains
		r.reset()
		n := 0
		for _, i := range seq {
			s := states[i]
			if last, ok := r.clockOutput(s.Src, s.LastOffset); ok && s.LastOffset > last && s.PrevOffset != last {
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
