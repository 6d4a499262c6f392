package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/ridestream/ridestream/internal/pipeline"
)

// topicTraffic is what crossed one topic in a run: its records and their
// bytes (keys, values and headers, as a client writes and reads them;
// batch framing not counted).
type topicTraffic struct {
	topic          string
	records, bytes int64
}

// measureTraffic runs the processors once more on topic with the purge of
// the internal streams held off (--lag-interval 1h: the purge rides on the
// lag export), then reads every record of the input and of each topic the
// pipeline wrote, to count what crossed each per ride.
func measureTraffic(ctx context.Context, c config, topic string, wantFinals int) ([]topicTraffic, error) {
	p := pipelineRun{name: "traffic", binary: c.binary, args: []string{"--lag-interval", "1h"}}
	if _, err := runProcessors(ctx, c, p, topic, wantFinals); err != nil {
		return nil, err
	}
	n := pipeline.Spec{Prefix: "bench_" + p.name, Input: topic}.Names()
	topics := []string{n.Input, n.Clock, n.ClockTable, n.Watermark, n.WatermarkTable, n.Windows, n.WindowsTable, n.Finals, n.Late, n.Rejected}
	var out []topicTraffic
	err := c.kafka.WithCluster("bench", func(client sarama.Client, _ sarama.ClusterAdmin) error {
		consumer, err := sarama.NewConsumerFromClient(client)
		if err != nil {
			return err
		}
		defer consumer.Close()
		for _, t := range topics {
			tt, err := readTraffic(ctx, client, consumer, t)
			if err != nil {
				return fmt.Errorf("%s: %w", t, err)
			}
			out = append(out, tt)
		}
		return nil
	})
	return out, err
}

// readTraffic reads topic from its first record to its end.
func readTraffic(ctx context.Context, client sarama.Client, consumer sarama.Consumer, topic string) (topicTraffic, error) {
	tt := topicTraffic{topic: topic}
	parts, err := client.Partitions(topic)
	if err != nil {
		return tt, err
	}
	for _, p := range parts {
		first, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return tt, err
		}
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return tt, err
		}
		if first >= end {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, first)
		if err != nil {
			return tt, err
		}
		for next := first; next < end; {
			select {
			case m := <-pc.Messages():
				tt.records++
				tt.bytes += int64(len(m.Key) + len(m.Value))
				for _, h := range m.Headers {
					tt.bytes += int64(len(h.Key) + len(h.Value))
				}
				next = m.Offset + 1
			case err := <-pc.Errors():
				pc.Close()
				return tt, err
			case <-time.After(30 * time.Second):
				pc.Close()
				return tt, fmt.Errorf("partition %d: nothing read at offset %d of %d for 30 s", p, next, end)
			case <-ctx.Done():
				pc.Close()
				return tt, ctx.Err()
			}
		}
		pc.Close()
	}
	return tt, nil
}

// writeTraffic writes the per-topic table: records and bytes per ride.
func writeTraffic(b *strings.Builder, traffic []topicTraffic, rides int) {
	if len(traffic) == 0 {
		return
	}
	fmt.Fprintf(b, "\n| topic (one processors-only run, purge held off) | records per ride | bytes per ride |\n|---|---|---|\n")
	var recs, bytes int64
	for i, t := range traffic {
		name := t.topic
		if i == 0 {
			name = "input (read by route and again by the sink)"
		} else {
			recs, bytes = recs+t.records, bytes+t.bytes
			name = strings.TrimPrefix(name, "bench_traffic-")
		}
		fmt.Fprintf(b, "| %s | %.3f | %.1f |\n", name, float64(t.records)/float64(rides), float64(t.bytes)/float64(rides))
	}
	fmt.Fprintf(b, "| everything the processors wrote | %.3f | %.1f |\n", float64(recs)/float64(rides), float64(bytes)/float64(rides))
}
