package window

import (
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

func TestObserve(t *testing.T) {
	s := DefaultSpec() // 1h windows, L = 5m, skew 24h
	var c Clock
	steps := []struct {
		at   string
		want Verdict
	}{
		{"2024-11-01T02:10:00Z", OnTime},
		{"2024-11-01T03:04:59Z", OnTime},
		{"2024-11-01T02:59:00Z", OnTime}, // ST 03:04:59 < 03:00 + 5m
		{"2024-11-01T03:05:00Z", OnTime}, // closes [02:00,03:00)
		{"2024-11-01T02:59:59Z", Late},
		{"2024-11-02T03:05:01Z", TooFarAhead},
		{"2024-11-02T03:05:00Z", OnTime},
		{"2024-11-01T03:30:00Z", Late},
	}
	for i, st := range steps {
		d := s.Observe(&c, ms(st.at))
		if d.Verdict != st.want {
			t.Fatalf("step %d (%s): verdict %d, want %d", i, st.at, d.Verdict, st.want)
		}
	}
	if c.ST != ms("2024-11-02T03:05:00Z") {
		t.Fatalf("stream time %d", c.ST)
	}
	d := s.Observe(&c, ms("2024-11-01T02:00:00Z"))
	if d.Verdict != Late || d.LateByMs(s) != ms("2024-11-02T03:05:00Z")-ms("2024-11-01T03:05:00Z") {
		t.Fatalf("late by %d", d.LateByMs(s))
	}
}

func TestValidateNamesFlag(t *testing.T) {
	s := DefaultSpec()
	s.Lateness = -time.Second
	if err := s.Validate(); err == nil || err.Error()[:18] != "--allowed-lateness" {
		t.Fatalf("got %v", err)
	}
}
