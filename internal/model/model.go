// Package model is the reference model of the contract (docs/contract.md):
// given each input partition's messages in offset order, it computes what
// PostgreSQL must hold: raw rides, rejected input, late rides and the final
// rows of every aggregation.
//
// It is written from the contract's definitions alone and shares no code with
// what it checks: not the window rule of internal/window, not the
// aggregation's accumulators in internal/aggregate, not the processors, not
// the sink. What it shares is what describes the input: the message decoder
// (internal/ride) and the aggregations' declarations (the
// aggregate.Aggregation values: their names, fields and measures, not their
// methods). Where brute force is simplest it uses brute force: window
// boundaries are found by walking the local wall clock; a jump's witnesses
// are read ahead in the partition's log; a window is final when every
// partition's stream time over its whole log has reached the window's end
// plus the allowed lateness; sessions are the on-time rides of a group,
// sorted and cut wherever two consecutive ones are the gap apart or more.
package model

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/ride"
)

// Rule is the pipeline's settings, as the contract names them.
type Rule struct {
	// Size of the tumbling windows (--window) of the default aggregation.
	Size time.Duration
	// Lateness is the allowed lateness L (--allowed-lateness): the default
	// aggregation's, and that of every declared one without its own.
	Lateness time.Duration
	// MaxFutureSkew is the jump threshold of the stream-time rule
	// (--max-future-skew).
	MaxFutureSkew time.Duration
	// Location aligns tumbling windows to its wall clock (--time-zone); nil is UTC.
	Location *time.Location
	// Input is how messages are decoded (--event-time-field,
	// --input-time-zone): what a message says is an input to the rule.
	Input ride.Options
	// Aggregations are the declared aggregations (--aggregations); none:
	// the default, hourly_revenue over Size.
	Aggregations []aggregate.Aggregation
}

// DefaultRule is the contract's default: hourly UTC windows, 5m lateness,
// 24h future skew, the default aggregation.
func DefaultRule() Rule {
	return Rule{Size: time.Hour, Lateness: 5 * time.Minute, MaxFutureSkew: 24 * time.Hour}
}

// Aggs are the rule's aggregations, each with its lateness.
func (r Rule) Aggs() []aggregate.Aggregation {
	if len(r.Aggregations) == 0 {
		return []aggregate.Aggregation{aggregate.Default(r.Size, r.Lateness, 1)}
	}
	out := slices.Clone(r.Aggregations)
	for i := range out {
		if !out[i].OwnLateness {
			out[i].Lateness = r.Lateness
		}
	}
	return out
}

// Key is a record's identity: its input partition and offset.
type Key struct {
	Partition int32
	Offset    int64
}

// RawRide is one expected row of the rides table. WindowStart and Late are
// the first aggregation's: its window (a session aggregation's: the ride's
// event time) and whether the ride was late for it.
type RawRide struct {
	Ride        ride.Ride
	EventMs     int64
	WindowStart int64
	Late        bool
}

// LateKey is a late ride of one aggregation.
type LateKey struct {
	Aggregation string
	Key
}

// Late is one expected row of the late_rides table: the window the ride
// missed (tumbling; 0 for sessions), its event time, the stream time it met
// and by how much it was late.
type Late struct {
	WindowStart, WindowEnd, EventMs, StreamTime, LateByMs int64
}

// Result is what the contract says the tables hold.
type Result struct {
	Rides    map[Key]RawRide
	Rejected map[Key]string
	Late     map[LateKey]Late
	// Heartbeats applied, and records waiting for a jump's witnesses at the
	// end of the log (in no table yet).
	Heartbeats, Pending int
	// StreamTime is each partition's stream time after its whole log
	// (absent: the partition has no stream time).
	StreamTime map[int32]int64
	// StreamTimes[p][o] is partition p's stream time after its record at
	// offset o is decided (NoStreamTime before its first accepted record or
	// while o waits).
	StreamTimes [][]int64
	// onTime are, per aggregation, its on-time rides.
	onTime map[string][]onTimeRide
	aggs   []aggregate.Aggregation
	cals   map[string]*Calendar
}

