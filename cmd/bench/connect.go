package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/pgserver"
	"github.com/ridestream/ridestream/internal/procstat"
	"github.com/ridestream/ridestream/internal/ride"
)

// The Kafka Connect peer lands raw rides with Debezium's JDBC sink, which
// needs a schema with every value: it cannot read the input topic's plain
// JSON. Its users must produce the rides again in an envelope it reads
// (JsonConverter with schemas.enable=true); the bench does that once, into a
// topic of its own with the same partitions, before the measured runs.

// connectStall is how long the landed rows may stay unchanged before a run
// ends short of every ride.
const connectStall = 60 * time.Second

// connectInput is the envelope topic: what was produced to it.
type connectInput struct {
	topic string
	// rides were enveloped (heartbeats are dropped: not rides); malformed
	// messages were passed on as they are.
	rides, malformed int
	// lastRide is, per partition, the offset of its last ride (-1: none).
	lastRide []int64
	// envelopeBytes and rawBytes are the rides' sizes in both topics.
	envelopeBytes, rawBytes int64
	produced                time.Duration
}

type connectResult struct {
	Seconds float64 // process start to the last row landed
	CPU     float64 // CPU seconds of the JVM when its last row had landed
	PeakRSS int
	Rows    int64
}

// connectFieldSchema is the Connect schema of a ride column.
func connectFieldSchema(f ride.Field) string {
	optional := strconv.FormatBool(!f.Required)
	if f.Kind == ride.Hundredths {
		return `{"field":"` + f.Column + `","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"},"optional":` + optional + `}`
	}
	return `{"field":"` + f.Column + `","type":"int32","optional":` + optional + `}`
}

// envelopePrefix is the schema every envelope repeats, up to its payload:
// the columns of ridestream's rides table (times as Connect Timestamps,
// amounts as Decimals of scale 2, written as JSON numbers).
var envelopePrefix = func() string {
	fields := []string{
		`{"field":"pickup_at","type":"int64","name":"org.apache.kafka.connect.data.Timestamp","version":1,"optional":false}`,
		`{"field":"dropoff_at","type":"int64","name":"org.apache.kafka.connect.data.Timestamp","version":1,"optional":true}`,
	}
	for _, f := range ride.Fields {
		fields = append(fields, connectFieldSchema(f))
	}
	return `{"schema":{"type":"struct","name":"ride","optional":false,"fields":[` + strings.Join(fields, ",") + `]},"payload":`
}()

// envelope is one ride as JsonConverter reads it with schemas.enable=true.
func envelope(b []byte, r *ride.Record) []byte {
	b = append(b, envelopePrefix...)
	b = append(b, `{"pickup_at":`...)
	b = strconv.AppendInt(b, r.EventMs, 10)
	b = append(b, `,"dropoff_at":`...)
	if r.Ride.Has&ride.HasDropoff != 0 {
		b = strconv.AppendInt(b, r.Ride.DropoffMs, 10)
	} else {
		b = append(b, "null"...)
	}
	for i, f := range ride.Fields {
		b = append(b, `,"`...)
		b = append(b, f.Column...)
		b = append(b, `":`...)
		v, ok := r.Ride.Get(ride.FieldID(i))
		switch {
		case !ok:
			b = append(b, "null"...)
		case f.Kind == ride.Hundredths:
			b = appendHundredths(b, v)
		default:
			b = strconv.AppendInt(b, v, 10)
		}
	}
	return append(b, "}}"...)
}

// appendHundredths writes v/100 with two decimals (the Decimal's scale).
func appendHundredths(b []byte, v int64) []byte {
	if v < 0 {
		b, v = append(b, '-'), -v
	}
	b = strconv.AppendInt(b, v/100, 10)
	b = append(b, '.', byte('0'+v%100/10), byte('0'+v%10))
	return b
}

// connectTable is the table the connector upserts into: the record's Kafka
// coordinates (its primary.key.mode=kafka), the envelope's columns as
// ridestream's rides table types them, and landed_at, which dates each row's
// insert.
func connectTable() string {
	cols := []string{"__connect_topic text NOT NULL", "__connect_partition integer NOT NULL", "__connect_offset bigint NOT NULL",
		"pickup_at timestamptz NOT NULL", "dropoff_at timestamptz"}
	for _, f := range ride.Fields {
		col := f.Column + " " + f.SQLType
		if f.Required {
			col += " NOT NULL"
		}
		cols = append(cols, col)
	}
	cols = append(cols, "landed_at timestamptz NOT NULL DEFAULT clock_timestamp()",
		"PRIMARY KEY (__connect_topic, __connect_partition, __connect_offset)")
	return "CREATE TABLE rides_raw (" + strings.Join(cols, ", ") + ")"
}

