package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/ridestream/ridestream/internal/envflag"
	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/pipeline"
)

func itoa(v int) string { return strconv.Itoa(v) }

func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("generate", stderr)
	kafkaConn := kafkaFlags(fs)
	topic := fs.String("topic", pipeline.DefaultTopic, "topic to produce to (created with --partitions if missing)")
	partitions := fs.Int("partitions", 4, "partitions to spread rides over (and to create the topic with)")
	replication := fs.Int("replication", 0, "replication factor when creating the topic (0: the cluster's default.replication.factor)")
	seed := fs.Uint64("seed", 1, "random seed: the same seed gives the same messages")
	rides := fs.Int("rides", 10000, "number of rides")
	hours := fs.Int("hours", 24, "event-hours the rides span")
	start := fs.String("start", generate.DefaultStart.Format("2006-01-02T15:04:05Z07:00"), "first event time (RFC 3339)")
	ooo := fs.Float64("out-of-order", 0.05, "fraction of rides out of order within the allowed lateness")
	late := fs.Float64("late", 0.01, "fraction of rides later than the allowed lateness")
	bad := fs.Float64("malformed", 0.01, "malformed messages to add, as a fraction of --rides")
	dups := fs.Float64("duplicates", 0, "fraction of rides sent twice in a row, as a producer retry without idempotence does")
	idleParts := fs.Int("idle-partitions", 0, "this many of the highest partitions get no rides after --idle-after")
	idleAfter := fs.Float64("idle-after", 0.5, "fraction of the rides after which the idle partitions stop receiving rides")
	heartbeats := fs.Bool("heartbeats", true, "end with one heartbeat per partition past the last window")
	lateness := fs.Duration("allowed-lateness", 5*60_000_000_000, "allowed lateness the out-of-order shift stays within")
	rate := fs.Float64("rate", 0, "messages per second (0: as fast as possible)")
	jsonl := fs.String("from-jsonl", "", "produce the lines of this JSONL file instead of synthetic rides")
	logger := logFlags(fs)
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	log, err := logger(stderr)
	if err != nil {
		return err
	}
	conn, err := kafkaConn(args)
	if err != nil {
		return err
	}
	if *partitions <= 0 {
		return fmt.Errorf("--partitions %d: must be positive", *partitions)
	}
	if *rate < 0 {
		return fmt.Errorf("--rate %v: must not be negative", *rate)
	}
	st, err := parseTime(*start)
	if err != nil {
		return fmt.Errorf("--start %q: %w", *start, err)
	}
	w := generate.Config{Seed: *seed, Rides: *rides, Partitions: int32(*partitions), Start: st, Hours: *hours,
		OutOfOrder: *ooo, Late: *late, Malformed: *bad, Duplicates: *dups, Lateness: *lateness, Heartbeats: *heartbeats,
		IdlePartitions: int32(*idleParts), IdleAfter: *idleAfter}
	if err := w.Validate(); err != nil {
		return err
	}
	var src func(func(generate.Message) bool)
	total := w.Count()
	var readErr error
	if *jsonl != "" {
		f, err := os.Open(*jsonl)
		if err != nil {
			return fmt.Errorf("--from-jsonl: %w", err)
		}
		defer f.Close()
		src, total = generate.JSONL(f, int32(*partitions), &readErr), 0
	} else {
		src = w.All
	}
	if err := checkKafka(ctx, log, conn, false); err != nil {
		return err
	}
	if err := ensureTopic(conn, *topic, int32(*partitions), int16(*replication)); err != nil {
		return err
	}
	n, err := generate.Produce(ctx, generate.ProduceOptions{Kafka: conn, Topic: *topic, Rate: *rate, Total: total, Logger: log}, src)
	if err != nil {
		return err
	}
	if readErr != nil {
		return fmt.Errorf("--from-jsonl: %w", readErr)
	}
	_, err = fmt.Fprintf(stdout, "produced %d messages to %s\n", n, *topic)
	return err
}

// ensureTopic creates the input topic when missing, or checks its partition
// count when it exists.
func ensureTopic(conn kafka.Conn, topic string, partitions int32, replication int16) error {
	admin, err := conn.NewAdmin("ridestream-admin")
	if err != nil {
		return err
	}
	defer admin.Close()
	_, err = kafka.EnsureTopics(admin, generate.InputTopic(topic, partitions, replication))
	return err
}
