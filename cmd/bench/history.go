package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/pgserver"
	"github.com/ridestream/ridestream/internal/procstat"
	"github.com/ridestream/ridestream/processors"
)

// A history workload: rides at a steady rate per event-hour over some days
// (a replay of that much history), or the same rides packed into 12 hours.
type historyInput struct {
	label string
	days  int
	dense bool
	topic string
	w     generate.Config
}

// historyRow is what one run over a history workload measured.
type historyRow struct {
	in                      *historyInput
	window                  time.Duration
	finals                  int
	elapsed                 time.Duration
	liveKeys                int
	peakRSS, restartRSS     int // MiB
	toReady, toZeroLag      time.Duration
	procCPU                 float64
	changelogs, changelogMB int64 // records and MiB in the compacted topics
}

func (r historyRow) rate() float64 { return float64(r.in.w.Rides) / r.elapsed.Seconds() }

// runHistory measures, per window size, the pipeline over c.historyDays
// days of rides at c.historyRate rides per event-hour, and over the
// largest of those workloads packed into 12 event-hours: how the live
// state, the memory, the restart and the replay rate grow with history.
func runHistory(ctx context.Context, c config, pg *pgserver.Server, say func(string, ...any)) ([]historyRow, error) {
	var inputs []*historyInput
	largest := 0
	for _, d := range c.historyDays {
		largest = max(largest, d)
	}
	for _, d := range c.historyDays {
		inputs = append(inputs, &historyInput{label: fmt.Sprintf("%d days", d), days: d})
	}
	inputs = append(inputs, &historyInput{label: fmt.Sprintf("%d days' rides in 12 hours", largest), days: largest, dense: true})
	for i, in := range inputs {
		hours := in.days * 24
		in.w = generate.Config{Seed: uint64(40 + i), Rides: hours * c.historyRate, Partitions: int32(c.partitions), Hours: hours,
			OutOfOrder: 0.05, Late: 0.01, Lateness: 5 * time.Minute, Heartbeats: true}
		if in.dense {
			in.w.Hours = 12
		}
		in.topic = fmt.Sprintf("bench_history_%d_%d", i, time.Now().Unix())
		if err := createTopic(c.kafka, in.topic, in.w.Partitions); err != nil {
			return nil, err
		}
		say("history: producing %s (%d rides) to %s", in.label, in.w.Rides, in.topic)
		if _, err := generate.Produce(ctx, generate.ProduceOptions{Kafka: c.kafka, Topic: in.topic, Total: in.w.Count()}, in.w.All); err != nil {
			return nil, err
		}
	}
	var rows []historyRow
	for _, size := range c.historyWindows {
		for _, in := range inputs {
			rule := model.DefaultRule()
			rule.Size = size
			finals, err := modelFinals(in.w, rule)
			if err != nil {
				return nil, err
			}
			say("history: %v windows over %s: %d final rows expected", size, in.label, finals)
			r, err := runHistoryOne(ctx, c, pg, in, size, finals, len(rows))
			if err != nil {
				return nil, fmt.Errorf("history, %v windows over %s: %w", size, in.label, err)
			}
			say("history: %v windows over %s: %.0f rides/s, %d live keys, peak %d MiB, restart: ready %v, zero lag %v, %d MiB",
				size, in.label, r.rate(), r.liveKeys, r.peakRSS, r.toReady.Round(time.Millisecond), r.toZeroLag.Round(time.Millisecond), r.restartRSS)
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// modelFinals is how many final rows the reference model expects of the
// default aggregation under rule over w.
func modelFinals(w generate.Config, rule model.Rule) (int, error) {
	parts := make([][][]byte, w.Partitions)
	for m := range w.All {
		parts[m.Partition] = append(parts[m.Partition], m.Value)
	}
	n := len(model.Finals(rule, model.Run(rule, parts))[aggregate.DefaultName])
	parts = nil
	runtime.GC() // the model's garbage: collect it now, not while measuring
	if n == 0 {
		return 0, fmt.Errorf("the model expects no final row")
	}
	return n, nil
}

// runHistoryOne runs processors and sink over in until every row is
// committed, counts the live keys of the compacted topics, then SIGKILLs
// the processors and measures their restart.
func runHistoryOne(ctx context.Context, c config, pg *pgserver.Server, in *historyInput, size time.Duration, finals, i int) (historyRow, error) {
	r := historyRow{in: in, window: size, finals: finals}
	dbURL, err := createDatabase(ctx, pg.URL, fmt.Sprintf("history%d", i))
	if err != nil {
		return r, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return r, err
	}
	defer pool.Close()
	prefix := fmt.Sprintf("bench_hist%d", i)
	procAddr := freeAddr()
	procArgs := []string{"process", "--brokers", c.brokers, "--topic", in.topic, "--prefix", prefix, "--log-level", "warn", "--window", size.String(),
		"--instance-id", "hist", "--http-addr", procAddr, "--lag-interval", "500ms"}
	start := time.Now()
	proc := startProc(c.binary, procArgs...)
	snk := startProc(c.binary, "sink", "--brokers", c.brokers, "--prefix", prefix, "--log-level", "warn", "--instance-id", "hist-sink")
	snk.Env = append(os.Environ(), "RIDESTREAM_DATABASE_URL="+dbURL)
	if err := startAll(proc, snk); err != nil {
		return r, err
	}
	defer func() { stopAll(proc, snk) }()
	if r.peakRSS, _, err = waitCommitted(ctx, pool, in.topic, in.w.Count(), finals, proc, snk); err != nil {
		return r, err
	}
	r.elapsed = time.Since(start)
	r.procCPU = cpuTree(proc.Process.Pid)
	if r.liveKeys, r.changelogs, r.changelogMB, err = liveKeys(c.kafka, prefix); err != nil {
		return r, err
	}
	// A SIGKILL and a restart: goka restores each stage's table from its
	// changelog before the stage runs.
	_ = proc.Process.Signal(syscall.SIGKILL)
	_ = proc.Wait()
	restart := time.Now()
	proc = startProc(c.binary, procArgs...)
	if err := startAll(proc); err != nil {
		return r, err
	}
	if err := waitReady(ctx, procAddr, 5*time.Minute); err != nil {
		return r, err
	}
	r.toReady = time.Since(restart)
	for {
		if lag, ok := totalLag(procAddr); ok && lag == 0 {
			break
		}
		if time.Since(restart) > 5*time.Minute {
			return r, fmt.Errorf("the restarted processors have not caught up after 5 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.toZeroLag = time.Since(restart)
	r.restartRSS = procstat.PeakRSSMB(proc.Process.Pid)
	return r, nil
}

// totalLag sums the processors' exported consumer lag over every stage
// and partition; ok is false until every stage has exported one.
func totalLag(addr string) (float64, bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false
	}
	var sum float64
	stages := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "ridestream_processor_consumer_lag{") {
			continue
		}
		i := strings.Index(line, `stage="`)
		j := strings.LastIndexByte(line, ' ')
		if i < 0 || j < 0 {
			continue
		}
		stage := line[i+7:]
		stages[stage[:strings.IndexByte(stage, '"')]] = true
		v, err := strconv.ParseFloat(line[j+1:], 64)
		if err != nil {
			return 0, false
		}
		sum += v
	}
	return sum, len(stages) == len(processors.AllStages)
}

// liveKeys reads the pipeline's compacted topics (its goka changelogs) and
// counts the keys whose latest record is not a tombstone: what a restart
// restores once compaction has run. It also returns how many records and
// bytes they hold now.
func liveKeys(conn kafka.Conn, prefix string) (live int, records, mib int64, err error) {
	client, err := conn.NewClient("bench-keys")
	if err != nil {
		return 0, 0, 0, err
	}
	defer client.Close()
	var bytes int64
	for _, topic := range []string{prefix + "-clock-table", prefix + "-watermark-table", prefix + "-windows-table"} {
		latest := map[string]bool{}
		err := kafka.ReadTopic(client, topic, func(m *sarama.ConsumerMessage) error {
			latest[string(m.Key)] = m.Value != nil
			records++
			bytes += int64(len(m.Key) + len(m.Value))
			return nil
		})
		if err != nil {
			return 0, 0, 0, err
		}
		for _, ok := range latest {
			if ok {
				live++
			}
		}
	}
	return live, records, bytes >> 20, nil
}

// threeAggregationTables are the tables of threeAggregations.
var threeAggregationTables = []string{"zones_5m", "dropoff_hourly", "zone_sessions"}

// threeAggregations writes the bench's three-aggregation declaration to a
// file and returns it with the number of final rows the model expects of
// it over w.
func threeAggregations(w generate.Config) (file string, finals int, err error) {
	const yaml = `aggregations:
  - name: zones_5m
    window: 5m
    group_by: [PULocationID]
    measures: {num_trips: count, total_revenue: sum(total_amount)}
  - name: dropoff_hourly
    window: 1h
    group_by: [DOLocationID]
    measures: {num_trips: count, total_revenue: sum(total_amount)}
  - name: zone_sessions
    session_gap: 5m
    group_by: [PULocationID]
    measures: {num_trips: count, total_revenue: sum(total_amount)}
`
	list, err := aggregate.Parse([]byte(yaml))
	if err != nil {
		return "", 0, err
	}
	rule := model.DefaultRule()
	rule.Aggregations = list
	parts := make([][][]byte, w.Partitions)
	for m := range w.All {
		parts[m.Partition] = append(parts[m.Partition], m.Value)
	}
	for _, rows := range model.Finals(rule, model.Run(rule, parts)) {
		finals += len(rows)
	}
	parts = nil
	runtime.GC()
	f, err := os.CreateTemp("", "bench-aggregations-*.yaml")
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	_, err = f.WriteString(yaml)
	return f.Name(), finals, err
}

// writeHistory writes the state table: per window size, each history
// workload's figures, and the ratios the targets are set on.
func writeHistory(b *strings.Builder, c config, rows []historyRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\n## State against history\n\n%d rides per event-hour over %d partitions, hourly windows and 5-minute ones, default settings otherwise; one run each. "+
		"Live keys: keys of the compacted topics whose latest record is not a tombstone (what a restart restores once compaction has run). "+
		"Restart: SIGKILL of the processors once every row is committed, then a new process with the same --instance-id.\n\n", c.historyRate, c.partitions)
	fmt.Fprintf(b, "| window | event time covered | rides | live keys | changelog records now (MiB) | process peak RSS | peak RSS after SIGKILL + restart | restart to /readyz | restart to zero lag | rides/s to the last final row | process CPU-s per 1M rides |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s | %d | %d | %d (%d) | %d MiB | %d MiB | %v | %v | %.0f | %.1f |\n", windowName(r.window), r.in.label, r.in.w.Rides, r.liveKeys,
			r.changelogs, r.changelogMB, r.peakRSS, r.restartRSS, r.toReady.Round(10*time.Millisecond), r.toZeroLag.Round(10*time.Millisecond),
			r.rate(), r.procCPU*1e6/float64(r.in.w.Rides))
	}
	fmt.Fprintf(b, "\n| ratio | window | value | target |\n|---|---|---|---|\n")
	for _, size := range c.historyWindows {
		var first, last, dense *historyRow
		for i := range rows {
			r := &rows[i]
			switch {
			case r.window != size:
			case r.in.dense:
				dense = r
			case first == nil || r.in.days < first.in.days:
				first = r
			}
			if r.window == size && !r.in.dense && (last == nil || r.in.days > last.in.days) {
				last = r
			}
		}
		if first == nil || last == nil || dense == nil {
			continue
		}
		span := fmt.Sprintf("day %d ÷ day %d", last.in.days, first.in.days)
		ratio := func(what string, num, den float64, target string) {
			fmt.Fprintf(b, "| %s, %s | %s | %.2f | %s |\n", what, span, windowName(size), num/max(den, 1e-9), target)
		}
		if first != last {
			ratio("live keys", float64(last.liveKeys), float64(first.liveKeys), "≤ 1.5")
			ratio("process peak RSS", float64(last.peakRSS), float64(first.peakRSS), "≤ 1.5")
			ratio("peak RSS after restart", float64(last.restartRSS), float64(first.restartRSS), "≤ 1.5")
			ratio("restart to /readyz", last.toReady.Seconds(), first.toReady.Seconds(), "≤ 1.5")
			ratio("restart to zero lag", last.toZeroLag.Seconds(), first.toZeroLag.Seconds(), "≤ 1.5")
		}
		fmt.Fprintf(b, "| replay of %d days ÷ the same rides in 12 hours (rides/s) | %s | %.2f | ≥ 0.7 |\n", last.in.days, windowName(size), last.rate()/dense.rate())
	}
}

// windowName writes a window size as people do: 1h, 5m.
func windowName(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
