package aggregate

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ridestream/ridestream/internal/ride"
)

const homework = `
aggregations:
  - name: busiest_zones_5m
    window: 5m
    group_by: [PULocationID]
    measures:
      num_trips: count
      total_revenue: sum(total_amount)
  - name: zone_sessions
    session_gap: 5m
    group_by: [PULocationID]
    measures: {num_trips: count, longest_trip: max(trip_distance)}
    allowed_lateness: 10m
  - name: tips_hourly
    window: 1h
    group_by: []
    measures: {total_tips: sum(tip_amount), smallest_tip: min(tip_amount)}
`

func TestParseAndCanonical(t *testing.T) {
	list, err := Parse([]byte(homework))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].Kind != Tumbling || list[0].Size != 5*time.Minute || list[1].Kind != Session ||
		list[1].Gap != 5*time.Minute || !list[1].OwnLateness || list[1].Lateness != 10*time.Minute || len(list[2].GroupBy) != 0 {
		t.Fatalf("parsed %+v", list)
	}
	if m := list[1].Measures; len(m) != 2 || m[0].Column != "num_trips" || m[1].Fn != Max || m[1].Field != ride.TripDistance {
		t.Fatalf("measures in declared order: %+v", m)
	}
	text := Canonical(list)
	back, err := FromCanonical(text)
	if err != nil {
		t.Fatal(err)
	}
	if again := Canonical(back); again != text {
		t.Fatalf("canonical form does not read back:\n%s\n%s", text, again)
	}
	if Canonical([]Aggregation{Default(time.Hour, 5*time.Minute, 1)}) == text {
		t.Fatal("different lists, same canonical form")
	}
}

// Every error names the aggregation and the field at fault.
func TestParseErrorsNameTheField(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{`aggregations: [{name: a, window: 1h, group_by: [Zone], measures: {n: count}}]`, `aggregation "a": group_by: unknown field "Zone"`},
		{`aggregations: [{name: a, window: 1h, group_by: [trip_distance], measures: {n: count}}]`, `aggregation "a": group_by: trip_distance is not an integer field`},
		{`aggregations: [{name: a, window: 1h, measures: {n: sum(tips)}}]`, `aggregation "a": measures: n: unknown field "tips"`},
		{`aggregations: [{name: a, window: 1h, measures: {n: avg(tip_amount)}}]`, `aggregation "a": measures: n: "avg(tip_amount)" is not count`},
		{`aggregations: [{name: a, window: 1h, measures: {n: sum}}]`, `aggregation "a": measures: n: sum needs a field`},
		{`aggregations: [{name: a, window: 1h, measures: {n: count(tip_amount)}}]`, `count takes no field`},
		{`aggregations: [{name: a, window: 1h}]`, `aggregation "a": measures: missing`},
		{`aggregations: [{name: a, measures: {n: count}}]`, `aggregation "a": window: missing`},
		{`aggregations: [{name: a, window: 1h, session_gap: 5m, measures: {n: count}}]`, `not both`},
		{`aggregations: [{name: a, window: soon, measures: {n: count}}]`, `aggregation "a": window:`},
		{`aggregations: [{name: a, window: 10ms, measures: {n: count}}]`, `aggregation "a": window: 10ms`},
		{`aggregations: [{name: a, session_gap: -5m, measures: {n: count}}]`, `aggregation "a": session_gap`},
		{`aggregations: [{name: a, window: 1h, allowed_lateness: -1m, measures: {n: count}}]`, `aggregation "a": allowed_lateness`},
		{`aggregations: [{name: Hourly, window: 1h, measures: {n: count}}]`, `aggregation "Hourly": name`},
		{`aggregations: [{name: rides, window: 1h, measures: {n: count}}]`, `aggregation "rides": name: "rides" is taken`},
		{`aggregations: [{name: a, window: 1h, measures: {n: count}}, {name: a, window: 5m, measures: {n: count}}]`, `aggregation "a": name: declared twice`},
		{`aggregations: [{name: a, window: 1h, group_by: [PULocationID], measures: {pu_location_id: count}}]`, `measures: pu_location_id: the column is taken by group_by`},
		{`aggregations: [{name: a, window: 1h, measures: {window_start: count}}]`, `measures: window_start: the column is taken by the window`},
		{`aggregations: [{name: a, window: 1h, measures: {n: count}, colour: red}]`, `field colour not found`},
		{`aggregations: []`, `lists none`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\n  got %v\n  want an error containing %q", c.yaml, err, c.want)
		}
	}
}

