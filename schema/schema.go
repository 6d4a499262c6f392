// Package schema owns ridestream's PostgreSQL schema: versioned SQL
// migrations embedded in the binary and applied idempotently, under an
// advisory lock so concurrent sinks starting together apply each once.
package schema

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/ridestream/ridestream/internal/ride"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Table names, owned here and used by the sink and the tests.
const (
	TableRides        = "rides"
	TableRejected     = "rejected_input"
	TableLateRides    = "late_rides"
	TableSinkProgress = "sink_progress"
	TableWindowCounts = "window_counts"
)

// advisoryLockID serialises migrations across processes ("ridestrm").
const advisoryLockID = 0x7269646573747260

// Migration is one versioned SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		prefix, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a version number and '_'", name)
		}
		body, err := migrations.ReadFile("migrations/" + name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Migrate applies every embedded migration not yet recorded in
// schema_migrations, each in its own transaction, and returns the versions it
// applied. Running it again applies nothing.
func Migrate(ctx context.Context, conn *pgx.Conn) ([]int, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(advisoryLockID)); err != nil {
		return nil, fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		// Unlock on a fresh context so a cancelled ctx still releases the lock;
		// closing the connection releases it too.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(advisoryLockID))
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY,
		name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	applied := make(map[int]bool, len(done))
	for _, v := range done {
		applied[int(v)] = true
	}
	var ran []int
	for _, m := range all {
		if applied[m.Version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return ran, fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
		ran = append(ran, m.Version)
	}
	// The rides table has a column for every field the decoder reads
	// (ride.Fields): a field added there is added here.
	// Only a missing column is added: ALTER TABLE locks the table even when
	// it has nothing to do.
	rows, err = conn.Query(ctx, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'rides'`)
	if err != nil {
		return ran, fmt.Errorf("read the rides table's columns: %w", err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return ran, fmt.Errorf("read the rides table's columns: %w", err)
	}
	for _, f := range ride.Fields {
		if slices.Contains(have, f.Column) {
			continue
		}
		if _, err := conn.Exec(ctx, "ALTER TABLE rides ADD COLUMN IF NOT EXISTS "+pgx.Identifier{f.Column}.Sanitize()+" "+f.SQLType); err != nil {
			return ran, fmt.Errorf("add column %s to rides: %w", f.Column, err)
		}
	}
	return ran, nil
}
