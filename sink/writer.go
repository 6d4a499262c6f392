package sink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/ops"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/stage"
	"github.com/ridestream/ridestream/internal/window"
)

// progress is a partition's durable position: everything before next has been
// applied, with the stream time and counters as of that point.
type progress struct {
	topic      string
	partition  int32
	next       int64 // -1: nothing applied yet
	clock      window.Clock
	rides      int64
	rejected   int64
	heartbeats int64
	// heartbeatAt is the event time of the last heartbeat applied (0: none).
	heartbeatAt int64
}

type rideRow struct {
	partition   int32
	offset      int64
	r           ride.Ride
	windowStart int64
	late        bool
	// windows are the ride's window in each tumbling aggregation, for
	// window_counts: the one it counts in, or the one it missed.
	windows []rideWindow
}

type rideWindow struct {
	agg        int
	start, end int64
	late       bool
}

type rejectRow struct {
	partition int32
	offset    int64
	raw       []byte
	reason    string
	redriveOf string // the record's redrive header: where it was rejected before
}

type lateRow struct {
	agg         string
	partition   int32
	offset      int64
	r           ride.Ride
	eventMs     int64
	windowStart int64 // tumbling only (0: a session aggregation)
	windowEnd   int64
	streamTime  int64
	lateByMs    int64
}

// chunk is a run of consecutive records of one partition, classified, with
// the progress after its last decided record.
type chunk struct {
	sess     sarama.ConsumerGroupSession
	records  int
	rides    []rideRow
	rejects  []rejectRow
	late     []lateRow
	finals   []finalRow
	progress progress
}

type finalRow struct {
	table int // index into the pipeline's aggregations
	f     pipeline.Final
}

// addFinal parses one record of the finals topic.
func (c *chunk) addFinal(aggs []aggregate.Aggregation, msg *sarama.ConsumerMessage) error {
	c.records++
	c.progress.next = msg.Offset + 1
	f, a, err := pipeline.DecodeFinal(aggs, msg.Value)
	if err != nil {
		return err
	}
	c.finals = append(c.finals, finalRow{table: slices.IndexFunc(aggs, func(x aggregate.Aggregation) bool { return x.Name == a.Name }), f: f})
	return nil
}

func newChunk(sess sarama.ConsumerGroupSession, from progress) *chunk {
	return &chunk{sess: sess, progress: from}
}

// classifier decides one partition's raw input in offset order with the
// pipeline's rules: the stream-time rule (a jump waits for the rides after
// it, and every record after it waits too), then each aggregation's
// lateness. What waits is kept here, not in PostgreSQL: the stored
// progress stops at the first record that waits, so a restart reads it
// again.
type classifier struct {
	stages  *stage.Pipeline
	decode  ride.Options
	clock   window.Clock
	waiting []waitingRecord
}

type waitingRecord struct {
	msg *sarama.ConsumerMessage
	rec ride.Record
	err error
}

func newClassifier(p *stage.Pipeline, decode ride.Options, from progress) *classifier {
	return &classifier{stages: p, decode: decode, clock: window.Clock{ST: from.clock.ST, Valid: from.clock.Valid}}
}

// add classifies one message of the input (with what waited before it) and
// advances the chunk's progress to the first record still waiting.
func (c *chunk) add(cl *classifier, msg *sarama.ConsumerMessage) {
	c.records++
	rec, err := cl.decode.Decode(msg.Value)
	cl.waiting = append(cl.waiting, waitingRecord{msg: msg, rec: rec, err: err})
	var decided []window.Decision
	if err == nil {
		cl.stages.Stream.Feed(&cl.clock, window.Item{Offset: msg.Offset, Heartbeat: rec.Kind == ride.KindHeartbeat, T: rec.EventMs},
			func(d window.Decision) { decided = append(decided, d) })
	}
	n := 0
	for ; n < len(cl.waiting); n++ {
		w := cl.waiting[n]
		if w.err != nil {
			c.reject(w.msg, w.err.Error())
			continue
		}
		if len(decided) == 0 {
			break
		}
		c.decided(cl, w, decided[0])
		decided = decided[1:]
	}
	cl.waiting = cl.waiting[n:]
	c.progress.next = msg.Offset + 1
	if len(cl.waiting) > 0 {
		c.progress.next = cl.waiting[0].msg.Offset
	} else {
		cl.waiting = nil
	}
	c.progress.clock = window.Clock{ST: cl.clock.ST, Valid: cl.clock.Valid}
}

