package stage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/ride"
)

// simStats counts what a simulation exercised.
type simStats struct {
	lost, outOfChain, repaired, clockRepairs, retries, reemits int
}

// simulate runs the stages' pure transitions (ClockApply, ProgressOf,
// WatermarkStep, Chain, WindowStep) over per-partition logs as a system of
// actors picked in random order, each reading its inputs in order as Kafka
// delivers them:
//
//   - route's input side sends each partition's records to its clock in
//     batches of random size, with lost batch writes (a later batch or two
//     still arriving) and crashes, each followed by route's restart at or
//     before the first record it had not committed, re-batched without a
//     predecessor;
//   - a clock applies its batches; now and then one of its changelog writes
//     is lost while the next lands (the watermark stage must derive the lost
//     one again from the input);
//   - route forwards each clock write to the watermark stage, with lost
//     writes followed by a restart with a new chain, and plain restarts that
//     send a tail again;
//   - the watermark stage applies what it gets, crashing now and then (a
//     tail comes again); route forwards its outputs to the window keys with
//     their chains, lost writes and restarts, and acknowledges what it has
//     committed;
//   - a window key applies its messages, crashing now and then (redelivery
//     from its commit), losing its finals' writes (the redelivered
//     finalizing message emits them again), and deletes itself when
//     forgotten.
//
// It returns every final row emitted (checking that a row emitted twice is
// the same row) and what it exercised; at the end every window key and the
// watermark's open work must be gone.
func simulate(t *testing.T, p *Pipeline, decode ride.Options, parts [][][]byte, rng *rand.Rand) (map[string]pipeline.Final, simStats) {
	t.Helper()
	var stats simStats
	n := len(parts)
	w := pipeline.NewWire(p.Aggs)
	decoded := make([][]pipeline.ClockIn, n)
	for src, values := range parts {
		for o, v := range values {
			rec, err := decode.Decode(v)
			if err != nil {
				continue
			}
			in := pipeline.ClockIn{Offset: int64(o), Heartbeat: rec.Kind == ride.KindHeartbeat, EventMs: rec.EventMs}
			if !in.Heartbeat {
				in.Ride = rec.Ride
				in.Ride.Has &= w.Fields()
			}
			decoded[src] = append(decoded[src], in)
		}
	}
	repair := func(src int32, from, to int64) ([]pipeline.ClockIn, error) {
		stats.repaired++
		var out []pipeline.ClockIn
		for _, in := range decoded[src] {
			if in.Offset > from && in.Offset <= to {
				out = append(out, in)
			}
		}
		return out, nil
	}
	// Route's input side, precomputed: what it writes to each clock.
	batches := make([][]pipeline.ClockBatch, n)
	for src, items := range decoded {
		batch := func(i int, prev int64) pipeline.ClockBatch {
			return pipeline.ClockBatch{Prev: prev, Items: items[i:min(i+1+rng.IntN(8), len(items))]}
		}
		for i, prev := 0, int64(pipeline.NoPrev); i < len(items); {
			b := batch(i, prev)
			switch rng.IntN(40) {
			case 0: // b is lost; later batches of the session may still arrive
				stats.lost++
				j, after := i+len(b.Items), b.Last()
				for k := rng.IntN(3); k > 0 && j < len(items); k-- {
					nb := batch(j, after)
					batches[src] = append(batches[src], nb)
					j, after = j+len(nb.Items), nb.Last()
				}
				i, prev = max(0, i-rng.IntN(5)), pipeline.NoPrev // restart at or before b
			case 1: // a crash after b: restart at or before its end
				batches[src] = append(batches[src], b)
				i, prev = max(0, i+len(b.Items)-rng.IntN(12)), pipeline.NoPrev
			default:
				batches[src] = append(batches[src], b)
				i, prev = i+len(b.Items), b.Last()
			}
		}
	}

	type clockActor struct {
		st      pipeline.ClockState
		inbox   int                   // batches applied (or skipped)
		written []pipeline.ClockState // its changelog
		// route's forwarding of this source
		cursor  int
		prev    int64
		crashIn int // forwards until route notices a lost write and restarts; -1 none
		lostAt  int
	}
	clocks := make([]*clockActor, n)
	for src := range clocks {
		clocks[src] = &clockActor{st: NewClock(int32(src)), prev: pipeline.NoPrev, crashIn: -1}
	}
	// The watermark stage and route's forwarding of its changelog.
	wm := p.NewWatermark()
	var wmInbox []any
	wmPos := 0
	var wmLog []pipeline.WatermarkState
	wmCursor, wmCommitted, wmCrashIn := 0, 0, -1
	chain := NewChain()
	acked := int64(0)

	type msgIn struct {
		agg int
		m   pipeline.WindowMsg
	}
	type keyActor struct {
		st        *pipeline.WindowState
		queue     []msgIn
		pos       int
		committed int
		start     int64
		group     aggregate.Group
	}
	keys := map[string]*keyActor{}
	var keyOrder []string
	deliver := func(r pipeline.Routed) {
		k := keys[r.Key]
		if k == nil {
			k = &keyActor{}
			a := p.Aggs[r.Agg]
			if a.Kind == aggregate.Tumbling {
				_, k.start, _, _ = pipeline.ParseWindowKey(r.Key)
			} else {
				_, k.group, _ = pipeline.ParseSessionKey(r.Key, len(a.GroupBy))
			}
			keys[r.Key] = k
			keyOrder = append(keyOrder, r.Key)
		}
		k.queue = append(k.queue, msgIn{r.Agg, r.Msg})
	}
	finals := map[string]pipeline.Final{}
	emit := func(fs []pipeline.Final) {
		for _, f := range fs {
			if prev, ok := finals[f.Key()]; ok && fmt.Sprint(prev) != fmt.Sprint(f) {
				t.Fatalf("final %s emitted twice with different rows: %+v then %+v", f.Key(), prev, f)
			}
			finals[f.Key()] = f
		}
	}

	routeIn := func(src int) {
		c := clocks[src]
		b := batches[src][c.inbox]
		c.inbox++
		next, effect, err := p.ClockStep(c.st, b, repair)
		if err != nil {
			t.Fatal(err)
		}
		switch effect {
		case ClockSkipped:
			return
		case ClockRepaired:
			stats.clockRepairs++
		}
		c.st = next
		if c.inbox < len(batches[src]) && ClockAccepts(c.st, batches[src][c.inbox]) && rng.IntN(50) == 0 {
			stats.lost++ // this changelog write is lost; the next one lands
			return
		}
		c.written = append(c.written, c.st)
	}
	routeOut := func(src int) {
		c := clocks[src]
		restart := func() {
			c.cursor, c.prev, c.crashIn = max(0, c.lostAt-rng.IntN(3)), pipeline.NoPrev, -1
		}
		if c.cursor == len(c.written) {
			restart() // the failed write stops route even when nothing follows it
			return
		}
		st := c.written[c.cursor]
		msg := ProgressOf(&st, c.prev)
		if c.crashIn < 0 && rng.IntN(60) == 0 {
			stats.lost++ // this write fails; route goes on for a little while
			c.crashIn, c.lostAt = rng.IntN(3), c.cursor
		} else {
			wmInbox = append(wmInbox, msg)
		}
		c.prev = st.Seq
		c.cursor++
		switch {
		case c.crashIn == 0:
			restart()
		case c.crashIn > 0:
			c.crashIn--
		case rng.IntN(80) == 0: // a plain crash: a tail is sent again
			c.cursor, c.prev = max(0, c.cursor-1-rng.IntN(3)), pipeline.NoPrev
		}
	}
	watermark := func() {
		m := wmInbox[wmPos]
		wmPos++
		next, effect, err := p.WatermarkStep(&wm, m, repair)
		if err != nil {
			t.Fatal(err)
		}
		switch effect {
		case WatermarkOutOfChain:
			stats.outOfChain++
		case WatermarkOverlap:
			t.Fatalf("watermark: overlapping write %+v", m)
		case WatermarkApplied, WatermarkRepaired:
			wm = next
			wmLog = append(wmLog, wm)
		}
		if rng.IntN(60) == 0 { // a crash: a tail of its input comes again
			wmPos = max(0, wmPos-1-rng.IntN(3))
		}
	}
	routeWm := func() {
		// A restart resumes at route's committed offset, which never passes
		// a lost write (wmLostAt).
		restart := func() {
			wmCursor, chain, wmCrashIn = wmCommitted, NewChain(), -1
		}
		if wmCursor == len(wmLog) {
			restart()
			return
		}
		rec := wmLog[wmCursor]
		for _, r := range rec.Outs {
			chain.Link(r.Key, &r.Msg, int64(wmCursor))
			if wmCrashIn < 0 && rng.IntN(60) == 0 {
				stats.lost++
				wmCrashIn = rng.IntN(3)
				continue
			}
			deliver(r)
		}
		wmCursor++
		switch {
		case wmCrashIn == 0:
			restart()
		case wmCrashIn > 0:
			wmCrashIn--
		case rng.IntN(80) == 0: // a plain crash: what was not committed comes again
			wmCursor, chain = wmCommitted, NewChain()
		case rng.IntN(2) == 0:
			wmCommitted = wmCursor
		}
		if rng.IntN(5) == 0 {
			chain.prune(int64(wmCommitted))
		}
	}
	ack := func() {
		done := wmLog[wmCommitted-1].Seq
		if done > acked {
			acked = done
			wmInbox = append(wmInbox, pipeline.Ack{Done: done})
		}
	}
	keyStep := func(key string) {
		k := keys[key]
		in := k.queue[k.pos]
		res := p.WindowStep(k.st, WindowIn{Agg: in.agg, Msg: in.m, Start: k.start, Group: k.group, Offset: int64(k.pos), Committed: int64(k.committed)})
		switch res.Effect {
		case WindowOutOfChain:
			stats.outOfChain++
		case WindowAfterFinal:
			t.Fatalf("%s: rides after final: %+v", key, in.m)
		case WindowForgetEarly:
			stats.retries++
		}
		if res.Retry {
			k.queue = append(k.queue, msgIn{in.agg, pipeline.WindowMsg{Retry: true, Forget: true, Before: in.m.Before}})
		}
		if len(res.Finals) > 0 && res.Effect == WindowSeen {
			stats.reemits++
		}
		if len(res.Finals) > 0 && rng.IntN(30) == 0 {
			// The finals' writes fail: the stage restarts from its commit,
			// which has not passed this message.
			stats.lost++
			k.st = res.State
			if res.Effect == WindowDeleted {
				k.st = nil
			}
			k.pos = k.committed
			return
		}
		emit(res.Finals)
		k.st = res.State
		if res.Effect == WindowDeleted {
			k.st = nil
		}
		k.pos++
		switch {
		case rng.IntN(50) == 0: // a crash: redelivery from its commit
			k.pos = k.committed
		case rng.IntN(3) == 0:
			k.committed = k.pos
		}
	}
	for steps := 0; ; steps++ {
		if steps > 20_000_000 {
			t.Fatal("the simulation does not end")
		}
		var actors []func()
		for src := range n {
			c := clocks[src]
			if c.inbox < len(batches[src]) {
				actors = append(actors, func() { routeIn(src) })
			}
			if c.cursor < len(c.written) || c.crashIn >= 0 {
				actors = append(actors, func() { routeOut(src) })
			}
		}
		if wmPos < len(wmInbox) {
			actors = append(actors, watermark)
		}
		if wmCursor < len(wmLog) || wmCrashIn >= 0 {
			actors = append(actors, routeWm)
		}
		if wmCommitted > 0 && wmLog[wmCommitted-1].Seq > acked && rng.IntN(4) == 0 {
			actors = append(actors, ack)
		}
		for _, key := range keyOrder {
			if k := keys[key]; k.pos < len(k.queue) {
				actors = append(actors, func() { keyStep(key) })
			}
		}
		if len(actors) == 0 {
			// Everything is delivered: route commits what it forwarded and
			// acknowledges it; the window stage commits what it applied.
			wmCommitted = wmCursor
			for _, k := range keys {
				k.committed = k.pos
			}
			if wmCommitted > 0 && wmLog[wmCommitted-1].Seq > acked {
				ack()
				continue
			}
			break
		}
		actors[rng.IntN(len(actors))]()
	}
	for key, k := range keys {
		if k.st != nil {
			t.Errorf("%s: a live key at the end: %+v", key, k.st)
		}
	}
	for i, ap := range wm.Aggs {
		if len(ap.Open)+len(ap.Final)+len(ap.Groups)+len(ap.Forget) > 0 {
			t.Errorf("aggregation %s: open work left at the end: %+v", p.Aggs[i].Name, ap)
		}
	}
	return finals, stats
}

