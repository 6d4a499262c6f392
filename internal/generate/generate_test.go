package generate

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/ride"
)

func TestWorkloadIsSeededAndCounted(t *testing.T) {
	c := Config{Seed: 7, Rides: 5000, Partitions: 4, Hours: 3, OutOfOrder: 0.05, Late: 0.02, Malformed: 0.01,
		Duplicates: 0.01, Lateness: 5 * time.Minute, IdlePartitions: 1, IdleAfter: 0.5, Heartbeats: true}
	var first []Message
	for m := range c.All {
		first = append(first, m)
	}
	if len(first) != c.Count() || c.Count() != 5000+50+50+4 {
		t.Fatalf("got %d messages, Count() = %d", len(first), c.Count())
	}
	i := 0
	rides, bad, hb, dups := 0, 0, 0, 0
	var prev Message
	idleAfterHalf := 0
	parts := make([][][]byte, c.Partitions)
	var malformed []model.Key
	for m := range c.All {
		if m.Kind == Malformed {
			malformed = append(malformed, model.Key{Partition: m.Partition, Offset: int64(len(parts[m.Partition]))})
		}
		parts[m.Partition] = append(parts[m.Partition], m.Value)
		if m.Partition != first[i].Partition || !bytes.Equal(m.Value, first[i].Value) {
			t.Fatalf("message %d differs between two runs of the same seed", i)
		}
		i++
		rec, err := ride.Decode(m.Value)
		switch m.Kind {
		case Ride:
			rides++
			if prev.Kind == Ride && prev.Partition == m.Partition && bytes.Equal(prev.Value, m.Value) {
				dups++
			}
			if err != nil || rec.Kind != ride.KindRide {
				t.Fatalf("generated ride does not decode: %s: %v", m.Value, err)
			}
			if rides > 2600 && m.Partition == 3 {
				idleAfterHalf++
			}
		case Malformed:
			bad++
		case Heartbeat:
			hb++
			if err != nil || rec.Kind != ride.KindHeartbeat {
				t.Fatalf("heartbeat does not decode: %s", m.Value)
			}
		}
		prev = m
	}
	if rides != 5050 || dups != 50 || bad != 50 || hb != 4 || idleAfterHalf != 0 {
		t.Fatalf("rides %d (%d sent twice) malformed %d heartbeats %d rides on the idle partition after it went idle %d", rides, dups, bad, hb, idleAfterHalf)
	}
	res := model.Run(model.DefaultRule(), parts)
	for _, k := range malformed {
		if _, ok := res.Rejected[k]; !ok {
			t.Errorf("malformed message p%d@%d is not rejected: %.80q", k.Partition, k.Offset, parts[k.Partition][k.Offset])
		}
	}
	if len(res.Rejected) != len(malformed) {
		t.Errorf("model rejects %d messages, the generator made %d malformed", len(res.Rejected), len(malformed))
	}
}

func TestJSONL(t *testing.T) {
	var err error
	var got []Message
	for m := range JSONL(strings.NewReader("{\"a\":1}\n\n{\"b\":2}\n{\"c\":3}\n"), 2, &err) {
		got = append(got, m)
	}
	if err != nil || len(got) != 3 || got[0].Partition != 0 || got[1].Partition != 1 || got[2].Partition != 0 || string(got[2].Value) != `{"c":3}` {
		t.Fatalf("got %+v, %v", got, err)
	}
}
