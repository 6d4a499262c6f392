package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/pgserver"
)

// clusterRuns are the end-to-end runs on a multi-broker cluster.
type clusterRuns struct {
	runs []e2eResult // by elapsed time
	// replication is the factor the input topic got from the cluster's
	// default (the pipeline's topics get the same: --replication is left
	// at 0).
	replication int
}

// runCluster repeats the end-to-end measurement on a cluster of
// c.clusterNodes brokers started for it (c.kafkaScript start-cluster: each
// node broker and controller, default.replication.factor 3,
// min.insync.replicas 2), on the same rides produced to a topic there. The
// single broker keeps running meanwhile, idle.
func runCluster(ctx context.Context, c config, pg *pgserver.Server, w generate.Config, finals map[model.RowKey]model.Row,
	log *slog.Logger, say func(string, ...any)) (clusterRuns, error) {
	var res clusterRuns
	dir, err := os.MkdirTemp("", "ridestream-bench-cluster-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	say("starting a %d-broker cluster (%s start-cluster)", c.clusterNodes, c.kafkaScript)
	start := exec.CommandContext(ctx, c.kafkaScript, "start-cluster", dir, strconv.Itoa(c.clusterNodes))
	start.Stderr = os.Stderr
	out, err := start.Output()
	if err != nil {
		return res, fmt.Errorf("start the cluster: %w", err)
	}
	defer func() {
		stop := exec.Command(c.kafkaScript, "stop-cluster", dir)
		stop.Stderr = os.Stderr
		_ = stop.Run()
	}()
	cc := c
	cc.brokers = strings.TrimSpace(string(out))
	cc.kafka = kafka.Conn{Brokers: strings.Split(cc.brokers, ",")}
	cc.brokerPidFiles = nil
	for i := 1; i <= c.clusterNodes; i++ {
		cc.brokerPidFiles = append(cc.brokerPidFiles, filepath.Join(dir, fmt.Sprintf("node%d", i), "kafka.pid"))
	}
	topic := fmt.Sprintf("bench_rides_cluster_%d", time.Now().Unix())
	if err := createTopic(cc.kafka, topic, w.Partitions); err != nil {
		return res, err
	}
	if err := cc.kafka.WithCluster("bench", func(_ sarama.Client, admin sarama.ClusterAdmin) error {
		factors, _, err := kafka.Replication(admin, []string{topic})
		res.replication = factors[topic]
		return err
	}); err != nil {
		return res, err
	}
	say("producing %d messages to %s on the cluster (replication %d)", w.Count(), topic, res.replication)
	if _, err := generate.Produce(ctx, generate.ProduceOptions{Kafka: cc.kafka, Topic: topic, Total: w.Count(), Logger: log}, w.All); err != nil {
		return res, err
	}
	for i := range c.runs {
		say("end to end on the cluster, run %d of %d", i+1, c.runs)
		r, err := runE2E(ctx, cc, pg, pipelineRun{name: fmt.Sprintf("cluster%d", i), binary: c.binary, finals: finals}, topic, w.Count(), len(finals))
		if err != nil {
			return res, fmt.Errorf("cluster: %w", err)
		}
		res.runs = append(res.runs, r)
		say("end to end on the cluster, run %d: %.0f rides/s", i+1, float64(w.Rides)/r.elapsed.Seconds())
	}
	sortByElapsed(res.runs)
	return res, nil
}

// bigRun is the one end-to-end run of c.bigRides rides.
type bigRun struct {
	e2eResult
	rides, finals int
}

// runBig runs the pipeline end to end once on c.bigRides rides of the same
// shape as w (one topic, single broker), its table compared with the
// model's.
func runBig(ctx context.Context, c config, pg *pgserver.Server, w generate.Config, log *slog.Logger, say func(string, ...any)) (bigRun, error) {
	w.Rides = c.bigRides
	say("big run: the model of %d rides", w.Rides)
	parts := make([][][]byte, w.Partitions)
	for m := range w.All {
		parts[m.Partition] = append(parts[m.Partition], m.Value)
	}
	finals := model.Finals(model.DefaultRule(), model.Run(model.DefaultRule(), parts))[aggregate.DefaultName]
	parts = nil
	runtime.GC()
	topic := fmt.Sprintf("bench_rides_big_%d", time.Now().Unix())
	if err := createTopic(c.kafka, topic, w.Partitions); err != nil {
		return bigRun{}, err
	}
	say("big run: producing %d messages to %s", w.Count(), topic)
	if _, err := generate.Produce(ctx, generate.ProduceOptions{Kafka: c.kafka, Topic: topic, Total: w.Count(), Logger: log}, w.All); err != nil {
		return bigRun{}, err
	}
	say("big run: end to end")
	r, err := runE2E(ctx, c, pg, pipelineRun{name: "big", binary: c.binary, finals: finals}, topic, w.Count(), len(finals))
	if err != nil {
		return bigRun{}, fmt.Errorf("big run: %w", err)
	}
	say("big run: %.0f rides/s", float64(w.Rides)/r.elapsed.Seconds())
	return bigRun{e2eResult: r, rides: w.Rides, finals: len(finals)}, nil
}

// sortByElapsed orders runs from the fastest; the median is the middle one.
func sortByElapsed(runs []e2eResult) {
	slices.SortFunc(runs, func(a, b e2eResult) int { return cmp.Compare(a.elapsed, b.elapsed) })
}
