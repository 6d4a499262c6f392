package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"golang.org/x/sync/errgroup"

	"github.com/ridestream/ridestream/internal/envflag"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/ops"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/processors"
	"github.com/ridestream/ridestream/sink"
	"github.com/ridestream/ridestream/views"
)

func runProcess(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("process", stderr)
	kafkaConn := kafkaFlags(fs)
	stages := fs.String("stages", "all", "stages to run here: all, or a list of route,clock,watermark,windows")
	instance := fs.String("instance-id", "", "static group membership id, one per instance (a restart takes its partitions back at once)")
	session := fs.Duration("session-timeout", 10*time.Second, "consumer group session timeout")
	httpAddr := fs.String("http-addr", "", "serve /healthz, /readyz and /metrics here, e.g. :8080 (empty: off)")
	pprof := pprofFlag(fs)
	idle := fs.Duration("idle-heartbeat", 0, "live mode: write a heartbeat into an input partition idle this long (wall clock) that holds back windows (0: off)")
	repl := fs.Int("replication", 0, "replication factor of the topics the pipeline creates (0: the cluster's default.replication.factor)")
	batchMax := fs.Int("batch-max", 1000, "input records of one partition that route sends the clock stage in one message")
	linger := fs.Duration("batch-linger", 20*time.Millisecond, "longest a record waits for its batch (adds at most this to the finals' latency)")
	lag := fs.Duration("lag-interval", 10*time.Second, "how often each stage's consumer lag is read from Kafka for /metrics")
	pipe := pipelineFlags(fs, "the first start records them in the pipeline's record; later starts use the record and refuse a flag that differs from it")
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
	spec, set, err := pipe()
	if err != nil {
		return err
	}
	st, err := processors.ParseStages(*stages)
	if err != nil {
		return err
	}
	cfg := processors.Config{Spec: spec, Kafka: conn, Replication: int16(*repl), InstanceID: *instance,
		IdleHeartbeat: *idle, BatchMax: *batchMax, BatchLinger: *linger, LagInterval: *lag, SessionTimeout: *session, Logger: log}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := checkKafka(ctx, log, conn, true); err != nil {
		return err
	}
	cfg.Ready = ops.NewReadiness(append(st, "pipeline", kafka.ReadyBrokers)...)
	return runWithOps(ctx, ops.Server{Addr: *httpAddr, Ready: cfg.Ready, Log: log, Metrics: processors.Metrics, Pprof: *pprof}, func(ctx context.Context) error {
		go cfg.Ready.Watch(ctx, kafka.ReadyBrokers, 5*time.Second, conn.Check)
		// The cluster may be down or electing leaders: that is waited
		// out; a wrong setting or a drifting spec ends the command.
		waiting := ops.NewWaitLog(log, 10*time.Second)
		var t *processors.Topology
		err := kafka.RetryTransient(ctx, func(err error) {
			cfg.Ready.Set("pipeline", "waiting for the cluster: "+err.Error())
			waiting.Say("the cluster does not answer yet; retrying", "err", err)
		}, func() error {
			err := conn.WithCluster(cfg.Prefix+"-admin", func(client sarama.Client, admin sarama.ClusterAdmin) error {
				var err error
				cfg.Spec, err = kafka.ResolveSpec(client, admin, spec, set, true, cfg.Replication)
				return err
			})
			if err != nil {
				return err
			}
			t, err = processors.Setup(cfg)
			return err
		})
		if err != nil {
			return err
		}
		cfg.Ready.Set("pipeline", "")
		log.Info("pipeline", "prefix", cfg.Prefix, "spec", cfg.Spec.Summary())
		return processors.Run(ctx, t, st)
	})
}

// runWithOps runs fn beside the ops HTTP server; both stop when either ends.
func runWithOps(ctx context.Context, srv ops.Server, fn func(context.Context) error, routes ...ops.Route) error {
	g, ctx := errgroup.WithContext(ctx)
	ctx, cancel := context.WithCancel(ctx)
	g.Go(func() error { defer cancel(); return fn(ctx) })
	g.Go(func() error { return ops.Serve(ctx, srv, routes...) })
	return g.Wait()
}

