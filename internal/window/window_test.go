package window

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ridestream/ridestream/internal/model"
)

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

// windowsOfDay walks one local day in minutes and returns its distinct windows.
func windowsOfDay(t *testing.T, s Spec, from, to int64) []int64 {
	t.Helper()
	var starts []int64
	for x := from; x < to; x += 60_000 {
		st := s.Start(x)
		if st > x || s.End(st) <= x {
			t.Fatalf("t=%s not inside [%s,%s)", time.UnixMilli(x).UTC(), time.UnixMilli(st).UTC(), time.UnixMilli(s.End(st)).UTC())
		}
		if len(starts) == 0 || starts[len(starts)-1] != st {
			if len(starts) > 0 && s.End(starts[len(starts)-1]) != st {
				t.Fatalf("gap or overlap before %s", time.UnixMilli(st).UTC())
			}
			starts = append(starts, st)
		}
	}
	return starts
}

func TestStartUTC(t *testing.T) {
	s := DefaultSpec()
	if got := s.Start(ms("2024-11-01T02:55:02Z")); got != ms("2024-11-01T02:00:00Z") {
		t.Fatalf("got %d", got)
	}
	if got := s.Start(ms("2024-11-01T03:00:00Z")); got != ms("2024-11-01T03:00:00Z") {
		t.Fatalf("boundary belongs to the next window, got %d", got)
	}
	if got := s.End(ms("2024-11-01T03:00:00Z")); got != ms("2024-11-01T04:00:00Z") {
		t.Fatalf("end %d", got)
	}
}

func TestTimeZones(t *testing.T) {
	cases := []struct {
		zone     string
		from, to string // one local day
		windows  int
		firstUTC string
	}{
		{"America/New_York", "2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z", 23, "2024-03-10T05:00:00Z"},
		{"America/New_York", "2024-11-03T04:00:00Z", "2024-11-04T05:00:00Z", 25, "2024-11-03T04:00:00Z"},
		{"America/New_York", "2024-07-01T04:00:00Z", "2024-07-02T04:00:00Z", 24, "2024-07-01T04:00:00Z"},
		{"Asia/Kolkata", "2024-07-01T18:30:00Z", "2024-07-02T18:30:00Z", 24, "2024-07-01T18:30:00Z"},
		{"Australia/Adelaide", "2024-04-06T13:30:00Z", "2024-04-07T14:30:00Z", 25, "2024-04-06T13:30:00Z"},
	}
	for _, c := range cases {
		t.Run(c.zone+" "+c.from, func(t *testing.T) {
			loc, err := time.LoadLocation(c.zone)
			if err != nil {
				t.Fatal(err)
			}
			s := DefaultSpec()
			s.Location = loc
			starts := windowsOfDay(t, s, ms(c.from), ms(c.to))
			if len(starts) != c.windows {
				t.Fatalf("got %d windows, want %d", len(starts), c.windows)
			}
			if starts[0] != ms(c.firstUTC) {
				t.Fatalf("first window %s", time.UnixMilli(starts[0]).UTC())
			}
		})
	}
}

// TestLateRule is the contract's worked example: hourly UTC windows, L =
// 5m, one partition.
func TestLateRule(t *testing.T) {
	s := DefaultSpec() // 1h windows, L = 5m, skew 24h
	st := s.Stream()
	var c Clock
	steps := []struct {
		at   string
		late bool
	}{
		{"2024-11-01T02:10:00Z", false},
		{"2024-11-01T03:04:59Z", false},
		{"2024-11-01T02:59:00Z", false}, // ST 03:04:59 < 03:00 + 5m
		{"2024-11-01T03:05:00Z", false}, // closes [02:00,03:00)
		{"2024-11-01T02:59:59Z", true},
		{"2024-11-01T03:30:00Z", false},
	}
	var got []bool
	for i, step := range steps {
		st.Feed(&c, Item{Offset: int64(i), T: ms(step.at)}, func(d Decision) {
			if d.Outcome != Accepted {
				t.Fatalf("step %d (%s): %v %s", i, step.at, d.Outcome, d.Why)
			}
			_, _, late := s.Late(d.T, d.STBefore, d.HadST)
			got = append(got, late)
		})
	}
	// (The first ride waits for the three after it: a partition's first
	// ride could be a wrong date.)
	for i, step := range steps {
		if got[i] != step.late {
			t.Errorf("step %d (%s): late %v, want %v", i, step.at, got[i], step.late)
		}
	}
	if c.ST != ms("2024-11-01T03:30:00Z") || !c.Valid {
		t.Fatalf("stream time %s", time.UnixMilli(c.ST).UTC())
	}
}

