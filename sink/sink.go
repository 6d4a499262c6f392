// Package sink lands the rides topic in PostgreSQL exactly once.
//
// It is a plain sarama consumer group, not a goka processor. Each claimed
// partition is decoded and classified in offset order by the pure window rule
// (its stream time is part of the sink's durable progress), and a single
// writer commits batches of rows from many partitions in one transaction:
// COPY into per-connection staging tables, INSERT … SELECT ORDER BY key ON
// CONFLICT DO NOTHING into the real tables, and the per-partition progress
// (next offset, stream time, counters) upserted in the same transaction. On
// every assignment the sink seeks to the offsets stored in PostgreSQL, so
// kill -9 at any moment loses nothing and duplicates nothing.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/ops"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/stage"
	"github.com/ridestream/ridestream/schema"
)

// Config configures a sink. Zero values take the documented defaults.
type Config struct {
	// Kafka is how the sink reaches the cluster.
	Kafka kafka.Conn
	// Pipeline names the pipeline (its Prefix); the sink takes its input,
	// window rule, topics and groups from the pipeline's record. The
	// settings whose flags are in Set were given explicitly: the sink
	// refuses to start when one differs from the record.
	Pipeline pipeline.Spec
	Set      []string
	// InstanceID enables static group membership when set: a restarted
	// instance with the same id takes its partitions back without waiting for
	// the old session to time out.
	InstanceID string
	// DatabaseURL is the PostgreSQL connection string.
	DatabaseURL string
	// BatchRows is how many rows a transaction carries at most (default 10000).
	BatchRows int
	// FlushInterval bounds how long a row waits for its batch (default 200ms).
	FlushInterval time.Duration
	// SessionTimeout of the consumer group membership (default 10s).
	SessionTimeout time.Duration
	// Logger receives structured logs (default slog.Default()).
	Logger *slog.Logger
	// Ready, when set, tracks the conditions of /readyz: "pipeline",
	// "postgres", "kafka" and "kafka-finals".
	Ready *ops.Readiness
}

