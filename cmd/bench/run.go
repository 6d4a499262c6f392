package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
	brokers, brokerPidFile, binary, out, python string
	kstreams                                    string
	kstreamsThreads                             int
	rides, partitions, ceilingRows              int
	pythonSeconds, latencySeconds               float64
	latencyHours                                int
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var c config
	fs.StringVar(&c.brokers, "brokers", "", "Kafka bootstrap address (required; make bench starts Kafka 4)")
	fs.StringVar(&c.brokerPidFile, "broker-pid-file", "", "pid file of the broker, to measure its CPU")
	fs.StringVar(&c.binary, "binary", "bin/ridestream", "the ridestream binary to run")
	fs.StringVar(&c.out, "out", "BENCHMARKS.md", "markdown file for the results")
	fs.IntVar(&c.rides, "rides", 1_000_000, "rides in the end-to-end workload")
	fs.IntVar(&c.partitions, "partitions", 12, "partitions of the input topic")
	fs.IntVar(&c.ceilingRows, "ceiling-rows", 500_000, "rows for the PostgreSQL ceiling")
	fs.StringVar(&c.python, "python", ".cache/bench-venv/bin/python", "python with kafka-python and psycopg2 for the tutorial's consumer")
	fs.StringVar(&c.kstreams, "kstreams", "scripts/kstreams.sh", "script that runs the Kafka Streams peer (bench/kstreams)")
	fs.IntVar(&c.kstreamsThreads, "kstreams-threads", 1, "stream threads of the Kafka Streams peer")
	fs.Float64Var(&c.pythonSeconds, "python-seconds", 20, "how long the tutorial's consumer runs")
	fs.Float64Var(&c.latencySeconds, "latency-seconds", 30, "how long input arrives in the latency measurement")
	fs.IntVar(&c.latencyHours, "latency-hours", 240, "event-hours the latency input spans (one window closes every latency-seconds/latency-hours)")
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	if c.brokers == "" {
		return errors.New("--brokers: required")
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
	say("PostgreSQL ceiling with %d ride rows", c.ceilingRows)
	ceil, err := sink.MeasureCeiling(ctx, pg.URL, c.ceilingRows, 10000)
	if err != nil {
		return err
	}

	spec := window.DefaultSpec()
	w := generate.Config{Seed: 11, Rides: c.rides, Partitions: int32(c.partitions), Hours: 24, OutOfOrder: 0.05, Late: 0.01,
		Malformed: 0.005, Lateness: spec.Lateness, Heartbeats: true}
	topic := fmt.Sprintf("bench_rides_%d", time.Now().Unix())
	if err := createTopic(c.brokers, topic, int32(c.partitions)); err != nil {
		return err
	}
	parts := make([][][]byte, w.Partitions)
	for m := range w.All {
		parts[m.Partition] = append(parts[m.Partition], m.Value)
	}
	modelFinals := model.Finals(spec, 24*time.Hour, parts, model.Run(spec, parts))
	wantFinals := len(modelFinals)
	var wantTrips int64
	for _, f := range modelFinals {
		wantTrips += f.Trips
	}
	parts = nil
	say("producing %d messages to %s", w.Count(), topic)
	if _, err := generate.Produce(ctx, generate.ProduceOptions{Brokers: []string{c.brokers}, Topic: topic, Total: w.Count(), Logger: log}, w.All); err != nil {
		return err
	}

	// End to end: processors and sink as separate processes.
	dbURL, err := createDatabase(ctx, pg.URL, "pipeline")
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	say("end to end: processors + sink until every raw row and every final window is committed")
	brokerBefore, _ := cpuOfPidFile(c.brokerPidFile)
	pgBefore := cpuTree(pg.Pid())
	start := time.Now()
	proc := startProc(c.binary, "process", "--brokers", c.brokers, "--topic", topic, "--prefix", "bench_e2e", "--log-level", "warn")
	snk := startProc(c.binary, "sink", "--brokers", c.brokers, "--topic", topic, "--finals-topic", "bench_e2e-finals",
		"--group", "bench-e2e-sink", "--log-level", "warn")
	snk.Env = append(os.Environ(), "RIDESTREAM_DATABASE_URL="+dbURL)
	if err := startAll(proc, snk); err != nil {
		return err
	}
	peakProc, peakSink, err := waitCommitted(ctx, pool, topic, w.Count(), wantFinals, proc, snk)
	if err != nil {
		return err
	}
	e2e := time.Since(start)
	procCPU, sinkCPU := cpuTree(proc.Process.Pid), cpuTree(snk.Process.Pid)
	brokerAfter, _ := cpuOfPidFile(c.brokerPidFile)
	pgCPU := cpuTree(pg.Pid()) - pgBefore
	stopAll(proc, snk)

	// Processors alone: input to finals topic.
	say("processors only: input topic to finals topic")
	start = time.Now()
	procOnly := startProc(c.binary, "process", "--brokers", c.brokers, "--topic", topic, "--prefix", "bench_proc", "--log-level", "warn")
	if err := startAll(procOnly); err != nil {
		return err
	}
	for {
		n, err := topicRecords(c.brokers, "bench_proc-finals")
		if err == nil && n >= int64(wantFinals) {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	procOnlyEl := time.Since(start)
	procOnlyCPU := cpuTree(procOnly.Process.Pid)
	stopAll(procOnly)

	// The Kafka Streams peer on the same topic.
	say("Kafka Streams peer (exactly_once_v2, %d thread(s)): input topic to its finals topic", c.kstreamsThreads)
	ks, err := runKStreams(ctx, c, topic, c.rides)
	if err != nil {
		return fmt.Errorf("kafka streams peer: %w", err)
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

	perM := func(cpu float64) string { return fmt.Sprintf("%.1f", cpu*1e6/float64(c.rides)) }
	e2eRate := float64(c.rides) / e2e.Seconds()
	var b strings.Builder
	commit, _ := exec.Command("git", "describe", "--always", "--dirty").Output()
	fmt.Fprintf(&b, "# ridestream benchmarks\n\nCommand: `make bench` (go run ./cmd/bench). Date: %s. Commit: %s. Machine: %d cores, %s/%s, Apache Kafka 4.1.1 (one node), PostgreSQL (throwaway cluster, fsync on); every process shares the same cores.\n",
		time.Now().UTC().Format(time.RFC3339), strings.TrimSpace(string(commit)), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "Workload: %d rides (+%d malformed, %d heartbeats) over %d partitions and 24 event-hours, 5%% out of order, 1%% late; %d final rows.\n\n",
		c.rides, w.MalformedCount(), c.partitions, c.partitions, wantFinals)
	fmt.Fprintf(&b, "| measurement | rate | notes |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| PostgreSQL ceiling: plain COPY, ride row | %.0f rows/s | %d rows, 10k rows per transaction |\n", ceil.CopyPerSec, ceil.Rows)
	fmt.Fprintf(&b, "| PostgreSQL idempotent staging path (COPY → staging → INSERT … ON CONFLICT + progress) | %.0f rows/s | the ratio's denominator; the sink's fallback |\n", ceil.IdempotentPerSec)
	fmt.Fprintf(&b, "| PostgreSQL, the sink's path (COPY into rides under a savepoint + progress) | %.0f rows/s | staging only when a row is there already |\n", ceil.SinkPerSec)
	fmt.Fprintf(&b, "| ridestream end to end (raw rows + final windows committed) | %.0f rides/s | %v |\n", e2eRate, e2e.Round(time.Millisecond))
	procRate := float64(c.rides) / procOnlyEl.Seconds()
	fmt.Fprintf(&b, "| processors only (input → finals topic) | %.0f rides/s | %v from process start; %.1f CPU-s per 1M rides; %d final rows, %d trips: equal to the model |\n",
		procRate, procOnlyEl.Round(time.Millisecond), procOnlyCPU*1e6/float64(c.rides), wantFinals, wantTrips)
	ksRate := float64(c.rides) / ks.Seconds
	fmt.Fprintf(&b, "| Kafka Streams 4.1.1 peer (bench/kstreams), exactly_once_v2, %d thread | %.0f rides/s | %.1f s from process start to its last final; %.1f CPU-s per 1M rides; peak RSS %d MiB; %d final rows, %d trips = %.0f%% of the model's (%d rides dropped as late: stream time is per repartition task) |\n",
		c.kstreamsThreads, ksRate, ks.Seconds, ks.CPU*1e6/float64(c.rides), ks.PeakRSS, ks.Finals, ks.Trips, 100*float64(ks.Trips)/float64(wantTrips), ks.LateDropped)
	fmt.Fprintf(&b, "| latency at %.0f msg/s (half the end-to-end rate): window close → its last final row committed | %v | %d event-hours in %.0f s of input; close = broker timestamp of the record that closed the window on its last partition; committed = finalized_at (its transaction's start) |\n",
		latRate, lat.all, c.latencyHours, c.latencySeconds)
	fmt.Fprintf(&b, "| … windows closed %v or more after the first input | %v | steady state |\n", coldStart, lat.warm)
	fmt.Fprintf(&b, "| … windows closed in the first %v | %v | start-up: these finals land together a few seconds in |\n", coldStart, lat.cold)
	fmt.Fprintf(&b, "| the tutorial's consumer: kafka-python + psycopg2, one INSERT per message, autocommit | %.0f rows/s | %d rows in %.1f s; no windows, no exactly-once |\n", pyRate, py.Inserted, py.Seconds)
	fmt.Fprintf(&b, "\n| ratio | value | target |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| ridestream ÷ idempotent COPY path | %.2f | ≥ 0.5 |\n", e2eRate/ceil.IdempotentPerSec)
	fmt.Fprintf(&b, "| ridestream ÷ plain COPY ceiling | %.2f | |\n", e2eRate/ceil.CopyPerSec)
	fmt.Fprintf(&b, "| ridestream ÷ Python consumer | %.1f | ≥ 30 |\n", e2eRate/pyRate)
	fmt.Fprintf(&b, "| processors ÷ Kafka Streams (rides/s) | %.2f | ≥ 1.0 |\n", procRate/ksRate)
	fmt.Fprintf(&b, "\n| process (end to end run) | CPU-seconds per 1M rides | peak RSS |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| ridestream process (route, clock, windows) | %s | %d MiB |\n", perM(procCPU), peakProc)
	fmt.Fprintf(&b, "| ridestream sink | %s | %d MiB |\n", perM(sinkCPU), peakSink)
	if c.brokerPidFile != "" {
		fmt.Fprintf(&b, "| Kafka broker | %s | |\n", perM(brokerAfter-brokerBefore))
	}
	fmt.Fprintf(&b, "| PostgreSQL (all backends) | %s | |\n", perM(pgCPU))
	fmt.Fprintf(&b, "\nOne run on a shared machine: rates vary by 10–20%% between runs. Where the time goes, and the before/after of each change: docs/design.md, section Performance.\n")
	fmt.Print(b.String())
	return os.WriteFile(c.out, []byte(b.String()), 0o644)
}

// waitCommitted polls PostgreSQL until every message of topic is applied
// and wantFinals final rows are committed, and returns the peak RSS of the
// two processes meanwhile.
func waitCommitted(ctx context.Context, pool *pgxpool.Pool, topic string, messages, wantFinals int, proc, snk *exec.Cmd) (peakProc, peakSink int, err error) {
	for {
		var applied, finals int64
		_ = pool.QueryRow(ctx, `SELECT coalesce((SELECT sum(rides+rejected+heartbeats) FROM sink_progress WHERE topic=$1),0),
			(SELECT count(*) FROM hourly_revenue)`, topic).Scan(&applied, &finals)
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

func cpuOfPidFile(path string) (float64, error) {
	if path == "" {
		return 0, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, err
	}
	return cpuOf(pid, false), nil
}

func createTopic(brokers, topic string, partitions int32) error {
	admin, err := sarama.NewClusterAdmin([]string{brokers}, kafka.NewConfig("bench"))
	if err != nil {
		return err
	}
	defer admin.Close()
	_, err = kafka.EnsureTopics(admin, kafka.Topic{Name: topic, Partitions: partitions, Replication: 1, CleanupPolicy: "delete", RetentionMs: -1})
	return err
}

func topicRecords(brokers, topic string) (int64, error) {
	client, err := sarama.NewClient([]string{brokers}, kafka.NewConfig("bench"))
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
