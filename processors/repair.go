package processors

import (
	"fmt"
	"sync"

	"github.com/IBM/sarama"

	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/ride"
)

// repairer reads input records for the watermark stage when clock writes
// never reached it (stage.Repair): they are derived again from the input.
type repairer struct {
	t      *Topology
	mu     sync.Mutex
	client sarama.Client
}

// read returns the records (from, to] of input partition src that decode,
// as route sends them to the clock.
func (r *repairer) read(src int32, from, to int64) ([]pipeline.ClockIn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.t
	if r.client == nil {
		c, err := t.Kafka.NewClient(t.Prefix + "-repair")
		if err != nil {
			return nil, err
		}
		r.client = c
	}
	var out []pipeline.ClockIn
	err := kafka.ReadRange(r.client, t.Input, src, from+1, to+1, func(m *sarama.ConsumerMessage) error {
		rec, err := t.Decode.Decode(m.Value)
		if err != nil {
			return nil
		}
		in := pipeline.ClockIn{Offset: m.Offset, Heartbeat: rec.Kind == ride.KindHeartbeat, EventMs: rec.EventMs}
		if !in.Heartbeat {
			in.Ride = rec.Ride
			in.Ride.Has &= t.Wire.Fields()
		}
		out = append(out, in)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read input %s partition %d (%d, %d] to derive lost clock outputs again: %w "+
			"(if the input's retention removed them, the windows they fed cannot be completed: reset and replay what is left)", t.Input, src, from, to, err)
	}
	return out, nil
}

// close releases the client.
func (r *repairer) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client != nil {
		r.client.Close()
		r.client = nil
	}
}