// decided lands what the rule decided about one record: a heartbeat, an
// outlier, or a ride with its lateness in every aggregation (the rides
// table's window_start and is_late are the first aggregation's).
func (c *chunk) decided(cl *classifier, w waitingRecord, d window.Decision) {
	p := &c.progress
	switch d.Outcome {
	case window.HeartbeatApplied:
		p.heartbeats++
		p.heartbeatAt = max(p.heartbeatAt, w.rec.EventMs)
		return
	case window.Outlier:
		c.reject(w.msg, d.Why)
		return
	}
	p.rides++
	t := w.rec.EventMs
	row := rideRow{partition: w.msg.Partition, offset: w.msg.Offset, r: w.rec.Ride}
	for i, a := range cl.stages.Aggs {
		l := lateRow{agg: a.Name, partition: w.msg.Partition, offset: w.msg.Offset, r: w.rec.Ride, eventMs: t, streamTime: d.STBefore}
		var late bool
		if a.Kind == aggregate.Tumbling {
			ws := cl.stages.Windows[i]
			var start, end int64
			start, end, late = ws.Late(t, d.STBefore, d.HadST)
			l.windowStart, l.windowEnd, l.lateByMs = start, end, ws.LateBy(end, d.STBefore)
			row.windows = append(row.windows, rideWindow{agg: i, start: start, end: end, late: late})
			if i == 0 {
				row.windowStart = start
			}
		} else {
			late = stage.SessionLate(a, t, d.STBefore, d.HadST)
			l.lateByMs = d.STBefore - (t + a.Lateness.Milliseconds())
			if i == 0 {
				row.windowStart = t
			}
		}
		if i == 0 {
			row.late = late
		}
		if late {
			c.late = append(c.late, l)
		}
	}
	c.rides = append(c.rides, row)
}

func (c *chunk) reject(msg *sarama.ConsumerMessage, reason string) {
	c.progress.rejected++
	raw := msg.Value
	if raw == nil {
		raw = []byte{}
	}
	row := rejectRow{partition: msg.Partition, offset: msg.Offset, raw: raw, reason: reason}
	for _, h := range msg.Headers {
		if h != nil && string(h.Key) == HeaderRedriveOf {
			row.redriveOf = string(h.Value)
		}
	}
	c.rejects = append(c.rejects, row)
}

// writer commits chunks from all claims in batched transactions. It is the
// only goroutine that writes, so batches commit in the order chunks arrive.
type writer struct {
	pool     *pgxpool.Pool
	batch    int
	interval time.Duration
	log      *slog.Logger
	ready    *ops.Readiness
	tables   []aggTable // the pipeline's aggregations' tables

	in      chan *chunk
	flushes chan chan error

	pending []*chunk
	rows    int

	// progress lines for people watching long runs
	loggedAt     time.Time
	sinceLogged  int
	totalRecords int
}

func newWriter(pool *pgxpool.Pool, batch int, interval time.Duration, log *slog.Logger, ready *ops.Readiness, tables []aggTable) *writer {
	return &writer{pool: pool, batch: batch, interval: interval, log: log, ready: ready, tables: tables,
		// A few chunks in flight: claims block here when PostgreSQL is slow,
		// which stops consumption instead of growing memory.
		in:      make(chan *chunk, 4),
		flushes: make(chan chan error),
	}
}

// run accepts chunks until ctx ends.
func (w *writer) run(ctx context.Context) error {
	timer := time.NewTimer(w.interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-w.in:
			w.pending = append(w.pending, c)
			w.rows += c.records
			if w.rows >= w.batch {
				if err := w.commit(ctx); err != nil {
					return nil // ctx ended during retries; progress stays in PostgreSQL
				}
			}
		case <-timer.C:
			if err := w.commit(ctx); err != nil {
				return nil
			}
			timer.Reset(w.interval)
		case reply := <-w.flushes:
			// Take what claims already handed over, then commit.
			for drained := false; !drained; {
				select {
				case c := <-w.in:
					w.pending = append(w.pending, c)
					w.rows += c.records
				default:
					drained = true
				}
			}
			reply <- w.commit(ctx)
		}
	}
}

// flush asks the writer to commit everything it holds and waits for it.
func (w *writer) flush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case w.flushes <- reply:
	case <-ctx.Done():
		return fmt.Errorf("flush: %w", ctx.Err())
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("flush: %w", ctx.Err())
	}
}

