package processors

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"

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
// applies the window rule to find each partition's stream time, and returns
// the end of the window holding the highest of them plus the allowed
// lateness, so that every window with rides closes on every partition. It
// also returns that highest stream time. The result depends on the log
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
		rec, err := spec.Decode.Decode(m.Value)
		switch {
		case err != nil:
		case rec.Kind == ride.KindHeartbeat:
			c.Advance(rec.EventMs)
		default:
			spec.Window.Observe(c, rec.EventMs)
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
	return spec.Window.End(spec.Window.Start(highest)) + spec.Window.Lateness.Milliseconds(), highest, nil
}
