package processors

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
)

var metricLag = metrics.NewGaugeVec(prometheus.GaugeOpts{
	Name: "ridestream_processor_consumer_lag",
	Help: "Messages between each stage's committed offset and the end of its input partition, read from Kafka every --lag-interval " +
		"(the group's lag, the same from every instance; commits trail processing by up to 250 ms).",
}, []string{"stage", "topic", "partition"})

// stageInputs are the topics each stage's group consumes, with their
// partition counts.
func (t *Topology) stageInputs(stage string) (group string, topics map[string]int32) {
	switch stage {
	case StageRoute:
		return t.RouteGroup, map[string]int32{t.Input: t.Sources, t.ClockTable: t.Sources, t.WatermarkTable: t.Sources}
	case StageClock:
		return t.ClockGroup, map[string]int32{t.Clock: t.Sources}
	case StageWatermark:
		return t.WatermarkGroup, map[string]int32{t.Watermark: t.Sources}
	default:
		return t.WindowsGroup, map[string]int32{t.Windows: t.WindowPartitions}
	}
}

// purgeable are the internal streams: their records are deleted once the
// one group that reads them has committed past them (docs/design.md,
// "What each topic holds").
func (t *Topology) purgeable(topic string) bool {
	return topic == t.Clock || topic == t.Watermark || topic == t.Windows
}

// exportLag sets metricLag for the given stages every interval until ctx
// ends. Failures (a broker away) leave the last values and are retried.
func (t *Topology) exportLag(ctx context.Context, stages []string, every time.Duration) {
	var client sarama.Client
	var admin sarama.ClusterAdmin
	defer func() {
		if admin != nil {
			admin.Close() // closes client too
		}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if admin == nil {
			var err error
			if client, err = sarama.NewClient(t.Kafka.Brokers, t.saramaConfig(t.Prefix+"-lag")); err != nil {
				t.Logger.Debug("consumer lag: connect", "err", err)
				continue
			}
			if admin, err = sarama.NewClusterAdminFromClient(client); err != nil {
				client.Close()
				t.Logger.Debug("consumer lag: connect", "err", err)
				continue
			}
		}
		for _, stage := range stages {
			if err := t.updateLag(client, admin, stage); err != nil {
				t.Logger.Debug("consumer lag", "stage", stage, "err", err)
			}
		}
	}
}

func (t *Topology) updateLag(client sarama.Client, admin sarama.ClusterAdmin, stage string) error {
	group, topics := t.stageInputs(stage)
	parts := map[string][]int32{}
	for topic, n := range topics {
		for p := range n {
			parts[topic] = append(parts[topic], p)
		}
	}
	committed, err := admin.ListConsumerGroupOffsets(group, parts)
	purge := map[topicPartition]int64{}
	if err != nil {
		return err
	}
	for topic, ps := range parts {
		for _, p := range ps {
			end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return err
			}
			from := int64(-1)
			if b := committed.GetBlock(topic, p); b != nil {
				from = b.Offset
			}
			if from < 0 { // nothing committed yet: everything there is to read
				if from, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
					return err
				}
			}
			metricLag.WithLabelValues(stage, topic, strconv.Itoa(int(p))).Set(float64(max(end-from, 0)))
			if b := committed.GetBlock(topic, p); t.purgeable(topic) && b != nil && b.Offset > t.purged[topicPartition{topic, p}] {
				purge[topicPartition{topic, p}] = b.Offset
			}
		}
	}
	return t.purge(admin, purge)
}

type topicPartition struct {
	topic     string
	partition int32
}

// purge deletes the internal streams' records before the offsets given:
// records their group has committed (Kafka's DeleteRecords), so these
// topics hold what is not yet processed, however long a stage was down.
func (t *Topology) purge(admin sarama.ClusterAdmin, before map[topicPartition]int64) error {
	byTopic := map[string]map[int32]int64{}
	for tp, o := range before {
		if byTopic[tp.topic] == nil {
			byTopic[tp.topic] = map[int32]int64{}
		}
		byTopic[tp.topic][tp.partition] = o
	}
	for topic, offsets := range byTopic {
		if err := admin.DeleteRecords(topic, offsets); err != nil {
			return fmt.Errorf("delete records of %s its stage has committed: %w", topic, err)
		}
		for p, o := range offsets {
			t.purged[topicPartition{topic, p}] = o
		}
	}
	return nil
}
