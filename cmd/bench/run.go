package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/envflag"
	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/pgserver"
	"github.com/ridestream/ridestream/internal/procstat"
	"github.com/ridestream/ridestream/internal/window"
	"github.com/ridestream/ridestream/sink"
)

type config struct {
	kafka kafka.Conn
	// brokers is kafka's bootstrap list as the child processes take it.
	brokers, binary, out, python string
	// brokerPidFiles are the pid files of the brokers whose CPU is measured.
	brokerPidFiles                 []string
	kstreams, flink, connect       string
	kstreamsThreads, runs          int
	flinkParallelism, connectTasks int
	connectRuns                    int
	// kafkaScript starts the three-node cluster (scripts/kafka4.sh);
	// clusterNodes 0 skips the cluster rows. bigRides 0 skips the big run.
	kafkaScript                    string
	clusterNodes, bigRides         int
	rides, partitions, ceilingRows int
	pythonSeconds, latencySeconds  float64
	latencyHours                   int
	historyDays                    []int
	historyWindows                 []time.Duration
	historyRate                    int
	baseline                       string
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var c config
	kafkaConn := kafka.Flags(fs) // make bench starts Kafka 4 and gives its address
	brokerPidFile := fs.String("broker-pid-file", "", "pid file of the broker, to measure its CPU")
	fs.StringVar(&c.binary, "binary", "bin/ridestream", "the ridestream binary to run")
	fs.StringVar(&c.out, "out", "BENCHMARKS.md", "markdown file for the results")
	fs.IntVar(&c.rides, "rides", 1_000_000, "rides in the end-to-end workload")
	fs.IntVar(&c.partitions, "partitions", 12, "partitions of the input topic")
	fs.IntVar(&c.ceilingRows, "ceiling-rows", 500_000, "rows for the PostgreSQL ceiling")
	fs.StringVar(&c.python, "python", ".cache/bench-venv/bin/python", "python with kafka-python and psycopg2 for the tutorial's consumer")
	fs.StringVar(&c.kstreams, "kstreams", "scripts/kstreams.sh", "script that runs the Kafka Streams peer (bench/kstreams)")
	fs.IntVar(&c.kstreamsThreads, "kstreams-threads", 1, "stream threads of the Kafka Streams peer")
	fs.StringVar(&c.flink, "flink", "scripts/flink.sh", "script that runs the Flink peer (bench/flink)")
	fs.IntVar(&c.flinkParallelism, "flink-parallelism", runtime.NumCPU(), "parallelism of the Flink peer's job (its local environment's default: one per core)")
	fs.StringVar(&c.connect, "connect", "scripts/connect.sh", "script that runs the Kafka Connect peer (bench/connect)")
	fs.IntVar(&c.connectTasks, "connect-tasks", runtime.NumCPU(), "tasks.max of the Kafka Connect peer's JDBC sink")
	fs.IntVar(&c.connectRuns, "connect-runs", 1, "runs of the Kafka Connect peer (slow: one run of the whole workload takes minutes)")
	fs.StringVar(&c.kafkaScript, "kafka-script", "scripts/kafka4.sh", "script that starts the multi-broker cluster")
	fs.IntVar(&c.clusterNodes, "cluster-nodes", 3, "brokers of the cluster the end-to-end run is repeated on, replication from its default (0: skip)")
	fs.IntVar(&c.bigRides, "big-rides", 10_000_000, "rides of the one big end-to-end run, same shape (0: skip)")
	fs.IntVar(&c.runs, "runs", 3, "runs of each throughput measurement (the median is reported)")
	fs.Float64Var(&c.pythonSeconds, "python-seconds", 20, "how long the tutorial's consumer runs")
	fs.Float64Var(&c.latencySeconds, "latency-seconds", 30, "how long input arrives in the latency measurement")
	fs.IntVar(&c.latencyHours, "latency-hours", 240, "event-hours the latency input spans (one window closes every latency-seconds/latency-hours)")
	historyDays := fs.String("history-days", "7,180", "days of history to replay for the state table (empty: skip it)")
	historyWindows := fs.String("history-windows", "1h,5m", "window sizes of the state table")
	fs.IntVar(&c.historyRate, "history-rate", 500, "rides per event-hour in the state table's workloads")
	fs.StringVar(&c.baseline, "baseline-binary", "", "a ridestream binary of an earlier commit to measure beside this one, end to end and processors only")
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	for _, d := range strings.Split(*historyDays, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return fmt.Errorf("--history-days %q: want positive day counts, comma-separated", *historyDays)
		}
		c.historyDays = append(c.historyDays, n)
	}
	for _, w := range strings.Split(*historyWindows, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(w))
		if err != nil || d <= 0 {
			return fmt.Errorf("--history-windows %q: want window sizes, comma-separated", *historyWindows)
		}
		c.historyWindows = append(c.historyWindows, d)
	}
	var err error
	if c.kafka, err = kafkaConn(args); err != nil {
		return err
	}
	if c.kafka.TLS != nil || c.kafka.SASL.Mechanism != "" {
		// The peers it runs (the Python consumer, Kafka Streams) and the
		// processes it starts are given the brokers alone.
		return errors.New("--kafka-tls, --kafka-sasl-mechanism: the bench measures a plaintext broker (make bench starts one)")
	}
	c.brokers = strings.Join(c.kafka.Brokers, ",")
	if *brokerPidFile != "" {
		c.brokerPidFiles = []string{*brokerPidFile}
	}
	if c.runs < 1 {
		return fmt.Errorf("--runs %d: must be at least 1", c.runs)
	}
	if _, err := os.Stat(c.binary); err != nil {
		return fmt.Errorf("--binary: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	say := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...) }

	pg, err := pgserver.Start(ctx, pgserver.Options{})
	if err != nil {
		return err
	}
	defer pg.Stop()
	say("PostgreSQL ceiling with %d ride rows, %d runs", c.ceilingRows, c.runs)
	var copyRates, stagingRates, sinkRates []float64
	for range c.runs {
		ceil, err := sink.MeasureCeiling(ctx, pg.URL, c.ceilingRows, 10000)
		if err != nil {
			return err
		}
		copyRates, stagingRates, sinkRates = append(copyRates, ceil.CopyPerSec), append(stagingRates, ceil.IdempotentPerSec), append(sinkRates, ceil.SinkPerSec)
		say("ceiling: plain COPY %.0f, staging path %.0f, sink path %.0f rows/s", ceil.CopyPerSec, ceil.IdempotentPerSec, ceil.SinkPerSec)
	}

	spec := window.DefaultSpec()
	w := generate.Config{Seed: 11, Rides: c.rides, Partitions: int32(c.partitions), Hours: 24, OutOfOrder: 0.05, Late: 0.01,
		Malformed: 0.005, Lateness: spec.Lateness, Heartbeats: true}
	topic := fmt.Sprintf("bench_rides_%d", time.Now().Unix())
	if err := createTopic(c.kafka, topic, int32(c.partitions)); err != nil {
		return err
	}
	parts := make([][][]byte, w.Partitions)
	for m := range w.All {
		parts[m.Partition] = append(parts[m.Partition], m.Value)
	}
	modelRes := model.Run(model.DefaultRule(), parts)
	modelFinals, wantRides := model.Finals(model.DefaultRule(), modelRes)[aggregate.DefaultName], len(modelRes.Rides)
	modelRes = model.Result{}
	wantFinals := len(modelFinals)
	var wantTrips int64
	for _, f := range modelFinals {
		wantTrips += f.Measures[0].V // num_trips
	}
	parts = nil
	runtime.GC() // the model's garbage: collect it now, not while measuring
	say("producing %d messages to %s", w.Count(), topic)
	if _, err := generate.Produce(ctx, generate.ProduceOptions{Kafka: c.kafka, Topic: topic, Total: w.Count(), Logger: log}, w.All); err != nil {
		return err
	}

	// End to end: processors and sink as separate processes, a new
	// pipeline and database each run; with a baseline binary, its runs
	// alternate with this one's, pair by pair.
	binaries := []string{c.binary}
	if c.baseline != "" {
		binaries = append(binaries, c.baseline)
	}
	e2es, procRuns := make([][]e2eResult, len(binaries)), make([][]procResult, len(binaries))
	for i := range c.runs {
		for b, bin := range binaries {
			say("end to end, run %d of %d (%s): processors + sink until every raw row and every final window is committed", i+1, c.runs, bin)
			r, err := runE2E(ctx, c, pg, pipelineRun{name: fmt.Sprintf("e2e%d_%d", b, i), binary: bin, finals: modelFinals}, topic, w.Count(), wantFinals)
			if err != nil {
				return err
			}
			e2es[b] = append(e2es[b], r)
			say("end to end, run %d (%s): %.0f rides/s", i+1, bin, float64(c.rides)/r.elapsed.Seconds())
		}
	}
	for i := range c.runs {
		for b, bin := range binaries {
			say("processors only, run %d of %d (%s): input topic to finals topic", i+1, c.runs, bin)
			r, err := runProcessors(ctx, c, pipelineRun{name: fmt.Sprintf("proc%d_%d", b, i), binary: bin}, topic, wantFinals)
			if err != nil {
				return err
			}
			procRuns[b] = append(procRuns[b], r)
			say("processors only, run %d (%s): %.0f rides/s", i+1, bin, float64(c.rides)/r.elapsed.Seconds())
		}
	}
	for b := range binaries {
		sortByElapsed(e2es[b])
		slices.SortFunc(procRuns[b], func(a, b procResult) int { return cmp.Compare(a.elapsed, b.elapsed) })
	}
	e2eMed := e2es[0][len(e2es[0])/2]
	e2e := e2eMed.elapsed
	procOnlyEl, procOnlyCPU := procRuns[0][len(procRuns[0])/2].elapsed, procRuns[0][len(procRuns[0])/2].cpu

	say("processors only, once more with the purge held off: records and bytes per ride on each topic")
	traffic, err := measureTraffic(ctx, c, topic, wantFinals)
	if err != nil {
		return fmt.Errorf("traffic: %w", err)
	}

	// Three aggregations in one pipeline.
	aggFile, aggFinals, err := threeAggregations(w)
	if err != nil {
		return err
	}
	var aggRuns []e2eResult
	for i := range c.runs {
		say("end to end with three aggregations, run %d of %d", i+1, c.runs)
		r, err := runE2E(ctx, c, pg, pipelineRun{name: fmt.Sprintf("aggs%d", i), binary: c.binary, args: []string{"--aggregations", aggFile},
			tables: threeAggregationTables}, topic, w.Count(), aggFinals)
		if err != nil {
			return err
		}
		aggRuns = append(aggRuns, r)
		say("end to end with three aggregations, run %d: %.0f rides/s", i+1, float64(c.rides)/r.elapsed.Seconds())
	}
	sortByElapsed(aggRuns)

	// The same rides on a multi-broker cluster, and a big run.
	var cluster clusterRuns
	if c.clusterNodes > 0 {
		if cluster, err = runCluster(ctx, c, pg, w, modelFinals, log, say); err != nil {
			return err
		}
	}
	var big bigRun
	if c.bigRides > 0 {
		if big, err = runBig(ctx, c, pg, w, log, say); err != nil {
			return err
		}
	}

	// The Kafka Streams peer on the same topic.
	var kss []kstreamsResult
	for i := range c.runs {
		say("Kafka Streams peer, run %d of %d (exactly_once_v2, %d thread(s)): input topic to its finals topic", i+1, c.runs, c.kstreamsThreads)
		ks, err := runKStreams(ctx, c, topic, i, c.rides)
		if err != nil {
			return fmt.Errorf("kafka streams peer: %w", err)
		}
		kss = append(kss, ks)
		say("Kafka Streams peer, run %d: %.0f rides/s, %d of the model's %d trips", i+1, float64(c.rides)/ks.Seconds, ks.Trips, wantTrips)
	}
	slices.SortFunc(kss, func(a, b kstreamsResult) int { return cmp.Compare(a.Seconds, b.Seconds) })
	ks := kss[len(kss)/2]

	// The Flink peer on the same topic, and the Kafka Connect peer on the
	// same rides in the envelope it needs.
	flinks, err := runFlinkPeer(ctx, c, pg, topic, modelFinals, say)
	if err != nil {
		return err
	}
	connects, connectIn, err := runConnectPeer(ctx, c, pg, w, log, say)
	if err != nil {
		return err
	}

	// The tutorial's consumer, as users run it, on the same topic.
	say("the tutorial's Python consumer (kafka-python, one INSERT per message, autocommit) for %v s", c.pythonSeconds)
	pyURL, err := createDatabase(ctx, pg.URL, "python")
	if err != nil {
		return err
	}
	pyOut, err := exec.CommandContext(ctx, c.python, "bench/python/consumer.py", "--brokers", c.brokers, "--topic", topic,
		"--group", "bench-python", "--dsn", pyURL, "--seconds", strconv.FormatFloat(c.pythonSeconds, 'f', -1, 64)).Output()
	if err != nil {
		return fmt.Errorf("python consumer: %w", err)
	}
	var py struct {
		Inserted int     `json:"inserted"`
		Seconds  float64 `json:"seconds"`
	}
	if err := json.Unmarshal(pyOut, &py); err != nil || py.Seconds <= 0 {
		return fmt.Errorf("python consumer printed %q: %v", pyOut, err)
	}
	pyRate := float64(py.Inserted) / py.Seconds

	// Latency at half the maximum rate just measured: a new topic written
	// at that rate while processors and sink run.
	latRate := float64(c.rides) / e2e.Seconds() / 2
	say("latency: %.0f messages/s for %v s, window close -> final rows committed in PostgreSQL", latRate, c.latencySeconds)
	lat, err := measureLatency(ctx, c, pg.URL, latRate, log)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}

	var history []historyRow
	if len(c.historyDays) > 0 {
		if history, err = runHistory(ctx, c, pg, say); err != nil {
			return err
		}
	}

	spread := func(rates []float64) string {
		return fmt.Sprintf("%.0f–%.0f", slices.Min(rates), slices.Max(rates))
	}
	e2eRatesOf := func(runs []e2eResult) []float64 {
		rates := make([]float64, len(runs))
		for i, r := range runs {
			rates[i] = float64(c.rides) / r.elapsed.Seconds()
		}
		return rates
	}
	e2eRates, aggRates := e2eRatesOf(e2es[0]), e2eRatesOf(aggRuns)
	procRatesOf := func(runs []procResult) []float64 {
		rates := make([]float64, len(runs))
		for i, r := range runs {
			rates[i] = float64(c.rides) / r.elapsed.Seconds()
		}
		return rates
	}
	procRates := procRatesOf(procRuns[0])
	ksRates := make([]float64, len(kss))
	ksTrips := make([]float64, len(kss))
	for i, r := range kss {
		ksRates[i], ksTrips[i] = float64(c.rides)/r.Seconds, 100*float64(r.Trips)/float64(wantTrips)
	}
	perM := func(cpu float64) string { return fmt.Sprintf("%.1f", cpu*1e6/float64(c.rides)) }
	median := func(v []float64) float64 { return slices.Sorted(slices.Values(v))[len(v)/2] }
	copyRate, stagingRate, sinkRate := median(copyRates), median(stagingRates), median(sinkRates)
	e2eRate := float64(c.rides) / e2e.Seconds()
	procRate := float64(c.rides) / procOnlyEl.Seconds()
	ksRate := float64(c.rides) / ks.Seconds
	var b strings.Builder
	commit, _ := exec.Command("git", "describe", "--always", "--dirty").Output()
	fmt.Fprintf(&b, "# ridestream benchmarks\n\nCommand: `make bench` (go run ./cmd/bench). Date: %s. Commit: %s. Machine: %d cores, %s/%s, Apache Kafka 4.1.1 (one node), PostgreSQL (throwaway cluster, fsync on); every process shares the same cores.\n",
		time.Now().UTC().Format(time.RFC3339), strings.TrimSpace(string(commit)), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "Workload: %d rides (+%d malformed, %d heartbeats) over %d partitions and 24 event-hours, 5%% out of order, 1%% late; %d final rows.\n",
		c.rides, w.MalformedCount(), c.partitions, c.partitions, wantFinals)
	fmt.Fprintf(&b, "Rates are the median of %d runs (range in the notes), each on a new pipeline, database or application id; the Python consumer and the latency run once.\n\n", c.runs)
	fmt.Fprintf(&b, "| measurement | rate | notes |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| PostgreSQL ceiling: plain COPY, ride row | %.0f rows/s | %s; %d rows, 10k rows per transaction, amounts as bigint |\n", copyRate, spread(copyRates), c.ceilingRows)
	fmt.Fprintf(&b, "| PostgreSQL idempotent staging path (COPY → staging → INSERT … ON CONFLICT + progress) | %.0f rows/s | %s; the ratio's denominator; the sink's fallback |\n", stagingRate, spread(stagingRates))
	fmt.Fprintf(&b, "| PostgreSQL, the sink's path (COPY into rides under a savepoint + progress) | %.0f rows/s | %s; staging only when a row is there already |\n", sinkRate, spread(sinkRates))
	fmt.Fprintf(&b, "| ridestream end to end (raw rows + final windows committed) | %.0f rides/s | %s; median run %v from process start; hourly_revenue: %d rows, %d equal to the model's %d (trips and revenue) |\n",
		e2eRate, spread(e2eRates), e2e.Round(time.Millisecond), e2eMed.answer.Rows, e2eMed.answer.EqualRows, wantFinals)
	if len(cluster.runs) > 0 {
		m := cluster.runs[len(cluster.runs)/2]
		fmt.Fprintf(&b, "| ridestream end to end on a %d-broker cluster (KRaft, every node broker + controller, on the same machine), replication %d from the cluster's default, min.insync.replicas 2 | %.0f rides/s | %s; median run %v; hourly_revenue: %d rows, %d equal to the model's %d; CPU-s per 1M rides: process %s, sink %s, the %d brokers %s, PostgreSQL %s; peak RSS process %d MiB, sink %d MiB |\n",
			c.clusterNodes, cluster.replication, float64(c.rides)/m.elapsed.Seconds(), spread(e2eRatesOf(cluster.runs)), m.elapsed.Round(time.Millisecond),
			m.answer.Rows, m.answer.EqualRows, wantFinals, perM(m.procCPU), perM(m.sinkCPU), c.clusterNodes, perM(m.brokerCPU), perM(m.pgCPU), m.peakProc, m.peakSink)
	}
	if big.rides > 0 {
		bigPerM := func(cpu float64) string { return fmt.Sprintf("%.1f", cpu*1e6/float64(big.rides)) }
		fmt.Fprintf(&b, "| ridestream end to end, %d rides (one run, same shape, 12 partitions) | %.0f rides/s | %v from process start; hourly_revenue: %d rows, %d equal to the model's %d; CPU-s per 1M rides: process %s, sink %s, broker %s, PostgreSQL %s; peak RSS process %d MiB, sink %d MiB |\n",
			big.rides, float64(big.rides)/big.elapsed.Seconds(), big.elapsed.Round(time.Millisecond), big.answer.Rows, big.answer.EqualRows, big.finals,
			bigPerM(big.procCPU), bigPerM(big.sinkCPU), bigPerM(big.brokerCPU), bigPerM(big.pgCPU), big.peakProc, big.peakSink)
	}
	fmt.Fprintf(&b, "| processors only (input → finals topic) | %.0f rides/s | %s; median run %v from process start, %.1f CPU-s per 1M rides; %d final rows, %d trips: equal to the model |\n",
		procRate, spread(procRates), procOnlyEl.Round(time.Millisecond), procOnlyCPU*1e6/float64(c.rides), wantFinals, wantTrips)
	fmt.Fprintf(&b, "| ridestream end to end with three aggregations (%s) | %.0f rides/s | %s; %d final rows in three tables |\n",
		strings.Join(threeAggregationTables, ", "), median(aggRates), spread(aggRates), aggFinals)
	var baseE2E, baseProc []float64
	if c.baseline != "" {
		baseE2E, baseProc = e2eRatesOf(e2es[1]), procRatesOf(procRuns[1])
		fmt.Fprintf(&b, "| baseline build (`%s`) end to end | %.0f rides/s | %s; its runs alternate with this build's, pair by pair |\n", c.baseline, median(baseE2E), spread(baseE2E))
		fmt.Fprintf(&b, "| baseline build processors only | %.0f rides/s | %s |\n", median(baseProc), spread(baseProc))
	}
	fmt.Fprintf(&b, "| Kafka Streams 4.1.1 peer (bench/kstreams), exactly_once_v2, %d thread | %.0f rides/s | %s; median run %.1f s from process start to its last final, %.1f CPU-s per 1M rides, peak RSS %d MiB, %d final rows; its finals hold %.0f–%.0f%% of the model's trips (median run: %d rides dropped as late; its stream time is per repartition task) |\n",
		c.kstreamsThreads, ksRate, spread(ksRates), ks.Seconds, ks.CPU*1e6/float64(c.rides), ks.PeakRSS, ks.Finals, slices.Min(ksTrips), slices.Max(ksTrips), ks.LateDropped)
	flinkRate := writeFlinkRow(&b, c, flinks, modelFinals)
	connectRate := writeConnectRow(&b, c, connects, connectIn, wantRides)
	fmt.Fprintf(&b, "| latency at %.0f msg/s (half the end-to-end rate): window close → its last final row committed | %v | %d event-hours in %.0f s of input; close = broker timestamp of the record that closed the window on its last partition; committed = finalized_at (its transaction's start) |\n",
		latRate, lat.all, c.latencyHours, c.latencySeconds)
	fmt.Fprintf(&b, "| … windows closed %v or more after the first input | %v | steady state |\n", coldStart, lat.warm)
	fmt.Fprintf(&b, "| … windows closed in the first %v | %v | start-up |\n", coldStart, lat.cold)
	fmt.Fprintf(&b, "| the tutorial's consumer: kafka-python + psycopg2, one INSERT per message, autocommit | %.0f rows/s | %d rows in %.1f s; no windows, no exactly-once |\n", pyRate, py.Inserted, py.Seconds)
	fmt.Fprintf(&b, "\n| ratio (medians) | value | target |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| ridestream ÷ idempotent COPY path | %.2f | ≥ 0.5 |\n", e2eRate/stagingRate)
	fmt.Fprintf(&b, "| ridestream ÷ plain COPY ceiling | %.2f | ≥ 0.35 |\n", e2eRate/copyRate)
	fmt.Fprintf(&b, "| ridestream ÷ Python consumer | %.1f | ≥ 50 |\n", e2eRate/pyRate)
	// Machine-neutral: the CPU a ride costs, in units of the time a plain
	// COPY takes per row on the same machine.
	fmt.Fprintf(&b, "| CPU per ride: the four processes' CPU-seconds per 1M rides ÷ plain COPY's seconds per 1M rows | %.1f | ≤ 4.6 |\n",
		e2eMed.cpuPerMil(c.rides)/(1e6/copyRate))
	if len(cluster.runs) > 0 {
		fmt.Fprintf(&b, "| %d-broker cluster, replication %d ÷ single broker, end to end | %.2f | |\n", c.clusterNodes, cluster.replication,
			median(e2eRatesOf(cluster.runs))/e2eRate)
	}
	if big.rides > 0 {
		fmt.Fprintf(&b, "| %d rides ÷ %d rides, end to end (rides/s) | %.2f | |\n", big.rides, c.rides, float64(big.rides)/big.elapsed.Seconds()/e2eRate)
		fmt.Fprintf(&b, "| peak RSS at %d rides: process, sink | %d MiB, %d MiB | < 128 MiB each |\n", big.rides, big.peakProc, big.peakSink)
	}
	fmt.Fprintf(&b, "| processors ÷ Kafka Streams (rides/s) | %.2f | ≥ 1.0 |\n", procRate/ksRate)
	fmt.Fprintf(&b, "| ridestream end to end ÷ Flink (rides/s), with the model's exact answer | %.2f | ≥ 2 |\n", e2eRate/flinkRate)
	fmt.Fprintf(&b, "| ridestream end to end ÷ Kafka Connect raw landing (rides/s ÷ rows/s) | %.2f | ≥ 1 |\n", e2eRate/connectRate)
	fmt.Fprintf(&b, "| three aggregations ÷ the default one, end to end | %.2f | |\n", median(aggRates)/e2eRate)
	if c.baseline != "" {
		fmt.Fprintf(&b, "| this build ÷ baseline, end to end | %.2f | ≥ 0.9 |\n", e2eRate/median(baseE2E))
		fmt.Fprintf(&b, "| this build ÷ baseline, processors only | %.2f | ≥ 0.9 |\n", procRate/median(baseProc))
	}
	// Per process, this build's median end-to-end run beside the
	// baseline's (when there is one).
	meds := []e2eResult{e2eMed}
	head, rule := "| process (median end-to-end run) | CPU-seconds per 1M rides | peak RSS |", "|---|---|---|"
	if c.baseline != "" {
		meds = append(meds, e2es[1][len(e2es[1])/2])
		head, rule = head+" baseline CPU-seconds per 1M rides | baseline peak RSS |", rule+"---|---|"
	}
	fmt.Fprintf(&b, "\n%s\n%s\n", head, rule)
	processRow := func(name string, cpu func(e2eResult) float64, rss func(e2eResult) int) {
		fmt.Fprintf(&b, "| %s |", name)
		for _, m := range meds {
			mib := ""
			if rss != nil {
				mib = fmt.Sprintf("%d MiB", rss(m))
			}
			fmt.Fprintf(&b, " %s | %s |", perM(cpu(m)), mib)
		}
		fmt.Fprintln(&b)
	}
	processRow("ridestream process (route, clock, watermark, windows)", func(r e2eResult) float64 { return r.procCPU }, func(r e2eResult) int { return r.peakProc })
	processRow("ridestream sink", func(r e2eResult) float64 { return r.sinkCPU }, func(r e2eResult) int { return r.peakSink })
	if len(c.brokerPidFiles) > 0 {
		processRow("Kafka broker", func(r e2eResult) float64 { return r.brokerCPU }, nil)
	}
	processRow("PostgreSQL (all backends)", func(r e2eResult) float64 { return r.pgCPU }, nil)
	processRow("all four", func(r e2eResult) float64 { return r.procCPU + r.sinkCPU + r.brokerCPU + r.pgCPU }, nil)
	writeTraffic(&b, traffic, c.rides)
	writeHistory(&b, c, history)
	chart := strings.TrimSuffix(c.out, filepath.Ext(c.out)) + ".png"
	bars := []chartBar{
		{"ridestream end to end", e2eRate, (e2eMed.procCPU + e2eMed.sinkCPU) * 1e6 / float64(c.rides)},
		{"ridestream, three aggregations", median(aggRates), (aggRuns[len(aggRuns)/2].procCPU + aggRuns[len(aggRuns)/2].sinkCPU) * 1e6 / float64(c.rides)},
	}
	if len(cluster.runs) > 0 {
		m := cluster.runs[len(cluster.runs)/2]
		bars = append(bars, chartBar{fmt.Sprintf("ridestream, %d brokers", c.clusterNodes), median(e2eRatesOf(cluster.runs)), (m.procCPU + m.sinkCPU) * 1e6 / float64(c.rides)})
	}
	if big.rides > 0 {
		bars = append(bars, chartBar{fmt.Sprintf("ridestream, %gM rides", float64(big.rides)/1e6), float64(big.rides) / big.elapsed.Seconds(), (big.procCPU + big.sinkCPU) * 1e6 / float64(big.rides)})
	}
	fm, cm := flinks[len(flinks)/2], connects[len(connects)/2]
	bars = append(bars,
		chartBar{"Kafka Streams (finals topic only)", ksRate, ks.CPU * 1e6 / float64(c.rides)},
		chartBar{"Flink", flinkRate, fm.CPU * 1e6 / float64(c.rides)},
		chartBar{"Kafka Connect (raw rows only)", connectRate, cm.CPU * 1e6 / float64(cm.Rows)},
		chartBar{"Python consumer (raw rows only)", pyRate, 0})
	if err := writeChart(chart, fmt.Sprintf("make bench, %d rides, %d cores", c.rides, runtime.NumCPU()), bars); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\n![Rates and CPU per ride of each measured pipeline](%s)\n\nThe chart's CPU counts each pipeline's own processes (ridestream: process + sink; a peer: its JVM), not the broker or PostgreSQL; the Python consumer's was not measured.\n", filepath.Base(chart))
	fmt.Fprintf(&b, "\nA shared 2-core machine: single runs vary by 10–20%%. Where the time goes, and the before/after of each change: docs/design.md, section Performance.\n")
	fmt.Print(b.String())
	return os.WriteFile(c.out, []byte(b.String()), 0o644)
}

