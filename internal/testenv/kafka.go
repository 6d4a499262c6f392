package testenv

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// AwaitCommitted waits until consumer group has committed every record of
// topic (each partition's committed offset at its end).
func (e *Env) AwaitCommitted(t testing.TB, group, topic string, limit time.Duration) {
	t.Helper()
	var behind int64
	for deadline := time.Now().Add(limit); ; time.Sleep(200 * time.Millisecond) {
		err := e.withCluster(func(client sarama.Client, admin sarama.ClusterAdmin) error {
			parts, err := client.Partitions(topic)
			if err != nil {
				return err
			}
			committed, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
			if err != nil {
				return err
			}
			behind = 0
			for _, p := range parts {
				end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
				if err != nil {
					return err
				}
				at := int64(0)
				if b := committed.GetBlock(topic, p); b != nil && b.Offset > 0 {
					at = b.Offset
				}
				behind += max(end-at, 0)
			}
			return nil
		})
		if err == nil && behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s has not committed all of %s after %v: %d records behind (%v)", group, topic, limit, behind, err)
		}
	}
}

// AlterTopic sets configs of topic.
func (e *Env) AlterTopic(t testing.TB, topic string, configs map[string]string) {
	t.Helper()
	entries := map[string]*string{}
	for k, v := range configs {
		entries[k] = &v
	}
	err := e.withCluster(func(_ sarama.Client, admin sarama.ClusterAdmin) error {
		return admin.AlterConfig(sarama.TopicResource, topic, entries, false)
	})
	if err != nil {
		t.Fatalf("alter %s: %v", topic, err)
	}
}

// AwaitCompacted waits until compaction has removed records of topic: some
// partition holds fewer records than the offsets it spans. The embedded
// broker is told to compact; a real broker's log cleaner does it on its own
// (given the topic's segment.ms and min.compaction.lag.ms allow it).
func (e *Env) AwaitCompacted(t testing.TB, topic string, limit time.Duration) (removed int) {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(500 * time.Millisecond) {
		if e.embedded != nil {
			e.embedded.Compact()
		}
		removed = 0
		for _, ms := range e.readMessages(t, topic, false) {
			if len(ms) > 0 {
				removed += int(ms[len(ms)-1].Offset+1) - len(ms)
			}
		}
		if removed > 0 {
			return removed
		}
		if time.Now().After(deadline) {
			var cfg []string
			_ = e.withCluster(func(_ sarama.Client, admin sarama.ClusterAdmin) error {
				entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
				for _, c := range entries {
					if !c.Default {
						cfg = append(cfg, c.Name+"="+c.Value)
					}
				}
				return err
			})
			t.Fatalf("%s was not compacted within %v (its settings: %v)", topic, limit, cfg)
		}
	}
}

// Held is how many records topic holds: per partition, from the log start
// (after retention or deleted records) to the end.
func (e *Env) Held(t testing.TB, topic string) int64 {
	t.Helper()
	var held int64
	err := e.withCluster(func(client sarama.Client, _ sarama.ClusterAdmin) error {
		parts, err := client.Partitions(topic)
		if err != nil {
			return err
		}
		for _, p := range parts {
			start, err := client.GetOffset(topic, p, sarama.OffsetOldest)
			if err != nil {
				return err
			}
			end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return err
			}
			held += end - start
		}
		return nil
	})
	if err != nil {
		t.Fatalf("offsets of %s: %v", topic, err)
	}
	return held
}

// DeleteGroup deletes a consumer group and its committed offsets, as Kafka
// does once a group has had no member for offsets.retention.minutes. It
// waits for the group to empty (a static member that stopped stays until
// its session times out).
func (e *Env) DeleteGroup(t testing.TB, group string, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(500 * time.Millisecond) {
		err := e.withCluster(func(_ sarama.Client, admin sarama.ClusterAdmin) error {
			return admin.DeleteConsumerGroup(group)
		})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("delete group %s: %v", group, err)
		}
	}
}
