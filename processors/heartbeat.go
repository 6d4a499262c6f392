package processors

import (
	"fmt"
	"strconv"

	"github.com/IBM/sarama"

	"github.com/ridestream/ridestream/internal/kafka"
)

// HeartbeatValue is the documented heartbeat record: {"heartbeat": <epoch ms>}.
// It advances its partition's stream time without being a ride, and it lives
// in the log, so replays see it too.
func HeartbeatValue(ms int64) []byte {
	return []byte(`{"heartbeat":` + strconv.FormatInt(ms, 10) + `}`)
}

// WriteHeartbeats writes one heartbeat at ms into each partition of topic.
func WriteHeartbeats(brokers []string, topic string, partitions []int32, ms int64) (int, error) {
	cfg := kafka.NewConfig("ridestream-heartbeat")
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		return 0, fmt.Errorf("connect producer to %v: %w", brokers, err)
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(partitions))
	for i, part := range partitions {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Partition: part, Value: sarama.ByteEncoder(HeartbeatValue(ms))}
	}
	if err := p.SendMessages(msgs); err != nil {
		return 0, fmt.Errorf("write heartbeats to %s: %w", topic, err)
	}
	return len(msgs), nil
}
