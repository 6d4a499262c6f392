package processors

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/IBM/sarama"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/ops"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/window"
)

// WriteHeartbeats writes one heartbeat at ms into each partition of topic.
func WriteHeartbeats(conn kafka.Conn, topic string, partitions []int32, ms int64) (int, error) {
	w, err := newHeartbeatWriter(conn)
	if err != nil {
		return 0, err
	}
	defer w.Close()
	if err := w.Write(topic, partitions, ms); err != nil {
		return 0, err
	}
	return len(partitions), nil
}

// heartbeatWriter writes heartbeats into chosen partitions.
type heartbeatWriter struct{ p sarama.SyncProducer }

func newHeartbeatWriter(conn kafka.Conn) (*heartbeatWriter, error) {
	cfg := conn.Config("ridestream-heartbeat")
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer(conn.Brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect producer to %v: %w", conn.Brokers, err)
	}
	return &heartbeatWriter{p: p}, nil
}

// Write writes one heartbeat at ms into each of partitions.
func (w *heartbeatWriter) Write(topic string, partitions []int32, ms int64) error {
	msgs := make([]*sarama.ProducerMessage, len(partitions))
	for i, part := range partitions {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Partition: part, Value: sarama.ByteEncoder(pipeline.Heartbeat(ms))}
	}
	if err := w.p.SendMessages(msgs); err != nil {
		return fmt.Errorf("write heartbeats to %s: %w", topic, err)
	}
	return nil
}

func (w *heartbeatWriter) Close() { _ = w.p.Close() }

// EndOfInput computes the heartbeat that finishes a bounded input of the
// pipeline spec: it reads every partition of the input up to its end now,
// applies the stream-time rule to find each partition's stream time, and
// returns the time that closes everything the highest of them holds, in
// every aggregation: the end of its tumbling window plus L, or for sessions
// the time itself plus the gap and L. It also returns that highest stream
// time. A ride that still waits for the rides after it (a jump) is decided
// by the heartbeat itself; if that moves a stream time higher, the
// heartbeat is computed again from it. The result depends on the log
// alone, so it is the same whoever computes it.
//
// Reading a long input takes a while: it logs its progress to log every few
// seconds.
func EndOfInput(conn kafka.Conn, spec pipeline.Spec, log *slog.Logger) (at, highest int64, err error) {
	client, err := conn.NewClient("ridestream-heartbeat")
	if err != nil {
		return 0, 0, err
	}
	defer client.Close()
	stream := spec.Window.Stream()
	clocks := map[int32]*window.Clock{}
	var read int64
	progress := ops.NewWaitLog(log, 5*time.Second)
	err = kafka.ReadTopic(client, spec.Input, func(m *sarama.ConsumerMessage) error {
		if read++; read%4096 == 1 {
			progress.Say("reading the input to find where it ends", "topic", spec.Input, "partition", m.Partition, "offset", m.Offset, "records_read", read)
		}
		c := clocks[m.Partition]
		if c == nil {
			c = &window.Clock{}
			clocks[m.Partition] = c
		}
		if rec, err := spec.Decode.Decode(m.Value); err == nil {
			stream.Feed(c, window.Item{Offset: m.Offset, Heartbeat: rec.Kind == ride.KindHeartbeat, T: rec.EventMs}, func(window.Decision) {})
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	found := false
	for _, c := range clocks {
		if c.Valid && (!found || c.ST > highest) {
			highest, found = c.ST, true
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("input topic %s holds no ride or heartbeat with an event time: nothing to finish", spec.Input)
	}
	for {
		at = closingTime(spec, highest)
		moved := highest
		for _, c := range clocks {
			after := window.Clock{ST: c.ST, Valid: c.Valid, Pending: slices.Clone(c.Pending)}
			stream.Feed(&after, window.Item{Offset: math.MaxInt64, Heartbeat: true, T: at}, func(window.Decision) {})
			moved = max(moved, after.ST)
		}
		if moved <= at {
			return at, highest, nil
		}
		highest = moved // a waiting jump the heartbeat accepts is later still
	}
}

// closingTime is the earliest stream time that closes, in every
// aggregation of spec, whatever a partition at stream time st holds open.
func closingTime(spec pipeline.Spec, st int64) int64 {
	var at int64
	for _, a := range spec.Aggs() {
		L := a.Lateness.Milliseconds()
		if a.Kind == aggregate.Session {
			at = max(at, st+a.Gap.Milliseconds()+L)
			continue
		}
		w := spec.AggWindow(a)
		at = max(at, w.End(w.Start(st))+L)
	}
	return at
}
