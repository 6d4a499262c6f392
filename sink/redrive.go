package sink

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"

	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/schema"
)

// Headers a re-driven record carries: where it was rejected and why.
const (
	HeaderRedriveOf     = "ridestream-redrive-of"     // "<partition>/<offset>" of the rejected record
	HeaderRedriveReason = "ridestream-redrive-reason" // the reason it was rejected
)

// RedriveSelect chooses rows of rejected_input. A zero value selects none:
// All, or a Reason pattern, or a Partition must be given. Rows of records
// that were themselves re-driven are left out unless Again: a record that
// is rejected again is not sent round in a loop.
type RedriveSelect struct {
	All, Again bool
	// Reason is a regular expression (PostgreSQL's ~) the reason must match.
	Reason string
	// Partition, when ≥ 0, with offsets in [From, To] (To < 0: no bound).
	Partition int32
	From, To  int64
}

// Validate reports a selection that selects nothing, naming the flag.
func (s RedriveSelect) Validate() error {
	if !s.All && s.Reason == "" && s.Partition < 0 {
		return fmt.Errorf("--all, --reason or --partition: say which rejected records to send again")
	}
	if s.Reason != "" {
		if _, err := regexp.Compile(s.Reason); err != nil {
			return fmt.Errorf("--reason %q: %w", s.Reason, err)
		}
	}
	if s.Partition < 0 && (s.From > 0 || s.To >= 0) {
		return fmt.Errorf("--from-offset, --to-offset: need --partition")
	}
	return nil
}

// Redriven is one rejected record and what became of it.
type Redriven struct {
	Partition int32
	Offset    int64
	Reason    string
	Bytes     int
	// SentPartition, SentOffset: where it went (-1: not sent).
	SentPartition int32
	SentOffset    int64
}

// RedriveOptions are a redrive's inputs.
type RedriveOptions struct {
	Kafka  kafka.Conn
	URL    string // PostgreSQL
	Input  string // the pipeline's input topic
	Select RedriveSelect
	DryRun bool
	// Rate limits the records sent per second (0: no limit).
	Rate float64
	Log  *slog.Logger
}

// Redrive produces the raw bytes of the selected rows of rejected_input back
// to the input topic, each to the partition it came from, with headers
// naming its origin. Each row is sent once, also when a run is killed
// midway and run again: a row is marked 'sending' (committed) before it is
// produced and 'sent' with its new offset after; a run that finds rows left
// 'sending' reads the input from the time they were marked and marks those
// it finds there as sent instead of sending them again. It returns the rows
// selected (with DryRun, what would be sent).
func Redrive(ctx context.Context, o RedriveOptions) ([]Redriven, error) {
	if err := o.Select.Validate(); err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, o.URL)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := schema.Migrate(ctx, conn); err != nil {
		return nil, err
	}
	rows, err := selectRejected(ctx, conn, o.Select)
	if err != nil || o.DryRun {
		return rows, err
	}
	cfg := o.Kafka.Config("ridestream-redrive")
	cfg.Producer.Partitioner = sarama.NewManualPartitioner // back to the partition it came from
	cfg.Producer.Return.Successes = true
	client, err := sarama.NewClient(o.Kafka.Brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to Kafka %v: %w", o.Kafka.Brokers, err)
	}
	defer client.Close()
	if err := resolveSending(ctx, conn, client, o); err != nil {
		return nil, err
	}
	// What is still to send, after the leftovers were resolved.
	if rows, err = selectRejected(ctx, conn, o.Select); err != nil {
		return nil, err
	}
	var todo []*Redriven
	for i := range rows {
		if rows[i].SentPartition < 0 {
			todo = append(todo, &rows[i])
		}
	}
	if len(todo) == 0 {
		return rows, nil
	}
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer producer.Close()
	start := time.Now()
	const batch = 500
	for lo := 0; lo < len(todo); lo += batch {
		part := todo[lo:min(lo+batch, len(todo))]
		if err := markSending(ctx, conn, part); err != nil {
			return nil, err
		}
		for i, r := range part {
			if o.Rate > 0 {
				due := start.Add(time.Duration(float64(lo+i) / o.Rate * float64(time.Second)))
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(time.Until(due)):
				}
			}
			raw, err := rawOf(ctx, conn, r.Partition, r.Offset)
			if err != nil {
				return nil, err
			}
			msg := &sarama.ProducerMessage{Topic: o.Input, Partition: r.Partition, Value: sarama.ByteEncoder(raw),
				Headers: []sarama.RecordHeader{
					{Key: []byte(HeaderRedriveOf), Value: []byte(origin(r.Partition, r.Offset))},
					{Key: []byte(HeaderRedriveReason), Value: []byte(r.Reason)},
				}}
			if r.SentPartition, r.SentOffset, err = producer.SendMessage(msg); err != nil {
				return nil, fmt.Errorf("send %s/%d again: %w", o.Input, r.Partition, err)
			}
		}
		if err := markSent(ctx, conn, part); err != nil {
			return nil, err
		}
		o.Log.Info("redrive progress", "sent", min(lo+batch, len(todo)), "of", len(todo))
	}
	return rows, nil
}

func origin(partition int32, offset int64) string {
	return strconv.Itoa(int(partition)) + "/" + strconv.FormatInt(offset, 10)
}

