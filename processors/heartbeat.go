package processors

import (
	"fmt"

	"github.com/IBM/sarama"

	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/pipeline"
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
