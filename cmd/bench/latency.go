package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/model"
)

type latency struct {
	all, warm, cold percentiles
}

// percentiles of the windows' latencies.
type percentiles struct {
	p50, p99, max time.Duration
	windows       int
}

func percentilesOf(lags []time.Duration) percentiles {
	if len(lags) == 0 {
		return percentiles{}
	}
	lags = slices.Sorted(slices.Values(lags))
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return percentiles{p50: ms(lags[len(lags)/2]), p99: ms(lags[len(lags)*99/100]), max: ms(lags[len(lags)-1]), windows: len(lags)}
}

func (p percentiles) String() string {
	return fmt.Sprintf("p50 %v, p99 %v, max %v (%d windows)", p.p50, p.p99, p.max, p.windows)
}

// coldStart is how long after the first input a window counts as closed
// during the pipeline's start-up.
const coldStart = 5 * time.Second

// measureLatency runs processors and sink on a new topic, waits until both
// are ready, writes the workload at rate messages/s, and measures per window
// the time from its close (the broker timestamp of the record that closed it
// on the last partition to do so) to its last final row in PostgreSQL.
func measureLatency(ctx context.Context, c config, adminURL string, rate float64, log *slog.Logger) (latency, error) {
	rides := int(rate * c.latencySeconds)
	w := generate.Config{Seed: 12, Rides: rides, Partitions: int32(c.partitions), Hours: c.latencyHours, OutOfOrder: 0.05, Late: 0.01,
		Malformed: 0.005, Lateness: model.DefaultRule().Lateness, Heartbeats: true}
	topic := fmt.Sprintf("bench_latency_%d", time.Now().Unix())
	if err := createTopic(c.kafka, topic, w.Partitions); err != nil {
		return latency{}, err
	}
	parts := make([][][]byte, w.Partitions)
	for m := range w.All {
		parts[m.Partition] = append(parts[m.Partition], m.Value)
	}
	wantFinals := len(model.Finals(model.DefaultRule(), model.Run(model.DefaultRule(), parts))[aggregate.DefaultName])
	parts = nil
	runtime.GC() // the model's gigabyte is garbage: collect it now, not while measuring
	dbURL, err := createDatabase(ctx, adminURL, "latency")
	if err != nil {
		return latency{}, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return latency{}, err
	}
	defer pool.Close()
	procAddr, sinkAddr := freeAddr(), freeAddr()
	proc := startProc(c.binary, "process", "--brokers", c.brokers, "--topic", topic, "--prefix", "bench_lat", "--log-level", "warn", "--http-addr", procAddr)
	snk := startProc(c.binary, "sink", "--brokers", c.brokers, "--prefix", "bench_lat", "--log-level", "warn", "--http-addr", sinkAddr)
	snk.Env = append(os.Environ(), "RIDESTREAM_DATABASE_URL="+dbURL)
	if err := startAll(proc, snk); err != nil {
		return latency{}, err
	}
	defer stopAll(proc, snk)
	for _, addr := range []string{procAddr, sinkAddr} {
		if err := waitReady(ctx, addr, time.Minute); err != nil {
			return latency{}, err
		}
	}
	produceStart := time.Now()
	if _, err := generate.Produce(ctx, generate.ProduceOptions{Kafka: c.kafka, Topic: topic, Rate: rate, Total: w.Count(), Logger: log}, w.All); err != nil {
		return latency{}, err
	}
	if _, _, err := waitCommitted(ctx, pool, topic, w.Count(), wantFinals, proc, snk); err != nil {
		return latency{}, err
	}
	closedAt, err := windowCloses(c.kafka, topic, model.DefaultRule())
	if err != nil {
		return latency{}, err
	}
	rows, err := pool.Query(ctx, `SELECT window_start, max(finalized_at) FROM hourly_revenue GROUP BY 1`)
	if err != nil {
		return latency{}, err
	}
	defer rows.Close()
	type sample struct {
		window, closed time.Time
		lag            time.Duration
	}
	var lags, warm, cold []time.Duration
	var samples []sample
	for rows.Next() {
		var ws, fin time.Time
		if err := rows.Scan(&ws, &fin); err != nil {
			return latency{}, err
		}
		closed, ok := closedAt[ws.UnixMilli()]
		if !ok {
			return latency{}, fmt.Errorf("final window %s was never closed by the input", ws)
		}
		lags = append(lags, fin.Sub(closed))
		if closed.Sub(produceStart) < coldStart {
			cold = append(cold, fin.Sub(closed))
		} else {
			warm = append(warm, fin.Sub(closed))
		}
		samples = append(samples, sample{ws, closed, fin.Sub(closed)})
	}
	if err := rows.Err(); err != nil {
		return latency{}, err
	}
	if len(lags) == 0 {
		return latency{}, fmt.Errorf("no final windows")
	}
	slices.SortFunc(samples, func(a, b sample) int { return int(b.lag - a.lag) })
	for _, s := range samples[:min(8, len(samples))] {
		fmt.Fprintf(os.Stderr, "bench: latency: slowest: window %s closed %.1f s after input started, final %v later\n",
			s.window.UTC().Format(time.RFC3339), s.closed.Sub(produceStart).Seconds(), s.lag.Round(time.Millisecond))
	}
	return latency{all: percentilesOf(lags), warm: percentilesOf(warm), cold: percentilesOf(cold)}, nil
}

// windowCloses reads topic back and returns, per final window of the
// reference model, the broker timestamp of the record that closed it on the
// last partition to close it (a window is final when every partition has
// closed it).
func windowCloses(conn kafka.Conn, topic string, rule model.Rule) (map[int64]time.Time, error) {
	client, err := conn.NewClient("bench-latency-reader")
	if err != nil {
		return nil, err
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, err
	}
	values := make([][][]byte, len(parts))
	stamps := make([][]time.Time, len(parts))
	err = kafka.ReadTopic(client, topic, func(m *sarama.ConsumerMessage) error {
		values[m.Partition] = append(values[m.Partition], m.Value)
		stamps[m.Partition] = append(stamps[m.Partition], m.Timestamp)
		return nil
	})
	if err != nil {
		return nil, err
	}
	res := model.Run(rule, values)
	closedAt := map[int64]time.Time{}
	for k := range model.Finals(rule, res)[aggregate.DefaultName] {
		if _, ok := closedAt[k.Start]; ok {
			continue
		}
		for p, o := range res.ClosedAt(aggregate.DefaultName, k.Start) {
			if ts := stamps[p][o]; ts.After(closedAt[k.Start]) {
				closedAt[k.Start] = ts
			}
		}
	}
	return closedAt, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls http://addr/readyz until it answers 200.
func waitReady(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/readyz not ready after %v", addr, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
