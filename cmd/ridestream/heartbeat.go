package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ridestream/ridestream/internal/envflag"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/processors"
)

func runHeartbeat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("heartbeat", stderr)
	kafkaConn := kafkaFlags(fs)
	topic := fs.String("topic", pipeline.DefaultTopic, "rides input topic")
	parts := fs.String("partitions", "all", "partitions to write a heartbeat into: all, or a comma-separated list")
	at := fs.String("time", "now", "event time of the heartbeat: now, epoch milliseconds, or RFC 3339")
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	conn, err := kafkaConn(args)
	if err != nil {
		return err
	}
	var ms int64
	switch {
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
	}
	if err := checkKafka(ctx, slog.Default(), conn, false); err != nil {
		return err
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
	n, err := processors.WriteHeartbeats(conn, *topic, targets, ms)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "wrote %d heartbeats at %s into %s\n", n, time.UnixMilli(ms).UTC().Format(time.RFC3339Nano), *topic)
	return err
}