// commit writes the pending chunks in one transaction, retrying until it
// succeeds or ctx ends, then marks the offsets in Kafka for lag monitoring.
func (w *writer) commit(ctx context.Context) error {
	if len(w.pending) == 0 {
		return nil
	}
	start := time.Now()
	err := retry(ctx, w.log, w.ready, "commit batch", func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error { return writeBatch(ctx, tx, w.pending, pathDirect, w.tables) })
	})
	if err != nil {
		return err
	}
	var rides, rejected, late int
	for _, c := range w.pending {
		c.sess.MarkOffset(c.progress.topic, c.progress.partition, c.progress.next, "")
		rides, rejected, late = rides+len(c.rides), rejected+len(c.rejects), late+len(c.late)
		for _, f := range c.finals {
			metricRows.WithLabelValues(w.tables[f.table].a.Name).Inc()
		}
		if c.progress.clock.Valid {
			metricStreamTime.WithLabelValues(strconv.Itoa(int(c.progress.partition))).Set(float64(c.progress.clock.ST) / 1000)
		}
	}
	metricRows.WithLabelValues("rides").Add(float64(rides))
	metricRows.WithLabelValues("rejected_input").Add(float64(rejected))
	metricRows.WithLabelValues("late_rides").Add(float64(late))
	metricBatchSeconds.Observe(time.Since(start).Seconds())
	metricBatchRows.Observe(float64(w.rows))
	w.log.Debug("batch committed", "rows", w.rows, "chunks", len(w.pending), "took", time.Since(start))
	w.totalRecords += w.rows
	w.sinceLogged += w.rows
	if now := time.Now(); now.Sub(w.loggedAt) >= 10*time.Second {
		if !w.loggedAt.IsZero() {
			w.log.Info("sink progress", "records_committed", w.totalRecords,
				"rate_per_s", int(float64(w.sinceLogged)/now.Sub(w.loggedAt).Seconds()))
		}
		w.loggedAt, w.sinceLogged = now, 0
	}
	w.pending = w.pending[:0]
	w.rows = 0
	return nil
}

// stagingDDL creates the per-connection staging tables. Amounts travel as
// integer cents and are converted to numeric by the INSERT … SELECT.
var stagingDDL = `
CREATE TEMP TABLE IF NOT EXISTS rides_stage (
    src_partition integer, src_offset bigint, pickup_at timestamptz, dropoff_at timestamptz,
    ` + rideStageFieldColumns + `, window_start timestamptz, is_late boolean) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS rejected_stage (
    src_partition integer, src_offset bigint, raw bytea, error text, redrive_of text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS late_stage (
    aggregation text, src_partition integer, src_offset bigint, event_at timestamptz, pickup_at timestamptz, pu_location_id integer,
    total_cents bigint, window_start timestamptz, window_end timestamptz, stream_time timestamptz,
    late_by_ms bigint) ON COMMIT DELETE ROWS;`

const (
	insertRejected = `INSERT INTO rejected_input (src_partition, src_offset, raw, error, redrive_of)
SELECT src_partition, src_offset, raw, error, redrive_of FROM rejected_stage ORDER BY src_partition, src_offset
ON CONFLICT (src_partition, src_offset) DO NOTHING`

	insertLate = `INSERT INTO late_rides (aggregation, src_partition, src_offset, event_at, pickup_at, pu_location_id, total_amount,
    window_start, window_end, stream_time, late_by)
SELECT aggregation, src_partition, src_offset, event_at, pickup_at, pu_location_id, total_cents::numeric / 100, window_start,
    window_end, stream_time, late_by_ms * interval '1 millisecond'
FROM late_stage ORDER BY aggregation, src_partition, src_offset
ON CONFLICT (aggregation, src_partition, src_offset) DO NOTHING`

	// upsertProgress only moves forward: a stale writer (a member that lost
	// the partition in a rebalance) cannot move a partition back.
	upsertProgress = `INSERT INTO sink_progress (topic, src_partition, next_offset, stream_time, rides, rejected, heartbeats, heartbeat_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
ON CONFLICT (topic, src_partition) DO UPDATE SET next_offset = EXCLUDED.next_offset,
    stream_time = EXCLUDED.stream_time, rides = EXCLUDED.rides, rejected = EXCLUDED.rejected,
    heartbeats = EXCLUDED.heartbeats, heartbeat_at = EXCLUDED.heartbeat_at, updated_at = now()
WHERE sink_progress.next_offset < EXCLUDED.next_offset`
)

