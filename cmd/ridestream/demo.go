package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/ridestream/ridestream/internal/broker"
	"github.com/ridestream/ridestream/internal/envflag"
	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/pgserver"
	"github.com/ridestream/ridestream/sink"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	rides := fs.Int("rides", 50000, "synthetic rides to stream")
	partitions := fs.Int("partitions", 4, "partitions of the rides topic")
	hours := fs.Int("hours", 12, "event-hours the rides span")
	seed := fs.Uint64("seed", 1, "random seed")
	dataDir := fs.String("data-dir", "", "directory for the embedded broker's data (default: a new temporary directory)")
	spec := windowFlags(fs)
	logger := logFlags(fs)
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	log, err := logger(stderr)
	if err != nil {
		return err
	}
	ws, err := spec()
	if err != nil {
		return err
	}
	w := generate.Config{Seed: *seed, Rides: *rides, Partitions: int32(*partitions), Hours: *hours,
		OutOfOrder: 0.05, Late: 0.01, Malformed: 0.005, Lateness: ws.Lateness, Heartbeats: true}
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

	brokers := b.Addrs()
	if err := ensureTopic(brokers, DefaultTopic, w.Partitions, 1); err != nil {
		return err
	}
	say("producing %d rides over %d event-hours to %d partitions, ~5%% out of order, ~1%% late, %d malformed, one closing heartbeat per partition",
		w.Rides, w.Hours, w.Partitions, w.MalformedCount())
	produced, err := generate.Produce(ctx, generate.ProduceOptions{Brokers: brokers, Topic: DefaultTopic, Total: w.Count(), Logger: log}, w.All)
	if err != nil {
		return err
	}

	say("running the sink until every message is committed in PostgreSQL")
	start := time.Now()
	sinkCtx, stopSink := context.WithCancel(ctx)
	var g errgroup.Group
	g.Go(func() error {
		return sink.Run(sinkCtx, sink.Config{Brokers: brokers, Topic: DefaultTopic, DatabaseURL: pg.URL, Window: ws, Logger: log})
	})
	pool, err := pgxpool.New(ctx, pg.URL)
	if err != nil {
		stopSink()
		return errors.Join(err, g.Wait())
	}
	defer pool.Close()
	waitErr := waitApplied(ctx, pool, DefaultTopic, int64(produced), generate.NewProgress(log, "sink", produced, 2*time.Second))
	stopSink()
	if err := errors.Join(waitErr, g.Wait()); err != nil {
		return err
	}
	el := time.Since(start)
	say("sink committed %d messages in %v (%.0f messages/s, exactly once, offsets stored with the rows)", produced, el.Round(time.Millisecond), float64(produced)/el.Seconds())
	return report(ctx, pool, stdout)
}

// waitApplied polls sink progress until total records applied reach want.
func waitApplied(ctx context.Context, pool *pgxpool.Pool, topic string, want int64, progress *generate.Progress) error {
	for {
		var got int64
		err := pool.QueryRow(ctx, `SELECT coalesce(sum(rides + rejected + heartbeats), 0) FROM sink_progress WHERE topic = $1`, topic).Scan(&got)
		if err == nil {
			progress.Update(int(got))
			if got >= want {
				progress.Done(int(got))
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// report prints what PostgreSQL holds now.
func report(ctx context.Context, pool *pgxpool.Pool, out io.Writer) error {
	var rides, late, rejected, heartbeats int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM rides), (SELECT count(*) FROM rides WHERE is_late),
		(SELECT count(*) FROM rejected_input), (SELECT coalesce(sum(heartbeats),0) FROM sink_progress)`).Scan(&rides, &late, &rejected, &heartbeats); err != nil {
		return fmt.Errorf("count tables: %w", err)
	}
	fmt.Fprintf(out, "\nPostgreSQL now holds: %d raw rides (%d of them late, also in late_rides), %d rejected messages, and %d heartbeats were applied.\n", rides, late, rejected, heartbeats)

	fmt.Fprintln(out, "\nRejected input by reason (table rejected_input):")
	if err := table(ctx, pool, out, `SELECT count(*) AS messages, left(error, 90) AS reason FROM rejected_input GROUP BY 2 ORDER BY 1 DESC, 2 LIMIT 8`); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nHourly revenue over what exists so far: on-time raw rides grouped by window (table rides).")
	fmt.Fprintln(out, "These are provisional sums from raw rides, not yet the finalized hourly_revenue table.")
	return table(ctx, pool, out, `SELECT to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS window_start_utc,
		count(*) AS num_trips, sum(total_amount)::text AS total_revenue FROM rides WHERE NOT is_late GROUP BY window_start ORDER BY window_start`)
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