type e2eResult struct {
	elapsed                            time.Duration
	procCPU, sinkCPU, brokerCPU, pgCPU float64
	peakProc, peakSink                 int
	// answer is hourly_revenue against the model (when the run had one).
	answer tableAnswer
}

// cpuPerMil is the four processes' CPU-seconds per 1M of rides.
func (r e2eResult) cpuPerMil(rides int) float64 {
	return (r.procCPU + r.sinkCPU + r.brokerCPU + r.pgCPU) * 1e6 / float64(rides)
}

// runE2E runs processors and sink (pipeline and database number i) on topic
// until every message is applied and every final row committed.
func runE2E(ctx context.Context, c config, pg *pgserver.Server, p pipelineRun, topic string, messages, wantFinals int) (e2eResult, error) {
	var r e2eResult
	dbURL, err := createDatabase(ctx, pg.URL, p.name)
	if err != nil {
		return r, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return r, err
	}
	defer pool.Close()
	prefix := "bench_" + p.name
	brokerBefore := cpuOfPidFiles(c.brokerPidFiles)
	pgBefore := cpuTree(pg.Pid())
	start := time.Now()
	proc := startProc(p.binary, append([]string{"process", "--brokers", c.brokers, "--topic", topic, "--prefix", prefix, "--log-level", "warn"}, p.args...)...)
	snk := startProc(p.binary, "sink", "--brokers", c.brokers, "--prefix", prefix, "--log-level", "warn")
	snk.Env = append(os.Environ(), "RIDESTREAM_DATABASE_URL="+dbURL)
	if err := startAll(proc, snk); err != nil {
		return r, err
	}
	defer stopAll(proc, snk)
	if r.peakProc, r.peakSink, err = waitCommitted(ctx, pool, topic, messages, wantFinals, proc, snk, p.tables...); err != nil {
		return r, err
	}
	r.elapsed = time.Since(start)
	r.procCPU, r.sinkCPU = cpuTree(proc.Process.Pid), cpuTree(snk.Process.Pid)
	brokerAfter := cpuOfPidFiles(c.brokerPidFiles)
	r.brokerCPU, r.pgCPU = brokerAfter-brokerBefore, cpuTree(pg.Pid())-pgBefore
	if p.finals != nil {
		r.answer, err = compareFinals(ctx, pool, aggregate.DefaultName, p.finals)
	}
	return r, err
}

