// Package model is the reference model of the contract (docs/contract.md):
// given each input partition's messages in offset order, it computes what
// PostgreSQL must hold: raw rides, rejected input, late rides and the final
// windows.
//
// It is written from the contract's definitions alone and shares no code with
// what it checks: not the window rule of internal/window, not the processors,
// not the sink. The only code it shares is the message decoder
// (internal/ride), because what a message says is an input to the rule, not
// the rule. Where brute force is simplest it uses brute force: window
// boundaries are found by walking the local wall clock, and a window is final
// when every partition's stream time over its whole log has reached the
// window's end plus the allowed lateness.
package model

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ridestream/ridestream/internal/ride"
)

// Rule is the window rule's settings, as the contract names them.
type Rule struct {
	// Size of the tumbling windows (--window).
	Size time.Duration
	// Lateness is the allowed lateness L (--allowed-lateness).
	Lateness time.Duration
	// MaxFutureSkew rejects a ride this far ahead of its partition's stream
	// time (--max-future-skew); heartbeats are exempt.
	MaxFutureSkew time.Duration
	// Location aligns windows to its wall clock (--time-zone); nil is UTC.
	Location *time.Location
	// Input is how messages are decoded (--event-time-field,
	// --input-time-zone): what a message says is an input to the rule.
	Input ride.Options
}

// DefaultRule is the contract's default: hourly UTC windows, 5m lateness,
// 24h future skew.
func DefaultRule() Rule {
	return Rule{Size: time.Hour, Lateness: 5 * time.Minute, MaxFutureSkew: 24 * time.Hour}
}

// Key is a record's identity: its input partition and offset.
type Key struct {
	Partition int32
	Offset    int64
}

// RawRide is one expected row of the rides table.
type RawRide struct {
	Ride        ride.Ride
	WindowStart int64
	Late        bool
}

// Late is one expected row of the late_rides table.
type Late struct {
	WindowStart, WindowEnd, StreamTime, LateByMs int64
}

// Result is what the contract says the tables hold.
type Result struct {
	Rides      map[Key]RawRide
	Rejected   map[Key]string
	Late       map[Key]Late
	Heartbeats int
	// StreamTime is each partition's stream time after its whole log
	// (absent: the partition has no valid record).
	StreamTime map[int32]int64
	// StreamTimes[p][o] is partition p's stream time after its record at
	// offset o (NoStreamTime before its first valid record).
	StreamTimes [][]int64
	// Calendar holds the windows of the rule, for Finals.
	Calendar *Calendar
}

// NoStreamTime is the stream time of a partition before its first valid record.
const NoStreamTime = math.MinInt64

// ClosingOffset returns the offset of the first record of partition p after
// which its stream time is at least at, or -1 when there is none.
func (r Result) ClosingOffset(p int32, at int64) int64 {
	sts := r.StreamTimes[p]
	o, _ := slices.BinarySearch(sts, at)
	if o == len(sts) {
		return -1
	}
	return int64(o)
}

// ClosedAt returns, per partition, the offset of the record at which the
// window starting at start closed on it (its stream time reached the
// window's end + L), or nil when some partition never closed it.
func (r Result) ClosedAt(rule Rule, start int64) []int64 {
	at := r.Calendar.End(start) + rule.Lateness.Milliseconds()
	out := make([]int64, len(r.StreamTimes))
	for p := range r.StreamTimes {
		if out[p] = r.ClosingOffset(int32(p), at); out[p] < 0 {
			return nil
		}
	}
	return out
}

// Run applies the rule to partitions; partitions[p][o] is the value at
// offset o of partition p.
func Run(rule Rule, partitions [][][]byte) Result {
	cal := NewCalendar(rule)
	res := Result{Rides: map[Key]RawRide{}, Rejected: map[Key]string{}, Late: map[Key]Late{},
		StreamTime: map[int32]int64{}, StreamTimes: make([][]int64, len(partitions)), Calendar: cal}
	lateness := rule.Lateness.Milliseconds()
	for p, values := range partitions {
		var st int64 // the partition's stream time ST(p)
		seen := false
		sts := make([]int64, len(values))
		res.StreamTimes[p] = sts
		for o, v := range values {
			sts[o] = NoStreamTime
			if seen {
				sts[o] = st
			}
			k := Key{int32(p), int64(o)}
			rec, err := rule.Input.Decode(v)
			if err != nil {
				res.Rejected[k] = err.Error()
				continue
			}
			t := rec.EventMs
			if rec.Kind == ride.KindHeartbeat {
				res.Heartbeats++
				if !seen || t > st {
					st, seen = t, true
				}
				sts[o] = st
				continue
			}
			if seen && t-st > rule.MaxFutureSkew.Milliseconds() {
				res.Rejected[k] = "future skew"
				continue
			}
			start, end := cal.Window(t)
			late := seen && st >= end+lateness
			res.Rides[k] = RawRide{Ride: rec.Ride, WindowStart: start, Late: late}
			if late {
				res.Late[k] = Late{WindowStart: start, WindowEnd: end, StreamTime: st, LateByMs: st - (end + lateness)}
			}
			if !seen || t > st {
				st, seen = t, true
			}
			sts[o] = st
		}
		if seen {
			res.StreamTime[int32(p)] = st
		}
	}
	return res
}

