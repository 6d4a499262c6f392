// Package processors runs a pipeline's windowed aggregations on goka,
// deterministically: every final table is a pure function of the input log
// (docs/contract.md). The transitions are pure functions in
// internal/stage; this package adapts them to goka callbacks.
//
// Four goka processors, each a consumer group that scales out by
// partitions (docs/design.md, "Topology"):
//
//	rides ──route──▶ <p>-clock ──clock──▶ <p>-clock-table (changelog = clock output)
//	                                          │
//	       route ◀────────────────────────────┘
//	         └──▶ <p>-watermark ──watermark──▶ <p>-watermark-table (changelog = its output)
//	                                                  │
//	       route ◀────────────────────────────────────┘
//	         └──▶ <p>-windows ──windows──▶ <p>-finals     (route also writes <p>-late, <p>-rejected)
//
//	  - route (stateless) decodes each input record and sends it, in batches
//	    keyed by its source partition, to the clock topic; undecodable records
//	    go to the rejected topic. It forwards each clock output to the
//	    watermark stage, and each watermark output to the window keys.
//	  - clock keeps per source partition the stream time ST(p), decides each
//	    record (on time or late per aggregation, outlier) and sums the
//	    batch's on-time rides per aggregation: per window and group, or runs
//	    per group for sessions. Its only write is its table value, which
//	    carries those outputs: state and output commit in one Kafka record.
//	  - watermark (one key) keeps every partition's clock, forwards the
//	    partial sums to their window keys, and finalizes what the lowest
//	    stream time has passed by the allowed lateness. It derives clock
//	    outputs that never reached it again from the input.
//	  - windows keeps per tumbling window (and shard) its groups' sums, per
//	    session group its sessions; it emits final rows to the finals topic
//	    and deletes what is final once it is safe (forgotten).
package processors

import (
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/ops"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/stage"
)

// Config configures the processors of one pipeline.
type Config struct {
	// Spec is the pipeline, as recorded (kafka.ResolveSpec): input,
	// aggregations, window rules, names.
	pipeline.Spec
	// Kafka is how every client of the processors reaches the cluster.
	Kafka kafka.Conn
	// Replication of the topics the pipeline creates (0: the cluster's
	// default.replication.factor).
	Replication int16
	// InstanceID enables static group membership (suffixed per stage).
	InstanceID string
	// IdleHeartbeat, when positive, is live mode: see runIdleHeartbeats.
	IdleHeartbeat time.Duration
	// BatchMax records of one input partition go to the clock stage in one
	// message (default 1000); BatchLinger bounds how long a record waits
	// for its batch (default 20ms).
	BatchMax    int
	BatchLinger time.Duration
	// LagInterval is how often the stages' consumer lag is read from Kafka
	// for /metrics (default 10s).
	LagInterval time.Duration
	// SessionTimeout of the consumer groups (default 10s).
	SessionTimeout time.Duration
	Logger         *slog.Logger
	// Ready, when set, tracks one /readyz condition per stage.
	Ready *ops.Readiness
}