type onTimeRide struct {
	key     Key
	eventMs int64
	ride    ride.Ride
}

// NoStreamTime is the stream time of a partition before its first valid record.
const NoStreamTime = math.MinInt64

// ClosingOffset returns the offset of the first record of partition p after
// which its stream time is at least at, or -1 when there is none.
func (r Result) ClosingOffset(p int32, at int64) int64 {
	for o, st := range r.StreamTimes[p] {
		if st != NoStreamTime && st >= at {
			return int64(o)
		}
	}
	return -1
}

// ClosedAt returns, per partition, the offset of the record at which the
// window starting at start of tumbling aggregation agg closed on it (its
// stream time reached the window's end + L), or nil when some partition
// never closed it.
func (r Result) ClosedAt(agg string, start int64) []int64 {
	i := slices.IndexFunc(r.aggs, func(a aggregate.Aggregation) bool { return a.Name == agg })
	if i < 0 || r.aggs[i].Kind != aggregate.Tumbling {
		return nil
	}
	at := r.cals[agg].End(start) + r.aggs[i].Lateness.Milliseconds()
	out := make([]int64, len(r.StreamTimes))
	for p := range r.StreamTimes {
		if out[p] = r.ClosingOffset(int32(p), at); out[p] < 0 {
			return nil
		}
	}
	return out
}

// Calendar is the calendar of a tumbling aggregation's windows.
func (r Result) Calendar(agg string) *Calendar { return r.cals[agg] }

// Run applies the rule to partitions; partitions[p][o] is the value at
// offset o of partition p.
func Run(rule Rule, partitions [][][]byte) Result {
	aggs := rule.Aggs()
	res := Result{Rides: map[Key]RawRide{}, Rejected: map[Key]string{}, Late: map[LateKey]Late{},
		StreamTime: map[int32]int64{}, StreamTimes: make([][]int64, len(partitions)),
		onTime: map[string][]onTimeRide{}, aggs: aggs, cals: map[string]*Calendar{}}
	for _, a := range aggs {
		if a.Kind == aggregate.Tumbling {
			res.cals[a.Name] = NewCalendar(Rule{Size: a.Size, Location: rule.Location})
		}
	}
	skew := rule.MaxFutureSkew.Milliseconds()
	for p, values := range partitions {
		type rec struct {
			o      int
			hb     bool
			t      int64
			r      ride.Ride
			failed error
		}
		recs := make([]rec, len(values))
		for o, v := range values {
			d, err := rule.Input.Decode(v)
			recs[o] = rec{o: o, hb: d.Kind == ride.KindHeartbeat, t: d.EventMs, r: d.Ride, failed: err}
		}
		sts := make([]int64, len(values))
		res.StreamTimes[p] = sts
		for o := range sts {
			sts[o] = NoStreamTime
		}
		var st int64 // the partition's stream time ST(p)
		seen := false
		for o := 0; o < len(recs); o++ {
			k := Key{int32(p), int64(o)}
			x := recs[o]
			if x.failed != nil {
				res.Rejected[k] = x.failed.Error()
				if seen {
					sts[o] = st
				}
				continue
			}
			if x.hb {
				res.Heartbeats++
				if !seen || x.t > st {
					st, seen = x.t, true
				}
				sts[o] = st
				continue
			}
			if !seen || x.t-st > skew {
				// A jump: each of the next five rides must be near it (the
				// partition's first ride: all but one), up to a heartbeat,
				// which ends the wait.
				tolerated := 0
				if !seen {
					tolerated = 1
				}
				rides, far, decided, accept := 0, 0, false, false
				for _, w := range recs[o+1:] {
					if w.failed != nil {
						continue
					}
					if w.hb {
						decided, accept = true, rides > 0 || w.t >= x.t-skew
						break
					}
					if abs(w.t-x.t) > skew {
						if far++; far > tolerated {
							decided = true
							break
						}
					}
					if rides++; rides == 5 {
						decided, accept = true, true
						break
					}
				}
				if !decided {
					res.Pending += len(recs) - o // it and every record after it wait
					break
				}
				if !accept {
					res.Rejected[k] = "outlier"
					if seen {
						sts[o] = st
					}
					continue
				}
			}
			res.accept(k, x.t, x.r, st, seen, rule)
			if !seen || x.t > st {
				st, seen = x.t, true
			}
			sts[o] = st
		}
		if seen {
			res.StreamTime[int32(p)] = st
		}
	}
	return res
}

