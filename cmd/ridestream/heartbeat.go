package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/ridestream/ridestream/internal/envflag"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/processors"
)

func runHeartbeat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("heartbeat", stderr)
	kafkaConn := kafkaFlags(fs)
	topic := fs.String("topic", pipeline.DefaultTopic, "rides input topic (once the pipeline has a record: the one it records)")
	parts := fs.String("partitions", "all", "partitions to write a heartbeat into: all, or a comma-separated list")
	at := fs.String("time", "now", "event time of the heartbeat: now, epoch milliseconds, or RFC 3339")
	prefix := fs.String("prefix", pipeline.DefaultPrefix, "the pipeline whose record names the input topic (and, with --end-of-input, the window rule)")
	end := fs.Bool("end-of-input", false, "finish a bounded input: write into every partition a heartbeat past the highest stream time "+
		"of all partitions by the window and the lateness, so every window with rides becomes final (reads the whole input once)")
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	conn, err := kafkaConn(args)
	if err != nil {
		return err
	}
	var ms int64
	switch {
	case *end:
		for _, f := range []string{"time", "partitions"} {
			if envflag.OnCommandLine(args, f) {
				return fmt.Errorf("--%s: not with --end-of-input, which writes into every partition at the time it computes", f)
			}
		}
	case *at == "now":
		ms = time.Now().UnixMilli()
	default:
		if v, err := strconv.ParseInt(*at, 10, 64); err == nil {
			ms = v
		} else if t, err := time.Parse(time.RFC3339Nano, *at); err == nil {
			ms = t.UnixMilli()
		} else {
			return fmt.Errorf("--time %q: want now, epoch milliseconds or RFC 3339", *at)
		}
		if ms < ride.MinEventMs || ms >= ride.MaxEventMs {
			// The decoder would reject it: no record ridestream writes is.
			return fmt.Errorf("--time %s: outside the event times the pipeline reads (%s to %s)", *at,
				pipeline.FormatMs(ride.MinEventMs), pipeline.FormatMs(ride.MaxEventMs))
		}
	}
	if err := checkKafka(ctx, slog.Default(), conn, false); err != nil {
		return err
	}
	// The pipeline's record names its input; without one (the processors
	// have not started yet) --topic does.
	var spec pipeline.Spec
	err = kafka.RetryTransient(ctx, kafka.LogWaiting(slog.Default()), func() error {
		return conn.WithCluster("ridestream-heartbeat", func(client sarama.Client, _ sarama.ClusterAdmin) error {
			var err error
			spec, err = kafka.ReadSpec(client, *prefix)
			return err
		})
	})
	topicSet := false // on the command line or through $RIDESTREAM_TOPIC
	fs.Visit(func(f *flag.Flag) { topicSet = topicSet || f.Name == "topic" })
	var none *kafka.NoRecordError
	switch {
	case err == nil:
		if topicSet && *topic != spec.Input {
			return fmt.Errorf("--topic %s: pipeline %q reads %s", *topic, *prefix, spec.Input)
		}
		*topic = spec.Input
	case *end:
		return fmt.Errorf("--end-of-input needs the pipeline's record (--prefix %s): %w", *prefix, err)
	case !errors.As(err, &none):
		slog.Warn("cannot read the pipeline's record; writing into --topic", "prefix", *prefix, "topic", *topic, "err", err)
	}
	note := ""
	if *end {
		var highest int64
		if ms, highest, err = processors.EndOfInput(conn, spec, slog.Default()); err != nil {
			return err
		}
		note = fmt.Sprintf(" (end of input: the highest stream time is %s; its window ends at %s, plus %v lateness)",
			pipeline.FormatMs(highest), pipeline.FormatMs(ms-spec.Window.Lateness.Milliseconds()), spec.Window.Lateness)
	}
	client, err := conn.NewClient("ridestream-heartbeat")
	if err != nil {
		return err
	}
	defer client.Close()
	all, err := client.Partitions(*topic)
	if err != nil {
		return fmt.Errorf("--topic %s: %w", *topic, err)
	}
	targets := all
	if *parts != "all" {
		targets = nil
		for _, s := range strings.Split(*parts, ",") {
			p, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || p < 0 || p >= len(all) {
				return fmt.Errorf("--partitions: %q is not a partition of %s (0..%d)", s, *topic, len(all)-1)
			}
			targets = append(targets, int32(p))
		}
	}
	if len(targets) == 0 {
		return errors.New("--partitions: none")
	}
	n, err := processors.WriteHeartbeats(conn, *topic, targets, ms)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "wrote %d heartbeats at %s into %s%s\n", n, pipeline.FormatMs(ms), *topic, note)
	return err
}
