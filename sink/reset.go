package sink

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ridestream/ridestream/schema"
)

// ResetScope says which PostgreSQL outputs a reset clears.
type ResetScope string

// Reset scopes.
const (
	ResetNone   ResetScope = "none"
	ResetFinals ResetScope = "finals"
	ResetAll    ResetScope = "all"
)

// Validate names the flag on a bad value.
func (s ResetScope) Validate() error {
	switch s {
	case ResetNone, ResetFinals, ResetAll:
		return nil
	}
	return fmt.Errorf("--postgres %q: want none, finals or all", string(s))
}

// ResetDescription says what Reset will clear.
func ResetDescription(s ResetScope, prefix, finalsTopic string) string {
	if s == ResetAll {
		return "drop pipeline " + prefix + "'s aggregation tables and views, truncate rides, rejected_input, late_rides and sink_progress, and release its tables in ridestream_tables"
	}
	return "drop pipeline " + prefix + "'s aggregation tables and views (the sink makes them again) and forget the sink's progress on " + finalsTopic
}

// Reset clears PostgreSQL outputs of pipeline prefix for a replay, in one
// transaction: its aggregations' tables go (a new declaration may shape them
// differently), and with ResetAll the raw tables are emptied too.
func Reset(ctx context.Context, url string, s ResetScope, prefix, finalsTopic string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := schema.Migrate(ctx, conn); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT table_name FROM ridestream_tables WHERE pipeline = $1 AND definition <> 'raw'", prefix)
		if err != nil {
			return err
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		// window_status reads the final tables; the sink makes it again.
		if _, err := tx.Exec(ctx, "DROP VIEW IF EXISTS window_status"); err != nil {
			return err
		}
		for _, t := range tables {
			for _, stmt := range []string{"DROP VIEW IF EXISTS " + ident(t+"_corrected"), "DROP VIEW IF EXISTS " + ident(t+"_late"),
				"DROP TABLE IF EXISTS " + ident(t)} {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return err
				}
			}
		}
		if s == ResetAll {
			if _, err := tx.Exec(ctx, "TRUNCATE rides, rejected_input, late_rides, sink_progress, window_counts, redriven"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "DELETE FROM ridestream_tables WHERE pipeline = $1", prefix)
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM ridestream_tables WHERE pipeline = $1 AND definition <> 'raw'", prefix); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "DELETE FROM sink_progress WHERE topic = $1", finalsTopic)
		return err
	})
}