// modelFinals is the model's answer as the finals the window stage emits.
func modelFinals(rule model.Rule, parts [][][]byte) map[string]pipeline.Final {
	res := model.Run(rule, parts)
	out := map[string]pipeline.Final{}
	for agg, rows := range model.Finals(rule, res) {
		for _, r := range rows {
			f := pipeline.Final{Aggregation: agg, Start: r.Start, End: r.End}
			for _, v := range r.Group {
				f.Group = append(f.Group, pipeline.Value{V: v.V, Null: v.Null})
			}
			for _, v := range r.Measures {
				f.Measures = append(f.Measures, pipeline.Value{V: v.V, Null: v.Null})
			}
			out[f.Key()] = f
		}
	}
	return out
}

const simAggregations = `
aggregations:
  - name: zones_15m
    window: 15m
    group_by: [PULocationID]
    measures: {n: count, revenue: sum(total_amount), longest: max(trip_distance), smallest_tip: min(tip_amount)}
  - name: pairs_hourly
    window: 1h
    group_by: [PULocationID, VendorID]
    measures: {n: count}
    shards: 3
  - name: all_hourly
    window: 1h
    allowed_lateness: 0s
    measures: {n: count, tips: sum(tip_amount)}
  - name: zone_sessions
    session_gap: 3m
    group_by: [VendorID]
    measures: {n: count, revenue: sum(total_amount)}
  - name: busy_sessions
    session_gap: 1m
    allowed_lateness: 20m
    group_by: [PULocationID]
    measures: {n: count}
`