// prepareConnectInput produces workload w's rides as envelopes to a new
// topic with its partitions, each message to its own partition in the same
// order, and the malformed messages as they are.
func prepareConnectInput(ctx context.Context, c config, w generate.Config, log *slog.Logger) (connectInput, error) {
	in := connectInput{topic: fmt.Sprintf("bench_connect_rides_%d", time.Now().Unix()), lastRide: make([]int64, w.Partitions)}
	admin, err := c.kafka.NewAdmin("bench")
	if err != nil {
		return in, err
	}
	// The envelopes repeat their schema: compressed, they take about as much
	// room as the plain rides.
	t := generate.InputTopic(in.topic, w.Partitions, 0)
	t.Configs["compression.type"] = "zstd"
	_, err = kafka.EnsureTopics(admin, t)
	admin.Close()
	if err != nil {
		return in, err
	}
	next := make([]int64, w.Partitions)
	for p := range in.lastRide {
		in.lastRide[p] = -1
	}
	envelopes := func(yield func(generate.Message) bool) {
		var buf []byte
		for m := range w.All {
			rec, err := ride.Decode(m.Value)
			switch {
			case err != nil:
				in.malformed++
			case rec.Kind == ride.KindHeartbeat:
				continue
			default:
				buf = envelope(buf[:0], &rec)
				in.rides++
				in.envelopeBytes += int64(len(buf))
				in.rawBytes += int64(len(m.Value))
				in.lastRide[m.Partition] = next[m.Partition]
				m.Value = slices.Clone(buf)
			}
			next[m.Partition]++
			if !yield(m) {
				return
			}
		}
	}
	start := time.Now()
	if _, err := generate.Produce(ctx, generate.ProduceOptions{Kafka: c.kafka, Topic: in.topic, Logger: log}, envelopes); err != nil {
		return in, err
	}
	in.produced = time.Since(start)
	return in, nil
}

// runConnectPeer produces the envelope topic and runs the Connect peer
// c.connectRuns times on it, each with a new database and connector name; it
// returns the runs by elapsed time.
func runConnectPeer(ctx context.Context, c config, pg *pgserver.Server, w generate.Config, log *slog.Logger, say func(string, ...any)) ([]connectResult, connectInput, error) {
	say("Kafka Connect peer: producing the rides again as JsonConverter envelopes (schema + payload) to a topic of its own (not measured)")
	in, err := prepareConnectInput(ctx, c, w, log)
	if err != nil {
		return nil, in, fmt.Errorf("connect peer input: %w", err)
	}
	var runs []connectResult
	for i := range c.connectRuns {
		say("Kafka Connect peer, run %d of %d (standalone, Debezium JDBC sink, tasks.max %d): raw rides upserted into PostgreSQL", i+1, c.connectRuns, c.connectTasks)
		r, err := runConnect(ctx, c, pg, in, i)
		if err != nil {
			return nil, in, fmt.Errorf("connect peer: %w", err)
		}
		runs = append(runs, r)
		say("Kafka Connect peer, run %d: %.0f rows/s, %d rows of %d rides", i+1, float64(r.Rows)/r.Seconds, r.Rows, in.rides)
	}
	slices.SortFunc(runs, func(a, b connectResult) int { return cmp.Compare(a.Seconds, b.Seconds) })
	return runs, in, nil
}

