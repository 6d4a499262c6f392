package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"golang.org/x/sync/errgroup"

	"github.com/ridestream/ridestream/internal/envflag"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/ops"
	"github.com/ridestream/ridestream/processors"
	"github.com/ridestream/ridestream/views"
)

// processorFlags adds the pipeline's flags and returns a constructor.
func processorFlags(fs interface {
	String(name, value, usage string) *string
	Int(name string, value int, usage string) *int
	Duration(name string, value time.Duration, usage string) *time.Duration
}) func() processors.Config {
	prefix := fs.String("prefix", "ridestream", "names the pipeline's topics and consumer groups")
	shards := fs.Int("shards", 16, "keys a window's zones are spread over")
	wparts := fs.Int("window-partitions", 0, "partitions of the windows and finals topics (0: as many as the input)")
	repl := fs.Int("replication", 1, "replication factor of the topics the pipeline creates")
	batchMax := fs.Int("batch-max", 1000, "input records of one partition that route sends the clock stage in one message")
	linger := fs.Duration("batch-linger", 20*time.Millisecond, "longest a record waits for its batch (adds at most this to the finals' latency)")
	lag := fs.Duration("lag-interval", 10*time.Second, "how often each stage's consumer lag is read from Kafka for /metrics")
	return func() processors.Config {
		return processors.Config{Prefix: *prefix, Shards: *shards, WindowPartitions: int32(*wparts),
			Replication: int16(*repl), BatchMax: *batchMax, BatchLinger: *linger, LagInterval: *lag}
	}
}

func runProcess(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("process", stderr)
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap addresses (required)")
	topic := fs.String("topic", DefaultTopic, "rides input topic")
	stages := fs.String("stages", "all", "stages to run here: all, or a list of route,clock,windows")
	instance := fs.String("instance-id", "", "static group membership id (a restart takes its partitions back at once)")
	session := fs.Duration("session-timeout", 10*time.Second, "consumer group session timeout")
	httpAddr := fs.String("http-addr", "", "serve /healthz, /readyz and /metrics here, e.g. :8080 (empty: off)")
	idle := fs.Duration("idle-heartbeat", 0, "live mode: write a heartbeat into an input partition idle this long (wall clock) while the others are ahead (0: off)")
	pipeline := processorFlags(fs)
	spec := windowFlags(fs)
	logger := logFlags(fs)
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	log, err := logger(stderr)
	if err != nil {
		return err
	}
	ws, err := spec()
	if err != nil {
		return err
	}
	st, err := processors.ParseStages(*stages)
	if err != nil {
		return err
	}
	cfg := pipeline()
	cfg.Brokers, cfg.InputTopic, cfg.Window, cfg.InstanceID, cfg.SessionTimeout, cfg.IdleHeartbeat, cfg.Logger =
		splitBrokers(*brokers), *topic, ws, *instance, *session, *idle, log
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg.Ready = ops.NewReadiness(st...)
	t, err := processors.Setup(cfg)
	if err != nil {
		return err
	}
	return runWithOps(ctx, *httpAddr, cfg.Ready, log, func(ctx context.Context) error { return processors.Run(ctx, t, st) })
}

// runWithOps runs fn beside the ops HTTP server; both stop when either ends.
func runWithOps(ctx context.Context, addr string, ready *ops.Readiness, log *slog.Logger, fn func(context.Context) error, routes ...ops.Route) error {
	g, ctx := errgroup.WithContext(ctx)
	ctx, cancel := context.WithCancel(ctx)
	g.Go(func() error { defer cancel(); return fn(ctx) })
	g.Go(func() error { return ops.Serve(ctx, addr, ready, log, routes...) })
	return g.Wait()
}

func runViews(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("views", stderr)
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap addresses (required)")
	topic := fs.String("topic", DefaultTopic, "rides input topic")
	prefix := fs.String("prefix", "ridestream", "the pipeline to read")
	shards := fs.Int("shards", 16, "shards of the pipeline's window stage (as given to process)")
	httpAddr := fs.String("http-addr", ":8090", "serve the chart page (/), /api/windows, /healthz, /readyz and /metrics here")
	logger := logFlags(fs)
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	log, err := logger(stderr)
	if err != nil {
		return err
	}
	bs, err := requireBrokers(*brokers)
	if err != nil {
		return err
	}
	if *shards < 1 {
		return fmt.Errorf("--shards %d: must be positive", *shards)
	}
	if *httpAddr == "" {
		return errors.New("--http-addr: must not be empty")
	}
	top := &processors.Topology{Config: processors.Config{Brokers: bs, InputTopic: *topic, Prefix: *prefix, Shards: *shards},
		Names: processors.NamesFor(*topic, *prefix)}
	v, err := views.NewWindows(top)
	if err != nil {
		return err
	}
	ready := ops.NewReadiness("view")
	return runWithOps(ctx, *httpAddr, ready, log, func(ctx context.Context) error {
		go func() {
			for ctx.Err() == nil && !v.Recovered() {
				time.Sleep(200 * time.Millisecond)
			}
			ready.Set("view", "")
		}()
		return v.Run(ctx)
	}, ops.Route{Pattern: "/api/", Handler: v.Handler()}, ops.Route{Pattern: "/{$}", Handler: v.Handler()})
}

func runHeartbeat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("heartbeat", stderr)
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap addresses (required)")
	topic := fs.String("topic", DefaultTopic, "rides input topic")
	parts := fs.String("partitions", "all", "partitions to write a heartbeat into: all, or a comma-separated list")
	at := fs.String("time", "now", "event time of the heartbeat: now, epoch milliseconds, or RFC 3339")
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	bs, err := requireBrokers(*brokers)
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
	client, err := sarama.NewClient(bs, kafka.NewConfig("ridestream-heartbeat"))
	if err != nil {
		return fmt.Errorf("connect to %v: %w", bs, err)
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
	n, err := processors.WriteHeartbeats(bs, *topic, targets, ms)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "wrote %d heartbeats at %s into %s\n", n, time.UnixMilli(ms).UTC().Format(time.RFC3339Nano), *topic)
	return err
}