// TestStreamOutliers: one wrong date at the head of a partition, in its
// middle or after a quiet week, moves nothing and is rejected; a real jump
// is followed by rides near it and counts.
func TestStreamOutliers(t *testing.T) {
	day := 24 * time.Hour
	base := ms("2025-10-01T08:00:00Z")
	at := func(d time.Duration) int64 { return base + d.Milliseconds() }
	y2009, y2088 := ms("2009-01-01T00:00:00Z"), ms("2088-01-01T00:00:00Z")
	type rec struct {
		t  int64
		hb bool
	}
	minutes := func(from time.Duration, n int) []rec {
		var out []rec
		for i := range n {
			out = append(out, rec{t: at(from + time.Duration(i)*time.Minute)})
		}
		return out
	}
	cases := []struct {
		name     string
		recs     []rec
		outliers []int // offsets rejected
		st       int64 // stream time at the end
	}{
		{"2009 at the head", append([]rec{{t: y2009}}, minutes(0, 10)...), []int{0}, at(9 * time.Minute)},
		{"2088 at the head", append([]rec{{t: y2088}}, minutes(0, 10)...), []int{0}, at(9 * time.Minute)},
		{"2088 in the middle", append(append(minutes(0, 5), rec{t: y2088}), minutes(5*time.Minute, 5)...), []int{5}, at(9 * time.Minute)},
		{"two 2088s in the middle", append(append(minutes(0, 5), rec{t: y2088}, rec{t: y2088 + 1}), minutes(5*time.Minute, 5)...), []int{5, 6}, at(9 * time.Minute)},
		// A partition's first ride tolerates one far ride after it; the
		// 2009 ride is then late, not an outlier (it moves nothing).
		{"a legit head before a 2009", append([]rec{{t: at(0)}, {t: y2009}}, minutes(time.Minute, 6)...), nil, at(6 * time.Minute)},
		{"a burst of one wrong date among good rides", []rec{{t: at(0)}, {t: at(time.Minute)}, {t: at(2 * time.Minute)}, {t: at(3 * time.Minute)},
			{t: at(4 * time.Minute)}, {t: at(5 * time.Minute)}, {t: y2088}, {t: y2088}, {t: at(6 * time.Minute)}, {t: y2088}, {t: y2088},
			{t: y2088}, {t: at(7 * time.Minute)}}, []int{6, 7, 9, 10, 11}, at(7 * time.Minute)},
		{"a quiet week, then rides", append(minutes(0, 5), minutes(7*day, 5)...), nil, at(7*day + 4*time.Minute)},
		{"a quiet week, one wrong date", append(append(minutes(0, 5), rec{t: at(3 * day)}), minutes(7*day, 5)...), []int{5}, at(7*day + 4*time.Minute)},
		{"a heartbeat ends the wait", []rec{{t: at(0)}, {t: at(time.Minute)}, {t: at(2 * day), hb: true}}, nil, at(2 * day)},
		{"a heartbeat after a wrong ride", []rec{{t: at(0)}, {t: at(time.Minute)}, {t: at(2 * day)}, {t: at(3 * time.Minute), hb: true}}, []int{2}, at(3 * time.Minute)},
		{"a wrong ride after a legit head, then a heartbeat", []rec{{t: at(0)}, {t: at(2 * day)}, {t: at(3 * time.Minute), hb: true}}, []int{1}, at(3 * time.Minute)},
		{"a heartbeat far behind", append(minutes(0, 5), rec{t: y2088}, rec{t: at(time.Hour), hb: true}), []int{5}, at(time.Hour)},
		// Two rides and a heartbeat cannot tell which of the two is wrong: the
		// first ride's one far witness is tolerated.
		{"too few rides to tell", []rec{{t: y2009}, {t: at(0)}, {t: at(time.Minute), hb: true}}, nil, at(time.Minute)},
	}
	st := DefaultSpec().Stream()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var clock Clock
			var got []int
			decided := 0
			for o, r := range c.recs {
				st.Feed(&clock, Item{Offset: int64(o), Heartbeat: r.hb, T: r.t}, func(d Decision) {
					if d.Offset != int64(decided) {
						t.Fatalf("decided offset %d out of order (want %d)", d.Offset, decided)
					}
					decided++
					if d.Outcome == Outlier {
						got = append(got, int(d.Offset))
						if d.Why == "" {
							t.Errorf("outlier %d without a reason", d.Offset)
						}
					}
				})
				if len(clock.Pending) > JumpWitnesses+1 {
					t.Fatalf("%d records pending", len(clock.Pending))
				}
			}
			// An end-of-input heartbeat decides whatever waits.
			st.Feed(&clock, Item{Offset: int64(len(c.recs)), Heartbeat: true, T: clock.ST}, func(d Decision) {
				if d.Outcome == Outlier {
					got = append(got, int(d.Offset))
				}
			})
			if !slices.Equal(got, c.outliers) {
				t.Errorf("outliers %v, want %v", got, c.outliers)
			}
			if clock.ST != c.st {
				t.Errorf("stream time %s, want %s", time.UnixMilli(clock.ST).UTC(), time.UnixMilli(c.st).UTC())
			}
		})
	}
}