func (c *Config) withDefaults() {
	if c.BatchMax == 0 {
		c.BatchMax = 1000
	}
	if c.BatchLinger == 0 {
		c.BatchLinger = 20 * time.Millisecond
	}
	if c.LagInterval == 0 {
		c.LagInterval = 10 * time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration error naming the flag.
func (c Config) Validate() error {
	switch {
	case c.BatchMax < 0 || c.BatchMax > 10000:
		return fmt.Errorf("--batch-max %d: must be within 1..10000", c.BatchMax)
	case c.BatchLinger < 0 || c.BatchLinger > 10*time.Second:
		return fmt.Errorf("--batch-linger %v: must be within 1ms..10s", c.BatchLinger)
	case c.LagInterval < 0:
		return fmt.Errorf("--lag-interval %v: must be positive", c.LagInterval)
	case c.IdleHeartbeat < 0:
		return fmt.Errorf("--idle-heartbeat %v: must not be negative", c.IdleHeartbeat)
	case c.Replication < 0:
		return fmt.Errorf("--replication %d: must be positive, or 0 for the cluster's default.replication.factor", c.Replication)
	}
	if err := c.Kafka.Validate(); err != nil {
		return err
	}
	return c.Spec.Validate()
}

// Topology is a resolved pipeline: names, partition counts, keys, wire
// format and transitions.
type Topology struct {
	Config
	pipeline.Names
	// Sources is the input topic's partition count: finality waits for all.
	Sources int32
	// ClockKeys[p] is the clock key of source partition p; it lands on
	// partition p of the clock topic under Kafka's murmur2 rule.
	ClockKeys []string
	// Aggs are the pipeline's aggregations; Stages their transitions and
	// Wire their messages' encoding.
	Aggs      []aggregate.Aggregation
	Stages    *stage.Pipeline
	Wire      *pipeline.Wire
	keyIndex  map[string]int32
	owned     ownership
	guard     *kafka.InstanceGuard
	route     routeSession             // route's, per session
	batch     atomic.Pointer[batcher]  // route's, while it runs
	commits   commitTracker            // the window stage's committed offsets
	repairer  repairer                 // the clock's and watermark stage's input reader
	purged    map[topicPartition]int64 // exportLag's: stream records deleted before these offsets
	open      openWindows              // the watermark stage's, for metrics
	processed atomic.Int64
}

// ClockKeys returns, for each of n partitions, the first key "p<p>.<k>" that
// Kafka's partitioner places on partition p.
func ClockKeys(n int32) []string {
	keys := make([]string, n)
	for p := int32(0); p < n; p++ {
		for k := 0; ; k++ {
			key := "p" + strconv.Itoa(int(p)) + "." + strconv.Itoa(k)
			if kafka.Partition([]byte(key), n) == p {
				keys[p] = key
				break
			}
		}
	}
	return keys
}

// NewTopology is the pipeline cfg.Spec describes (as recorded: its input
// partition count included): names, partition counts, keys. It does not
// touch Kafka.
func NewTopology(cfg Config) *Topology {
	cfg.withDefaults()
	cfg.Spec = cfg.Spec.Resolved()
	t := &Topology{Config: cfg, Names: cfg.Spec.Names(), Sources: cfg.InputPartitions, Aggs: cfg.Spec.Aggs(),
		Stages: stage.New(cfg.Spec)}
	t.Wire = pipeline.NewWire(t.Aggs)
	t.repairer.t = t
	t.purged = map[topicPartition]int64{}
	if t.WindowPartitions == 0 {
		t.WindowPartitions = t.Sources
	}
	t.ClockKeys = ClockKeys(t.Sources)
	t.keyIndex = make(map[string]int32, len(t.ClockKeys))
	for p, k := range t.ClockKeys {
		t.keyIndex[k] = int32(p)
	}
	return t
}

// Setup validates cfg and creates the pipeline's topics when missing. The
// spec's input partition count was checked against the input topic when the
// spec was resolved (kafka.ResolveSpec); the topics' counts are checked
// here.
func Setup(cfg Config) (*Topology, error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.InputPartitions <= 0 {
		return nil, fmt.Errorf("pipeline %q: no input partition count (the spec must come from its record)", cfg.Prefix)
	}
	t := NewTopology(cfg)
	admin, err := cfg.Kafka.NewAdmin(cfg.Prefix + "-admin")
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	wp, rf := t.WindowPartitions, cfg.Replication
	week := strconv.Itoa(7 * 24 * 3600 * 1000)
	topics := []kafka.Topic{
		// The internal streams keep records until their stage has committed
		// them (exportLag deletes those), never by age: a stage down for
		// weeks resumes where it stopped.
		{Name: t.Clock, Partitions: t.Sources, Replication: rf, CleanupPolicy: "delete", RetentionMs: -1},
		// The clock's and the watermark's changelogs are also route's
		// input: compaction should only remove records route has read (a
		// clock record it missed is derived again from the input).
		{Name: t.ClockTable, Partitions: t.Sources, Replication: rf, CleanupPolicy: "compact",
			Configs: map[string]string{"min.compaction.lag.ms": week}},
		// Co-partitioned with the input: route reads it in the same group.
		{Name: t.Watermark, Partitions: t.Sources, Replication: rf, CleanupPolicy: "delete", RetentionMs: -1},
		{Name: t.WatermarkTable, Partitions: t.Sources, Replication: rf, CleanupPolicy: "compact",
			Configs: map[string]string{"min.compaction.lag.ms": week}},
		{Name: t.Windows, Partitions: wp, Replication: rf, CleanupPolicy: "delete", RetentionMs: -1},
		{Name: t.WindowsTable, Partitions: wp, Replication: rf, CleanupPolicy: "compact"},
		{Name: t.Finals, Partitions: wp, Replication: rf, CleanupPolicy: "delete", RetentionMs: -1},
		{Name: t.Late, Partitions: t.Sources, Replication: rf, CleanupPolicy: "delete", RetentionMs: -1},
		{Name: t.Rejected, Partitions: t.Sources, Replication: rf, CleanupPolicy: "delete", RetentionMs: -1},
	}
	if _, err := kafka.EnsureTopics(admin, topics...); err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", cfg.Prefix, err)
	}
	names := make([]string, 0, len(topics))
	for _, tp := range topics {
		names = append(names, tp.Name)
	}
	if factors, brokers, err := kafka.Replication(admin, names); err != nil {
		cfg.Logger.Warn("could not read the topics' replication", "err", err)
	} else {
		for _, name := range names {
			cfg.Logger.Info("topic", "name", name, "replication", factors[name])
			if factors[name] == 1 && brokers > 1 {
				cfg.Logger.Warn("a topic of the pipeline has one replica on a cluster of several brokers: losing that broker's disk loses the pipeline's state; "+
					"set default.replication.factor on the cluster or --replication", "topic", name, "brokers", brokers)
			}
		}
	}
	instances := map[string]string{}
	if cfg.InstanceID != "" {
		for _, stage := range AllStages {
			instances[t.stageGroup(stage)] = t.stageInstance(stage)
		}
	}
	if t.guard, err = kafka.NewInstanceGuard(admin, cfg.InstanceID, instances); err != nil {
		return nil, err
	}
	return t, nil
}