func TestSimulatedStagesEqualModel(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	declared, err := aggregate.Parse([]byte(simAggregations))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		rule model.Rule
		w    generate.Config
	}{
		{"utc hourly", model.DefaultRule(), generate.Config{Rides: 5000, Partitions: 4, Hours: 8, OutOfOrder: 0.1, Late: 0.03,
			Malformed: 0.01, Lateness: 5 * time.Minute, IdlePartitions: 1, IdleAfter: 0.5, Heartbeats: true}},
		{"declared, new york dst", model.Rule{Size: time.Hour, Lateness: 5 * time.Minute, MaxFutureSkew: 24 * time.Hour, Location: ny,
			Aggregations: declared},
			generate.Config{Rides: 5000, Partitions: 5, Hours: 5, Start: time.Date(2024, 11, 3, 4, 0, 0, 0, time.UTC),
				OutOfOrder: 0.05, Late: 0.02, Malformed: 0.02, Lateness: 2 * time.Minute, IdlePartitions: 2, IdleAfter: 0.3, Heartbeats: true}},
		// A 72-hour backfill: partition 3 gets no rides at all (only the
		// closing heartbeat), partition 0 its first ride 43 hours after the
		// others' first; every window must still become final.
		{"backfill empty and late partitions", model.Rule{Size: time.Hour, Lateness: 5 * time.Minute, MaxFutureSkew: 24 * time.Hour,
			Aggregations: declared}, generate.Config{Rides: 5000, Partitions: 4, Hours: 72,
			OutOfOrder: 0.05, Late: 0.02, Malformed: 0.01, Lateness: 5 * time.Minute, IdlePartitions: 1, IdleAfter: 0,
			LateStartPartitions: 1, LateStartAfter: 0.6, Heartbeats: true}},
	}
	for _, c := range cases {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("%s seed %d", c.name, seed), func(t *testing.T) {
				w := c.w
				w.Seed = seed
				parts := make([][][]byte, w.Partitions)
				for m := range w.All {
					parts[m.Partition] = append(parts[m.Partition], m.Value)
				}
				spec := pipeline.DefaultSpec()
				spec.Window.Size, spec.Window.Lateness, spec.Window.MaxFutureSkew, spec.Window.Location = c.rule.Size, c.rule.Lateness, c.rule.MaxFutureSkew, c.rule.Location
				spec.Aggregations, spec.InputPartitions = c.rule.Aggregations, w.Partitions
				p := New(spec.Resolved())
				want := modelFinals(c.rule, parts)
				if len(want) == 0 {
					t.Fatal("workload produced no final rows")
				}
				got, stats := simulate(t, p, c.rule.Input, parts, rand.New(rand.NewPCG(seed, 99)))
				bad := 0
				for k, wf := range want {
					if g, ok := got[k]; !ok || fmt.Sprint(g) != fmt.Sprint(wf) {
						if bad++; bad <= 5 {
							t.Errorf("final %s: got %+v (present %v), model %+v", k, g, ok, wf)
						}
					}
				}
				for k := range got {
					if _, ok := want[k]; !ok {
						if bad++; bad <= 10 {
							t.Errorf("final %s is not in the model", k)
						}
					}
				}
				if bad > 0 || len(got) != len(want) {
					t.Fatalf("%d rows differ; %d final rows, model %d", bad, len(got), len(want))
				}
				perAgg := map[string]int{}
				for _, f := range want {
					perAgg[f.Aggregation]++
				}
				t.Logf("%v; lost %d writes, %d out of chain, %d clock repairs, %d watermark repairs, %d forget retries, %d re-emits",
					perAgg, stats.lost, stats.outOfChain, stats.clockRepairs, stats.repaired-stats.clockRepairs, stats.retries, stats.reemits)
				if stats.lost == 0 || stats.outOfChain == 0 || stats.clockRepairs == 0 || stats.repaired == stats.clockRepairs {
					t.Fatalf("the simulation tested no lost write, skip or repair: %+v", stats)
				}
			})
		}
	}
}