// FinalRow is one expected row of hourly_revenue.
type FinalRow struct {
	WindowStart, WindowEnd                        int64
	Zone                                          int32
	Trips, Cents, DistCenti, TipCents, Passengers int64
}

// FinalKey identifies a final row.
type FinalKey struct {
	WindowStart int64
	Zone        int32
}

// Finals computes the final rows: a window [s, e) is final when every input
// partition's stream time, after its whole log, is at least e + L (a
// partition without valid records closes nothing), and its rows sum the
// on-time rides of every partition.
func Finals(rule Rule, partitions [][][]byte, res Result) map[FinalKey]FinalRow {
	out := map[FinalKey]FinalRow{}
	if len(partitions) == 0 {
		return out
	}
	var closedTo int64 // every partition's stream time is at least this
	for p := range partitions {
		st, ok := res.StreamTime[int32(p)]
		if !ok {
			return out
		}
		if p == 0 || st < closedTo {
			closedTo = st
		}
	}
	lateness := rule.Lateness.Milliseconds()
	for _, r := range res.Rides {
		if r.Late {
			continue
		}
		end := res.Calendar.End(r.WindowStart)
		if end+lateness > closedTo {
			continue
		}
		zone := int32(r.Ride.Vals[ride.PULocationID])
		k := FinalKey{r.WindowStart, zone}
		f := out[k]
		f.WindowStart, f.WindowEnd, f.Zone = r.WindowStart, end, zone
		f.Trips++
		f.Cents += r.Ride.Vals[ride.TotalAmount]
		f.DistCenti += r.Ride.Vals[ride.TripDistance]
		f.TipCents += r.Ride.Vals[ride.TipAmount]
		f.Passengers += r.Ride.Vals[ride.PassengerCount]
		out[k] = f
	}
	return out
}

const dayMs = 86_400_000

// Calendar finds window boundaries by walking the wall clock, a UTC day at a
// time, and remembers the days it walked.
//
// A boundary is an instant at which the wall clock (UTC without a Location)
// shows a multiple of the window size counted from local midnight (from the
// epoch in UTC), or the instant at which the clock jumps forward over such a
// wall time. The walk steps through instants by gcd(size, 1 minute) and reads
// the wall clock at each; it assumes (and checks) that the UTC offset changes
// only on a step.
type Calendar struct {
	rule Rule
	size int64
	step int64
	days map[int64][]int64 // UTC day number -> its boundaries, ascending
}

// NewCalendar returns the calendar of rule's windows.
func NewCalendar(rule Rule) *Calendar {
	size := rule.Size.Milliseconds()
	step := gcd(size, 60_000)
	return &Calendar{rule: rule, size: size, step: step, days: map[int64][]int64{}}
}

// wall is the wall-clock reading at instant u, as milliseconds of a clock
// that counts like UTC.
func (c *Calendar) wall(u int64) int64 {
	if c.rule.Location == nil {
		return u
	}
	_, off := time.UnixMilli(u).In(c.rule.Location).Zone()
	return u + int64(off)*1000
}

func (c *Calendar) day(d int64) []int64 {
	if b, ok := c.days[d]; ok {
		return b
	}
	b := []int64{}
	for u := d * dayMs; u < (d+1)*dayMs; u += c.step {
		w, prev := c.wall(u), c.wall(u-c.step)
		if w-prev != c.step && c.wall(u-1)-(u-1) != prev-(u-c.step) {
			// The offset changed strictly inside (u-step, u): the walk's
			// assumption does not hold for this zone.
			panic(fmt.Sprintf("model: UTC offset changes between steps before %s", time.UnixMilli(u).UTC()))
		}
		switch {
		case mod(w, c.size) == 0:
			b = append(b, u) // the wall clock shows a boundary (each time it shows it)
		case w-prev > c.step && prev+c.step+mod(-(prev+c.step), c.size) < w:
			b = append(b, u) // the clock jumped forward over a boundary
		}
	}
	c.days[d] = b
	return b
}

// Window returns the window [start, end) holding instant t: start is the
// latest boundary at or before t, end the first boundary after it.
func (c *Calendar) Window(t int64) (start, end int64) {
	d := floorDiv(t, dayMs)
	for back := int64(0); ; back++ {
		if back > c.size/dayMs+3 {
			panic(fmt.Sprintf("model: no window boundary before %s", time.UnixMilli(t).UTC()))
		}
		b := c.day(d - back)
		i, found := slices.BinarySearch(b, t)
		if found {
			start = b[i]
			break
		}
		if i > 0 {
			start = b[i-1]
			break
		}
	}
	return start, c.End(start)
}

// End returns the first boundary after start.
func (c *Calendar) End(start int64) int64 {
	d := floorDiv(start, dayMs)
	for ahead := int64(0); ahead <= c.size/dayMs+3; ahead++ {
		b := c.day(d + ahead)
		if i, found := slices.BinarySearch(b, start+1); found || i < len(b) {
			return b[i]
		}
	}
	panic(fmt.Sprintf("model: no window boundary after %s", time.UnixMilli(start).UTC()))
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
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
