// Package generate makes seeded synthetic ride workloads in the tutorial's
// JSON format and produces them (or a JSONL file) to Kafka.
//
// A workload is a pure function of its Config: the same seed gives the same
// messages on the same partitions, so tests can feed the exact input to the
// reference model.
package generate

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/ride"
)

// Config describes a workload.
type Config struct {
	Seed       uint64
	Rides      int
	Partitions int32
	// Start of event time; rides spread evenly over Hours event-hours.
	Start time.Time
	Hours int
	// OutOfOrder is the fraction of rides moved back in time by less than
	// Lateness (they stay on time).
	OutOfOrder float64
	// Late is the fraction of rides moved back by more than an hour plus
	// Lateness (late unless their partition is still behind).
	Late float64
	// Malformed adds round(Rides*Malformed) messages that must be rejected.
	Malformed float64
	// Lateness shapes the out-of-order shift.
	Lateness time.Duration
	// IdlePartitions of the highest-numbered partitions receive no rides
	// once IdleAfter (a fraction of the rides) have been generated; only the
	// closing heartbeats release their windows.
	IdlePartitions int32
	IdleAfter      float64
	// LateStartPartitions of the lowest-numbered partitions receive no
	// rides until LateStartAfter (a fraction of the rides) have been
	// generated: in a backfill their first record comes days after the
	// others' first.
	LateStartPartitions int32
	LateStartAfter      float64
	// Duplicates is the fraction of rides sent twice, the copy right after
	// the original (a producer retry without idempotence): two records, two
	// rides.
	Duplicates float64
	// Heartbeats appends one heartbeat per partition at the end, at
	// Start+Hours+Lateness+1h, so every window can close.
	Heartbeats bool
}

// MaxMessageBytes is what a topic (and a producer) must take for the
// workload's largest message: a malformed one just over ride.MaxMessageBytes.
const MaxMessageBytes = 2 << 20

// DefaultStart is the default first event time (2024-11-01T00:00:00Z).
var DefaultStart = time.Date(2024, 11, 1, 0, 0, 0, 0, time.UTC)

// Validate reports a configuration error naming the flag.
func (c Config) Validate() error {
	switch {
	case c.Rides < 0:
		return fmt.Errorf("--rides %d: must not be negative", c.Rides)
	case c.Partitions <= 0:
		return fmt.Errorf("--partitions %d: must be positive", c.Partitions)
	case c.Hours <= 0:
		return fmt.Errorf("--hours %d: must be positive", c.Hours)
	case c.OutOfOrder < 0 || c.OutOfOrder > 1:
		return fmt.Errorf("--out-of-order %v: must be within [0,1]", c.OutOfOrder)
	case c.Late < 0 || c.Late > 1:
		return fmt.Errorf("--late %v: must be within [0,1]", c.Late)
	case c.IdlePartitions < 0 || c.IdlePartitions >= c.Partitions:
		return fmt.Errorf("--idle-partitions %d: must be below --partitions", c.IdlePartitions)
	case c.LateStartPartitions < 0 || c.LateStartPartitions+c.IdlePartitions >= c.Partitions:
		return fmt.Errorf("--late-start-partitions %d: with --idle-partitions must leave a partition receiving rides", c.LateStartPartitions)
	case c.Duplicates < 0 || c.Duplicates > 1:
		return fmt.Errorf("--duplicates %v: must be within [0,1]", c.Duplicates)
	case c.Malformed < 0 || c.Malformed > 10:
		return fmt.Errorf("--malformed %v: must be within [0,10]", c.Malformed)
	}
	return nil
}

// Message is one generated record.
type Message struct {
	Partition int32
	Value     []byte
	// Kind is what the generator meant it to be (the reference model decides
	// what it is).
	Kind Kind
}

// Kind is the generator's intent for a message.
type Kind uint8

const (
	Ride Kind = iota + 1
	Malformed
	Heartbeat
)

// Count is the number of messages All yields.
func (c Config) Count() int {
	n := c.Rides + c.MalformedCount() + c.DuplicateCount()
	if c.Heartbeats {
		n += int(c.Partitions)
	}
	return n
}