// TestClockStep: a batch received before is skipped; one that continues
// what was received is applied, records received before apart; one that
// follows records never received is completed from the input first.
func TestClockStep(t *testing.T) {
	st := pipeline.ClockState{Src: 0, LastOffset: 100, ST: 1730419200000, Valid: true}
	in := func(offsets ...int64) []pipeline.ClockIn {
		var r []pipeline.ClockIn
		for _, o := range offsets {
			r = append(r, pipeline.ClockIn{Offset: o, Heartbeat: true, EventMs: 1730419200000 + o})
		}
		return r
	}
	var asked [][2]int64
	repair := func(src int32, from, to int64) ([]pipeline.ClockIn, error) {
		asked = append(asked, [2]int64{from, to})
		var r []pipeline.ClockIn
		for o := from + 1; o <= to; o++ {
			if o%7 != 0 { // offsets divisible by 7 do not decode
				r = append(r, in(o)...)
			}
		}
		return r, nil
	}
	p := New(pipeline.DefaultSpec().Resolved())
	for _, c := range []struct {
		b      pipeline.ClockBatch
		effect int
		last   int64 // LastOffset after
		asked  [2]int64
	}{
		{pipeline.ClockBatch{Prev: 100, Items: in(101, 103)}, ClockApplied, 103, [2]int64{}},
		{pipeline.ClockBatch{Prev: 100, Items: in(104)}, ClockApplied, 104, [2]int64{}},
		{pipeline.ClockBatch{Prev: pipeline.NoPrev, Items: in(98, 100, 101, 102)}, ClockApplied, 102, [2]int64{}}, // re-batched after a restart
		{pipeline.ClockBatch{Prev: 99, Items: in(100)}, ClockSkipped, 100, [2]int64{}},                            // a duplicate
		{pipeline.ClockBatch{Prev: pipeline.NoPrev, Items: in(99, 100)}, ClockSkipped, 100, [2]int64{}},           // a duplicate
		{pipeline.ClockBatch{Prev: 110, Items: in(111, 112)}, ClockRepaired, 112, [2]int64{100, 110}},             // (100, 110] never arrived
	} {
		asked = nil
		next, effect, err := p.ClockStep(st, c.b, repair)
		if err != nil {
			t.Fatal(err)
		}
		if effect != c.effect || next.LastOffset != c.last {
			t.Errorf("last %d, batch %+v: effect %d received to %d, want %d to %d", st.LastOffset, c.b, effect, next.LastOffset, c.effect, c.last)
		}
		if c.asked != ([2]int64{}) && (len(asked) != 1 || asked[0] != c.asked) {
			t.Errorf("batch %+v: asked the input for %v, want %v", c.b, asked, c.asked)
		}
		if effect == ClockSkipped {
			continue
		}
		if next.From != st.LastOffset || next.Seq != st.Seq+1 {
			t.Errorf("batch %+v: from %d seq %d", c.b, next.From, next.Seq)
		}
	}
	failing := func(int32, int64, int64) ([]pipeline.ClockIn, error) { return nil, errors.New("offset out of range") }
	if _, _, err := p.ClockStep(st, pipeline.ClockBatch{Prev: 110, Items: in(111)}, failing); err == nil || !strings.Contains(err.Error(), "(100, 110] never arrived") {
		t.Errorf("a repair that cannot read the input: %v", err)
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
	base := modelFinals(rule, parts)
	rev := slices.Clone(parts)
	rev[0] = slices.Clone(parts[0])
	slices.Reverse(rev[0])
	changed := modelFinals(rule, rev)
	same := len(changed) == len(base)
	for k, v := range base {
		if fmt.Sprint(changed[k]) != fmt.Sprint(v) {
			same = false
		}
	}
	if same {
		t.Fatal("reordering within a partition did not change the finals; the model ignores order")
	}
}
