// Package window holds the event-time rule of the contract (docs/contract.md):
// window assignment, partition stream time, allowed lateness and future-skew
// rejection. It has no Kafka or database imports and takes every time as an
// argument; the processors and the sink share it, and the tests check it
// against internal/model, which shares no code with it.
//
// All times are epoch milliseconds in UTC.
package window

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Spec is the window rule's configuration.
type Spec struct {
	// Size of the tumbling windows; must divide 24h when Location is not UTC.
	Size time.Duration
	// Lateness is the allowed lateness L.
	Lateness time.Duration
	// MaxFutureSkew rejects a record this far ahead of its partition's stream time.
	MaxFutureSkew time.Duration
	// Location aligns windows to its local wall clock; nil means UTC epoch alignment.
	Location *time.Location
}

// DefaultSpec is hourly UTC windows, 5m lateness, 24h future skew.
func DefaultSpec() Spec {
	return Spec{Size: time.Hour, Lateness: 5 * time.Minute, MaxFutureSkew: 24 * time.Hour}
}

// Validate reports a configuration error naming the offending flag.
func (s Spec) Validate() error {
	switch {
	case s.Size < time.Second:
		return fmt.Errorf("--window %v: must be at least 1s", s.Size)
	case s.Size%time.Millisecond != 0:
		return fmt.Errorf("--window %v: must be a whole number of milliseconds", s.Size)
	case s.Lateness < 0:
		return fmt.Errorf("--allowed-lateness %v: must not be negative", s.Lateness)
	case s.MaxFutureSkew <= 0:
		return fmt.Errorf("--max-future-skew %v: must be positive", s.MaxFutureSkew)
	case s.Location != nil && s.Location != time.UTC && (24*time.Hour)%s.Size != 0:
		return fmt.Errorf("--window %v: with --time-zone %s it must divide 24h", s.Size, s.Location)
	}
	return nil
}

// Start returns the start of the window holding event time t: the latest
// window boundary at or before t.
//
// In UTC the boundaries are the multiples of Size since the epoch. With a
// Location they are the instants at which the local wall clock shows local
// midnight + k × Size (Size divides 24h): a wall time shown twice (the
// repeated hour when clocks go back) is a boundary at each occurrence, and a
// wall time that is skipped (when clocks go forward) is a boundary at the
// instant the clock jumps over it. So windows are contiguous and never
// overlap; a daily window on a DST day is 23 or 25 hours long. See
// docs/contract.md, "Windows".
func (s Spec) Start(t int64) int64 {
	size := s.Size.Milliseconds()
	if s.utc() {
		return floorDiv(t, size) * size
	}
	for {
		off, zoneStart, _ := s.zone(t)
		// The latest instant at or before t whose wall time is a multiple of
		// the size, if the offset did not change in between.
		c := floorDiv(t+off, size)*size - off
		if zoneStart == noBound || c >= zoneStart {
			return c
		}
		// No wall-clock boundary in [zoneStart, t]. The jump at zoneStart is
		// a boundary itself when the clock skipped a multiple of the size.
		if s.skipsBoundary(zoneStart) {
			return zoneStart
		}
		t = zoneStart - 1
	}
}

// End returns the end (exclusive) of the window that starts at start: the
// first window boundary after it.
func (s Spec) End(start int64) int64 {
	size := s.Size.Milliseconds()
	if s.utc() {
		return start + size
	}
	u := start
	for {
		off, _, zoneEnd := s.zone(u)
		c := (floorDiv(u+off, size)+1)*size - off
		if zoneEnd == noBound || c < zoneEnd {
			return c
		}
		// The offset changes at zoneEnd before the next multiple: zoneEnd is
		// a boundary when its new wall time is a multiple, or when the jump
		// skips one.
		offAfter, _, _ := s.zone(zoneEnd)
		if mod(zoneEnd+offAfter, size) == 0 || s.skipsBoundary(zoneEnd) {
			return zoneEnd
		}
		u = zoneEnd
	}
}

func (s Spec) utc() bool { return s.Location == nil || s.Location == time.UTC }

// noBound marks a zone that starts at the beginning of time or never ends.
const noBound = math.MinInt64