func TestValidateNamesFlag(t *testing.T) {
	s := DefaultSpec()
	s.Lateness = -time.Second
	if err := s.Validate(); err == nil || err.Error()[:18] != "--allowed-lateness" {
		t.Fatalf("got %v", err)
	}
}

// transitions returns every instant in [from, to) at which loc's UTC offset
// or zone changes.
func transitions(loc *time.Location, from, to time.Time) []time.Time {
	var out []time.Time
	for t := from; t.Before(to); {
		_, end := t.In(loc).ZoneBounds()
		if !end.IsZero() && !end.After(t) {
			t = t.Add(24 * time.Hour) // ZoneBounds' error on a leap year's last day (see zone)
			continue
		}
		if end.IsZero() || !end.Before(to) {
			break
		}
		out = append(out, end)
		t = end
	}
	return out
}

// TestLastDaysOfLeapYears: the days on which time.ZoneBounds returns bounds
// that do not hold the instant (the last UTC day of a leap year, in the years
// a zone's file describes by its yearly rule) get the same windows as every
// other day: start ≤ t < end, contiguous, and the daily window is [local
// midnight, next local midnight). A wrong bound used to make End loop for
// ever, or end a window before it started.
func TestLastDaysOfLeapYears(t *testing.T) {
	zones := []string{"America/New_York", "Europe/London", "Australia/Lord_Howe", "America/St_Johns", "America/Santiago", "Asia/Kolkata"}
	sizes := []time.Duration{15 * time.Minute, time.Hour, 2 * time.Hour, 24 * time.Hour}
	check := func(s Spec, at int64) error {
		start := s.Start(at)
		end := s.End(start)
		switch {
		case !(start <= at && at < end):
			return fmt.Errorf("t=%s: window [%s, %s) does not hold it", utc(at), utc(start), utc(end))
		case s.Start(end) != end:
			return fmt.Errorf("window [%s, %s): the next one starts at %s", utc(start), utc(end), utc(s.Start(end)))
		case s.Start(end-1) != start:
			return fmt.Errorf("window [%s, %s): its last instant maps to %s", utc(start), utc(end), utc(s.Start(end-1)))
		}
		if s.Size == 24*time.Hour {
			lt := time.UnixMilli(at).In(s.Location)
			mid := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, s.Location)
			next := time.Date(lt.Year(), lt.Month(), lt.Day()+1, 0, 0, 0, 0, s.Location)
			if start != mid.UnixMilli() || end != next.UnixMilli() {
				return fmt.Errorf("t=%s: daily window [%s, %s), want [%s, %s)", utc(at), utc(start), utc(end), mid.UTC(), next.UTC())
			}
		}
		return nil
	}
	for _, zone := range zones {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range sizes {
			s := Spec{Size: size, Lateness: 5 * time.Minute, MaxFutureSkew: 24 * time.Hour, Location: loc}
			done := make(chan error, 1)
			go func() {
				for _, year := range []int{2000, 2008, 2012, 2016, 2020, 2024, 2028, 2040, 2096} {
					from := time.Date(year, 12, 29, 0, 0, 0, 0, time.UTC).UnixMilli()
					for at := from; at < from+4*86_400_000; at += 7 * 60_000 {
						if err := check(s, at); err != nil {
							done <- err
							return
						}
					}
				}
				done <- nil
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s %v: %v", zone, size, err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("%s %v: the rule did not answer within 30 s", zone, size)
			}
		}
	}
}

