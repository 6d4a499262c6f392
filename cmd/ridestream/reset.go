package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ridestream/ridestream/internal/envflag"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/processors"
	"github.com/ridestream/ridestream/sink"
)

func runReset(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reset", stderr)
	kafkaConn := kafkaFlags(fs)
	prefix := fs.String("prefix", pipeline.DefaultPrefix, "the pipeline whose record, groups and topics to delete (never its input topic)")
	dry := fs.Bool("dry-run", false, "only list what would be deleted")
	force := fs.Bool("force", false, "delete consumer groups even while they have active members")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for members of stopped processors and sinks to leave before refusing")
	pg := fs.String("postgres", "none", "PostgreSQL outputs to clear too: none, finals (hourly_revenue), or all (every table)")
	dbURL := databaseFlags(fs)
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	conn, err := kafkaConn(args)
	if err != nil {
		return err
	}
	scope := sink.ResetScope(*pg)
	if err := scope.Validate(); err != nil {
		return err
	}
	url, err := dbURL(args)
	if err != nil {
		return err
	}
	if scope != sink.ResetNone && url == "" {
		return errors.New("--database-url: required with --postgres " + *pg)
	}
	if err := checkKafka(ctx, slog.Default(), conn, false); err != nil {
		return err
	}
	names := pipeline.Spec{Prefix: *prefix}.Names()
	var plan processors.ResetPlan
	err = kafka.RetryTransient(ctx, kafka.LogWaiting(slog.Default()), func() error {
		admin, err := conn.NewAdmin("ridestream-reset")
		if err != nil {
			return err
		}
		defer admin.Close()
		plan, err = processors.Plan(admin, names)
		return err
	})
	if err != nil {
		return err
	}
	for _, g := range plan.Groups {
		fmt.Fprintln(stdout, "consumer group:", g)
	}
	for _, t := range plan.Topics {
		fmt.Fprintln(stdout, "topic:", t)
	}
	if scope != sink.ResetNone {
		fmt.Fprintln(stdout, "postgres:", sink.ResetDescription(scope, *prefix, names.Finals))
	}
	if *dry {
		fmt.Fprintln(stdout, "dry run: nothing deleted")
		return nil
	}
	if err := processors.Reset(conn, plan, *force, *wait); err != nil {
		return err
	}
	if scope != sink.ResetNone {
		if err := sink.Reset(ctx, url, scope, *prefix, names.Finals); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout, "reset done: run the processors to replay")
	return nil
}