// runConnect runs Connect standalone on the envelope topic until every
// partition's last ride has landed (or nothing lands for connectStall).
func runConnect(ctx context.Context, c config, pg *pgserver.Server, in connectInput, run int) (connectResult, error) {
	var res connectResult
	dbURL, err := createDatabase(ctx, pg.URL, fmt.Sprintf("connect%d", run))
	if err != nil {
		return res, err
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return res, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, connectTable()); err != nil {
		return res, err
	}
	jdbc, user, err := jdbcURL(dbURL)
	if err != nil {
		return res, err
	}
	state, err := os.MkdirTemp("", "ridestream-bench-connect-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(state)
	start := time.Now()
	cmd := exec.Command(c.connect, "run", "--bootstrap", c.brokers, "--topic", in.topic, "--jdbc-url", jdbc, "--db-user", user, "--table", "rides_raw",
		"--name", fmt.Sprintf("bench-connect%d", run), "--state-dir", state, "--tasks", strconv.Itoa(c.connectTasks))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer stopConnect(cmd, exited)
	if err := waitLanded(ctx, conn, in, exited); err != nil {
		return res, err
	}
	// The script execs java: the pid is the JVM's.
	res.CPU, res.PeakRSS = cpuTree(cmd.Process.Pid), procstat.PeakRSSMB(cmd.Process.Pid)
	var last time.Time
	if err := conn.QueryRow(ctx, `SELECT count(*), coalesce(max(landed_at), now()) FROM rides_raw`).Scan(&res.Rows, &last); err != nil {
		return res, err
	}
	if res.Rows == 0 {
		return res, fmt.Errorf("no row landed in %v", connectStall)
	}
	res.Seconds = last.Sub(start).Seconds()
	return res, nil
}

// waitLanded polls until the last ride of every partition is in the table:
// a sink task writes a partition's records in offset order. The primary
// key makes that a few index lookups; the table's insert count (pgstat,
// cheap but behind by up to a second) tells whether anything still lands.
func waitLanded(ctx context.Context, conn *pgx.Conn, in connectInput, exited <-chan error) error {
	var parts []int32
	var offsets []int64
	for p, o := range in.lastRide {
		if o >= 0 {
			parts, offsets = append(parts, int32(p)), append(offsets, o)
		}
	}
	var inserted int64
	changed := time.Now()
	for {
		var landed, n int64
		err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM rides_raw WHERE __connect_topic = $1
				AND (__connect_partition, __connect_offset) IN (SELECT * FROM unnest($2::int[], $3::bigint[]))),
			coalesce((SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'rides_raw'), 0)`,
			in.topic, parts, offsets).Scan(&landed, &n)
		if err != nil {
			return err
		}
		if landed == int64(len(parts)) {
			return nil
		}
		if n != inserted {
			inserted, changed = n, time.Now()
		}
		if time.Since(changed) > connectStall {
			return nil // short of some rides: the row count says how many
		}
		select {
		case err := <-exited:
			return fmt.Errorf("connect exited before its last row: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stopConnect stops the worker as its users would (SIGTERM: it commits and
// closes its tasks), and kills it if it has not exited in 30 s.
func stopConnect(cmd *exec.Cmd, exited <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// pomProperty reads a <name> property of a peer's pom.xml (its versions).
func pomProperty(pom, name string) string {
	b, err := os.ReadFile(pom)
	if err != nil {
		return "?"
	}
	m := regexp.MustCompile(`<` + regexp.QuoteMeta(name) + `>([^<]+)</`).FindSubmatch(b)
	if m == nil {
		return "?"
	}
	return string(m[1])
}

// writeConnectRow writes the Connect peer's line of the measurement table.
func writeConnectRow(b *strings.Builder, c config, runs []connectResult, in connectInput, wantRides int) float64 {
	rates := make([]float64, len(runs))
	for i, r := range runs {
		rates[i] = float64(r.Rows) / r.Seconds
	}
	m := runs[len(runs)/2]
	rate := float64(m.Rows) / m.Seconds
	pom := "bench/connect/pom.xml"
	fmt.Fprintf(b, "| Kafka Connect %s standalone + Debezium JDBC sink %s (bench/connect): raw rides, tasks.max %d, upsert keyed by (topic, partition, offset), at least once | %.0f rows/s | %.0f–%.0f; median run %.1f s from process start to its last row landed, %.1f CPU-s per 1M rows, peak RSS %d MiB; %d rows landed: the model's %d raw valid rides and %d rides ridestream rejects as outliers (more than 24h ahead; no stream-time rule here). The connector needs a schema with every value and cannot read the input's plain JSON: it reads the same rides as JsonConverter envelopes (schemas.enable=true; %.0f bytes a ride against %.0f) from a topic of its own with the same %d partitions, produced in %.1f s, not counted; heartbeats are not sent to it; the %d malformed messages are passed on as they are and skipped with errors.tolerance=all (without it the task dies on the first) |\n",
		pomProperty(pom, "kafka.version"), pomProperty(pom, "debezium.version"), c.connectTasks, rate, slices.Min(rates), slices.Max(rates),
		m.Seconds, m.CPU*1e6/float64(m.Rows), m.PeakRSS, m.Rows, wantRides, in.rides-wantRides,
		float64(in.envelopeBytes)/float64(in.rides), float64(in.rawBytes)/float64(in.rides), len(in.lastRide), in.produced.Seconds(), in.malformed)
	return rate
}