// MalformedCount is how many malformed messages the workload holds.
func (c Config) MalformedCount() int { return int(float64(c.Rides)*c.Malformed + 0.5) }

// DuplicateCount is how many rides are sent twice: every dupEvery-th.
func (c Config) DuplicateCount() int {
	if e := c.dupEvery(); e > 0 {
		return c.Rides / e
	}
	return 0
}

func (c Config) dupEvery() int {
	if c.Duplicates <= 0 {
		return 0
	}
	return max(1, int(1/c.Duplicates+0.5))
}

// All yields the workload's messages in production order.
func (c Config) All(yield func(Message) bool) {
	rng := rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))
	start := c.Start
	if start.IsZero() {
		start = DefaultStart
	}
	span := time.Duration(c.Hours) * time.Hour
	malformed := c.MalformedCount()
	total := c.Rides + malformed
	// Malformed messages are spread evenly among the rides.
	every := 0
	if malformed > 0 {
		every = total / malformed
	}
	ridesDone, badDone := 0, 0
	buf := make([]byte, 0, 256)
	for i := 0; i < total; i++ {
		active, first := c.Partitions, int32(0)
		if c.IdlePartitions > 0 && float64(ridesDone) >= c.IdleAfter*float64(c.Rides) {
			active -= c.IdlePartitions
		}
		if c.LateStartPartitions > 0 && float64(ridesDone) < c.LateStartAfter*float64(c.Rides) {
			first = c.LateStartPartitions
		}
		p := first + int32(rng.IntN(int(active-first)))
		if badDone < malformed && (every <= 1 || i%every == every-1 || c.Rides-ridesDone == 0) {
			badDone++
			// Once every partition has rides, a ride far in the future is bad
			// input too (rejected by --max-future-skew, not by the decoder).
			warm := ridesDone > 100*int(c.Partitions)
			if !yield(Message{Partition: p, Value: malformedValue(rng, start, warm), Kind: Malformed}) {
				return
			}
			continue
		}
		// Event time advances with the ride count; jitter keeps it realistic.
		base := start.Add(time.Duration(float64(span) * float64(ridesDone) / float64(max(c.Rides, 1))))
		t := base.Add(time.Duration(rng.Int64N(int64(2 * time.Second))))
		switch x := rng.Float64(); {
		case x < c.Late:
			t = t.Add(-c.Lateness - time.Hour - time.Duration(rng.Int64N(int64(2*time.Hour))))
		case x < c.Late+c.OutOfOrder && c.Lateness > 0:
			t = t.Add(-time.Duration(rng.Int64N(int64(c.Lateness) * 8 / 10)))
		}
		if t.Before(start) {
			t = start
		}
		buf = appendRide(buf[:0], rng, t)
		ridesDone++
		if !yield(Message{Partition: p, Value: append([]byte(nil), buf...), Kind: Ride}) {
			return
		}
		if e := c.dupEvery(); e > 0 && ridesDone%e == 0 {
			if !yield(Message{Partition: p, Value: append([]byte(nil), buf...), Kind: Ride}) {
				return
			}
		}
	}
	if c.Heartbeats {
		hb := start.Add(span + c.Lateness + time.Hour).UnixMilli()
		for p := int32(0); p < c.Partitions; p++ {
			if !yield(Message{Partition: p, Value: pipeline.Heartbeat(hb), Kind: Heartbeat}) {
				return
			}
		}
	}
}

