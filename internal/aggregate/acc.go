package aggregate

import (
	"cmp"
	"slices"

	"github.com/ridestream/ridestream/internal/ride"
)

// MaxGroupBy bounds how many fields a group-by may have.
const MaxGroupBy = 8

// Group is the values of an aggregation's group-by fields for one ride, in
// GroupBy order; a bit of Null is set for a field the ride lacks (its
// group's column is NULL). It is comparable: a map key.
type Group struct {
	V    [MaxGroupBy]int64
	Null uint8
}

// GroupOf is the group of ride r.
func (a Aggregation) GroupOf(r *ride.Ride) Group {
	var g Group
	for i, f := range a.GroupBy {
		v, ok := r.Get(f)
		if ok {
			g.V[i] = v
		} else {
			g.Null |= 1 << i
		}
	}
	return g
}

// CompareGroups orders groups: by value, NULL first, field by field.
func CompareGroups(x, y Group) int {
	for i := range MaxGroupBy {
		xn, yn := x.Null&(1<<i) != 0, y.Null&(1<<i) != 0
		switch {
		case xn && !yn:
			return -1
		case !xn && yn:
			return 1
		}
		if c := cmp.Compare(x.V[i], y.V[i]); c != 0 {
			return c
		}
	}
	return 0
}

// Acc is one group's running measures: per measure its value (Count: the
// rides; Sum: the sum; Min, Max: the extreme so far), and for Min and Max
// whether any ride had the field (bit i of Has for measure i).
type Acc struct {
	Vals []int64
	Has  uint64
}

// NewAcc is an empty accumulator for a's measures.
func (a Aggregation) NewAcc() Acc { return Acc{Vals: make([]int64, len(a.Measures))} }

// Add counts ride r in acc.
func (a Aggregation) Add(acc *Acc, r *ride.Ride) {
	for i, m := range a.Measures {
		if m.Fn == Count {
			acc.Vals[i]++
			continue
		}
		v, ok := r.Get(m.Field)
		if !ok {
			continue
		}
		a.fold(acc, i, m.Fn, v)
	}
}

// fold applies value v of measure i (not a Count) to acc.
func (a Aggregation) fold(acc *Acc, i int, fn Fn, v int64) {
	bit := uint64(1) << i
	switch fn {
	case Sum:
		acc.Vals[i] += v
	case Min:
		if acc.Has&bit == 0 || v < acc.Vals[i] {
			acc.Vals[i] = v
		}
	case Max:
		if acc.Has&bit == 0 || v > acc.Vals[i] {
			acc.Vals[i] = v
		}
	}
	acc.Has |= bit
}

// Merge adds what src counted to dst.
func (a Aggregation) Merge(dst *Acc, src Acc) {
	for i, m := range a.Measures {
		switch {
		case m.Fn == Count || m.Fn == Sum:
			dst.Vals[i] += src.Vals[i]
			dst.Has |= src.Has & (1 << i)
		case src.Has&(1<<i) != 0:
			a.fold(dst, i, m.Fn, src.Vals[i])
		}
	}
}

// Value is measure i's value and whether it has one: a Count or a Sum
// always does (0 over nothing), a Min or Max only when a ride had the field.
func (a Aggregation) Value(acc Acc, i int) (int64, bool) {
	switch a.Measures[i].Fn {
	case Count, Sum:
		return acc.Vals[i], true
	}
	return acc.Vals[i], acc.Has&(1<<i) != 0
}

// Clone is a copy of acc that shares nothing with it.
func (acc Acc) Clone() Acc { return Acc{Vals: slices.Clone(acc.Vals), Has: acc.Has} }

// Scale is how a measure's value is kept: in hundredths for money and miles
// (a count is plain).
func (m Measure) Scale() ride.FieldKind {
	if m.Fn == Count {
		return ride.Integer
	}
	return ride.Fields[m.Field].Kind
}

// Run is a stretch of on-time rides of one group in a session aggregation
// whose consecutive event times are less than the gap apart: they belong
// to one session whatever other rides come (First and Last are the first
// and last event times).
type Run struct {
	First, Last int64
	Acc         Acc
}

// AddToRuns adds a ride at event time t to runs (ascending by First,
// pairwise at least the gap apart), merging the runs it joins.
func (a Aggregation) AddToRuns(runs []Run, t int64, r *ride.Ride) []Run {
	one := Run{First: t, Last: t, Acc: a.NewAcc()}
	a.Add(&one.Acc, r)
	return a.MergeRun(runs, one)
}

// MergeRun adds run x to runs (ascending by First, pairwise at least the
// gap apart), merging every run it comes within the gap of: two event
// times less than the gap apart are in one session.
func (a Aggregation) MergeRun(runs []Run, x Run) []Run {
	lo, hi := Joined(runs, x.First, x.Last, a.Gap.Milliseconds(), func(r Run) (int64, int64) { return r.First, r.Last })
	if lo == hi {
		return slices.Insert(runs, lo, x)
	}
	m := Run{First: min(x.First, runs[lo].First), Last: max(x.Last, runs[hi-1].Last), Acc: x.Acc.Clone()}
	for _, r := range runs[lo:hi] {
		a.Merge(&m.Acc, r.Acc)
	}
	runs[lo] = m
	return slices.Delete(runs, lo+1, hi)
}

// Joined returns the spans of s (ascending, pairwise at least gap apart)
// that a span [first, last] joins, s[lo:hi]: those ending less than the
// gap before it starts and starting less than the gap after it ends. With
// lo == hi it joins none and belongs at lo.
func Joined[T any](s []T, first, last, gap int64, span func(T) (first, last int64)) (lo, hi int) {
	lo, _ = slices.BinarySearchFunc(s, first, func(x T, first int64) int {
		if _, l := span(x); l > first-gap { // x joins, or lies after
			return 1
		}
		return -1
	})
	hi = lo
	for hi < len(s) {
		if f, _ := span(s[hi]); f >= last+gap {
			break
		}
		hi++
	}
	return lo, hi
}
