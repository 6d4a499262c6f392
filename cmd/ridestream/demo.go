package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/broker"
	"github.com/ridestream/ridestream/internal/envflag"
	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/pgserver"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/processors"
	"github.com/ridestream/ridestream/sink"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	rides := fs.Int("rides", 50000, "synthetic rides to stream")
	partitions := fs.Int("partitions", 4, "partitions of the rides topic")
	hours := fs.Int("hours", 12, "event-hours the rides span")
	seed := fs.Uint64("seed", 1, "random seed")
	dataDir := fs.String("data-dir", "", "directory for the embedded broker's data (default: a new temporary directory)")
	pipe := pipelineFlags(fs, "the demo records them for its pipeline")
	logger := logFlags(fs)
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	log, err := logger(stderr)
	if err != nil {
		return err
	}
	spec, _, err := pipe()
	if err != nil {
		return err
	}
	ws := spec.Window
	w := generate.Config{Seed: *seed, Rides: *rides, Partitions: int32(*partitions), Hours: *hours,
		OutOfOrder: 0.05, Late: 0.01, Malformed: 0.005, Lateness: ws.Lateness, Heartbeats: true,
		IdlePartitions: 1, IdleAfter: 0.75}
	if err := w.Validate(); err != nil {
		return err
	}
	dir := *dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "ridestream-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}

	say := func(format string, a ...any) { fmt.Fprintf(stdout, "==> "+format+"\n", a...) }
	say("starting the embedded broker (franz-go kfake, a Kafka-protocol fake for laptops and tests, not Apache Kafka) with data in %s", filepath.Join(dir, "kafka"))
	b, err := broker.Start(filepath.Join(dir, "kafka"), 0)
	if err != nil {
		return err
	}
	defer b.Close()
	say("starting a throwaway PostgreSQL from the local server binaries")
	pg, err := pgserver.Start(ctx, pgserver.Options{})
	if err != nil {
		return err
	}
	defer pg.Stop()

	conn := kafka.Conn{Brokers: b.Addrs()}
	if err := ensureTopic(conn, spec.Input, w.Partitions, 1); err != nil {
		return err
	}
	say("producing %d rides over %d event-hours to %d partitions: ~5%% out of order within the %v lateness, ~1%% late beyond it, %d malformed;\n    partition %d goes idle for the last quarter, and one heartbeat per partition at the end releases the last windows",
		w.Rides, w.Hours, w.Partitions, ws.Lateness, w.MalformedCount(), w.Partitions-1)
	produced, err := generate.Produce(ctx, generate.ProduceOptions{Kafka: conn, Topic: spec.Input, Total: w.Count(), Logger: log}, w.All)
	if err != nil {
		return err
	}

	parts := make([][][]byte, w.Partitions)
	for m := range w.All {
		parts[m.Partition] = append(parts[m.Partition], m.Value)
	}
	rule := model.Rule{Size: ws.Size, Lateness: ws.Lateness, MaxFutureSkew: ws.MaxFutureSkew, Location: ws.Location, Input: spec.Decode,
		Aggregations: spec.Aggregations}
	want := map[string]int{}
	total := 0
	for name, rows := range model.Finals(rule, model.Run(rule, parts)) {
		want[name] = len(rows)
		total += len(rows)
	}

	say("running the goka processors (route, clock, windows) and the sink until every ride and every final window is in PostgreSQL")
	start := time.Now()
	err = conn.WithCluster("ridestream-demo", func(client sarama.Client, admin sarama.ClusterAdmin) error {
		spec, err = kafka.ResolveSpec(client, admin, spec, nil, true, 1)
		return err
	})
	if err != nil {
		return err
	}
	top, err := processors.Setup(processors.Config{Spec: spec, Kafka: conn, Logger: log})
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	var g errgroup.Group
	g.Go(func() error { return processors.Run(runCtx, top, nil) })
	g.Go(func() error {
		return sink.Run(runCtx, sink.Config{Kafka: conn, Pipeline: spec, DatabaseURL: pg.URL, Logger: log})
	})
	pool, err := pgxpool.New(ctx, pg.URL)
	if err != nil {
		stopRun()
		return errors.Join(err, g.Wait())
	}
	defer pool.Close()
	limit := 2*time.Minute + time.Duration(produced)*time.Millisecond // a thousand records a second would be slow
	waitErr := waitDone(ctx, pool, spec, int64(produced), int64(total), limit, log)
	stopRun()
	if err := errors.Join(waitErr, g.Wait()); err != nil {
		return err
	}
	el := time.Since(start)
	say("done in %v: %d messages through the processors and the sink (%.0f rides/s end to end)", el.Round(time.Millisecond), produced, float64(w.Rides)/el.Seconds())
	return report(ctx, pool, stdout, spec, want)
}