// selectRejected returns the selected rows with what became of them.
func selectRejected(ctx context.Context, conn *pgx.Conn, s RedriveSelect) ([]Redriven, error) {
	q := `SELECT r.src_partition, r.src_offset, r.error, length(r.raw), coalesce(d.sent_partition, -1), coalesce(d.sent_offset, -1)
FROM rejected_input r LEFT JOIN redriven d USING (src_partition, src_offset)
WHERE ($1 OR ($2 <> '' AND r.error ~ $2) OR (r.src_partition = $3 AND r.src_offset >= $4 AND ($5 < 0 OR r.src_offset <= $5)))
    AND ($6 OR r.redrive_of IS NULL)
ORDER BY r.src_partition, r.src_offset`
	rows, err := conn.Query(ctx, q, s.All, s.Reason, s.Partition, s.From, s.To, s.Again)
	if err != nil {
		return nil, fmt.Errorf("select rejected input: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Redriven, error) {
		var r Redriven
		err := row.Scan(&r.Partition, &r.Offset, &r.Reason, &r.Bytes, &r.SentPartition, &r.SentOffset)
		return r, err
	})
}

func rawOf(ctx context.Context, conn *pgx.Conn, partition int32, offset int64) ([]byte, error) {
	var raw []byte
	err := conn.QueryRow(ctx, `SELECT raw FROM rejected_input WHERE src_partition = $1 AND src_offset = $2`, partition, offset).Scan(&raw)
	return raw, err
}

// markSending records, before they are produced, that rows are being sent.
func markSending(ctx context.Context, conn *pgx.Conn, rows []*Redriven) error {
	parts, offsets := make([]int32, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		parts[i], offsets[i] = r.Partition, r.Offset
	}
	_, err := conn.Exec(ctx, `INSERT INTO redriven (src_partition, src_offset, started_at)
SELECT * , now() FROM unnest($1::int[], $2::bigint[]) ON CONFLICT (src_partition, src_offset) DO UPDATE SET started_at = now()`, parts, offsets)
	if err != nil {
		return fmt.Errorf("record what is being sent: %w", err)
	}
	return nil
}

// markSent records where rows went.
func markSent(ctx context.Context, conn *pgx.Conn, rows []*Redriven) error {
	parts, offsets, sp, so := make([]int32, len(rows)), make([]int64, len(rows)), make([]int32, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		parts[i], offsets[i], sp[i], so[i] = r.Partition, r.Offset, r.SentPartition, r.SentOffset
	}
	_, err := conn.Exec(ctx, `UPDATE redriven d SET sent_partition = u.sp, sent_offset = u.so, sent_at = now()
FROM unnest($1::int[], $2::bigint[], $3::int[], $4::bigint[]) AS u(p, o, sp, so)
WHERE d.src_partition = u.p AND d.src_offset = u.o`, parts, offsets, sp, so)
	if err != nil {
		return fmt.Errorf("record what was sent: %w", err)
	}
	return nil
}

// resolveSending settles rows a killed run left 'sending': each one found
// in the input (by its origin header) since it was marked is recorded as
// sent there; the others were never sent and stay to send.
func resolveSending(ctx context.Context, conn *pgx.Conn, client sarama.Client, o RedriveOptions) error {
	var since *time.Time
	var n int
	if err := conn.QueryRow(ctx, `SELECT min(started_at), count(*) FROM redriven WHERE sent_offset IS NULL`).Scan(&since, &n); err != nil {
		return fmt.Errorf("read what a run left unsent: %w", err)
	}
	if n == 0 {
		return nil
	}
	o.Log.Info("a run was stopped while sending: looking for its records in the input", "records", n, "since", since)
	pending := map[string]*Redriven{}
	rows, err := conn.Query(ctx, `SELECT src_partition, src_offset FROM redriven WHERE sent_offset IS NULL`)
	if err != nil {
		return err
	}
	for rows.Next() {
		r := &Redriven{}
		if err := rows.Scan(&r.Partition, &r.Offset); err != nil {
			return err
		}
		pending[origin(r.Partition, r.Offset)] = r
	}
	if err := rows.Err(); err != nil {
		return err
	}
	parts, err := client.Partitions(o.Input)
	if err != nil {
		return err
	}
	// A minute before the mark: the broker's timestamps and this clock may
	// differ a little.
	from := since.Add(-time.Minute).UnixMilli()
	var found []*Redriven
	for _, p := range parts {
		start, err := client.GetOffset(o.Input, p, from)
		if err != nil {
			return err
		}
		end, err := client.GetOffset(o.Input, p, sarama.OffsetNewest)
		if err != nil {
			return err
		}
		if start < 0 { // nothing that recent
			continue
		}
		err = kafka.ReadRange(client, o.Input, p, start, end, func(m *sarama.ConsumerMessage) error {
			for _, h := range m.Headers {
				if string(h.Key) == HeaderRedriveOf {
					if r, ok := pending[string(h.Value)]; ok {
						r.SentPartition, r.SentOffset = m.Partition, m.Offset
						found = append(found, r)
						delete(pending, string(h.Value))
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read %s/%d for records a stopped run sent: %w", o.Input, p, err)
		}
	}
	if err := markSent(ctx, conn, found); err != nil {
		return err
	}
	o.Log.Info("records a stopped run had sent", "found", len(found), "not sent", len(pending))
	return nil
}