// zone returns the UTC offset in effect at t (ms) and the instants at which
// that offset took effect and is next replaced (noBound when there is none).
func (s Spec) zone(t int64) (off, start, end int64) {
	lt := time.UnixMilli(t).In(s.Location)
	_, o := lt.Zone()
	zs, ze := lt.ZoneBounds()
	start, end = noBound, noBound
	if !zs.IsZero() {
		start = zs.UnixMilli()
	}
	if !ze.IsZero() {
		end = ze.UnixMilli()
	}
	// ZoneBounds can be wrong where the zone's file describes the years by
	// its yearly rule: for instants of the last UTC day of a leap year (from
	// 2040 with the system's files; with Go's embedded ones from 2000 in
	// London, 2008 in New York) it returns an end at or before t. Bounds
	// that do not hold t are searched for instead, once per offset span.
	if (start != noBound && start > t) || (end != noBound && end <= t) {
		if c, ok := searched.Load(s.Location); ok && c.(span).holds(t) {
			return int64(o) * 1000, c.(span).start, c.(span).end
		}
		start, end = s.offsetChange(t, -1), s.offsetChange(t, +1)
		searched.Store(s.Location, span{start, end})
	}
	return int64(o) * 1000, start, end
}

// searched keeps, per location, the last offset span found by search.
var searched sync.Map // *time.Location → span

// span is [start, end) with noBound for no bound.
type span struct{ start, end int64 }

func (sp span) holds(t int64) bool {
	return (sp.start == noBound || sp.start <= t) && (sp.end == noBound || t < sp.end)
}

// offsetChange returns the instant at which the UTC offset in effect at t
// took effect (dir −1) or is next replaced (dir +1), looking up to 400 days
// away (noBound beyond): a day at a time until the offset differs, then by
// bisection to the millisecond.
func (s Spec) offsetChange(t, dir int64) int64 {
	offset := func(ms int64) int {
		_, o := time.UnixMilli(ms).In(s.Location).Zone()
		return o
	}
	const day = 24 * 3600 * 1000
	o := offset(t)
	for near, i := t, 0; i < 400; near, i = near+dir*day, i+1 {
		far := near + dir*day
		if offset(far) == o {
			continue
		}
		in, out := near, far // offset o at in, another at out
		for out-in > 1 || in-out > 1 {
			if mid := in + (out-in)/2; offset(mid) == o {
				in = mid
			} else {
				out = mid
			}
		}
		if dir > 0 {
			return out // the first instant of the next offset
		}
		return in // the first instant of offset o
	}
	return noBound
}

// skipsBoundary reports whether the clock jumps forward at instant T over a
// wall time that is a multiple of the size: the wall times in
// [T + offset before, T + offset after) are never shown.
func (s Spec) skipsBoundary(T int64) bool {
	before, _, _ := s.zone(T - 1)
	after, _, _ := s.zone(T)
	if after <= before {
		return false
	}
	size := s.Size.Milliseconds()
	first := T + before + mod(-(T+before), size) // first multiple ≥ T+before
	return first < T+after
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Late reports whether a ride with event time t, meeting its partition's
// stream time st (hadST false: none yet), is late for its window [start,
// end): st ≥ end + L. It returns the window too.
func (s Spec) Late(t, st int64, hadST bool) (start, end int64, late bool) {
	start = s.Start(t)
	end = s.End(start)
	return start, end, hadST && st >= end+s.Lateness.Milliseconds()
}

// LateBy is how far past the close of the window ending at end a ride came
// that found its partition's stream time at st: st - (end + L).
func (s Spec) LateBy(end, st int64) int64 { return st - (end + s.Lateness.Milliseconds()) }

// Closed reports whether the window starting at start is closed for a
// partition whose stream time is st: it has reached the window's end + L.
func (s Spec) Closed(st int64, valid bool, start int64) bool {
	return valid && st >= s.End(start)+s.Lateness.Milliseconds()
}

// Advance applies a time that moves a partition's stream time (a heartbeat,
// an accepted ride): ST becomes max(ST, t).
func (c *Clock) Advance(t int64) {
	if !c.Valid || t > c.ST {
		c.ST = t
		c.Valid = true
	}
}

func fmtMs(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

func fmtDur(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }

// Stream is the pipeline's stream-time rule with s's --max-future-skew.
func (s Spec) Stream() Stream { return Stream{MaxSkew: s.MaxFutureSkew.Milliseconds()} }