type procResult struct {
	elapsed time.Duration
	cpu     float64
}

// pipelineRun is one measured pipeline: its name (prefix and database),
// the binary, extra process flags and the tables its finals land in (none:
// hourly_revenue).
type pipelineRun struct {
	name, binary string
	args, tables []string
	// finals, when set, are the model's hourly_revenue rows to compare the
	// table with once the run is done.
	finals map[model.RowKey]model.Row
}

// runProcessors runs the processors alone until the finals topic holds
// every final row.
func runProcessors(ctx context.Context, c config, p pipelineRun, topic string, wantFinals int) (procResult, error) {
	prefix := "bench_" + p.name
	start := time.Now()
	proc := startProc(p.binary, append([]string{"process", "--brokers", c.brokers, "--topic", topic, "--prefix", prefix, "--log-level", "warn"}, p.args...)...)
	if err := startAll(proc); err != nil {
		return procResult{}, err
	}
	defer stopAll(proc)
	for {
		n, err := topicRecords(c.kafka, prefix+"-finals")
		if err == nil && n >= int64(wantFinals) {
			break
		}
		if ctx.Err() != nil {
			return procResult{}, ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return procResult{elapsed: time.Since(start), cpu: cpuTree(proc.Process.Pid)}, nil
}

// waitCommitted polls PostgreSQL until every message of topic is applied
// and wantFinals final rows are committed (in hourly_revenue, or the tables
// given), and returns the peak RSS of the two processes meanwhile.
func waitCommitted(ctx context.Context, pool *pgxpool.Pool, topic string, messages, wantFinals int, proc, snk *exec.Cmd, tables ...string) (peakProc, peakSink int, err error) {
	if len(tables) == 0 {
		tables = []string{aggregate.DefaultName}
	}
	counts := make([]string, len(tables))
	for i, t := range tables {
		counts[i] = "(SELECT count(*) FROM " + pgx.Identifier{t}.Sanitize() + ")"
	}
	q := `SELECT coalesce((SELECT sum(rides+rejected+heartbeats) FROM sink_progress WHERE topic=$1),0), ` + strings.Join(counts, " + ")
	for {
		var applied, finals int64
		_ = pool.QueryRow(ctx, q, topic).Scan(&applied, &finals)
		peakProc, peakSink = max(peakProc, procstat.PeakRSSMB(proc.Process.Pid)), max(peakSink, procstat.PeakRSSMB(snk.Process.Pid))
		if applied == int64(messages) && finals == int64(wantFinals) {
			return peakProc, peakSink, nil
		}
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func startProc(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

func startAll(cmds ...*exec.Cmd) error {
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			return fmt.Errorf("start %v: %w", c.Args, err)
		}
	}
	return nil
}

func stopAll(cmds ...*exec.Cmd) {
	for _, c := range cmds {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range cmds {
		_ = c.Wait()
	}
}

// cpuTree is the CPU seconds of pid and its children (live and reaped).
func cpuTree(pid int) float64 {
	total := cpuOf(pid, true)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(child); len(f) > 3 && f[3] == strconv.Itoa(pid) {
			total += cpuOf(child, false)
		}
	}
	return total
}

// statFields returns /proc/pid/stat split after the command name.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return append([]string{"", ""}, strings.Fields(s[i+1:])...)
}

func cpuOf(pid int, withChildren bool) float64 {
	f := statFields(pid)
	if len(f) < 17 {
		return 0
	}
	n := 0
	last := 14
	if withChildren {
		last = 16
	}
	for i := 13; i <= last; i++ {
		v, _ := strconv.Atoi(f[i])
		n += v
	}
	return float64(n) / 100 // USER_HZ
}

// cpuOfPidFiles is the CPU seconds of the processes whose pid files are
// given (a file that cannot be read counts nothing).
func cpuOfPidFiles(paths []string) float64 {
	var total float64
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			total += cpuOf(pid, false)
		}
	}
	return total
}

// createTopic makes a bench input topic, replicated as the cluster's default.
func createTopic(conn kafka.Conn, topic string, partitions int32) error {
	admin, err := conn.NewAdmin("bench")
	if err != nil {
		return err
	}
	defer admin.Close()
	_, err = kafka.EnsureTopics(admin, generate.InputTopic(topic, partitions, 0))
	return err
}

func topicRecords(conn kafka.Conn, topic string) (int64, error) {
	client, err := conn.NewClient("bench")
	if err != nil {
		return 0, err
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		n += hwm
	}
	return n, nil
}

func createDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return strings.Replace(adminURL, "/"+pgserver.Database+"?", "/"+name+"?", 1), nil
}
