package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ridestream/ridestream/internal/pipeline"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"golang.org/x/sync/errgroup"

	"github.com/ridestream/ridestream/internal/kafka"
)

// Run runs the given stages (default all) until ctx is cancelled. Each stage
// is a goka processor restarted with backoff when it fails; goka recovers its
// state from the changelog (memory storage: local state is never ahead of
// what Kafka holds).
func Run(ctx context.Context, t *Topology, stages []string) error {
	if len(stages) == 0 {
		stages = AllStages
	}
	graphs := map[string]func() *goka.GroupGraph{
		StageRoute: t.RouteGraph, StageClock: t.ClockGraph, StageWatermark: t.WatermarkGraph, StageWindows: t.WindowsGraph,
	}
	defer t.repairer.close()
	for _, s := range stages {
		if graphs[s] == nil {
			return fmt.Errorf("--stages: unknown stage %q (want %s)", s, strings.Join(AllStages, ","))
		}
	}
	// Duplicates run the same stages: the first in topology order arbitrates.
	t.guard.SetArbiter(t.stageGroup(AllStages[slices.IndexFunc(AllStages, func(s string) bool { return slices.Contains(stages, s) })]))
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range stages {
		g.Go(func() error { return t.runStage(ctx, s, graphs[s]) })
	}
	g.Go(func() error { return t.guard.Wait(ctx) })
	g.Go(func() error { t.logProgress(ctx, 10*time.Second); return nil })
	g.Go(func() error { t.exportLag(ctx, stages, t.LagInterval); return nil })
	if t.IdleHeartbeat > 0 && slices.Contains(stages, StageClock) {
		g.Go(func() error { return t.runIdleHeartbeats(ctx, t.IdleHeartbeat) })
	}
	return g.Wait()
}

func (t *Topology) runStage(ctx context.Context, stage string, graph func() *goka.GroupGraph) error {
	log := t.Logger.With("component", "processor", "stage", stage)
	backoff := time.Second
	for {
		start := time.Now()
		p, err := goka.NewProcessor(t.Kafka.Brokers, graph(), t.gokaOptions(stage, log)...)
		var finish func()
		if err == nil && stage == StageRoute {
			finish, err = t.startBatcher()
		}
		if err == nil {
			log.Info("processor starting", "sources", t.Sources)
			runCtx, stop := context.WithCancel(ctx)
			followed := make(chan struct{})
			go func() { defer close(followed); t.followState(runCtx, stage, p.StateReader()) }()
			err = p.Run(runCtx)
			stop()
			<-followed
		}
		if finish != nil {
			finish()
		}
		why := "restarting"
		if err != nil {
			why = "restarting after: " + err.Error()
		}
		t.Ready.Set(stage, why)
		if ctx.Err() != nil {
			log.Info("processor stopped")
			return nil
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		log.Warn("processor failed, restarting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// followState keeps the stage's /readyz condition equal to its processor's
// state until ctx ends: ready while it runs a consumer group session with
// its tables recovered, not ready (saying why) while it sets one up or sits
// between sessions. A running session is also evidence that a broker
// answers.
func (t *Topology) followState(ctx context.Context, stage string, state goka.StateReader) {
	obs := state.ObserveStateChange()
	defer obs.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-obs.C():
			switch s {
			case goka.ProcStateRunning:
				t.Ready.Set(stage, "")
				t.Ready.Set(kafka.ReadyBrokers, "")
			case goka.ProcStateSetup:
				t.Ready.Set(stage, "joining its consumer group and recovering its tables")
			case goka.ProcStateStopping, goka.ProcStateStopped:
				t.Ready.Set(stage, "between consumer group sessions (rebalancing or reconnecting)")
			default:
				t.Ready.Set(stage, "starting")
			}
		}
	}
}

// startBatcher gives route a batcher writing to the clock topic, and its
// acknowledgements to the watermark stage, with goka emitters of their own
// (same producer settings and partitioner as the processors). finish
// flushes what is left and closes the emitters; call it after the
// processor stopped.
func (t *Topology) startBatcher() (finish func(), err error) {
	emitter := func(topic string, codec goka.Codec, client string) (*goka.Emitter, error) {
		return goka.NewEmitter(t.Kafka.Brokers, goka.Stream(topic), codec,
			goka.WithEmitterClientID(client),
			goka.WithEmitterHasher(kafka.KafkaHasher),
			goka.WithEmitterProducerBuilder(goka.ProducerBuilderWithConfig(t.saramaConfig(client))))
	}
	em, err := emitter(t.Clock, pipeline.ClockBatchCodec{Wire: t.Wire}, t.Prefix+"-route-batches")
	if err != nil {
		return nil, fmt.Errorf("clock batch emitter: %w", err)
	}
	acks, err := emitter(t.Watermark, pipeline.WatermarkMsgCodec{Wire: t.Wire}, t.Prefix+"-route-acks")
	if err != nil {
		em.Finish()
		return nil, fmt.Errorf("acknowledgement emitter: %w", err)
	}
	t.route.mu.Lock()
	t.route.ack = func(a pipeline.Ack) {
		if _, err := acks.Emit(pipeline.WatermarkKey, a); err != nil {
			t.Logger.Warn("acknowledgement to the watermark stage", "err", err)
		}
	}
	t.route.mu.Unlock()
	b := newBatcher(t.BatchMax, t.ClockKeys, func(key string, m pipeline.ClockBatch) (*goka.Promise, error) { return em.Emit(key, m) })
	t.batch.Store(b)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		b.run(t.BatchLinger, stop)
	}()
	return func() {
		close(stop)
		<-done
		t.route.mu.Lock()
		t.route.ack = nil
		t.route.mu.Unlock()
		if err := errors.Join(em.Finish(), acks.Finish()); err != nil {
			t.Logger.Warn("route's emitters", "err", err)
		}
	}, nil
}

// gokaOptions hardens goka for the contract (docs/design.md, "goka
// hardening"): the idempotent
// producer with one request in flight, Kafka's murmur2 partitioning, new
// groups from the oldest offset, commits of contiguous prefixes only, static
// membership, configurable replication, memory storage.
func (t *Topology) gokaOptions(stage string, log *slog.Logger) []goka.ProcessorOption {
	clientID := t.Prefix + "-" + stage
	cfg := func() *sarama.Config { return t.saramaConfig(clientID) }
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = int(t.Replication)
	tmc.Stream.Replication = int(t.Replication)
	tmc.Stream.Retention = 7 * 24 * time.Hour
	return []goka.ProcessorOption{
		goka.WithClientID(clientID),
		goka.WithHasher(kafka.KafkaHasher),
		goka.WithStorageBuilder(storage.MemoryBuilder()),
		goka.WithNilHandling(goka.NilProcess),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(cfg())),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(cfg())),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cfg(), tmc)),
		goka.WithConsumerGroupBuilder(func(brokers []string, group, _ string) (sarama.ConsumerGroup, error) {
			c := cfg()
			c.Consumer.Return.Errors = true // goka logs them; the instance guard watches for fencing
			if t.InstanceID != "" {
				c.Consumer.Group.InstanceId = t.stageInstance(stage)
			}
			cg, err := sarama.NewConsumerGroup(brokers, group, c)
			if err != nil {
				return nil, err
			}
			pg := kafka.PrefixCommitGroup{ConsumerGroup: kafka.NewGuardedGroup(cg, group, t.guard)}
			switch stage {
			case StageRoute:
				wm := kafka.Partition([]byte(pipeline.WatermarkKey), t.Sources)
				pg.OnMark = func(topic string, partition int32, next int64) {
					if topic == t.WatermarkTable && partition == wm {
						t.route.committed(next)
					}
				}
			case StageWindows:
				pg.OnMark = func(topic string, partition int32, next int64) {
					if topic == t.Windows {
						t.commits.set(partition, next)
					}
				}
			}
			return pg, nil
		}),
		goka.WithLogger(gokaLogger{log}),
		goka.WithRebalanceCallback(func(a goka.Assignment) {
			parts := make([]int32, 0, len(a))
			for p := range a {
				parts = append(parts, p)
			}
			slices.Sort(parts)
			if len(parts) == 0 {
				log.Warn("no partitions assigned to this instance in this generation")
			} else {
				log.Info("partitions assigned", "partitions", parts)
			}
			switch stage {
			case StageClock:
				t.owned.set(a)
			case StageRoute:
				t.route.reset() // a new session: predecessors are unknown again
			}
		}),
	}
}

