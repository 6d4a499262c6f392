package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/pgserver"
	"github.com/ridestream/ridestream/internal/procstat"
)

// flinkTable is where the Flink peer upserts its rows: the tutorial's
// columns, and written_at, set by each upsert, which dates its last
// committed row.
const flinkTable = `CREATE TABLE flink_hourly_revenue (
	window_start   timestamptz   NOT NULL,
	pu_location_id integer       NOT NULL,
	num_trips      bigint        NOT NULL,
	total_revenue  numeric(14,2) NOT NULL,
	written_at     timestamptz   NOT NULL,
	PRIMARY KEY (window_start, pu_location_id))`

type flinkResult struct {
	Seconds float64 // process start to its last committed row
	CPU     float64 // CPU seconds of the JVM when its job had finished
	PeakRSS int
	// What it printed.
	Version           string
	CheckpointMs      int64
	Late, TooFarAhead int64
	// Its table against the model's finals.
	tableAnswer
}

// runFlinkPeer runs the Flink peer c.runs times on topic, each with a new
// database and consumer group, and returns the runs by elapsed time.
func runFlinkPeer(ctx context.Context, c config, pg *pgserver.Server, topic string, finals map[model.RowKey]model.Row, say func(string, ...any)) ([]flinkResult, error) {
	var runs []flinkResult
	for i := range c.runs {
		say("Flink peer, run %d of %d (local MiniCluster, parallelism %d): bounded replay of the input topic, hourly rows upserted into PostgreSQL", i+1, c.runs, c.flinkParallelism)
		r, err := runFlink(ctx, c, pg, topic, i, finals)
		if err != nil {
			return nil, fmt.Errorf("flink peer: %w", err)
		}
		runs = append(runs, r)
		say("Flink peer, run %d: %.0f rides/s, %d rows, %d trips (%d rows equal to the model's)", i+1, float64(c.rides)/r.Seconds, r.Rows, r.Trips, r.EqualRows)
	}
	slices.SortFunc(runs, func(a, b flinkResult) int { return cmp.Compare(a.Seconds, b.Seconds) })
	return runs, nil
}

// runFlink runs the Flink peer once until its job has finished, then
// compares its table with the model's finals.
func runFlink(ctx context.Context, c config, pg *pgserver.Server, topic string, run int, finals map[model.RowKey]model.Row) (flinkResult, error) {
	var res flinkResult
	dbURL, err := createDatabase(ctx, pg.URL, fmt.Sprintf("flink%d", run))
	if err != nil {
		return res, err
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return res, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, flinkTable); err != nil {
		return res, err
	}
	jdbc, user, err := jdbcURL(dbURL)
	if err != nil {
		return res, err
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, c.flink, "run", "--bootstrap", c.brokers, "--input", topic, "--group", fmt.Sprintf("bench-flink%d", run),
		"--jdbc-url", jdbc, "--db-user", user, "--table", "flink_hourly_revenue", "--parallelism", strconv.Itoa(c.flinkParallelism))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return res, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	var out struct {
		Version     string `json:"flink_version"`
		Checkpoint  int64  `json:"checkpoint_ms"`
		Rides       int64  `json:"rides"`
		Late        int64  `json:"late_dropped"`
		TooFarAhead int64  `json:"too_far_ahead"`
	}
	decodeErr := json.NewDecoder(stdout).Decode(&out)
	// The script execs java, and the JVM holds on until stdin closes: its
	// CPU and peak memory are read now, with its job done.
	res.CPU, res.PeakRSS = cpuTree(cmd.Process.Pid), procstat.PeakRSSMB(cmd.Process.Pid)
	stdin.Close()
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return res, fmt.Errorf("peer exited: %w", err)
	}
	if decodeErr != nil {
		return res, fmt.Errorf("peer output: %w", decodeErr)
	}
	if out.Rides < int64(c.rides) {
		return res, fmt.Errorf("peer read %d rides of %d", out.Rides, c.rides)
	}
	res.Version, res.CheckpointMs, res.Late, res.TooFarAhead = out.Version, out.Checkpoint, out.Late, out.TooFarAhead
	var last time.Time
	if err := conn.QueryRow(ctx, `SELECT max(written_at) FROM flink_hourly_revenue`).Scan(&last); err != nil {
		return res, fmt.Errorf("its table: %w", err)
	}
	res.Seconds = last.Sub(start).Seconds()
	res.tableAnswer, err = compareFinals(ctx, conn, "flink_hourly_revenue", finals)
	return res, err
}