// waitDone polls PostgreSQL until every input record is applied and the
// reference model's number of final rows is in hourly_revenue, logging its
// progress and what it still waits for; after limit it gives up, saying
// what is missing.
func waitDone(ctx context.Context, pool *pgxpool.Pool, spec pipeline.Spec, records, finals int64, limit time.Duration, log *slog.Logger) error {
	progress := generate.NewProgress(log, "pipeline", int(records), 2*time.Second)
	deadline := time.Now().Add(limit)
	var got, gotFinals int64
	var lastErr error
	count := `SELECT coalesce((SELECT sum(rides + rejected + heartbeats) FROM sink_progress WHERE topic = $1), 0)`
	for _, a := range spec.Aggs() {
		count += ` + 0, (SELECT count(*) FROM ` + pgx.Identifier{a.Name}.Sanitize() + `)`
	}
	count = strings.ReplaceAll(count, " + 0", "")
	vals := make([]int64, 1+len(spec.Aggs()))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	for said := time.Now(); ; {
		if lastErr = pool.QueryRow(ctx, count, spec.Input).Scan(dest...); lastErr == nil {
			got, gotFinals = vals[0], 0
			for _, v := range vals[1:] {
				gotFinals += v
			}
			progress.Update(int(got))
			if got >= records && gotFinals >= finals {
				progress.Done(int(got))
				return nil
			}
			if got >= records && time.Since(said) >= 5*time.Second {
				log.Info("every input record is in PostgreSQL; waiting for the last windows to become final",
					"final_rows", gotFinals, "expected", finals)
				said = time.Now()
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: not finished after %v: %d of %d input records and %d of the reference model's %d final rows are in PostgreSQL (last query error: %v); the log above says what the processors and the sink did",
				limit, got, records, gotFinals, finals, lastErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// report prints what PostgreSQL holds now.
func report(ctx context.Context, pool *pgxpool.Pool, out io.Writer, spec pipeline.Spec, modelFinals map[string]int) error {
	var rides, late, rejected, heartbeats int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM rides), (SELECT count(*) FROM rides WHERE is_late),
		(SELECT count(*) FROM rejected_input), (SELECT coalesce(sum(heartbeats),0) FROM sink_progress)`).Scan(&rides, &late, &rejected, &heartbeats); err != nil {
		return fmt.Errorf("count tables: %w", err)
	}
	fmt.Fprintf(out, "\nPostgreSQL now holds: %d raw rides (%d of them late for %s, in late_rides), %d rejected messages, and %d heartbeats were applied.\n",
		rides, late, spec.Aggs()[0].Name, rejected, heartbeats)

	fmt.Fprintln(out, "\nRejected input by reason (table rejected_input):")
	if err := table(ctx, pool, out, `SELECT count(*) AS messages, left(error, 90) AS reason FROM rejected_input GROUP BY 2 ORDER BY 1 DESC, 2 LIMIT 8`); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nLate rides (table late_rides): counted in no window of their aggregation, each with the window it missed and by how much; a sample:")
	if err := table(ctx, pool, out, `SELECT aggregation, src_partition AS p, src_offset AS "offset", to_char(event_at AT TIME ZONE 'UTC', 'HH24:MI:SS') AS event_utc,
		coalesce(to_char(window_start AT TIME ZONE 'UTC', 'MM-DD HH24:MI'), '') AS missed_window, late_by::text AS late_by
		FROM late_rides ORDER BY aggregation, src_partition, src_offset LIMIT 5`); err != nil {
		return err
	}
	for _, a := range spec.Aggs() {
		start, _ := a.WindowColumns()
		name, startCol := pgx.Identifier{a.Name}.Sanitize(), pgx.Identifier{start}.Sanitize()
		var rows, windows int64
		if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT `+startCol+`) FROM `+name).Scan(&rows, &windows); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nFinal rows of aggregation %s (table %s: %d rows over %d windows, the reference model expects %d rows)",
			a.Name, a.Name, rows, windows, modelFinals[a.Name])
		if a.Name != aggregate.DefaultName {
			fmt.Fprintln(out, ", the first ten:")
			if err := table(ctx, pool, out, `SELECT * FROM `+name+` ORDER BY 1, 2 LIMIT 10`); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintln(out, ",\nwith the tutorial's query: SELECT window_start, sum(num_trips), round(sum(total_revenue)::numeric,2) FROM hourly_revenue GROUP BY 1 ORDER BY 1")
		if err := table(ctx, pool, out, `SELECT to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS window_start_utc,
		sum(num_trips)::bigint AS num_trips, round(sum(total_revenue)::numeric, 2)::text AS total_revenue FROM hourly_revenue GROUP BY window_start ORDER BY window_start`); err != nil {
			return err
		}
	}
	return nil
}

// table prints a query's result as aligned columns.
func table(ctx context.Context, pool *pgxpool.Pool, out io.Writer, sql string) error {
	rows, err := pool.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	defer rows.Close()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	for i, f := range rows.FieldDescriptions() {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, f.Name)
	}
	fmt.Fprintln(tw, "\t")
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return err
		}
		for i, v := range vals {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, v)
		}
		fmt.Fprintln(tw, "\t")
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tw.Flush()
}