// TestWindowPropertiesNearTransitions checks, for several zones and sizes, at
// random instants within a few days of every DST transition of 2024–2026:
// start ≤ t < end; the next window starts exactly at the end; windows never
// overlap; and the daily window is [local midnight, next local midnight).
func TestWindowPropertiesNearTransitions(t *testing.T) {
	zones := []string{"America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "America/St_Johns", "UTC"}
	sizes := []time.Duration{15 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	rng := rand.New(rand.NewPCG(10, 10))
	for _, zone := range zones {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		from, to := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
		near := transitions(loc, from, to)
		if zone == "Asia/Kolkata" || zone == "UTC" {
			if len(near) != 0 {
				t.Fatalf("%s: %d transitions in 2024–2026, expected none", zone, len(near))
			}
			near = []time.Time{time.Date(2025, 3, 30, 1, 0, 0, 0, time.UTC), time.Date(2025, 11, 2, 6, 0, 0, 0, time.UTC)}
		} else if len(near) < 6 {
			t.Fatalf("%s: only %d transitions in 2024–2026", zone, len(near))
		}
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%s %v", zone, size), func(t *testing.T) {
				s := Spec{Size: size, Lateness: 5 * time.Minute, MaxFutureSkew: 24 * time.Hour, Location: loc}
				if zone == "UTC" {
					s.Location = nil
				}
				if err := s.Validate(); err != nil {
					t.Fatal(err)
				}
				for _, tr := range near {
					for range 400 {
						at := tr.UnixMilli() + rng.Int64N(4*86_400_000) - 2*86_400_000
						start := s.Start(at)
						end := s.End(start)
						if !(start <= at && at < end) {
							t.Fatalf("t=%s: window [%s, %s) does not hold it", utc(at), utc(start), utc(end))
						}
						if got := s.Start(end); got != end {
							t.Fatalf("window [%s, %s): the next window starts at %s, not at its end", utc(start), utc(end), utc(got))
						}
						if start > 0 && s.End(s.Start(start-1)) != start {
							t.Fatalf("window [%s, %s): the window before it ends at %s", utc(start), utc(end), utc(s.End(s.Start(start-1))))
						}
						// No boundary inside: every instant of the window maps to it.
						for _, probe := range []int64{start, start + (end-start)/3, start + (end-start)/2, end - 1} {
							if s.Start(probe) != start {
								t.Fatalf("t=%s inside [%s, %s) maps to window %s", utc(probe), utc(start), utc(end), utc(s.Start(probe)))
							}
						}
						if size == 24*time.Hour {
							lt := time.UnixMilli(at).In(loc)
							mid := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, loc)
							next := time.Date(lt.Year(), lt.Month(), lt.Day()+1, 0, 0, 0, 0, loc)
							if start != mid.UnixMilli() || end != next.UnixMilli() {
								t.Fatalf("t=%s (%s local): daily window [%s, %s), want [%s, %s)", utc(at), lt, utc(start), utc(end), mid.UTC(), next.UTC())
							}
						}
					}
				}
			})
		}
	}
}

