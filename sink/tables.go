package sink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/schema"
)

// aggTable is an aggregation's table of final rows: its DDL and its insert,
// generated from the aggregation.
type aggTable struct {
	a      aggregate.Aggregation
	insert string
}

func newAggTables(aggs []aggregate.Aggregation) []aggTable {
	out := make([]aggTable, len(aggs))
	for i, a := range aggs {
		out[i] = aggTable{a: a, insert: insertFinals(a)}
	}
	return out
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// key is the unique key of a's rows: window start and group.
func key(a aggregate.Aggregation) []string {
	start, _ := a.WindowColumns()
	return append([]string{start}, a.GroupColumns()...)
}

// measureType is a measure's column type: hundredths are numeric(18,2)
// (sums of millions of amounts stay exact), the rest bigint.
func measureType(m aggregate.Measure) string {
	if m.Scale() == ride.Hundredths {
		return "numeric(18,2)"
	}
	return "bigint"
}

// createTable is a's table: the window's bounds, the group's fields, the
// measures, when it became final; one row per window (session) and group.
func createTable(a aggregate.Aggregation) string {
	start, end := a.WindowColumns()
	cols := []string{ident(start) + " timestamptz NOT NULL", ident(end) + " timestamptz NOT NULL"}
	for _, c := range a.GroupColumns() {
		cols = append(cols, ident(c)+" integer")
	}
	for _, m := range a.Measures {
		cols = append(cols, ident(m.Column)+" "+measureType(m))
	}
	cols = append(cols, "finalized_at timestamptz NOT NULL DEFAULT now()")
	keyCols := make([]string, 0, len(key(a)))
	for _, k := range key(a) {
		keyCols = append(keyCols, ident(k))
	}
	return "CREATE TABLE IF NOT EXISTS " + ident(a.Name) + " (\n    " + strings.Join(cols, ",\n    ") + ");\n" +
		"CREATE UNIQUE INDEX IF NOT EXISTS " + ident(a.Name+"_key") + " ON " + ident(a.Name) + " (" + strings.Join(keyCols, ", ") + ") NULLS NOT DISTINCT"
}

// insertFinals inserts a's final rows from parameter arrays (one per
// column, hundredths as bigint): a row there already (a re-emitted final)
// is the same row and is left as it is.
func insertFinals(a aggregate.Aggregation) string {
	start, end := a.WindowColumns()
	cols := []string{ident(start), ident(end)}
	args := []string{"$1::timestamptz[]", "$2::timestamptz[]"}
	sel := []string{"c1", "c2"}
	n := 3
	add := func(col, expr string) {
		cols = append(cols, ident(col))
		args = append(args, "$"+strconv.Itoa(n)+"::bigint[]")
		sel = append(sel, strings.ReplaceAll(expr, "x", "c"+strconv.Itoa(n)))
		n++
	}
	for _, c := range a.GroupColumns() {
		add(c, "x::integer")
	}
	for _, m := range a.Measures {
		if m.Scale() == ride.Hundredths {
			add(m.Column, "x::numeric / 100")
		} else {
			add(m.Column, "x")
		}
	}
	as := make([]string, n-1)
	for i := range as {
		as[i] = "c" + strconv.Itoa(i+1)
	}
	keyCols := make([]string, 0, len(key(a)))
	for _, k := range key(a) {
		keyCols = append(keyCols, ident(k))
	}
	return "INSERT INTO " + ident(a.Name) + " (" + strings.Join(cols, ", ") + ")\nSELECT " + strings.Join(sel, ", ") +
		"\nFROM unnest(" + strings.Join(args, ", ") + ") AS t(" + strings.Join(as, ", ") + ")\nORDER BY " + strings.Join(sel[:1+len(a.GroupBy)], ", ") +
		"\nON CONFLICT (" + strings.Join(keyCols, ", ") + ") DO NOTHING"
}

// insert writes rows of a's table in tx.
func (t aggTable) write(ctx context.Context, tx pgx.Tx, rows []pipeline.Final) error {
	a := t.a
	starts, ends := make([]time.Time, len(rows)), make([]time.Time, len(rows))
	cols := make([][]*int64, len(a.GroupBy)+len(a.Measures))
	for i := range cols {
		cols[i] = make([]*int64, len(rows))
	}
	for r, f := range rows {
		starts[r], ends[r] = time.UnixMilli(f.Start), time.UnixMilli(f.End)
		for i, v := range append(f.Group, f.Measures...) {
			if !v.Null {
				x := v.V
				cols[i][r] = &x
			}
		}
	}
	args := []any{starts, ends}
	for _, c := range cols {
		args = append(args, c)
	}
	if _, err := tx.Exec(ctx, t.insert, args...); err != nil {
		return fmt.Errorf("insert %d final rows into %s: %w", len(rows), a.Name, err)
	}
	return nil
}

// createViews are a's derived views (docs/contract.md, "Outputs"):
//
//   - NAME_late (sessions): each late ride with the session of its group it
//     would have joined (its event time less than the gap from the
//     session's), or none;
//   - NAME_corrected: a's final rows with their late rides added: the same
//     key and measures over every valid ride of the window (session) and
//     group, on time and late, plus late_rides and, per sum, late_<column>.
//     A tumbling window is corrected once it has a final row in some group.
func createViews(a aggregate.Aggregation) string {
	start, _ := a.WindowColumns()
	groups := a.GroupColumns()
	var b strings.Builder
	if a.Kind == aggregate.Session {
		gap := strconv.FormatInt(a.Gap.Milliseconds(), 10) + " * interval '1 millisecond'"
		match := []string{"l.event_at > f.session_start - " + gap, "l.event_at < f.session_end + " + gap}
		for _, g := range groups {
			match = append(match, "f."+ident(g)+" IS NOT DISTINCT FROM r."+ident(g))
		}
		fmt.Fprintf(&b, "CREATE OR REPLACE VIEW %s AS\nSELECT DISTINCT ON (l.src_partition, l.src_offset) l.src_partition, l.src_offset, l.event_at, l.stream_time, l.late_by,\n    f.session_start\nFROM late_rides l JOIN rides r USING (src_partition, src_offset)\nLEFT JOIN %s f ON %s\nWHERE l.aggregation = %s\nORDER BY l.src_partition, l.src_offset, f.session_start;\n",
			ident(a.Name+"_late"), ident(a.Name), strings.Join(match, " AND "), quote(a.Name))
	}
	// The late rides' measures per window (session) and group.
	var lsel, lgroup []string
	if a.Kind == aggregate.Session {
		lsel = append(lsel, "s.session_start AS "+ident(start))
		lgroup = append(lgroup, "s.session_start")
	} else {
		lsel = append(lsel, "l.window_start AS "+ident(start))
		lgroup = append(lgroup, "l.window_start")
	}
	for _, g := range groups {
		lsel = append(lsel, "r."+ident(g)+" AS "+ident(g))
		lgroup = append(lgroup, "r."+ident(g))
	}
	lsel = append(lsel, "count(*) AS late_rides")
	for _, m := range a.Measures {
		col := ident(m.Column)
		field := "r." + ident(ride.Fields[m.Field].Column)
		switch m.Fn {
		case aggregate.Count:
			lsel = append(lsel, "count(*) AS "+col)
		case aggregate.Sum:
			lsel = append(lsel, "coalesce(sum("+field+"), 0) AS "+col)
		case aggregate.Min:
			lsel = append(lsel, "min("+field+") AS "+col)
		case aggregate.Max:
			lsel = append(lsel, "max("+field+") AS "+col)
		}
	}
	from := "late_rides l JOIN rides r USING (src_partition, src_offset)"
	where := "l.aggregation = " + quote(a.Name)
	if a.Kind == aggregate.Session {
		from = ident(a.Name+"_late") + " s JOIN rides r USING (src_partition, src_offset)"
		where = "s.session_start IS NOT NULL"
	} else {
		where += " AND l.window_start IN (SELECT " + ident(start) + " FROM " + ident(a.Name) + ")"
	}
	on := []string{"f." + ident(start) + " = l." + ident(start)}
	for _, g := range groups {
		on = append(on, "f."+ident(g)+" IS NOT DISTINCT FROM l."+ident(g))
	}
	sel := []string{"coalesce(f." + ident(start) + ", l." + ident(start) + ") AS " + ident(start)}
	if a.Kind == aggregate.Session {
		sel = append(sel, "f.session_end AS session_end")
	} else {
		sel = append(sel, "coalesce(f.window_end, (SELECT max(window_end) FROM "+ident(a.Name)+" w WHERE w.window_start = l.window_start)) AS window_end")
	}
	for _, g := range groups {
		sel = append(sel, "coalesce(f."+ident(g)+", l."+ident(g)+") AS "+ident(g))
	}
	var lateSums []string
	for _, m := range a.Measures {
		col := ident(m.Column)
		switch m.Fn {
		case aggregate.Count:
			sel = append(sel, "coalesce(f."+col+", 0) + coalesce(l."+col+", 0) AS "+col)
		case aggregate.Sum:
			sel = append(sel, "coalesce(f."+col+", 0) + coalesce(l."+col+", 0) AS "+col)
			lateSums = append(lateSums, "coalesce(l."+col+", 0) AS "+ident("late_"+m.Column))
		case aggregate.Min:
			sel = append(sel, "least(f."+col+", l."+col+") AS "+col)
		case aggregate.Max:
			sel = append(sel, "greatest(f."+col+", l."+col+") AS "+col)
		}
	}
	sel = append(sel, "coalesce(l.late_rides, 0) AS late_rides")
	sel = append(sel, lateSums...)
	fmt.Fprintf(&b, "CREATE OR REPLACE VIEW %s AS\nWITH l AS (\n  SELECT %s\n  FROM %s\n  WHERE %s\n  GROUP BY %s)\nSELECT %s\nFROM %s f FULL JOIN l ON %s",
		ident(a.Name+"_corrected"), strings.Join(lsel, ", "), from, where, strings.Join(lgroup, ", "), strings.Join(sel, ",\n    "),
		ident(a.Name), strings.Join(on, " AND "))
	return b.String()
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ownedTables are the raw tables every pipeline's sink writes, and the
// window_status view over them.
var ownedTables = []string{schema.TableRides, schema.TableRejected, schema.TableLateRides, schema.TableSinkProgress, schema.TableWindowCounts, "window_status", "redriven"}

// OwnershipError refuses a table that another pipeline owns.
type OwnershipError struct {
	Table, Owner, Pipeline string
}

func (e *OwnershipError) Error() string {
	return fmt.Sprintf("table %s belongs to pipeline %q (ridestream_tables), not to this sink's pipeline %q: two pipelines sharing a database "+
		"each need a schema of their own (search_path=<schema> in --database-url)", e.Table, e.Owner, e.Pipeline)
}

// ensureTables claims the pipeline's tables in ridestream_tables, refusing
// one another pipeline owns, and creates its aggregations' tables and views.
func ensureTables(ctx context.Context, tx pgx.Tx, spec pipeline.Spec) error {
	prefix, aggs := spec.Prefix, spec.Aggs()
	if _, err := tx.Exec(ctx, "LOCK TABLE ridestream_tables IN EXCLUSIVE MODE"); err != nil {
		return err
	}
	claim := func(table, definition string) error {
		var owner, def string
		err := tx.QueryRow(ctx, "SELECT pipeline, definition FROM ridestream_tables WHERE table_name = $1", table).Scan(&owner, &def)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			_, err = tx.Exec(ctx, "INSERT INTO ridestream_tables (table_name, pipeline, definition) VALUES ($1, $2, $3)", table, prefix, definition)
			return err
		case err != nil:
			return err
		case owner != prefix:
			return &OwnershipError{Table: table, Owner: owner, Pipeline: prefix}
		case def != definition:
			return fmt.Errorf("table %s of pipeline %q was made for %s, this sink's pipeline declares %s: `ridestream reset --prefix %s --postgres all` drops it",
				table, prefix, def, definition, prefix)
		}
		return nil
	}
	for _, t := range ownedTables {
		if err := claim(t, "raw"); err != nil {
			return err
		}
	}
	for _, a := range aggs {
		if err := claim(a.Name, aggregate.Canonical([]aggregate.Aggregation{a})); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", ident(a.Name)).Scan(&exists); err != nil {
			return err
		}
		if !exists { // (hourly_revenue has existed since the first migration, with its key)
			if _, err := tx.Exec(ctx, createTable(a)); err != nil {
				return fmt.Errorf("create table %s: %w", a.Name, err)
			}
		}
		if _, err := tx.Exec(ctx, createViews(a)); err != nil {
			return fmt.Errorf("create views of %s: %w", a.Name, err)
		}
	}
	if _, err := tx.Exec(ctx, statusView(spec)); err != nil {
		return fmt.Errorf("create window_status: %w", err)
	}
	return nil
}

