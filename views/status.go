package views

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/ride"
)

// WithDatabase gives the views the pipeline's PostgreSQL (where final rows,
// window_status and the sink's progress are) and a Kafka client (for the
// input's end offsets): the API then lists final windows, what holds open
// ones back, and the partitions.
func (w *Windows) WithDatabase(db *pgxpool.Pool, client sarama.Client) *Windows {
	w.db, w.client = db, client
	return w
}

// StatusRow is one row of window_status.
type StatusRow struct {
	Start, End  time.Time
	Final       bool
	Rides, Late int64
	LateCents   int64
	FinalizedAt *time.Time
	Waiting     []int32
	Lowest      *time.Time
}

// status reads window_status of aggregation a for windows starting in
// [from, to), with the late rides' revenue per window.
func (w *Windows) status(ctx context.Context, a aggregate.Aggregation, from, to int64) (map[int64]*StatusRow, error) {
	rows, err := w.db.Query(ctx, `SELECT s.window_start, s.window_end, s.state = 'final', s.rides, s.late_rides, s.finalized_at,
    coalesce(s.waiting_partitions, '{}'), s.lowest_stream_time,
    coalesce((SELECT round(sum(l.total_amount) * 100) FROM late_rides l WHERE l.aggregation = s.aggregation AND l.window_start = s.window_start), 0)::bigint
FROM window_status s WHERE s.aggregation = $1 AND s.window_start >= $2 AND s.window_start < $3`, a.Name, time.UnixMilli(from), time.UnixMilli(to))
	if undefined(err) { // no sink has made the pipeline's tables yet
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read window_status: %w", err)
	}
	out := map[int64]*StatusRow{}
	for rows.Next() {
		r := &StatusRow{}
		if err := rows.Scan(&r.Start, &r.End, &r.Final, &r.Rides, &r.Late, &r.FinalizedAt, &r.Waiting, &r.Lowest, &r.LateCents); err != nil {
			return nil, fmt.Errorf("read window_status: %w", err)
		}
		out[r.Start.UnixMilli()] = r
	}
	return out, rows.Err()
}

// finals reads the final rows of a in [from, to) as the view's windows.
func (w *Windows) finals(ctx context.Context, a aggregate.Aggregation, from, to int64) (map[int64]*Window, error) {
	start, end := a.WindowColumns()
	cols := []string{pgx.Identifier{start}.Sanitize(), pgx.Identifier{end}.Sanitize()}
	for _, c := range a.GroupColumns() {
		cols = append(cols, pgx.Identifier{c}.Sanitize()+"::bigint")
	}
	for _, m := range a.Measures {
		c := pgx.Identifier{m.Column}.Sanitize()
		if m.Scale() == ride.Hundredths {
			c = "round(" + c + " * 100)"
		}
		cols = append(cols, c+"::bigint")
	}
	rows, err := w.db.Query(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+pgx.Identifier{a.Name}.Sanitize()+" WHERE "+
		pgx.Identifier{start}.Sanitize()+" >= $1 AND "+pgx.Identifier{start}.Sanitize()+" < $2", time.UnixMilli(from), time.UnixMilli(to))
	if undefined(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", a.Name, err)
	}
	defer rows.Close()
	out := map[int64]*Window{}
	n := len(a.GroupBy) + len(a.Measures)
	for rows.Next() {
		var s, e time.Time
		vals := make([]*int64, n)
		dest := []any{&s, &e}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read %s: %w", a.Name, err)
		}
		win := out[s.UnixMilli()]
		if win == nil {
			win = &Window{Start: s.UnixMilli(), End: e.UnixMilli(), Final: true}
			out[win.Start] = win
		}
		g := pipeline.GroupAcc{Acc: a.NewAcc()}
		for i, v := range vals {
			switch {
			case i < len(a.GroupBy) && v == nil:
				g.Group.Null |= 1 << i
			case i < len(a.GroupBy):
				g.Group.V[i] = *v
			case v != nil:
				g.Acc.Vals[i-len(a.GroupBy)] = *v
				g.Acc.Has |= 1 << (i - len(a.GroupBy))
			}
		}
		win.Groups = append(win.Groups, g)
	}
	return out, rows.Err()
}

// PartitionJSON is one input partition in the API.
type PartitionJSON struct {
	Partition int32 `json:"partition"`
	// StreamTime is the partition's stream time as the sink has committed
	// it (null before its first ride or heartbeat).
	StreamTime    *time.Time `json:"stream_time"`
	LastHeartbeat *time.Time `json:"last_heartbeat"`
	// NextOffset is the first record the sink has not applied; Lag the
	// records after it.
	NextOffset int64 `json:"next_offset"`
	EndOffset  int64 `json:"end_offset"`
	Lag        int64 `json:"lag"`
	// HoldsBack: the partition is among those the oldest open window of
	// the aggregation asked for (default the first tumbling one) waits for.
	HoldsBack bool `json:"holds_back_oldest_open"`
}

// Partitions lists every input partition; HoldsBack follows the oldest
// open window of tumbling aggregation agg (empty: the first).
func (w *Windows) Partitions(ctx context.Context, agg string) ([]PartitionJSON, error) {
	n := w.top.Sources
	rows, err := w.db.Query(ctx, `SELECT n, p.stream_time, p.heartbeat_at, coalesce(p.next_offset, 0)
FROM generate_series(0, $2::int - 1) n LEFT JOIN sink_progress p ON p.topic = $1 AND p.src_partition = n ORDER BY n`, w.top.Input, n)
	if err != nil {
		return nil, fmt.Errorf("read sink_progress: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PartitionJSON, error) {
		var p PartitionJSON
		err := r.Scan(&p.Partition, &p.StreamTime, &p.LastHeartbeat, &p.NextOffset)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read sink_progress: %w", err)
	}
	for i := range out {
		if out[i].StreamTime != nil {
			t := out[i].StreamTime.UTC()
			out[i].StreamTime = &t
		}
		if out[i].LastHeartbeat != nil {
			t := out[i].LastHeartbeat.UTC()
			out[i].LastHeartbeat = &t
		}
		end, err := w.client.GetOffset(w.top.Input, out[i].Partition, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("end offset of %s/%d: %w", w.top.Input, out[i].Partition, err)
		}
		out[i].EndOffset, out[i].Lag = end, max(end-out[i].NextOffset, 0)
	}
	if _, a, ok := w.Aggregation(agg); ok {
		var waiting []int32
		err := w.db.QueryRow(ctx, `SELECT coalesce(waiting_partitions, '{}') FROM window_status WHERE aggregation = $1 AND state = 'open'
ORDER BY window_start LIMIT 1`, a.Name).Scan(&waiting)
		if err != nil && err != pgx.ErrNoRows {
			return nil, fmt.Errorf("read window_status: %w", err)
		}
		for i := range out {
			out[i].HoldsBack = slices.Contains(waiting, out[i].Partition)
		}
	}
	return out, nil
}

// undefined reports PostgreSQL's undefined_table: the sink has not created
// the pipeline's tables yet.
func undefined(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}