// tableAnswer is a table of hourly rows (window_start, pu_location_id,
// num_trips, total_revenue) against the model's finals.
type tableAnswer struct {
	Rows, Trips, Cents int64
	EqualRows          int // rows equal to the model's: same window, zone, trips and revenue
}

// compareFinals reads table's rows and compares them with the model's.
func compareFinals(ctx context.Context, conn interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, table string, finals map[model.RowKey]model.Row) (tableAnswer, error) {
	var a tableAnswer
	rows, err := conn.Query(ctx, `SELECT (extract(epoch FROM window_start) * 1000)::bigint, pu_location_id, num_trips,
		(total_revenue * 100)::bigint FROM `+pgx.Identifier{table}.Sanitize())
	if err != nil {
		return a, err
	}
	defer rows.Close()
	for rows.Next() {
		var start, trips, cents int64
		var zone int32
		if err := rows.Scan(&start, &zone, &trips, &cents); err != nil {
			return a, err
		}
		a.Rows, a.Trips, a.Cents = a.Rows+1, a.Trips+trips, a.Cents+cents
		want, ok := finals[model.RowKey{Start: start, Group: strconv.Itoa(int(zone))}]
		if ok && want.Measures[0].V == trips && want.Measures[1].V == cents {
			a.EqualRows++
		}
	}
	return a, rows.Err()
}

// jdbcURL is a PostgreSQL URL of pgserver's (postgres://user@host:port/db?…)
// as the JDBC driver takes it, and its user (the throwaway cluster trusts
// it: no password).
func jdbcURL(dbURL string) (jdbc, user string, err error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", "", err
	}
	return "jdbc:postgresql://" + u.Host + u.Path + "?" + u.RawQuery, u.User.Username(), nil
}

// modelTotals are the trips and revenue (cents) of the model's finals.
func modelTotals(finals map[model.RowKey]model.Row) (trips, cents int64) {
	for _, f := range finals {
		trips, cents = trips+f.Measures[0].V, cents+f.Measures[1].V
	}
	return trips, cents
}

// writeFlinkRow writes the Flink peer's line of the measurement table.
func writeFlinkRow(b *strings.Builder, c config, runs []flinkResult, finals map[model.RowKey]model.Row) float64 {
	wantTrips, wantCents := modelTotals(finals)
	rates, trips, cents := make([]float64, len(runs)), make([]float64, len(runs)), make([]float64, len(runs))
	for i, r := range runs {
		rates[i] = float64(c.rides) / r.Seconds
		trips[i], cents[i] = 100*float64(r.Trips)/float64(wantTrips), 100*float64(r.Cents)/float64(wantCents)
	}
	m := runs[len(runs)/2]
	rate := float64(c.rides) / m.Seconds
	fmt.Fprintf(b, "| Flink %s peer (bench/flink): local MiniCluster, parallelism %d, bounded Kafka source (earliest → the latest offsets at start), JDBC upsert sink at least once, checkpoints every %v | %.0f rides/s | %.0f–%.0f; median run %.1f s from process start to its last committed row, %.1f CPU-s per 1M rides, peak RSS %d MiB; its table holds %s%% of the model's trips and %s%% of its revenue, %d rows of which %d equal the model's %d (median run: %d rides dropped as late, %d skipped as more than 24h ahead of their partition). Event time: WatermarkStrategy.forBoundedOutOfOrderness(5 min), per Kafka partition, the job's watermark their minimum: a window fires once every partition has passed its end + 5 min, as in ridestream, but a ride is late only once that minimum has passed (ridestream: its own partition's stream time), and watermarks move every 200 ms, so it counts some rides the model calls late; at least once + upsert on (window_start, pu_location_id): replays write the same rows |\n",
		m.Version, c.flinkParallelism, time.Duration(m.CheckpointMs)*time.Millisecond, rate, slices.Min(rates), slices.Max(rates), m.Seconds, m.CPU*1e6/float64(c.rides), m.PeakRSS,
		pctRange(trips), pctRange(cents), m.Rows, m.EqualRows, len(finals), m.Late, m.TooFarAhead)
	return rate
}

// pctRange is a range of percentages, one value when they agree.
func pctRange(v []float64) string {
	lo, hi := fmt.Sprintf("%.2f", slices.Min(v)), fmt.Sprintf("%.2f", slices.Max(v))
	if lo == hi {
		return lo
	}
	return lo + "–" + hi
}