func rideWith(vals map[ride.FieldID]int64) *ride.Ride {
	r := &ride.Ride{}
	for f, v := range vals {
		r.Vals[f] = v
		r.Has |= ride.Bit(f)
	}
	return r
}

func TestAccumulators(t *testing.T) {
	list, err := Parse([]byte(`aggregations: [{name: a, window: 1h, group_by: [PULocationID, DOLocationID],
  measures: {n: count, total: sum(total_amount), tips: sum(tip_amount), low: min(tip_amount), high: max(tip_amount)}}]`))
	if err != nil {
		t.Fatal(err)
	}
	a := list[0]
	rides := []*ride.Ride{
		rideWith(map[ride.FieldID]int64{ride.PULocationID: 7, ride.TotalAmount: 1000, ride.TipAmount: 200}),
		rideWith(map[ride.FieldID]int64{ride.PULocationID: 7, ride.TotalAmount: -500}),
		rideWith(map[ride.FieldID]int64{ride.PULocationID: 7, ride.TotalAmount: 300, ride.TipAmount: -50}),
	}
	whole := a.NewAcc()
	for _, r := range rides {
		a.Add(&whole, r)
	}
	// The same rides in two parts, merged, give the same measures.
	p1, p2 := a.NewAcc(), a.NewAcc()
	a.Add(&p1, rides[1])
	a.Add(&p2, rides[0])
	a.Add(&p2, rides[2])
	a.Merge(&p1, p2)
	for i := range a.Measures {
		v1, ok1 := a.Value(whole, i)
		v2, ok2 := a.Value(p1, i)
		if v1 != v2 || ok1 != ok2 {
			t.Errorf("measure %s: whole %d %v, merged %d %v", a.Measures[i].Column, v1, ok1, v2, ok2)
		}
	}
	want := []int64{3, 800, 150, -50, 200}
	for i, w := range want {
		if v, ok := a.Value(whole, i); v != w || !ok {
			t.Errorf("measure %s = %d (%v), want %d", a.Measures[i].Column, v, ok, w)
		}
	}
	empty := a.NewAcc()
	a.Add(&empty, rides[1])
	if _, ok := a.Value(empty, 3); ok {
		t.Error("min over no value has one")
	}
	if g := a.GroupOf(rides[0]); g.V[0] != 7 || g.Null != 2 {
		t.Errorf("group %+v: want PULocationID 7, DOLocationID NULL", g)
	}
}

// TestRunsAreSessions: runs merged in any order and any grouping equal a
// brute-force clustering of the event times by the gap.
func TestRunsAreSessions(t *testing.T) {
	a := Aggregation{Name: "s", Kind: Session, Gap: 5 * time.Minute, Measures: []Measure{{Column: "n", Fn: Count}}}
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		n := 1 + rng.IntN(60)
		times := make([]int64, n)
		for i := range times {
			times[i] = rng.Int64N(int64(2 * time.Hour / time.Millisecond))
		}
		// Brute force: sort, split where consecutive times are >= gap apart.
		sorted := slices.Clone(times)
		slices.Sort(sorted)
		var want [][3]int64 // first, last, count
		for _, x := range sorted {
			if k := len(want); k > 0 && x-want[k-1][1] < a.Gap.Milliseconds() {
				want[k-1][1], want[k-1][2] = x, want[k-1][2]+1
			} else {
				want = append(want, [3]int64{x, x, 1})
			}
		}
		// Runs: the rides in random chunks (as batches of partitions would
		// be), each chunk's runs merged into the whole in random order.
		var all []Run
		rng.Shuffle(len(times), func(i, j int) { times[i], times[j] = times[j], times[i] })
		for lo := 0; lo < n; {
			hi := min(n, lo+1+rng.IntN(8))
			var chunk []Run
			for _, x := range times[lo:hi] {
				chunk = a.AddToRuns(chunk, x, &ride.Ride{})
			}
			for _, r := range chunk {
				all = a.MergeRun(all, r)
			}
			lo = hi
		}
		if len(all) != len(want) {
			t.Fatalf("trial %d: %d runs, brute force %d sessions", trial, len(all), len(want))
		}
		for i, r := range all {
			if r.First != want[i][0] || r.Last != want[i][1] || r.Acc.Vals[0] != want[i][2] {
				t.Fatalf("trial %d: run %d = [%d,%d] %d, brute force %v", trial, i, r.First, r.Last, r.Acc.Vals[0], want[i])
			}
		}
	}
}