// accept records an accepted ride at t that met stream time st (seen: the
// partition had one): in rides, and per aggregation on time or late.
func (res *Result) accept(k Key, t int64, r ride.Ride, st int64, seen bool, rule Rule) {
	for i, a := range res.aggs {
		var late bool
		var l Late
		switch a.Kind {
		case aggregate.Tumbling:
			start, end := res.cals[a.Name].Window(t)
			late = seen && st >= end+a.Lateness.Milliseconds()
			l = Late{WindowStart: start, WindowEnd: end, EventMs: t, StreamTime: st, LateByMs: st - (end + a.Lateness.Milliseconds())}
			if i == 0 {
				res.Rides[k] = RawRide{Ride: r, EventMs: t, WindowStart: start, Late: late}
			}
		case aggregate.Session:
			late = seen && st >= t+a.Lateness.Milliseconds()
			l = Late{EventMs: t, StreamTime: st, LateByMs: st - (t + a.Lateness.Milliseconds())}
			if i == 0 {
				res.Rides[k] = RawRide{Ride: r, EventMs: t, WindowStart: t, Late: late}
			}
		}
		if late {
			res.Late[LateKey{a.Name, k}] = l
		} else {
			res.onTime[a.Name] = append(res.onTime[a.Name], onTimeRide{key: k, eventMs: t, ride: r})
		}
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// Value is one column's value; Null when it has none.
type Value struct {
	V    int64
	Null bool
}

// Row is one expected final row of an aggregation: its window (a session's
// first and last event times), its group's values (in GroupBy order) and
// its measures (in Measures order; hundredths for money and miles).
type Row struct {
	Start, End int64
	Group      []Value
	Measures   []Value
}

// RowKey identifies a final row: its window's start and its group.
type RowKey struct {
	Start int64
	Group string
}

// GroupKey is the text of a group's values, for RowKey.
func GroupKey(g []Value) string {
	parts := make([]string, len(g))
	for i, v := range g {
		if v.Null {
			parts[i] = "NULL"
		} else {
			parts[i] = fmt.Sprint(v.V)
		}
	}
	return strings.Join(parts, ",")
}

// Finals computes every aggregation's final rows, by name. A tumbling
// window [s, e) is final when every input partition's stream time after its
// whole log is at least e + L (a partition without one closes nothing); a
// session [first, last] when it is at least last + gap + L. A final row
// sums the on-time rides of every partition.
func Finals(rule Rule, res Result) map[string]map[RowKey]Row {
	out := map[string]map[RowKey]Row{}
	for _, a := range res.aggs {
		rows := map[RowKey]Row{}
		res.finalGroups(a, func(start, end int64, g string, rides []onTimeRide) {
			rows[RowKey{start, g}] = rowOf(a, start, end, rides)
		})
		out[a.Name] = rows
	}
	return out
}

// OnTimeFinal counts aggregation agg's on-time rides, and those in final
// windows or sessions.
func (res Result) OnTimeFinal(rule Rule, agg string) (inFinal, onTime int64) {
	for _, a := range res.aggs {
		if a.Name == agg {
			res.finalGroups(a, func(_, _ int64, _ string, rides []onTimeRide) { inFinal += int64(len(rides)) })
		}
	}
	return inFinal, int64(len(res.onTime[agg]))
}

// finalGroups calls final with every final window or session of a and
// group, and its on-time rides.
func (res Result) finalGroups(a aggregate.Aggregation, final func(start, end int64, group string, rides []onTimeRide)) {
	closedTo, ok := int64(0), len(res.StreamTimes) > 0 // every partition's stream time is at least closedTo
	for p := range res.StreamTimes {
		st, has := res.StreamTime[int32(p)]
		if !has {
			return
		}
		if p == 0 || st < closedTo {
			closedTo = st
		}
	}
	if !ok {
		return
	}
	L := a.Lateness.Milliseconds()
	groups := map[string][]onTimeRide{}
	for _, r := range res.onTime[a.Name] {
		g := GroupKey(groupOf(a, &r.ride))
		groups[g] = append(groups[g], r)
	}
	for g, rides := range groups {
		switch a.Kind {
		case aggregate.Tumbling:
			byWindow := map[int64][]onTimeRide{}
			for _, r := range rides {
				s, _ := res.cals[a.Name].Window(r.eventMs)
				byWindow[s] = append(byWindow[s], r)
			}
			for s, in := range byWindow {
				if e := res.cals[a.Name].End(s); e+L <= closedTo {
					final(s, e, g, in)
				}
			}
		case aggregate.Session:
			sort.Slice(rides, func(i, j int) bool { return rides[i].eventMs < rides[j].eventMs })
			gap := a.Gap.Milliseconds()
			for lo := 0; lo < len(rides); {
				hi := lo + 1
				for hi < len(rides) && rides[hi].eventMs-rides[hi-1].eventMs < gap {
					hi++
				}
				if first, last := rides[lo].eventMs, rides[hi-1].eventMs; last+gap+L <= closedTo {
					final(first, last, g, rides[lo:hi])
				}
				lo = hi
			}
		}
	}
}

// groupOf is a ride's values of a's group-by fields.
func groupOf(a aggregate.Aggregation, r *ride.Ride) []Value {
	g := make([]Value, len(a.GroupBy))
	for i, f := range a.GroupBy {
		if r.Has&(1<<f) != 0 {
			g[i] = Value{V: r.Vals[f]}
		} else {
			g[i] = Value{Null: true}
		}
	}
	return g
}

// rowOf computes a's measures over rides, by the definitions: a count of
// rides; a sum of the values present (0 over none); the least or greatest
// value present (none: NULL).
func rowOf(a aggregate.Aggregation, start, end int64, rides []onTimeRide) Row {
	row := Row{Start: start, End: end, Group: groupOf(a, &rides[0].ride), Measures: make([]Value, len(a.Measures))}
	for i, m := range a.Measures {
		switch m.Fn {
		case aggregate.Count:
			row.Measures[i] = Value{V: int64(len(rides))}
		case aggregate.Sum:
			var sum int64
			for _, r := range rides {
				if r.ride.Has&(1<<m.Field) != 0 {
					sum += r.ride.Vals[m.Field]
				}
			}
			row.Measures[i] = Value{V: sum}
		case aggregate.Min, aggregate.Max:
			var vals []int64
			for _, r := range rides {
				if r.ride.Has&(1<<m.Field) != 0 {
					vals = append(vals, r.ride.Vals[m.Field])
				}
			}
			switch {
			case len(vals) == 0:
				row.Measures[i] = Value{Null: true}
			case m.Fn == aggregate.Min:
				row.Measures[i] = Value{V: slices.Min(vals)}
			default:
				row.Measures[i] = Value{V: slices.Max(vals)}
			}
		}
	}
	return row
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

// CorrectedRow is one expected row of an aggregation's corrected view: the
// final row's window (session) and group, with its measures over the
// on-time and the late rides, how many came late, and per sum measure
// (in Measures order, others absent) how much of it came late.
type CorrectedRow struct {
	Row
	LateRides int64
	LateSums  []Value
}

// Corrected computes every aggregation's corrected rows, by name (docs/
// contract.md, "Outputs"). Tumbling: each group of a final window (one with
// a final row in some group), with the late rides that missed that window
// in that group added; a group with late rides only is a row too. Sessions:
// each final session, with the late rides of its group whose event time is
// less than the gap from the session's first or last ride added (a late
// ride near two sessions goes to the earlier).
func Corrected(rule Rule, res Result) map[string]map[RowKey]CorrectedRow {
	out := map[string]map[RowKey]CorrectedRow{}
	late := map[string][]onTimeRide{} // per aggregation, its late rides
	for k, l := range res.Late {
		r := res.Rides[k.Key]
		late[k.Aggregation] = append(late[k.Aggregation], onTimeRide{key: k.Key, eventMs: l.EventMs, ride: r.Ride})
	}
	for _, a := range res.aggs {
		rows := map[RowKey]CorrectedRow{}
		out[a.Name] = rows
		onTime := map[RowKey][]onTimeRide{}
		ends := map[RowKey]int64{}
		res.finalGroups(a, func(start, end int64, g string, rides []onTimeRide) {
			onTime[RowKey{start, g}] = rides
			ends[RowKey{start, g}] = end
		})
		lateOf := map[RowKey][]onTimeRide{}
		switch a.Kind {
		case aggregate.Tumbling:
			final := map[int64]int64{} // final window start → end
			for k := range onTime {
				final[k.Start] = ends[k]
			}
			for _, l := range late[a.Name] {
				s, _ := res.cals[a.Name].Window(l.eventMs)
				if e, ok := final[s]; ok {
					k := RowKey{s, GroupKey(groupOf(a, &l.ride))}
					lateOf[k] = append(lateOf[k], l)
					ends[k] = e
				}
			}
		case aggregate.Session:
			gap := a.Gap.Milliseconds()
			for _, l := range late[a.Name] {
				g := GroupKey(groupOf(a, &l.ride))
				best := RowKey{Start: math.MaxInt64}
				for k := range onTime {
					if k.Group == g && l.eventMs > k.Start-gap && l.eventMs < ends[k]+gap && k.Start < best.Start {
						best = k
					}
				}
				if best.Start != math.MaxInt64 {
					lateOf[best] = append(lateOf[best], l)
				}
			}
		}
		keys := map[RowKey]bool{}
		for k := range onTime {
			keys[k] = true
		}
		for k := range lateOf {
			keys[k] = true
		}
		for k := range keys {
			all := append(slices.Clone(onTime[k]), lateOf[k]...)
			c := CorrectedRow{Row: rowOf(a, k.Start, ends[k], all), LateRides: int64(len(lateOf[k]))}
			if len(lateOf[k]) > 0 {
				lr := rowOf(a, k.Start, ends[k], lateOf[k])
				for i, m := range a.Measures {
					if m.Fn == aggregate.Sum {
						c.LateSums = append(c.LateSums, lr.Measures[i])
					}
				}
			} else {
				for _, m := range a.Measures {
					if m.Fn == aggregate.Sum {
						c.LateSums = append(c.LateSums, Value{})
					}
				}
			}
			rows[k] = c
		}
	}
	return out
}

// Status is one expected row of window_status: a tumbling window with
// on-time rides, final or not; for one that is not, the partitions whose
// stream time after their whole log is below its end + L (a partition with
// no stream time included), in order.
type Status struct {
	End         int64
	Rides, Late int64
	Final       bool
	Waiting     []int32
}

// WindowStatus computes, per tumbling aggregation, the status of every
// window with on-time rides after the whole log (docs/contract.md,
// "Outputs"), by window start. A window is final when every partition's
// stream time has reached its end + L.
func WindowStatus(rule Rule, res Result) map[string]map[int64]Status {
	out := map[string]map[int64]Status{}
	for _, a := range res.aggs {
		if a.Kind != aggregate.Tumbling {
			continue
		}
		cal, L := res.cals[a.Name], a.Lateness.Milliseconds()
		rows := map[int64]Status{}
		for _, r := range res.onTime[a.Name] {
			s, e := cal.Window(r.eventMs)
			st := rows[s]
			st.End = e
			st.Rides++
			rows[s] = st
		}
		for k, l := range res.Late {
			if k.Aggregation != a.Name {
				continue
			}
			if st, ok := rows[l.WindowStart]; ok {
				st.Late++
				rows[l.WindowStart] = st
			}
		}
		for s, st := range rows {
			for p := range res.StreamTimes {
				if t, ok := res.StreamTime[int32(p)]; !ok || t < st.End+L {
					st.Waiting = append(st.Waiting, int32(p))
				}
			}
			st.Final = len(st.Waiting) == 0
			rows[s] = st
		}
		out[a.Name] = rows
	}
	return out
}
