package sink

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/window"
)

// Ceiling is what PostgreSQL takes of the sink's ride rows on this machine.
type Ceiling struct {
	Rows int
	// CopyPerSec is a plain COPY into a logged table of the rides shape
	// (its primary key included, amounts as integer cents), one transaction
	// per batch: the ceiling.
	CopyPerSec float64
	// IdempotentPerSec is the idempotent staging path: COPY into staging,
	// INSERT … ORDER BY key ON CONFLICT DO NOTHING into rides, progress
	// upsert, one transaction per batch.
	IdempotentPerSec float64
	// SinkPerSec is the sink's path: COPY into rides under a savepoint
	// (staging only when a row is there already), progress upsert.
	SinkPerSec float64
}

// MeasureCeiling writes rows synthetic rides both ways into the database at
// url (migrated first) in batches of batch rows.
func MeasureCeiling(ctx context.Context, url string, rows, batch int) (Ceiling, error) {
	c := Ceiling{Rows: rows}
	pool, err := OpenPool(ctx, url)
	if err != nil {
		return c, err
	}
	defer pool.Close()
	if err := MigratePool(ctx, pool); err != nil {
		return c, err
	}
	spec := window.DefaultSpec()
	w := generate.Config{Seed: 3, Rides: rows, Partitions: 1, Hours: 24, Lateness: spec.Lateness}
	all := make([]rideRow, 0, rows)
	for m := range w.All {
		rec, err := ride.Decode(m.Value)
		if err != nil {
			return c, fmt.Errorf("generated ride does not decode: %w", err)
		}
		all = append(all, rideRow{partition: 0, offset: int64(len(all)), r: rec.Ride, windowStart: spec.Start(rec.EventMs)})
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_copy (LIKE rides INCLUDING DEFAULTS INCLUDING INDEXES);
		`+benchCopyIntegers()+`
		TRUNCATE bench_copy`); err != nil {
		return c, fmt.Errorf("create bench_copy: %w", err)
	}
	start := time.Now()
	for lo := 0; lo < len(all); lo += batch {
		part := all[lo:min(lo+batch, len(all))]
		vals := make([]any, numRideColumns)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"bench_copy"}, rideTableColumns,
				pgx.CopyFromSlice(len(part), func(i int) ([]any, error) { return rideValues(&part[i], vals), nil }))
			return err
		})
		if err != nil {
			return c, fmt.Errorf("copy batch: %w", err)
		}
	}
	c.CopyPerSec = float64(len(all)) / time.Since(start).Seconds()

	paths := []struct {
		path int
		rate *float64
	}{{pathStaging, &c.IdempotentPerSec}, {pathDirect, &c.SinkPerSec}}
	for _, p := range paths {
		if _, err := pool.Exec(ctx, `TRUNCATE rides, sink_progress`); err != nil {
			return c, err
		}
		start = time.Now()
		for lo := 0; lo < len(all); lo += batch {
			part := all[lo:min(lo+batch, len(all))]
			ch := &chunk{rides: part, records: len(part),
				progress: progress{topic: "bench", partition: 0, next: part[len(part)-1].offset + 1, rides: part[len(part)-1].offset + 1}}
			if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return writeBatch(ctx, tx, []*chunk{ch}, p.path, nil) }); err != nil {
				return c, fmt.Errorf("batch: %w", err)
			}
		}
		*p.rate = float64(len(all)) / time.Since(start).Seconds()
	}
	return c, nil
}

// benchCopyIntegers alters bench_copy's hundredths columns to bigint, so the
// plain COPY writes the same integers the staging path does.
func benchCopyIntegers() string {
	var alter []string
	for _, f := range ride.Fields {
		if f.Kind == ride.Hundredths {
			alter = append(alter, "ALTER COLUMN "+f.Column+" TYPE bigint")
		}
	}
	return "ALTER TABLE bench_copy " + strings.Join(alter, ", ") + ";"
}