func (c *Config) withDefaults() {
	if c.BatchRows <= 0 {
		c.BatchRows = 10000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 200 * time.Millisecond
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration error naming the flag.
func (c Config) Validate() error {
	switch {
	case c.DatabaseURL == "":
		return errors.New("--database-url: must not be empty")
	case c.BatchRows < 0:
		return fmt.Errorf("--batch-rows %d: must be positive", c.BatchRows)
	case c.FlushInterval < 0:
		return fmt.Errorf("--flush-interval %v: must be positive", c.FlushInterval)
	}
	if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		return fmt.Errorf("--database-url: %w", err)
	}
	if err := c.Kafka.Validate(); err != nil {
		return err
	}
	return c.Pipeline.Validate()
}

// shutdownGrace bounds the final flush after the context is cancelled.
const shutdownGrace = 15 * time.Second

// Run consumes until ctx is cancelled, then flushes what the writer holds and
// returns. Errors from PostgreSQL are retried with backoff, never dropped.
func Run(ctx context.Context, cfg Config) error {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.Logger.With("component", "sink", "pipeline", cfg.Pipeline.Prefix)

	pool, err := OpenPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := retry(ctx, log, cfg.Ready, "apply migrations", func(ctx context.Context) error {
		return MigratePool(ctx, pool)
	}); err != nil {
		return err
	}
	cfg.Ready.Set("postgres", "")

	// The brokers may be down at start; once one answers, a wrong setting
	// ends the sink, naming the flags, instead of being retried for ever.
	if err := cfg.Kafka.Await(ctx, 5*time.Second, func(err error) {
		cfg.Ready.Report(kafka.ReadyBrokers)(err)
		if err != nil {
			log.Warn("Kafka not reachable; retrying", "err", err)
		}
	}); err != nil {
		return err
	}
	var client sarama.Client
	var admin sarama.ClusterAdmin
	if err := retry(ctx, log, nil, "connect to Kafka", func(context.Context) error {
		var err error
		if client, err = cfg.Kafka.NewClient("ridestream-sink-admin"); err == nil {
			if admin, err = sarama.NewClusterAdminFromClient(client); err != nil {
				client.Close()
			}
		}
		return err
	}); err != nil {
		return err
	}
	defer admin.Close() // and its client
	// Nothing is landed before the pipeline's record says how to classify it.
	cfg.Ready.Set("pipeline", "waiting for the record of pipeline "+cfg.Pipeline.Prefix)
	waiting := ops.NewWaitLog(log, 30*time.Second)
	spec, err := kafka.AwaitSpec(ctx, client, admin, cfg.Pipeline, cfg.Set, 2*time.Second, func(why error) {
		waiting.Say("waiting for the pipeline's record before landing anything", "reason", why.Error())
	})
	if err != nil {
		return err
	}
	cfg.Ready.Set("pipeline", "")
	names := spec.Names()
	log.Info("pipeline", "spec", spec.Summary())
	// The pipeline's tables: claimed in ridestream_tables (a table of
	// another pipeline is refused) and created from its aggregations.
	tables := newAggTables(spec.Aggs())
	var owned error
	if err := retry(ctx, log, cfg.Ready, "create the pipeline's tables", func(ctx context.Context) error {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return ensureTables(ctx, tx, spec) })
		var oe *OwnershipError
		if errors.As(err, &oe) || (err != nil && strings.Contains(err.Error(), "was made for")) {
			owned = err // a setting, not an outage: not retried
			return nil
		}
		return err
	}); err != nil {
		return err
	}
	if owned != nil {
		return owned
	}
	instances := map[string]string{}
	if cfg.InstanceID != "" {
		instances[names.SinkGroup], instances[names.SinkFinalsGroup] = cfg.InstanceID, cfg.InstanceID+"-finals"
	}
	guard, err := kafka.NewInstanceGuard(admin, cfg.InstanceID, instances)
	if err != nil {
		return err
	}
	guard.SetArbiter(names.SinkGroup)
	ctx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()
	var background sync.WaitGroup
	background.Go(func() {
		if guard.Wait(ctx) != nil {
			stopConsumers() // another live sink holds --instance-id: stop
		}
	})
	background.Go(func() { cfg.Ready.Watch(ctx, kafka.ReadyBrokers, 5*time.Second, cfg.Kafka.Check) })
	// The writer outlives ctx by shutdownGrace so the last batch commits.
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriter()
	w := newWriter(pool, cfg.BatchRows, cfg.FlushInterval, log, cfg.Ready, tables)
	var writerGroup errgroup.Group
	writerGroup.Go(func() error { return w.run(writerCtx) })

	// Raw input and finals are two consumer groups with fixed subscriptions:
	// raw input never waits for the processors, and the finals group joins
	// once the processors have created their topic. (One group whose
	// subscription grows does not work with static membership: a static
	// member that rejoins keeps its old assignment.)
	var consumers errgroup.Group
	consumers.Go(func() error {
		return consume(ctx, cfg, spec, guard, log, w, pool, names.SinkGroup, cfg.InstanceID, names.Input)
	})
	cfg.Ready.Set("kafka-finals", "waiting for the finals topic")
	consumers.Go(func() error {
		waiting := ops.NewWaitLog(log, time.Minute)
		for !topicExists(admin, names.Finals) {
			waiting.Say("finals topic not there yet (the processors create it); landing raw input until it appears", "finals_topic", names.Finals)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
		}
		instance := ""
		if cfg.InstanceID != "" {
			instance = cfg.InstanceID + "-finals"
		}
		return consume(ctx, cfg, spec, guard, log, w, pool, names.SinkFinalsGroup, instance, names.Finals)
	})
	consumeErr := consumers.Wait()
	stopConsumers()
	background.Wait()
	flushCtx, cancel := context.WithTimeout(writerCtx, shutdownGrace)
	ferr := w.flush(flushCtx)
	cancel()
	stopWriter()
	werr := writerGroup.Wait()
	log.Info("sink stopped")
	return errors.Join(guard.Fired(), consumeErr, ferr, werr)
}