// Ways to write ride rows.
const (
	// pathDirect COPYs rides into their table and falls back to pathStaging
	// when one of them is there already.
	pathDirect = iota
	// pathStaging COPYs rides into a staging table, then INSERT … ON
	// CONFLICT DO NOTHING.
	pathStaging
)

func writeBatch(ctx context.Context, tx pgx.Tx, chunks []*chunk, path int, tables []aggTable) error {
	// Rows go in (partition, offset) order, so two sinks that both hold a
	// partition for a moment lock its rows in the same order.
	chunks = slices.Clone(chunks)
	slices.SortStableFunc(chunks, func(a, b *chunk) int {
		if c := strings.Compare(a.progress.topic, b.progress.topic); c != 0 {
			return c
		}
		return int(a.progress.partition - b.progress.partition)
	})
	var rides []rideRow
	var rejects []rejectRow
	var late []lateRow
	var finals []finalRow
	last := map[topicPartition]progress{}
	for _, c := range chunks {
		rides = append(rides, c.rides...)
		rejects = append(rejects, c.rejects...)
		late = append(late, c.late...)
		finals = append(finals, c.finals...)
		tp := topicPartition{c.progress.topic, c.progress.partition}
		if cur, ok := last[tp]; !ok || c.progress.next > cur.next {
			last[tp] = c.progress
		}
	}
	if len(rides) > 0 {
		inserted, err := writeRides(ctx, tx, rides, path)
		if err != nil {
			return err
		}
		if err := countWindows(ctx, tx, rides, inserted, tables); err != nil {
			return err
		}
	}
	if len(rejects) > 0 {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"rejected_stage"}, []string{"src_partition", "src_offset", "raw", "error", "redrive_of"},
			pgx.CopyFromSlice(len(rejects), func(i int) ([]any, error) {
				r := &rejects[i]
				var of any
				if r.redriveOf != "" {
					of = r.redriveOf
				}
				return []any{r.partition, r.offset, r.raw, r.reason, of}, nil
			}))
		if err != nil {
			return fmt.Errorf("copy %d rejected to staging: %w", len(rejects), err)
		}
		if _, err := tx.Exec(ctx, insertRejected); err != nil {
			return fmt.Errorf("insert rejected: %w", err)
		}
	}
	if len(late) > 0 {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"late_stage"},
			[]string{"aggregation", "src_partition", "src_offset", "event_at", "pickup_at", "pu_location_id", "total_cents", "window_start",
				"window_end", "stream_time", "late_by_ms"},
			pgx.CopyFromSlice(len(late), func(i int) ([]any, error) {
				l := &late[i]
				return []any{l.agg, l.partition, l.offset, time.UnixMilli(l.eventMs), optTime(l.r.Has&ride.HasPickup != 0, l.r.PickupMs),
					l.r.Vals[ride.PULocationID], l.r.Vals[ride.TotalAmount], optTime(l.windowEnd != 0, l.windowStart),
					optTime(l.windowEnd != 0, l.windowEnd), time.UnixMilli(l.streamTime), l.lateByMs}, nil
			}))
		if err != nil {
			return fmt.Errorf("copy %d late rides to staging: %w", len(late), err)
		}
		if _, err := tx.Exec(ctx, insertLate); err != nil {
			return fmt.Errorf("insert late rides: %w", err)
		}
	}
	if len(finals) > 0 {
		byTable := make([][]pipeline.Final, len(tables))
		for _, f := range finals {
			byTable[f.table] = append(byTable[f.table], f.f)
		}
		for i, rows := range byTable {
			if len(rows) > 0 {
				if err := tables[i].write(ctx, tx, rows); err != nil {
					return err
				}
			}
		}
	}
	parts := make([]topicPartition, 0, len(last))
	for tp := range last {
		parts = append(parts, tp)
	}
	slices.SortFunc(parts, func(a, b topicPartition) int { // one lock order for concurrent sinks
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.partition - b.partition)
	})
	for _, tp := range parts {
		pr := last[tp]
		var st any
		if pr.clock.Valid {
			st = time.UnixMilli(pr.clock.ST)
		}
		if _, err := tx.Exec(ctx, upsertProgress, tp.topic, tp.partition, pr.next, st, pr.rides, pr.rejected, pr.heartbeats,
			optTime(pr.heartbeatAt != 0, pr.heartbeatAt)); err != nil {
			return fmt.Errorf("record progress %s p%d@%d: %w", tp.topic, tp.partition, pr.next, err)
		}
	}
	return nil
}