// appendRide writes one ride in the tutorial's format (plus a few TLC
// columns, the dropoff time among them, as real producers send).
func appendRide(b []byte, rng *rand.Rand, t time.Time) []byte {
	zone := 1 + rng.IntN(265)
	if rng.IntN(3) == 0 { // Manhattan-heavy like the real data
		zone = []int{132, 138, 161, 162, 186, 230, 236, 237}[rng.IntN(8)]
	}
	dist := 30 + rng.IntN(1500) // hundredths of a mile
	fare := 300 + dist*3 + rng.IntN(500)
	tip := rng.IntN(fare / 4)
	total := fare + tip + 100 + rng.IntN(300)
	b = append(b, `{"VendorID":`...)
	b = strconv.AppendInt(b, int64(1+rng.IntN(2)), 10)
	b = append(b, `,"PULocationID":`...)
	b = strconv.AppendInt(b, int64(zone), 10)
	b = append(b, `,"DOLocationID":`...)
	b = strconv.AppendInt(b, int64(1+rng.IntN(265)), 10)
	b = append(b, `,"passenger_count":`...)
	b = strconv.AppendInt(b, int64(1+rng.IntN(4)), 10)
	b = append(b, `,"trip_distance":`...)
	b = appendCents(b, dist)
	b = append(b, `,"fare_amount":`...)
	b = appendCents(b, fare)
	b = append(b, `,"tip_amount":`...)
	b = appendCents(b, tip)
	b = append(b, `,"total_amount":`...)
	b = appendCents(b, total)
	b = append(b, `,"tpep_pickup_datetime":`...)
	b = strconv.AppendInt(b, t.UnixMilli(), 10)
	// A trip takes about three minutes a mile, plus traffic.
	trip := time.Duration(dist)*time.Minute*3/100 + time.Duration(rng.Int64N(int64(10*time.Minute)))
	b = append(b, `,"tpep_dropoff_datetime":`...)
	b = strconv.AppendInt(b, t.Add(trip).UnixMilli(), 10)
	b = append(b, '}')
	return b
}

func appendCents(b []byte, c int) []byte {
	b = strconv.AppendInt(b, int64(c/100), 10)
	b = append(b, '.')
	if c%100 < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(c%100), 10)
}

// malformedValue returns one message that must be rejected, of a random
// kind: random bytes, truncated JSON, wrong types, missing fields, NaN, huge
// numbers, a time before 2000, JSON null, a null value (a tombstone), rarely a
// payload over 1 MiB, and with future a ride years ahead of stream time.
func malformedValue(rng *rand.Rand, start time.Time, future bool) []byte {
	ms := strconv.FormatInt(start.UnixMilli(), 10)
	kinds := 12
	if future {
		kinds++
	}
	switch k := rng.IntN(kinds); k {
	case 0: // random bytes
		b := make([]byte, 1+rng.IntN(64))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		b[0] = '\x00'
		return b
	case 1:
		return []byte(`{"PULocationID": 186, "DOLocationID": 79, "trip_dis`)
	case 2:
		return []byte(`{"PULocationID":"186","total_amount":17.31,"tpep_pickup_datetime":` + ms + `}`)
	case 3:
		return []byte(`{"PULocationID":186,"total_amount":17.31}`)
	case 4:
		return []byte(`{"PULocationID":186,"total_amount":NaN,"tpep_pickup_datetime":` + ms + `}`)
	case 5:
		return []byte(`{"PULocationID":186,"total_amount":17.31,"tpep_pickup_datetime":946684799999}`)
	case 6:
		return []byte(`{"PULocationID":186,"total_amount":1e400,"tpep_pickup_datetime":` + ms + `}`)
	case 7:
		return []byte(`null`)
	case 8:
		return nil // a tombstone: no value at all
	case 9:
		return []byte(`{"PULocationID":null,"total_amount":null,"tpep_pickup_datetime":null}`)
	case 10:
		return []byte(`{"PULocationID":[186],"total_amount":{"v":1},"tpep_pickup_datetime":true}`)
	case 11:
		if rng.IntN(2000) == 0 { // over 1 MiB; the input topic must allow it
			b := make([]byte, ride.MaxMessageBytes+100)
			for i := range b {
				b[i] = 'x'
			}
			return b
		}
		return []byte(`{"PULocationID":186,"total_amount":-99999999999,"tpep_pickup_datetime":` + ms + `}`)
	default: // years ahead of the partition's stream time
		return []byte(`{"PULocationID":186,"total_amount":17.31,"tpep_pickup_datetime":4102444799000}`)
	}
}