// stageInstance is the static membership id of a stage's group member.
func (t *Topology) stageInstance(stage string) string { return t.InstanceID + "-" + stage }

// stageGroup is the consumer group of a stage.
func (t *Topology) stageGroup(stage string) string {
	group, _ := t.stageInputs(stage)
	return group
}

func (t *Topology) saramaConfig(clientID string) *sarama.Config {
	c := t.Kafka.Config(clientID)
	// Retry a write for minutes before giving up: a gap would break the
	// prefix rule. (sarama sizes per-partition state by Retry.Max, so
	// the backoff grows instead of the count.)
	c.Producer.Retry.Max = 100
	c.Producer.Retry.BackoffFunc = func(retries, _ int) time.Duration {
		return min(250*time.Millisecond<<min(retries, 5), 5*time.Second)
	}
	// Without a reachable broker sarama fails messages once metadata
	// retries run out: ride out outages of minutes here too.
	c.Metadata.Retry.Max = 100
	c.Metadata.Retry.BackoffFunc = c.Producer.Retry.BackoffFunc
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Interval = 250 * time.Millisecond
	c.Consumer.Group.Session.Timeout = t.SessionTimeout
	c.Consumer.Group.Heartbeat.Interval = t.SessionTimeout / 4
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	return c
}

// ViewOptions configures a goka view the way the processors write their
// tables: murmur2 partitioning, memory storage, Kafka ≥ 3.6 protocol, oldest
// offset.
func ViewOptions(conn kafka.Conn, clientID string) []goka.ViewOption {
	cfg := conn.Config(clientID)
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	return []goka.ViewOption{
		goka.WithViewHasher(kafka.KafkaHasher),
		goka.WithViewStorageBuilder(storage.MemoryBuilder()),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(cfg)),
		goka.WithViewTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cfg, goka.NewTopicManagerConfig())),
	}
}

// gokaLogger sends goka's logs to slog at debug level.
type gokaLogger struct{ log *slog.Logger }

func (l gokaLogger) Print(v ...any)                 { l.log.Debug(fmt.Sprint(v...)) }
func (l gokaLogger) Println(v ...any)               { l.log.Debug(fmt.Sprint(v...)) }
func (l gokaLogger) Printf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

// ParseStages splits a --stages value.
func ParseStages(s string) ([]string, error) {
	if s == "" || s == "all" {
		return AllStages, nil
	}
	var out []string
	for _, st := range strings.Split(s, ",") {
		st = strings.TrimSpace(st)
		if !slices.Contains(AllStages, st) {
			return nil, fmt.Errorf("--stages: unknown stage %q (want all or a list of %s)", st, strings.Join(AllStages, ","))
		}
		out = append(out, st)
	}
	if len(out) == 0 {
		return nil, errors.New("--stages: empty")
	}
	return out, nil
}