// writeRides lands rides exactly once. The direct path COPYs them into the
// rides table under a savepoint: normally none is there yet, because the sink
// resumes each partition at the offset its last transaction stored. When one
// is (another sink wrote it while it held the partition in a rebalance), the
// primary key fails the COPY, the savepoint is rolled back, and the batch
// goes through staging with ON CONFLICT DO NOTHING. Both paths leave the
// same rows; the direct one costs PostgreSQL about half as much.
func writeRides(ctx context.Context, tx pgx.Tx, rides []rideRow, path int) (inserted func(i int) bool, err error) {
	all := func(int) bool { return true }
	vals := make([]any, numRideColumns)
	if path == pathDirect {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return nil, err
		}
		_, err = sp.CopyFrom(ctx, pgx.Identifier{"rides"}, rideTableColumns,
			pgx.CopyFromSlice(len(rides), func(i int) ([]any, error) { return rideTableValues(&rides[i], vals), nil }))
		if err == nil {
			return all, sp.Commit(ctx)
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != uniqueViolation {
			return nil, fmt.Errorf("copy %d rides: %w", len(rides), err)
		}
		if err := sp.Rollback(ctx); err != nil {
			return nil, err
		}
		metricStagingFallbacks.Inc()
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"rides_stage"}, rideColumns,
		pgx.CopyFromSlice(len(rides), func(i int) ([]any, error) { return rideValues(&rides[i], vals), nil }))
	if err != nil {
		return nil, fmt.Errorf("copy %d rides to staging: %w", len(rides), err)
	}
	// The rows another sink landed already are not new: what counts them
	// (window_counts) must not count them twice.
	rows, err := tx.Query(ctx, insertRides+"\nRETURNING src_partition, src_offset")
	if err != nil {
		return nil, fmt.Errorf("insert rides: %w", err)
	}
	type key struct {
		p int32
		o int64
	}
	fresh := map[key]bool{}
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.p, &k.o); err != nil {
			rows.Close()
			return nil, fmt.Errorf("insert rides: %w", err)
		}
		fresh[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert rides: %w", err)
	}
	return func(i int) bool { return fresh[key{rides[i].partition, rides[i].offset}] }, nil
}

// countWindows adds the batch's new rides to window_counts: per tumbling
// window, the on-time rides in it and the rides that missed it.
func countWindows(ctx context.Context, tx pgx.Tx, rides []rideRow, inserted func(int) bool, tables []aggTable) error {
	type key struct {
		agg   int
		start int64
	}
	type count struct{ end, rides, late int64 }
	counts := map[key]*count{}
	var keys []key
	for i := range rides {
		if !inserted(i) {
			continue
		}
		for _, w := range rides[i].windows {
			k := key{w.agg, w.start}
			c := counts[k]
			if c == nil {
				c = &count{end: w.end}
				counts[k] = c
				keys = append(keys, k)
			}
			if w.late {
				c.late++
			} else {
				c.rides++
			}
		}
	}
	if len(keys) == 0 {
		return nil
	}
	// One lock order for concurrent sinks.
	slices.SortFunc(keys, func(a, b key) int {
		if a.agg != b.agg {
			return a.agg - b.agg
		}
		return cmp.Compare(a.start, b.start)
	})
	names, starts, ends := make([]string, len(keys)), make([]time.Time, len(keys)), make([]time.Time, len(keys))
	on, late := make([]int64, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		c := counts[k]
		names[i], starts[i], ends[i], on[i], late[i] = tables[k.agg].a.Name, time.UnixMilli(k.start), time.UnixMilli(c.end), c.rides, c.late
	}
	if _, err := tx.Exec(ctx, upsertWindowCounts, names, starts, ends, on, late); err != nil {
		return fmt.Errorf("count %d windows: %w", len(keys), err)
	}
	return nil
}

const upsertWindowCounts = `INSERT INTO window_counts AS c (aggregation, window_start, window_end, rides, late_rides)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::bigint[], $5::bigint[])
ON CONFLICT (aggregation, window_start) DO UPDATE SET rides = c.rides + EXCLUDED.rides, late_rides = c.late_rides + EXCLUDED.late_rides`

const uniqueViolation = "23505" // SQLSTATE unique_violation

