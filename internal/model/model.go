// Package model is the reference model of the whole contract: given each
// input partition's messages in offset order, it computes what PostgreSQL
// must hold (raw rides, rejected input, late rides). It uses only the pure
// decoder and window rule, no Kafka and no database, and the integration
// tests compare the real pipeline against it.
package model

import (
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
