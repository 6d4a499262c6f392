package sink

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
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
func ResetDescription(s ResetScope, finalsTopic string) string {
	if s == ResetAll {
		return "truncate rides, rejected_input, late_rides, hourly_revenue, sink_progress"
	}
	return "truncate hourly_revenue and forget the sink's progress on " + finalsTopic
}

// Reset clears PostgreSQL outputs for a replay, in one transaction.
func Reset(ctx context.Context, url string, s ResetScope, finalsTopic string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if s == ResetAll {
			_, err := tx.Exec(ctx, "TRUNCATE rides, rejected_input, late_rides, hourly_revenue, sink_progress")
			return err
		}
		if _, err := tx.Exec(ctx, "TRUNCATE hourly_revenue"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM sink_progress WHERE topic = $1", finalsTopic)
		return err
	})
}