// The rides table's columns and their values are generated from the
// decoder's field table (ride.Fields): a new field is a column here with no
// change to this file. Staging columns hold the fields as integers
// (hundredths for money and miles); the INSERT … SELECT scales them.
var (
	// rideTableColumns are the rides table's columns, in rideValues' order.
	rideTableColumns = rideColumnList(func(f ride.Field) string { return f.Column })
	// rideColumns are the staging table's columns, in the same order.
	rideColumns = rideColumnList(func(f ride.Field) string { return stageColumn(f) })
	// rideStageFieldColumns declares the fields' staging columns.
	rideStageFieldColumns = func() string {
		var cols []string
		for _, f := range ride.Fields {
			cols = append(cols, stageColumn(f)+" bigint")
		}
		return strings.Join(cols, ", ")
	}()
	insertRides = func() string {
		var sel []string
		for _, f := range ride.Fields {
			if f.Kind == ride.Hundredths {
				sel = append(sel, stageColumn(f)+"::numeric / 100")
			} else {
				sel = append(sel, stageColumn(f))
			}
		}
		return `INSERT INTO rides (` + strings.Join(rideTableColumns, ", ") + `)
SELECT src_partition, src_offset, pickup_at, dropoff_at, ` + strings.Join(sel, ", ") + `, window_start, is_late
FROM rides_stage ORDER BY src_partition, src_offset
ON CONFLICT (src_partition, src_offset) DO NOTHING`
	}()
)

// rideColumnList is src_partition, src_offset, pickup_at, dropoff_at, the
// fields' columns (named by col), window_start, is_late.
func rideColumnList(col func(ride.Field) string) []string {
	cols := []string{"src_partition", "src_offset", "pickup_at", "dropoff_at"}
	for _, f := range ride.Fields {
		cols = append(cols, col(f))
	}
	return append(cols, "window_start", "is_late")
}

// stageColumn is a field's staging column: its integer form.
func stageColumn(f ride.Field) string {
	if f.Kind == ride.Hundredths {
		return f.Column + "_x100"
	}
	return f.Column
}

// rideFieldsAt is the index of the first field in rideValues.
const rideFieldsAt = 4

// numRideColumns is how many values rideValues fills.
const numRideColumns = rideFieldsAt + int(ride.NumFields) + 2

// rideTableValues is rideValues with the hundredths as numeric.
func rideTableValues(row *rideRow, vals []any) []any {
	rideValues(row, vals)
	for i, f := range ride.Fields {
		if v, ok := vals[rideFieldsAt+i].(int64); ok && f.Kind == ride.Hundredths {
			vals[rideFieldsAt+i] = cents(v)
		}
	}
	return vals
}

// rideValues fills vals (len numRideColumns) with row's staging values:
// absent fields are NULL.
func rideValues(row *rideRow, vals []any) []any {
	r := &row.r
	vals[0], vals[1] = row.partition, row.offset
	vals[2] = optTime(r.Has&ride.HasPickup != 0, r.PickupMs)
	vals[3] = optTime(r.Has&ride.HasDropoff != 0, r.DropoffMs)
	for i := range ride.Fields {
		if v, ok := r.Get(ride.FieldID(i)); ok {
			vals[rideFieldsAt+i] = v
		} else {
			vals[rideFieldsAt+i] = nil
		}
	}
	vals[rideFieldsAt+int(ride.NumFields)] = time.UnixMilli(row.windowStart)
	vals[rideFieldsAt+int(ride.NumFields)+1] = row.late
	return vals
}

func optTime(ok bool, ms int64) any {
	if !ok {
		return nil
	}
	return time.UnixMilli(ms)
}

// loadProgress reads the stored progress of the given partitions.
func loadProgress(ctx context.Context, pool *pgxpool.Pool, topic string, parts []int32) (map[int32]progress, error) {
	rows, err := pool.Query(ctx, `SELECT src_partition, next_offset, stream_time, rides, rejected, heartbeats, heartbeat_at
FROM sink_progress WHERE topic = $1 AND src_partition = ANY($2)`, topic, parts)
	if err != nil {
		return nil, fmt.Errorf("read sink progress: %w", err)
	}
	defer rows.Close()
	out := map[int32]progress{}
	for rows.Next() {
		pr := progress{topic: topic}
		var st, hb *time.Time
		if err := rows.Scan(&pr.partition, &pr.next, &st, &pr.rides, &pr.rejected, &pr.heartbeats, &hb); err != nil {
			return nil, fmt.Errorf("read sink progress: %w", err)
		}
		if st != nil {
			pr.clock = window.Clock{ST: st.UnixMilli(), Valid: true}
		}
		if hb != nil {
			pr.heartbeatAt = hb.UnixMilli()
		}
		out[pr.partition] = pr
	}
	return out, rows.Err()
}
