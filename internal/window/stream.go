package window

import "fmt"

// Item is one decodable record of an input partition as the stream-time
// rule sees it: its offset, whether it is a heartbeat, and its event time.
type Item struct {
	Offset    int64
	Heartbeat bool
	T         int64
}

// Outcome is what the rule decided about an item.
type Outcome uint8

const (
	// Accepted: a ride that counts; STBefore is the stream time it met.
	Accepted Outcome = iota + 1
	// Outlier: a ride whose event time is far from its partition's stream
	// time and from the records after it; rejected, and the stream time
	// does not move.
	Outlier
	// HeartbeatApplied: a heartbeat; the stream time is now at least its time.
	HeartbeatApplied
)

// Decision is the rule's verdict on one item.
type Decision struct {
	Item
	Outcome Outcome
	// STBefore is the stream time the item met (meaningful when HadST).
	STBefore int64
	HadST    bool
	// Why says why an Outlier was rejected.
	Why string
}

// Stream is the stream-time rule of an input partition (docs/contract.md,
// "Stream time and outliers"): ST(p) is the largest event time of its
// accepted rides and heartbeats, in offset order. A ride more than MaxSkew
// ahead of ST(p), or any ride while the partition has no stream time yet,
// is a jump: it is judged by the records after it, so that one wrong date
// (2009 at the head of a partition, 2088 in the middle) moves nothing,
// while a real jump (the first ride after a quiet week) is followed by
// rides near it. The next JumpWitnesses rides judge it: it is accepted iff
// each of them is within MaxSkew of it (a partition's first ride: all but
// one); the first one too many that is not makes it an outlier at once. A
// heartbeat before them ends the wait (the input may say no more): the
// rides seen so far were near enough, so it is accepted, unless no ride
// came and the heartbeat is more than MaxSkew behind it. Records after a jump wait for its verdict, so verdicts are a
// pure function of the log, however it is batched.
type Stream struct {
	MaxSkew int64 // milliseconds
}

// JumpWitnesses rides after a jump judge it: each must be within MaxSkew
// of it (a partition's first ride tolerates one that is not). A burst of
// one wrong date interleaved with good rides, as a producer with a bug
// sends, does not have them all near it.
const JumpWitnesses = 5

// Clock is one partition's state under the rule: its stream time and the
// records that wait for a jump's verdict (at most JumpWitnesses+1).
type Clock struct {
	ST      int64
	Valid   bool // false until the partition's first accepted ride or heartbeat
	Pending []Item
}

// Feed adds the partition's next decodable record and calls decide for
// every record it can now decide, in offset order: those are the first
// records of c.Pending before the call, then it. It returns how many were
// decided. A caller that keeps a payload per record keeps them in the same
// order as c.Pending and drops that many from the front.
func (s Stream) Feed(c *Clock, it Item, decide func(Decision)) int {
	c.Pending = append(c.Pending, it)
	n := 0
	for len(c.Pending) > 0 {
		d, ok := s.decideFirst(c)
		if !ok {
			break
		}
		decide(d)
		c.Pending = c.Pending[1:]
		n++
	}
	if len(c.Pending) == 0 {
		c.Pending = nil
	}
	return n
}

// decideFirst decides the first pending record if the records after it
// allow, and applies it to c's stream time.
func (s Stream) decideFirst(c *Clock) (Decision, bool) {
	it := c.Pending[0]
	d := Decision{Item: it, STBefore: c.ST, HadST: c.Valid}
	if it.Heartbeat {
		d.Outcome = HeartbeatApplied
		c.Advance(it.T)
		return d, true
	}
	if c.Valid && it.T-c.ST <= s.MaxSkew {
		d.Outcome = Accepted
		c.Advance(it.T)
		return d, true
	}
	// A jump: judged by the rides after it, up to the first heartbeat. A
	// partition's first ride tolerates one of them far from it: one early
	// outlier must not take the partition's first rides with it.
	near := func(t int64) bool { return t-it.T <= s.MaxSkew && it.T-t <= s.MaxSkew }
	tolerated := 0
	if !c.Valid {
		tolerated = 1
	}
	rides, far := 0, 0
	for _, w := range c.Pending[1:] {
		if w.Heartbeat {
			// The input says no more rides before w.T: the rides seen so
			// far judge; with none, a heartbeat far behind the jump makes
			// it an outlier.
			if rides == 0 && w.T < it.T-s.MaxSkew {
				d.Outcome, d.Why = Outlier, s.why(c, it, fmt.Sprintf("the heartbeat after it is at %s", fmtMs(w.T)))
			} else {
				d.Outcome = Accepted
				c.Advance(it.T)
			}
			return d, true
		}
		if !near(w.T) {
			if far++; far > tolerated {
				d.Outcome, d.Why = Outlier, s.why(c, it, fmt.Sprintf("the ride at offset %d after it, at %s, is not within %s of it", w.Offset, fmtMs(w.T), fmtDur(s.MaxSkew)))
				return d, true
			}
		}
		if rides++; rides == JumpWitnesses {
			d.Outcome = Accepted
			c.Advance(it.T)
			return d, true
		}
	}
	return d, false
}

func (s Stream) why(c *Clock, it Item, after string) string {
	if !c.Valid {
		return fmt.Sprintf("outlier: event time %s comes before the partition has a stream time, and %s (--max-future-skew)", fmtMs(it.T), after)
	}
	return fmt.Sprintf("outlier: event time %s is more than --max-future-skew %s ahead of the partition's stream time %s, and %s",
		fmtMs(it.T), fmtDur(s.MaxSkew), fmtMs(c.ST), after)
}
