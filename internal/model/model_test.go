package model

import (
	"fmt"
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

// TestFinalsNeedEveryPartition: a window is final only when every partition's
// stream time has reached its end plus the lateness, however far back the
// window lies when the last partition's first record comes.
func TestFinalsNeedEveryPartition(t *testing.T) {
	rule := DefaultRule()
	ride := func(at string) []byte {
		return []byte(fmt.Sprintf(`{"PULocationID":1,"total_amount":1,"tpep_pickup_datetime":%d}`, ms(at)))
	}
	hb := func(at string) []byte { return []byte(fmt.Sprintf(`{"heartbeat":%d}`, ms(at))) }
	parts := [][][]byte{
		{ride("2025-01-01T00:10:00Z"), hb("2025-01-03T23:00:00Z"), ride("2025-01-04T00:10:00Z"), hb("2025-01-05T00:00:00Z")},
		{},
	}
	res := Run(rule, parts)
	if f := Finals(rule, parts, res); len(f) != 0 {
		t.Fatalf("%d final rows while partition 1 has no record", len(f))
	}
	// Partition 1's first record, days later, closes every earlier window;
	// heartbeats are not subject to the future skew.
	parts[1] = [][]byte{hb("2025-01-09T00:00:00Z")}
	res = Run(rule, parts)
	f := Finals(rule, parts, res)
	if len(f) != 2 || f[FinalKey{ms("2025-01-01T00:00:00Z"), 1}].Trips != 1 || f[FinalKey{ms("2025-01-04T00:00:00Z"), 1}].Trips != 1 {
		t.Fatalf("finals %v", f)
	}
	// A ride more than the skew ahead is rejected; a heartbeat is not.
	parts[0] = append(parts[0], ride("2025-01-06T00:10:00Z"), hb("2025-01-08T00:00:00Z"))
	res = Run(rule, parts)
	if len(res.Rejected) != 1 || res.StreamTime[0] != ms("2025-01-08T00:00:00Z") {
		t.Fatalf("rejected %v, stream time %v", res.Rejected, time.UnixMilli(res.StreamTime[0]).UTC())
	}
}
