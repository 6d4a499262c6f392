package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/IBM/sarama"

	"github.com/ridestream/ridestream/internal/envflag"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/sink"
)

// runRedrive sends rejected records back to the pipeline's input.
func runRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("redrive", stderr)
	kafkaConn := kafkaFlags(fs)
	prefix := fs.String("prefix", pipeline.DefaultPrefix, "the pipeline whose rejected input to send again (its record names the input topic)")
	all := fs.Bool("all", false, "select every row of rejected_input")
	reason := fs.String("reason", "", "select rows whose reason matches this regular expression")
	partition := fs.Int("partition", -1, "select rows of this input partition (with --from-offset, --to-offset)")
	from := fs.Int64("from-offset", 0, "with --partition: the first offset")
	to := fs.Int64("to-offset", -1, "with --partition: the last offset (-1: no bound)")
	again := fs.Bool("again", false, "also select rows of records that were re-driven before and rejected again")
	dry := fs.Bool("dry-run", false, "only list what would be sent")
	rate := fs.Float64("rate", 0, "records per second at most (0: no limit)")
	dbURL := databaseFlags(fs)
	logger := logFlags(fs)
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	log, err := logger(stderr)
	if err != nil {
		return err
	}
	sel := sink.RedriveSelect{All: *all, Again: *again, Reason: *reason, Partition: int32(*partition), From: *from, To: *to}
	if err := sel.Validate(); err != nil {
		return err
	}
	if *rate < 0 {
		return fmt.Errorf("--rate %v: must not be negative", *rate)
	}
	url, err := dbURL(args)
	if err != nil {
		return err
	}
	if url == "" {
		return errors.New("--database-url: required (rejected_input is read from it)")
	}
	conn, err := kafkaConn(args)
	if err != nil {
		return err
	}
	if err := checkKafka(ctx, log, conn, false); err != nil {
		return err
	}
	var spec pipeline.Spec
	err = kafka.RetryTransient(ctx, kafka.LogWaiting(log), func() error {
		return conn.WithCluster(*prefix+"-redrive", func(client sarama.Client, _ sarama.ClusterAdmin) error {
			spec, err = kafka.ReadSpec(client, *prefix)
			return err
		})
	})
	if err != nil {
		return err
	}
	rows, err := sink.Redrive(ctx, sink.RedriveOptions{Kafka: conn, URL: url, Input: spec.Input, Select: sel, DryRun: *dry, Rate: *rate, Log: log})
	if err != nil {
		return err
	}
	sent, before := 0, 0
	for _, r := range rows {
		switch {
		case *dry && r.SentPartition < 0:
			fmt.Fprintf(stdout, "would send %s/%d@%d (%d bytes): %s\n", spec.Input, r.Partition, r.Offset, r.Bytes, r.Reason)
		case *dry:
			fmt.Fprintf(stdout, "sent before %s/%d@%d -> offset %d\n", spec.Input, r.Partition, r.Offset, r.SentOffset)
			before++
		default:
			sent++
		}
	}
	if *dry {
		fmt.Fprintf(stdout, "dry run: %d selected, %d sent before; nothing sent\n", len(rows), before)
		return nil
	}
	fmt.Fprintf(stdout, "%d rejected records selected; each is in %s once (a redriven record is a new record: late for windows already final)\n", sent, spec.Input)
	return nil
}