// consume runs one consumer group over topic until ctx ends, rejoining after
// errors, and closes it.
func consume(ctx context.Context, cfg Config, spec pipeline.Spec, guard *kafka.InstanceGuard, log *slog.Logger, w *writer, pool *pgxpool.Pool, group, instance, topic string) error {
	sc := cfg.Kafka.Config("ridestream-sink")
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Return.Errors = true
	sc.Consumer.Group.Session.Timeout = cfg.SessionTimeout
	sc.Consumer.Group.Heartbeat.Interval = cfg.SessionTimeout / 4
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}
	// Bounded buffering: at most this many fetched messages wait per partition.
	sc.ChannelBufferSize = 64
	if instance != "" {
		sc.Consumer.Group.InstanceId = instance
	}
	log = log.With("group", group)
	finals := topic == spec.Names().Finals
	ready := "kafka"
	if finals {
		ready = "kafka-finals"
	}
	h := &handler{cfg: cfg, spec: spec, stages: stage.New(spec), finals: finals, w: w, pool: pool, log: log, ready: ready, state: map[topicPartition]*partitionState{}}
	for ctx.Err() == nil {
		var cg sarama.ConsumerGroup
		if err := retry(ctx, log, nil, "join consumer group", func(context.Context) error {
			inner, err := sarama.NewConsumerGroup(cfg.Kafka.Brokers, group, sc)
			if err == nil {
				cg = kafka.NewGuardedGroup(inner, group, guard)
			}
			return err
		}); err != nil {
			return nil // ctx ended before Kafka was reachable
		}
		go func() {
			for err := range cg.Errors() {
				log.Warn("consumer group error", "err", err)
			}
		}()
		err := consumeSessions(ctx, cg, topic, h, log)
		h.cfg.Ready.Set(h.ready, "rejoining the consumer group")
		if cerr := cg.Close(); cerr != nil {
			return fmt.Errorf("close consumer group %s: %w", group, cerr)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// consumeSessions runs cg's sessions until ctx ends, cg is closed, or the
// member was fenced: another member joined with its static id, and only a
// new consumer group (a new member id) can join again.
func consumeSessions(ctx context.Context, cg sarama.ConsumerGroup, topic string, h *handler, log *slog.Logger) error {
	for ctx.Err() == nil {
		err := cg.Consume(ctx, []string{topic}, h)
		switch {
		case err == nil:
			continue
		case errors.Is(err, sarama.ErrClosedConsumerGroup):
			return nil
		case errors.Is(err, sarama.ErrFencedInstancedId):
			log.Warn("fenced by a member with the same --instance-id; joining again", "err", err)
			return nil
		}
		log.Warn("consume session ended, rejoining", "err", err)
		h.cfg.Ready.Set(h.ready, "consumer group: "+err.Error())
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// partitionState is the in-order state of one claimed partition.
type partitionState struct {
	progress progress
	// classifier decides the raw input's records (nil for the finals).
	classifier *classifier
}

// handler implements sarama.ConsumerGroupHandler.
type handler struct {
	cfg    Config
	spec   pipeline.Spec
	stages *stage.Pipeline
	finals bool // the group consumes the finals topic
	w      *writer
	pool   *pgxpool.Pool
	log    *slog.Logger
	// ready names the group's /readyz condition: kafka or kafka-finals.
	ready string

	mu    sync.Mutex
	state map[topicPartition]*partitionState
}

type topicPartition struct {
	topic     string
	partition int32
}

// Setup loads each claimed partition's progress from PostgreSQL and moves the
// session's offsets to it, forward or back.
func (h *handler) Setup(sess sarama.ConsumerGroupSession) error {
	loaded := map[topicPartition]progress{}
	for topic, parts := range sess.Claims() {
		err := retry(sess.Context(), h.log, h.cfg.Ready, "load sink progress", func(ctx context.Context) error {
			got, err := loadProgress(ctx, h.pool, topic, parts)
			for _, pr := range got {
				loaded[topicPartition{topic, pr.partition}] = pr
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.state)
	for topic, parts := range sess.Claims() {
		for _, p := range parts {
			tp := topicPartition{topic, p}
			pr, ok := loaded[tp]
			if !ok {
				pr = progress{topic: topic, partition: p, next: -1}
				sess.ResetOffset(topic, p, sarama.OffsetOldest, "")
			} else {
				sess.MarkOffset(topic, p, pr.next, "")
				sess.ResetOffset(topic, p, pr.next, "")
			}
			ps := &partitionState{progress: pr}
			if !h.finals {
				ps.classifier = newClassifier(h.stages, h.spec.Decode, pr)
			}
			h.state[tp] = ps
		}
	}
	h.log.Info("partitions assigned", "claims", sess.Claims(), "generation", sess.GenerationID())
	h.cfg.Ready.Set(h.ready, "")
	h.cfg.Ready.Set(kafka.ReadyBrokers, "") // a session was joined: a broker answers
	return nil
}

// Cleanup commits everything handed to the writer before the partitions move.
func (h *handler) Cleanup(sess sarama.ConsumerGroupSession) error {
	h.cfg.Ready.Set(h.ready, "rebalancing")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(sess.Context()), shutdownGrace)
	defer cancel()
	if err := h.w.flush(ctx); err != nil {
		h.log.Warn("flush before releasing partitions", "err", err)
	}
	// Another member may take these partitions: their lag is its to report
	// now, so a sum over sinks counts each partition once.
	for topic, parts := range sess.Claims() {
		for _, p := range parts {
			metricLag.DeleteLabelValues(topic, strconv.Itoa(int(p)))
		}
	}
	return nil
}

// chunkRows is how many records a claim hands to the writer at once.
const chunkRows = 2000

// ConsumeClaim decodes and classifies one partition in offset order.
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	h.mu.Lock()
	st := h.state[topicPartition{claim.Topic(), claim.Partition()}]
	h.mu.Unlock()
	if st == nil {
		return fmt.Errorf("claim for unassigned partition %d", claim.Partition())
	}
	pr := st.progress
	c := newChunk(sess, pr)
	tick := time.NewTicker(h.cfg.FlushInterval / 2)
	defer tick.Stop()
	send := func() bool {
		if c.records == 0 {
			return true
		}
		select {
		case h.w.in <- c:
			c = newChunk(sess, c.progress)
			return true
		case <-sess.Context().Done():
			return false
		}
	}
	fetched := false // since the last tick: evidence that a broker answers
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				send()
				return nil
			}
			fetched = true
			if pr.next >= 0 && msg.Offset < pr.next {
				continue // applied before; PostgreSQL is the source of truth
			}
			if h.finals {
				if err := c.addFinal(h.stages.Aggs, msg); err != nil {
					// Our own topic: a row that does not parse is a bug, not input.
					h.log.Error("skipping unreadable finals record", "partition", msg.Partition, "offset", msg.Offset, "err", err)
				}
			} else {
				c.add(st.classifier, msg)
			}
			pr = c.progress
			if c.records >= chunkRows && !send() {
				return nil
			}
		case <-tick.C:
			if fetched {
				h.cfg.Ready.Set(kafka.ReadyBrokers, "")
				fetched = false
			}
			if pr.next >= 0 {
				metricLag.WithLabelValues(claim.Topic(), strconv.Itoa(int(claim.Partition()))).Set(float64(claim.HighWaterMarkOffset() - pr.next))
			}
			if !send() {
				return nil
			}
		case <-sess.Context().Done():
			return nil
		}
	}
}

func topicExists(admin sarama.ClusterAdmin, topic string) bool {
	md, err := admin.DescribeTopics([]string{topic})
	return err == nil && len(md) == 1 && md[0].Err == sarama.ErrNoError
}

// OpenPool connects to PostgreSQL with the staging tables the sink needs
// created on every new connection.
func OpenPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("--database-url: %w", err)
	}
	pc.MaxConns = 4
	pc.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		registerCents(conn.TypeMap())
		_, err := conn.Exec(ctx, stagingDDL)
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open postgres pool: %w", err)
	}
	return pool, nil
}

// MigratePool applies the schema migrations on one pooled connection, in
// the first schema of the URL's search_path (created when missing): two
// pipelines share a database in two schemas.
func MigratePool(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect for migrations: %w", err)
	}
	defer conn.Release()
	if path := pool.Config().ConnConfig.RuntimeParams["search_path"]; path != "" {
		first := strings.TrimSpace(strings.Split(path, ",")[0])
		if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{first}.Sanitize()); err != nil {
			return fmt.Errorf("create schema %s (search_path): %w", first, err)
		}
	}
	_, err = schema.Migrate(ctx, conn.Conn())
	return err
}

// retry runs fn until it succeeds or ctx ends, backing off from 200ms to 10s
// and logging each failure once.
func retry(ctx context.Context, log *slog.Logger, ready *ops.Readiness, what string, fn func(context.Context) error) error {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			if attempt > 1 {
				log.Info("recovered", "op", what, "attempts", attempt)
				metricRetrying.Set(0)
				ready.Set("postgres", "")
			}
			return nil
		}
		metricRetrying.Set(1)
		ready.Set("postgres", what+" failing: "+err.Error())
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		log.Warn("retrying", "op", what, "attempt", attempt, "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}
