// Package window holds the event-time rule of SPEC §3: window assignment,
// partition stream time, allowed lateness and future-skew rejection. It has no
// Kafka or database imports and takes every time as an argument, so it is the
// reference model that processors, the sink and the tests share.
//
// All times are epoch milliseconds in UTC.
package window

import (
	"fmt"
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

// Start returns the start of the window holding event time t.
func (s Spec) Start(t int64) int64 {
	size := s.Size.Milliseconds()
	if s.Location == nil || s.Location == time.UTC {
		return floorDiv(t, size) * size
	}
	off := s.offsetMs(t)
	local := t + off
	return floorDiv(local, size)*size - off
}

// End returns the end (exclusive) of the window that starts at start.
func (s Spec) End(start int64) int64 {
	size := s.Size.Milliseconds()
	if s.Location == nil || s.Location == time.UTC {
		return start + size
	}
	end := start + size
	offStart := s.offsetMs(start)
	if s.offsetMs(end) == offStart {
		return end
	}
	// The UTC offset changes inside the window (a DST day has 23 or 25 hourly
	// windows): find the first instant T with the new offset.
	lo, hi := start, end
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if s.offsetMs(mid) == offStart {
			lo = mid
		} else {
			hi = mid
		}
	}
	if s.Start(hi) != start {
		return hi // the wall clock jumped onto (or back to) a boundary
	}
	off := s.offsetMs(hi)
	return (floorDiv(hi+off, size)+1)*size - off
}

func (s Spec) offsetMs(t int64) int64 {
	_, off := time.UnixMilli(t).In(s.Location).Zone()
	return int64(off) * 1000
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Clock is one input partition's stream time ST(p): the largest event time
// of valid rides and heartbeats seen so far, in offset order.
type Clock struct {
	ST    int64
	Valid bool // false until the partition's first valid record
}

// Verdict is what the rule decides about one record.
type Verdict uint8

const (
	// OnTime: the ride counts in its window.
	OnTime Verdict = iota + 1
	// Late: the ride's window had already closed for its partition.
	Late
	// TooFarAhead: rejected as bad input (more than MaxFutureSkew ahead of ST).
	TooFarAhead
)

// Decision is the outcome of Observe for one record.
type Decision struct {
	Verdict     Verdict
	WindowStart int64
	WindowEnd   int64
	// STBefore is the partition's stream time before this record (meaningful
	// when Valid was true); a late ride is late by STBefore - (WindowEnd + L).
	STBefore      int64
	HadStreamTime bool
}

// LateByMs is how far past its window's close a late ride arrived.
func (d Decision) LateByMs(s Spec) int64 {
	return d.STBefore - (d.WindowEnd + s.Lateness.Milliseconds())
}

// Observe applies one valid record with event time t to the clock and decides
// it: a ride counts iff ST before it is < end + L; a record more than
// MaxFutureSkew ahead of ST is rejected and leaves the clock unchanged.
// Heartbeats use the same call and ignore the window fields.
func (s Spec) Observe(c *Clock, t int64) Decision {
	start := s.Start(t)
	d := Decision{WindowStart: start, WindowEnd: s.End(start), STBefore: c.ST, HadStreamTime: c.Valid}
	if c.Valid && t-c.ST > s.MaxFutureSkew.Milliseconds() {
		d.Verdict = TooFarAhead
		return d
	}
	if c.Valid && c.ST >= d.WindowEnd+s.Lateness.Milliseconds() {
		d.Verdict = Late
	} else {
		d.Verdict = OnTime
	}
	if !c.Valid || t > c.ST {
		c.ST = t
		c.Valid = true
	}
	return d
}

// Closes returns the starts [from, to) of the windows that close for a
// partition when its clock moves from before to after: a window closes once
// ST ≥ end + L, i.e. every window starting before Start(ST - L) is closed.
// A partition's first record would close every earlier window; only windows
// starting at or after Start(ST - L - horizon) are reported for it.
func (s Spec) Closes(before, after Clock, horizon time.Duration) (from, to int64) {
	if !after.Valid {
		return 0, 0
	}
	l := s.Lateness.Milliseconds()
	to = s.Start(after.ST - l)
	if before.Valid {
		from = s.Start(before.ST - l)
	} else {
		from = s.Start(after.ST - l - horizon.Milliseconds())
	}
	if from >= to {
		return 0, 0
	}
	return from, to
}
