package model

import (
	"fmt"

	"github.com/ridestream/ridestream/internal/aggregate"
	"slices"
	"testing"
	"time"
)

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

// TestCalendarNewYork2025: the model's walk of the wall clock gives the
// boundaries computed by hand for the two 2025 New York DST days.
func TestCalendarNewYork2025(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		size     time.Duration
		from, to string
		want     []string
	}{
		{24 * time.Hour, "2025-03-09T05:00:00Z", "2025-03-10T04:00:00Z", []string{"2025-03-09T05:00:00Z", "2025-03-10T04:00:00Z"}},
		{2 * time.Hour, "2025-03-09T05:00:00Z", "2025-03-09T12:00:00Z",
			[]string{"2025-03-09T05:00:00Z", "2025-03-09T07:00:00Z", "2025-03-09T08:00:00Z", "2025-03-09T10:00:00Z", "2025-03-09T12:00:00Z"}},
		{24 * time.Hour, "2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z", []string{"2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z"}},
		{2 * time.Hour, "2025-11-02T04:00:00Z", "2025-11-02T11:00:00Z",
			[]string{"2025-11-02T04:00:00Z", "2025-11-02T07:00:00Z", "2025-11-02T09:00:00Z", "2025-11-02T11:00:00Z"}},
		{time.Hour, "2025-11-02T04:00:00Z", "2025-11-02T08:00:00Z",
			[]string{"2025-11-02T04:00:00Z", "2025-11-02T05:00:00Z", "2025-11-02T06:00:00Z", "2025-11-02T07:00:00Z", "2025-11-02T08:00:00Z"}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.size, " ", c.from), func(t *testing.T) {
			cal := NewCalendar(Rule{Size: c.size, Location: ny})
			var got []string
			x := ms(c.from)
			for x < ms(c.to) {
				s, e := cal.Window(x)
				got = append(got, time.UnixMilli(s).UTC().Format(time.RFC3339))
				x = e
			}
			_, last := cal.Window(ms(c.to) - 1)
			got = append(got, time.UnixMilli(last).UTC().Format(time.RFC3339))
			if !slices.Equal(got, c.want) {
				t.Fatalf("boundaries %v, want %v", got, c.want)
			}
		})
	}
}

func rideAt(at string) []byte {
	return []byte(fmt.Sprintf(`{"PULocationID":1,"total_amount":1,"tpep_pickup_datetime":%d}`, ms(at)))
}

func hbAt(at string) []byte { return []byte(fmt.Sprintf(`{"heartbeat":%d}`, ms(at))) }

// TestFinalsNeedEveryPartition: a window is final only when every partition's
// stream time has reached its end plus the lateness, however far back the
// window lies when the last partition's first record comes.
func TestFinalsNeedEveryPartition(t *testing.T) {
	rule := DefaultRule()
	parts := [][][]byte{
		{rideAt("2025-01-01T00:10:00Z"), hbAt("2025-01-03T23:00:00Z"), rideAt("2025-01-04T00:10:00Z"), hbAt("2025-01-05T00:00:00Z")},
		{},
	}
	res := Run(rule, parts)
	if f := Finals(rule, res)["hourly_revenue"]; len(f) != 0 {
		t.Fatalf("%d final rows while partition 1 has no record", len(f))
	}
	// Partition 1's first record, days later, closes every earlier window;
	// heartbeats are not subject to the future skew.
	parts[1] = [][]byte{hbAt("2025-01-09T00:00:00Z")}
	res = Run(rule, parts)
	f := Finals(rule, res)["hourly_revenue"]
	one := func(at string) int64 { return f[RowKey{ms(at), "1"}].Measures[0].V }
	if len(f) != 2 || one("2025-01-01T00:00:00Z") != 1 || one("2025-01-04T00:00:00Z") != 1 {
		t.Fatalf("finals %v", f)
	}
	// A ride far ahead, not followed by rides near it, is an outlier; a
	// heartbeat is not subject to the rule.
	parts[0] = append(parts[0], rideAt("2025-01-07T00:10:00Z"), rideAt("2025-01-05T00:10:00Z"), rideAt("2025-01-05T00:20:00Z"),
		rideAt("2025-01-05T00:30:00Z"), hbAt("2025-01-08T00:00:00Z"))
	res = Run(rule, parts)
	if len(res.Rejected) != 1 || res.StreamTime[0] != ms("2025-01-08T00:00:00Z") || res.Pending != 0 {
		t.Fatalf("rejected %v, stream time %v, pending %d", res.Rejected, time.UnixMilli(res.StreamTime[0]).UTC(), res.Pending)
	}
}