func utc(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05Z") }

// TestNewYork2025TransitionDays: the boundaries of the two 2025 New York DST
// days, computed by hand from the rule.
func TestNewYork2025TransitionDays(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		size     time.Duration
		from, to string
		want     []string // window starts in [from, to), then the last window's end
	}{
		// 9 March: 02:00 EST does not exist; clocks jump to 03:00 EDT at 07:00Z.
		{"spring daily", 24 * time.Hour, "2025-03-09T05:00:00Z", "2025-03-10T04:00:00Z",
			[]string{"2025-03-09T05:00:00Z", "2025-03-10T04:00:00Z"}},
		{"spring 2h", 2 * time.Hour, "2025-03-09T05:00:00Z", "2025-03-09T12:00:00Z",
			[]string{"2025-03-09T05:00:00Z", "2025-03-09T07:00:00Z", "2025-03-09T08:00:00Z", "2025-03-09T10:00:00Z", "2025-03-09T12:00:00Z"}},
		{"spring 3h", 3 * time.Hour, "2025-03-09T05:00:00Z", "2025-03-09T13:00:00Z",
			[]string{"2025-03-09T05:00:00Z", "2025-03-09T07:00:00Z", "2025-03-09T10:00:00Z", "2025-03-09T13:00:00Z"}},
		{"spring hourly", time.Hour, "2025-03-09T05:00:00Z", "2025-03-09T09:00:00Z",
			[]string{"2025-03-09T05:00:00Z", "2025-03-09T06:00:00Z", "2025-03-09T07:00:00Z", "2025-03-09T08:00:00Z", "2025-03-09T09:00:00Z"}},
		// 2 November: 01:00–02:00 is shown twice; clocks go back at 06:00Z.
		{"fall daily", 24 * time.Hour, "2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z",
			[]string{"2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z"}},
		{"fall 2h", 2 * time.Hour, "2025-11-02T04:00:00Z", "2025-11-02T11:00:00Z",
			[]string{"2025-11-02T04:00:00Z", "2025-11-02T07:00:00Z", "2025-11-02T09:00:00Z", "2025-11-02T11:00:00Z"}},
		{"fall hourly", time.Hour, "2025-11-02T04:00:00Z", "2025-11-02T08:00:00Z",
			[]string{"2025-11-02T04:00:00Z", "2025-11-02T05:00:00Z", "2025-11-02T06:00:00Z", "2025-11-02T07:00:00Z", "2025-11-02T08:00:00Z"}},
		{"fall 6h", 6 * time.Hour, "2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z",
			[]string{"2025-11-02T04:00:00Z", "2025-11-02T11:00:00Z", "2025-11-02T17:00:00Z", "2025-11-02T23:00:00Z", "2025-11-03T05:00:00Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Spec{Size: c.size, Lateness: 5 * time.Minute, MaxFutureSkew: 24 * time.Hour, Location: ny}
			var got []string
			for x := ms(c.from); x < ms(c.to); x = s.End(s.Start(x)) {
				got = append(got, utc(s.Start(x)))
				if len(got) > 100 {
					t.Fatal("no progress")
				}
			}
			got = append(got, utc(s.End(s.Start(ms(c.to)-1))))
			if !slices.Equal(got, c.want) {
				t.Fatalf("boundaries %v, want %v", got, c.want)
			}
		})
	}
}

// TestLordHoweHalfHourShift: on 6 April 2025 Lord Howe's clocks go back from
// 02:00 (+11) to 01:30 (+10:30) at 15:00Z; hourly windows then hold 90
// minutes, and half-hour windows see 01:30 twice.
func TestLordHoweHalfHourShift(t *testing.T) {
	lh, err := time.LoadLocation("Australia/Lord_Howe")
	if err != nil {
		t.Fatal(err)
	}
	s := Spec{Size: time.Hour, MaxFutureSkew: time.Hour, Location: lh}
	if st, end := s.Start(ms("2025-04-05T15:10:00Z")), s.End(s.Start(ms("2025-04-05T15:10:00Z"))); st != ms("2025-04-05T14:00:00Z") || end != ms("2025-04-05T15:30:00Z") {
		t.Fatalf("hourly window [%s, %s), want [14:00Z, 15:30Z)", utc(st), utc(end))
	}
	s.Size = 30 * time.Minute
	for _, c := range []struct{ at, start, end string }{
		{"2025-04-05T14:40:00Z", "2025-04-05T14:30:00Z", "2025-04-05T15:00:00Z"},
		{"2025-04-05T15:10:00Z", "2025-04-05T15:00:00Z", "2025-04-05T15:30:00Z"},
	} {
		if st, end := s.Start(ms(c.at)), s.End(s.Start(ms(c.at))); st != ms(c.start) || end != ms(c.end) {
			t.Fatalf("t=%s: window [%s, %s), want [%s, %s)", c.at, utc(st), utc(end), c.start, c.end)
		}
	}
}