// statusView is window_status (docs/contract.md, "Outputs"): one row per
// window of a tumbling aggregation that has on-time rides, final or open;
// an open one with the input partitions whose stream time is still below
// its end + L (the sink's committed stream times, the same rule the
// processors finalize by) and the lowest of them. A partition the sink has
// not read yet has no stream time: it is waiting too.
func statusView(spec pipeline.Spec) string {
	var lateness, finals []string
	for _, a := range spec.Aggs() {
		if a.Kind != aggregate.Tumbling {
			continue
		}
		lateness = append(lateness, fmt.Sprintf("(%s, %d * interval '1 millisecond')", quote(a.Name), a.Lateness.Milliseconds()))
		start, _ := a.WindowColumns()
		finals = append(finals, fmt.Sprintf("SELECT %s::text AS aggregation, %s AS window_start, min(finalized_at) AS finalized_at FROM %s GROUP BY 2",
			quote(a.Name), ident(start), ident(a.Name)))
	}
	if len(finals) == 0 { // sessions only: no windows
		return `CREATE OR REPLACE VIEW window_status AS
SELECT NULL::text AS aggregation, NULL::timestamptz AS window_start, NULL::timestamptz AS window_end, NULL::text AS state,
    NULL::bigint AS rides, NULL::bigint AS late_rides, NULL::timestamptz AS finalized_at, NULL::int[] AS waiting_partitions,
    NULL::timestamptz AS lowest_stream_time WHERE false`
	}
	return fmt.Sprintf(`CREATE OR REPLACE VIEW window_status AS
WITH lateness (aggregation, l) AS (VALUES %s),
finals AS (%s),
partitions AS (
    SELECT n AS src_partition, p.stream_time FROM generate_series(0, %d) n
    LEFT JOIN sink_progress p ON p.topic = %s AND p.src_partition = n)
SELECT c.aggregation, c.window_start, c.window_end,
    CASE WHEN f.finalized_at IS NULL THEN 'open' ELSE 'final' END AS state,
    c.rides, c.late_rides, f.finalized_at,
    w.waiting_partitions, w.lowest_stream_time
FROM window_counts c
JOIN lateness USING (aggregation)
LEFT JOIN finals f USING (aggregation, window_start)
LEFT JOIN LATERAL (
    SELECT array_agg(p.src_partition ORDER BY p.src_partition) AS waiting_partitions, min(p.stream_time) AS lowest_stream_time
    FROM partitions p
    WHERE f.finalized_at IS NULL AND (p.stream_time IS NULL OR p.stream_time < c.window_end + lateness.l)) w ON true
WHERE c.rides > 0`, strings.Join(lateness, ", "), strings.Join(finals, "\nUNION ALL "), spec.InputPartitions-1, quote(spec.Input))
}