// TestSessionsByHand: sessions of one zone with a 5-minute gap, computed by
// hand; the last one is final only once every partition passed its last
// ride + gap + L.
func TestSessionsByHand(t *testing.T) {
	list, err := aggregate.Parse([]byte(`aggregations: [{name: s, session_gap: 5m, group_by: [PULocationID], measures: {n: count, tips: sum(total_amount)}}]`))
	if err != nil {
		t.Fatal(err)
	}
	rule := DefaultRule()
	rule.Aggregations = list
	parts := [][][]byte{{
		rideAt("2025-01-01T00:00:00Z"), rideAt("2025-01-01T00:04:59Z"), rideAt("2025-01-01T00:09:58Z"), // one session: gaps < 5m
		rideAt("2025-01-01T00:14:58Z"), // 5m after the last: a new one
		rideAt("2025-01-01T00:30:00Z"), hbAt("2025-01-01T00:39:59Z"),
	}}
	res := Run(rule, parts)
	f := Finals(rule, res)["s"]
	want := map[string]int64{"2025-01-01T00:00:00Z": 3, "2025-01-01T00:14:58Z": 1}
	if len(f) != len(want) {
		t.Fatalf("%d sessions final, want %d: %v", len(f), len(want), f)
	}
	for start, n := range want {
		if r, ok := f[RowKey{ms(start), "1"}]; !ok || r.Measures[0].V != n {
			t.Errorf("session at %s: %+v (present %v), want %d rides", start, r, ok, n)
		}
	}
	// 00:30 + 5m + 5m = 00:40: one more millisecond of stream time finals it.
	parts[0] = append(parts[0], hbAt("2025-01-01T00:40:00Z"))
	if f := Finals(rule, Run(rule, parts))["s"]; len(f) != 3 {
		t.Fatalf("%d sessions final after the heartbeat, want 3", len(f))
	}
}

func rideIn(at string, zone int, cents int64) []byte {
	return []byte(fmt.Sprintf(`{"PULocationID":%d,"total_amount":%d.%02d,"tpep_pickup_datetime":%d}`, zone, cents/100, cents%100, ms(at)))
}

// TestCorrectedByHand: the corrected rows of an hourly table, computed by
// hand: a late ride joins its final window's group, a late ride of a group
// the window did not have is a row of its own, and a late ride of a window
// with no final row is in none.
func TestCorrectedByHand(t *testing.T) {
	rule := DefaultRule()
	parts := [][][]byte{{
		rideIn("2025-01-01T00:10:00Z", 1, 1000),
		hbAt("2025-01-01T00:10:00Z"),           // the partition's first ride needs no more witnesses
		rideIn("2025-01-01T02:10:00Z", 1, 500), // stream time 02:10 closes 00:00 and 01:00 (end + 5m ≤ 02:10)
		rideIn("2025-01-01T00:20:00Z", 1, 250), // late for 00:00, zone 1
		rideIn("2025-01-01T00:30:00Z", 2, 125), // late for 00:00, zone 2: no final row of its own
		rideIn("2025-01-01T01:30:00Z", 1, 999), // late for 01:00, which has no final row
	}}
	res := Run(rule, parts)
	if len(res.Late) != 3 {
		t.Fatalf("%d late rides, want 3: %v", len(res.Late), res.Late)
	}
	c := Corrected(rule, res)["hourly_revenue"]
	start, end := ms("2025-01-01T00:00:00Z"), ms("2025-01-01T01:00:00Z")
	// Per row: trips, revenue (cents), late rides, late revenue.
	want := map[RowKey][4]int64{
		{start, "1"}: {2, 1250, 1, 250},
		{start, "2"}: {1, 125, 1, 125},
	}
	if len(c) != len(want) {
		t.Fatalf("%d corrected rows, want %d: %+v", len(c), len(want), c)
	}
	for k, w := range want {
		r, ok := c[k]
		if got := [4]int64{r.Measures[0].V, r.Measures[1].V, r.LateRides, r.LateSums[0].V}; !ok || got != w || r.End != end {
			t.Errorf("row %v: %+v (present %v), want trips, revenue, late, late revenue %v", k, r, ok, w)
		}
	}
}
