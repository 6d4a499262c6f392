// Package model is the reference model of the whole contract: given each
// input partition's messages in offset order, it computes what PostgreSQL
// must hold (raw rides, rejected input, late rides). It uses only the pure
// decoder and window rule, no Kafka and no database, and the integration
// tests compare the real pipeline against it.
package model

import (
	"time"

	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/window"
)

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
	// StreamTime is each partition's final stream time (absent: none).
	StreamTime map[int32]int64
}

// Run applies the rule to partitions; partitions[p][o] is the value at
// offset o of partition p.
func Run(spec window.Spec, partitions [][][]byte) Result {
	res := Result{Rides: map[Key]RawRide{}, Rejected: map[Key]string{}, Late: map[Key]Late{}, StreamTime: map[int32]int64{}}
	for p, values := range partitions {
		var clock window.Clock
		for o, v := range values {
			k := Key{int32(p), int64(o)}
			rec, err := ride.Decode(v)
			if err != nil {
				res.Rejected[k] = err.Error()
				continue
			}
			d := spec.Observe(&clock, rec.EventMs)
			switch {
			case d.Verdict == window.TooFarAhead:
				res.Rejected[k] = "future skew"
			case rec.Kind == ride.KindHeartbeat:
				res.Heartbeats++
			default:
				late := d.Verdict == window.Late
				res.Rides[k] = RawRide{Ride: rec.Ride, WindowStart: d.WindowStart, Late: late}
				if late {
					res.Late[k] = Late{WindowStart: d.WindowStart, WindowEnd: d.WindowEnd, StreamTime: d.STBefore, LateByMs: d.LateByMs(spec)}
				}
			}
		}
		if clock.Valid {
			res.StreamTime[int32(p)] = clock.ST
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

// Finals computes the final rows: a window is final once it is closed for
// every partition (its start lies in [Start(first-L-horizon), Start(ST-L))
// of each partition's clock, see window.Spec.Closes), and its rows sum the
// on-time rides of every partition.
func Finals(spec window.Spec, horizon time.Duration, partitions [][][]byte, res Result) map[FinalKey]FinalRow {
	type span struct{ from, to int64 }
	closed := make([]span, len(partitions))
	for p, values := range partitions {
		var clock window.Clock
		first := true
		for _, v := range values {
			rec, err := ride.Decode(v)
			if err != nil {
				continue
			}
			before := clock
			if spec.Observe(&clock, rec.EventMs).Verdict == window.TooFarAhead {
				continue
			}
			from, to := spec.Closes(before, clock, horizon)
			if from == to {
				continue
			}
			if first {
				closed[p].from = from
				first = false
			}
			closed[p].to = to
		}
		if first {
			return map[FinalKey]FinalRow{} // a partition without records closes nothing
		}
	}
	isFinal := func(start int64) bool {
		for _, c := range closed {
			if start < c.from || start >= c.to {
				return false
			}
		}
		return true
	}
	out := map[FinalKey]FinalRow{}
	for _, r := range res.Rides {
		if r.Late || !isFinal(r.WindowStart) {
			continue
		}
		k := FinalKey{r.WindowStart, r.Ride.PULocationID}
		f := out[k]
		f.WindowStart, f.WindowEnd, f.Zone = r.WindowStart, spec.End(r.WindowStart), r.Ride.PULocationID
		f.Trips++
		f.Cents += r.Ride.TotalCents
		if r.Ride.Has&ride.HasDistance != 0 {
			f.DistCenti += r.Ride.DistanceCenti
		}
		if r.Ride.Has&ride.HasTip != 0 {
			f.TipCents += r.Ride.TipCents
		}
		if r.Ride.Has&ride.HasPassengers != 0 {
			f.Passengers += int64(r.Ride.PassengerCount)
		}
		out[k] = f
	}
	return out
}