func runViews(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("views", stderr)
	kafkaConn := kafkaFlags(fs)
	httpAddr := fs.String("http-addr", ":8090", "serve the chart page (/), /api/windows, /api/partitions, /healthz, /readyz and /metrics here")
	pprof := pprofFlag(fs)
	dbURL := databaseFlags(fs)
	pipe := pipelineFlags(fs, "views take them from the pipeline's record and refuse a flag that differs from it")
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
	given, set, err := pipe()
	if err != nil {
		return err
	}
	if *httpAddr == "" {
		return errors.New("--http-addr: must not be empty")
	}
	url, err := dbURL(args)
	if err != nil {
		return err
	}
	if url == "" {
		return errors.New("--database-url: required (the final windows, window_status and the partitions' progress are read from the pipeline's PostgreSQL)")
	}
	if err := checkKafka(ctx, log, conn, false); err != nil {
		return err
	}
	pool, err := sink.OpenPool(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	ready := ops.NewReadiness("pipeline", "view", kafka.ReadyBrokers)
	var api lateHandler // the views' handler, once the pipeline's record is read
	return runWithOps(ctx, ops.Server{Addr: *httpAddr, Ready: ready, Log: log, Metrics: views.Metrics, Pprof: *pprof}, func(ctx context.Context) error {
		go ready.Watch(ctx, kafka.ReadyBrokers, 5*time.Second, conn.Check)
		var spec pipeline.Spec
		err := conn.WithCluster(given.Prefix+"-views", func(client sarama.Client, admin sarama.ClusterAdmin) error {
			ready.Set("pipeline", "waiting for the record of pipeline "+given.Prefix)
			var err error
			waiting := ops.NewWaitLog(log, 30*time.Second)
			spec, err = kafka.AwaitSpec(ctx, client, admin, given, set, 2*time.Second, func(why error) {
				waiting.Say("waiting for the pipeline's record", "reason", why.Error())
			})
			if err != nil {
				return err
			}
			// The first process records the pipeline, then creates its
			// topics: views started beside it wait for the window table.
			table := spec.Names().WindowsTable
			waiting = ops.NewWaitLog(log, 30*time.Second)
			for {
				// A failed look is retried: the broker may be restarting.
				if client.RefreshMetadata() == nil {
					if topics, err := client.Topics(); err == nil && slices.Contains(topics, table) {
						return nil
					}
				}
				ready.Set("view", "waiting for the processors to create "+table)
				waiting.Say("waiting for the processors to create the window table", "topic", table)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
			}
		})
		if err != nil {
			return err
		}
		ready.Set("pipeline", "")
		client, err := conn.NewClient(spec.Prefix + "-views-offsets")
		if err != nil {
			return err
		}
		defer client.Close()
		top := processors.NewTopology(processors.Config{Spec: spec, Kafka: conn})
		// A view fails when its partitions' leaders go away for longer than
		// its client retries (a broker down): it is opened again and
		// recovers, and /readyz says so meanwhile.
		for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
			v, err := views.NewWindows(top)
			if err != nil {
				return err
			}
			v.WithDatabase(pool, client)
			ready.Set("view", "recovering the window table")
			viewCtx, stop := context.WithCancel(ctx)
			go func() {
				for viewCtx.Err() == nil && !v.Recovered() {
					time.Sleep(200 * time.Millisecond)
				}
				if viewCtx.Err() == nil {
					ready.Set("view", "")
				}
			}()
			api.set(v.Handler())
			start := time.Now()
			err = v.Run(viewCtx)
			stop()
			if ctx.Err() != nil {
				return nil
			}
			if time.Since(start) > time.Minute {
				backoff = time.Second
			}
			ready.Set("view", fmt.Sprintf("the view of the window table failed (%v); opening it again", err))
			log.Warn("the view failed; opening it again", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
		}
	}, ops.Route{Pattern: "/api/", Handler: &api}, ops.Route{Pattern: "/{$}", Handler: &api})
}

// lateHandler serves 503 until set gives it the handler to serve with.
type lateHandler struct{ h atomic.Pointer[http.Handler] }

func (l *lateHandler) set(h http.Handler) { l.h.Store(&h) }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := l.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.Error(w, "waiting for the pipeline's record", http.StatusServiceUnavailable)
}

// pprofFlag is --pprof: Go profiles on --http-addr, off unless asked for.
func pprofFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("pprof", false, "also serve Go profiles at /debug/pprof/ on --http-addr")
}
