// Package kafka holds the sarama settings every ridestream client shares and
// the topic management the topology needs.
//
// Defaults differ from sarama's on purpose (docs/design.md, "goka
// hardening"): protocol version
// ≥ 2.1 because Kafka 4 removed older ones, acks=all with an idempotent
// producer and one request in flight so retries neither duplicate nor reorder.
package kafka

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/IBM/sarama"
)

// Version is the protocol version all clients speak (Kafka ≥ 3.6, Redpanda, kfake).
var Version = sarama.V3_6_0_0

// newConfig returns the shared client configuration; every client gets it
// through Conn.Config, which adds TLS and SASL.
func newConfig(clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = clientID
	c.Version = Version
	c.Metadata.RefreshFrequency = 30 * time.Second
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	// A leader election after a broker's crash takes as long as the
	// controller's broker.session.timeout.ms (9 s by default) and more:
	// retry for about half a minute before failing a write.
	c.Producer.Retry.Max = 30
	c.Producer.Retry.BackoffFunc = func(retries, _ int) time.Duration {
		return min(100*time.Millisecond<<min(retries, 4), time.Second)
	}
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Compression = sarama.CompressionNone
	c.Producer.Flush.Bytes = 256 << 10
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	c.Producer.MaxMessageBytes = 1000000
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Fetch.Default = 1 << 20
	return c
}

// Topic describes a topic the topology needs.
type Topic struct {
	Name          string
	Partitions    int32
	Replication   int16  // 0: the cluster's default.replication.factor
	CleanupPolicy string // "delete" or "compact"
	RetentionMs   int64  // 0: broker default; -1: forever
	Configs       map[string]string
}

// ErrPartitionCount reports an existing topic whose partition count differs
// from what the pipeline was built for.
type ErrPartitionCount struct {
	Topic  string
	Have   int32
	Want   int32
	Advice string
}

func (e *ErrPartitionCount) Error() string {
	return fmt.Sprintf("topic %s has %d partitions, expected %d: %s", e.Topic, e.Have, e.Want, e.Advice)
}

// EnsureTopics creates the missing topics with their configuration and
// returns the partition count of every topic. An existing topic keeps its
// configuration; when Partitions > 0 its count must match.
func EnsureTopics(admin sarama.ClusterAdmin, topics ...Topic) (map[string]int32, error) {
	existing, err := admin.ListTopics()
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	counts := map[string]int32{}
	var created []string
	for _, t := range topics {
		if d, ok := existing[t.Name]; ok {
			counts[t.Name] = d.NumPartitions
			if t.Partitions > 0 && d.NumPartitions != t.Partitions {
				return nil, &ErrPartitionCount{Topic: t.Name, Have: d.NumPartitions, Want: t.Partitions,
					Advice: "a changed partition count is a new pipeline: reset and replay"}
			}
			continue
		}
		if t.Partitions <= 0 {
			return nil, fmt.Errorf("topic %s does not exist and no partition count was given", t.Name)
		}
		repl := t.Replication
		if repl <= 0 {
			repl = -1 // the cluster's default.replication.factor (CreateTopics v4+)
		}
		entries := map[string]*string{}
		if t.CleanupPolicy != "" {
			entries["cleanup.policy"] = &t.CleanupPolicy
		}
		for k, v := range t.Configs {
			entries[k] = &v
		}
		if t.RetentionMs != 0 {
			v := strconv.FormatInt(t.RetentionMs, 10)
			entries["retention.ms"] = &v
		}
		err := admin.CreateTopic(t.Name, &sarama.TopicDetail{NumPartitions: t.Partitions, ReplicationFactor: repl, ConfigEntries: entries}, false)
		if errors.Is(err, sarama.ErrInvalidReplicationFactor) && repl == -1 {
			// The cluster's own default needs more brokers than are
			// registered now: one is down or restarting; wait for it.
			return nil, &BrokersMissingError{Topic: t.Name, Err: err}
		}
		if errors.Is(err, sarama.ErrInvalidReplicationFactor) {
			return nil, fmt.Errorf("--replication %d: topic %s: %w", repl, t.Name, err)
		}
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return nil, fmt.Errorf("create topic %s (%d partitions, replication %d): %w", t.Name, t.Partitions, repl, err)
		}
		counts[t.Name] = t.Partitions
		created = append(created, t.Name)
	}
	return counts, awaitTopics(admin, created)
}

// awaitTopics waits until the cluster's metadata lists the new topics, so a
// client started next (goka's topic manager) does not try to create them
// again and fail with "already exists".
func awaitTopics(admin sarama.ClusterAdmin, names []string) error {
	deadline := time.Now().Add(10 * time.Second)
	for len(names) > 0 {
		existing, err := admin.ListTopics()
		if err != nil {
			return fmt.Errorf("list topics: %w", err)
		}
		names = slices.DeleteFunc(names, func(n string) bool { _, ok := existing[n]; return ok })
		if len(names) > 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("created topics %v are not in the cluster metadata after 10s", names)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// Replication describes the topics' replication: per topic its replicas
// (of its first partition), and how many brokers the cluster has.
func Replication(admin sarama.ClusterAdmin, topics []string) (factors map[string]int, brokers int, err error) {
	metas, err := admin.DescribeTopics(topics)
	if err != nil {
		return nil, 0, fmt.Errorf("describe topics: %w", err)
	}
	factors = map[string]int{}
	for _, m := range metas {
		if m.Err == sarama.ErrNoError && len(m.Partitions) > 0 {
			factors[m.Name] = len(m.Partitions[0].Replicas)
		}
	}
	nodes, _, err := admin.DescribeCluster()
	if err != nil {
		return nil, 0, fmt.Errorf("describe cluster: %w", err)
	}
	return factors, len(nodes), nil
}

// BrokersMissingError: a topic cannot get the cluster's default replication
// because fewer brokers are registered than it needs (one is down). It is
// Transient.
type BrokersMissingError struct {
	Topic string
	Err   error
}

func (e *BrokersMissingError) Error() string {
	return fmt.Sprintf("create topic %s: waiting for the cluster's brokers to come back: %v", e.Topic, e.Err)
}

func (e *BrokersMissingError) Unwrap() error { return e.Err }
