package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/IBM/sarama"

	"github.com/ridestream/ridestream/internal/pipeline"
)

// The pipeline record lives in a one-partition topic, <prefix>-pipeline,
// that keeps its records forever. The first record is the pipeline's spec:
// a later one (two processes creating the same pipeline at once) is ignored,
// so the spec never changes once written; `ridestream reset` deletes the
// topic with the rest of the pipeline.

// recordKey is the key of the spec record.
const recordKey = "spec"

// NoRecordError says that a pipeline has no record yet. Legacy lists its
// topics that exist nonetheless: a pipeline built before records existed.
type NoRecordError struct {
	Prefix string
	Legacy []string
}

func (e *NoRecordError) Error() string {
	if len(e.Legacy) > 0 {
		return fmt.Sprintf("pipeline %q has topics (%v) but no record of its settings: it was built by a release before records existed. "+
			"Stop its processors and sinks, run `ridestream reset --prefix %s --postgres finals`, then start `ridestream process` with the settings you want; "+
			"it replays the input and records them", e.Prefix, e.Legacy, e.Prefix)
	}
	return fmt.Sprintf("pipeline %q has no record yet: `ridestream process --prefix %s` writes it on its first start", e.Prefix, e.Prefix)
}

// ReadSpec returns the pipeline's recorded spec; a *NoRecordError when
// there is none.
func ReadSpec(client sarama.Client, prefix string) (pipeline.Spec, error) {
	topic := pipeline.PipelineTopic(prefix)
	first, err := firstRecord(client, topic)
	if err != nil {
		return pipeline.Spec{}, err
	}
	if first == nil {
		return pipeline.Spec{}, &NoRecordError{Prefix: prefix, Legacy: legacyTopics(client, prefix)}
	}
	return pipeline.ParseRecord(prefix, first)
}

// firstRecord returns the value of the spec record of topic, or nil when the
// topic is missing or empty.
func firstRecord(client sarama.Client, topic string) ([]byte, error) {
	if err := client.RefreshMetadata(); err != nil {
		return nil, fmt.Errorf("read pipeline record %s: %w", topic, err)
	}
	topics, err := client.Topics()
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	if !slices.Contains(topics, topic) {
		return nil, nil
	}
	var value []byte
	found := errors.New("found")
	err = ReadPartition(client, topic, 0, func(m *sarama.ConsumerMessage) error {
		if string(m.Key) != recordKey {
			return nil
		}
		value = m.Value
		return found
	})
	if err != nil && err != found {
		return nil, fmt.Errorf("read pipeline record %s: %w", topic, err)
	}
	return value, nil
}

// legacyTopics lists the processing topics of prefix that exist.
func legacyTopics(client sarama.Client, prefix string) []string {
	topics, err := client.Topics()
	if err != nil {
		return nil
	}
	var out []string
	for _, t := range (pipeline.Spec{Prefix: prefix}).Names().Topics() {
		if slices.Contains(topics, t) {
			out = append(out, t)
		}
	}
	return out
}

// WriteSpec records spec as its pipeline's record, creating the record
// topic, and returns the pipeline's spec as recorded: spec, or the one a
// process starting at the same moment recorded first.
func WriteSpec(client sarama.Client, admin sarama.ClusterAdmin, spec pipeline.Spec, replication int16) (pipeline.Spec, error) {
	topic := pipeline.PipelineTopic(spec.Prefix)
	if _, err := EnsureTopics(admin, Topic{Name: topic, Partitions: 1, Replication: replication, CleanupPolicy: "delete", RetentionMs: -1}); err != nil {
		return spec, fmt.Errorf("create pipeline record topic: %w", err)
	}
	p, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return spec, err
	}
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(recordKey), Value: sarama.ByteEncoder(spec.Record())})
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return spec, fmt.Errorf("write pipeline record %s: %w", topic, err)
	}
	return ReadSpec(client, spec.Prefix)
}

// ResolveSpec returns the spec a subcommand runs with: the pipeline's record,
// refused with a *pipeline.DriftError when a flag in set (given explicitly)
// or the input topic's partition count disagrees with it. Without a record,
// create (the processors) records given, with the input's partition count;
// otherwise the *NoRecordError is returned.
func ResolveSpec(client sarama.Client, admin sarama.ClusterAdmin, given pipeline.Spec, set []string, create bool, replication int16) (pipeline.Spec, error) {
	recorded, err := ReadSpec(client, given.Prefix)
	var none *NoRecordError
	if errors.As(err, &none) && create && len(none.Legacy) == 0 {
		parts, perr := client.Partitions(given.Input)
		if perr != nil {
			return given, fmt.Errorf("--topic %s: %w", given.Input, perr)
		}
		given.InputPartitions, given.Wire = int32(len(parts)), pipeline.WireVersion
		given = given.Resolved()
		if err := given.Validate(); err != nil {
			return given, err
		}
		if recorded, err = WriteSpec(client, admin, given, replication); err != nil {
			return given, err
		}
		// Another process may have recorded the pipeline first: every
		// setting must then agree with its record.
		set = pipeline.SettingFlags()
	}
	if err != nil {
		return given, err
	}
	parts, err := client.Partitions(recorded.Input)
	if err != nil {
		return recorded, fmt.Errorf("input topic %s of pipeline %q: %w", recorded.Input, recorded.Prefix, err)
	}
	return pipeline.Adopt(recorded, given, set, int32(len(parts)))
}

// AwaitSpec is ResolveSpec without creating: while the pipeline has no
// record (and no topics of an older release), or the cluster cannot say
// (Transient), it calls waiting with the reason at every poll, every
// interval, until the record appears or ctx ends.
func AwaitSpec(ctx context.Context, client sarama.Client, admin sarama.ClusterAdmin, given pipeline.Spec, set []string,
	interval time.Duration, waiting func(error)) (pipeline.Spec, error) {
	for {
		spec, err := ResolveSpec(client, admin, given, set, false, 0)
		var none *NoRecordError
		if (!errors.As(err, &none) || len(none.Legacy) > 0) && !Transient(err) {
			return spec, err
		}
		waiting(err)
		select {
		case <-ctx.Done():
			return spec, fmt.Errorf("waiting for the record of pipeline %q: %w", given.Prefix, ctx.Err())
		case <-time.After(interval):
		}
	}
}
