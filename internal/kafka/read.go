package kafka

import (
	"fmt"

	"github.com/IBM/sarama"
)

// ReadTopic calls fn with every message of every partition of topic, in
// offset order per partition, up to the partitions' ends when it was called.
// It stops at fn's first error.
func ReadTopic(client sarama.Client, topic string, fn func(*sarama.ConsumerMessage) error) error {
	parts, err := client.Partitions(topic)
	if err != nil {
		return fmt.Errorf("topic %s: %w", topic, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return err
	}
	defer consumer.Close()
	for _, p := range parts {
		first, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("topic %s partition %d: %w", topic, p, err)
		}
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("topic %s partition %d: %w", topic, p, err)
		}
		if hwm <= first {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("topic %s partition %d: %w", topic, p, err)
		}
		for m := range pc.Messages() {
			if err := fn(m); err != nil {
				pc.Close()
				return err
			}
			if m.Offset+1 >= hwm {
				break
			}
		}
		pc.Close()
	}
	return nil
}