// TestRuleEqualsModel compares Start and End with the reference model's
// calendar, which finds boundaries by walking the wall clock and shares no
// code with this package, at random instants near every 2024–2026
// transition of several zones.
func TestRuleEqualsModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	for _, zone := range []string{"America/New_York", "Europe/London", "Australia/Lord_Howe", "America/St_Johns",
		"Asia/Kolkata", "America/Santiago", "Asia/Kathmandu", "Pacific/Chatham", "UTC"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		near := transitions(loc, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
		near = append(near, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))
		for _, size := range []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 8 * time.Hour, 24 * time.Hour} {
			s := Spec{Size: size, Location: loc}
			rule := model.Rule{Size: size, Location: loc}
			if zone == "UTC" {
				s.Location, rule.Location = nil, nil
			}
			cal := model.NewCalendar(rule)
			for _, tr := range near {
				for range 200 {
					at := tr.UnixMilli() + rng.Int64N(3*86_400_000) - 86_400_000
					ms, me := cal.Window(at)
					if st := s.Start(at); st != ms || s.End(st) != me {
						t.Fatalf("%s %v t=%s: rule [%s, %s), model [%s, %s)", zone, size, utc(at), utc(st), utc(s.End(st)), utc(ms), utc(me))
					}
				}
			}
		}
	}
}

// TestHeartbeats: heartbeats are control records, not subject to the jump
// rule (a heartbeat a month ahead moves the stream time at once), and one
// behind the stream time changes nothing; a ride as far ahead waits for
// the rides after it (docs/contract.md, "Stream time and outliers",
// "Heartbeats").
func TestHeartbeats(t *testing.T) {
	st := DefaultSpec().Stream()
	c := Clock{ST: ms("2025-01-01T00:30:00Z"), Valid: true}
	ahead := ms("2025-02-01T00:00:00Z")
	if n := st.Feed(&c, Item{Offset: 1, T: ahead}, func(Decision) {}); n != 0 || c.ST != ms("2025-01-01T00:30:00Z") {
		t.Fatalf("a ride a month ahead was decided at once (%d), stream time %s", n, time.UnixMilli(c.ST).UTC())
	}
	var got []Outcome
	st.Feed(&c, Item{Offset: 2, Heartbeat: true, T: ahead}, func(d Decision) { got = append(got, d.Outcome) })
	if !slices.Equal(got, []Outcome{Accepted, HeartbeatApplied}) || c.ST != ahead {
		t.Fatalf("a heartbeat a month ahead: %v, stream time %s", got, time.UnixMilli(c.ST).UTC())
	}
	st.Feed(&c, Item{Offset: 3, Heartbeat: true, T: ms("2025-01-02T00:00:00Z")}, func(Decision) {})
	if c.ST != ahead {
		t.Fatalf("a heartbeat behind the stream time moved it to %s", time.UnixMilli(c.ST).UTC())
	}
	// A partition's first record may be a heartbeat, however far from
	// anything: it sets the stream time.
	var first Clock
	st.Feed(&first, Item{Offset: 0, Heartbeat: true, T: ms("2025-06-01T00:00:00Z")}, func(Decision) {})
	if !first.Valid || first.ST != ms("2025-06-01T00:00:00Z") {
		t.Fatalf("a first record that is a heartbeat: %+v", first)
	}
}
