package sink_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// workload is the acceptance workload: 100,000 rides and 1,000
// malformed messages over 8 partitions, with disorder and late rides.
func workload(seed uint64) generate.Config {
	return generate.Config{Seed: seed, Rides: 100_000, Partitions: 8, Hours: 24, OutOfOrder: 0.05, Late: 0.01,
		Malformed: 0.01, Lateness: 5 * time.Minute, Heartbeats: true}
}

// expected groups the workload by partition in production (= offset) order.
func expected(w generate.Config) [][][]byte {
	parts := make([][][]byte, w.Partitions)
	for m := range w.All {
		parts[m.Partition] = append(parts[m.Partition], m.Value)
	}
	return parts
}

func produce(t *testing.T, env *testenv.Env, topic string, w generate.Config, rate float64) {
	t.Helper()
	n, err := generate.Produce(context.Background(), generate.ProduceOptions{Kafka: env.Kafka, Topic: topic, Rate: rate, Total: w.Count()}, w.All)
	if err != nil {
		t.Errorf("produce: %v", err)
	}
	if n != w.Count() {
		t.Errorf("produced %d of %d messages", n, w.Count())
	}
}

// sinkArgs runs a sink of a pipeline over topic that has a record but no
// processors, so its finals topic never appears: raw input must land
// without waiting for it.
func sinkArgs(t *testing.T, env *testenv.Env, topic, dbURL string) []string {
	prefix := "sink-" + topic
	env.RecordPipeline(t, prefix, topic)
	return append(append([]string{"sink"}, env.KafkaArgs...), "--prefix", prefix,
		"--database-url", dbURL, "--instance-id", "sink-0", "--session-timeout", "6s", "--batch-rows", "5000")
}

func applied(ctx context.Context, t *testing.T, pool *pgxpool.Pool, topic string) int64 {
	t.Helper()
	var n int64
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(rides + rejected + heartbeats), 0) FROM sink_progress WHERE topic = $1`, topic).Scan(&n)
	if err != nil && !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("read progress: %v", err)
	}
	return n
}

func waitApplied(t *testing.T, pool *pgxpool.Pool, topic string, want int64, p *testenv.Proc, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := applied(context.Background(), t, pool, topic)
		if got == want {
			return
		}
		if got > want {
			t.Fatalf("sink applied %d records, more than the %d produced", got, want)
		}
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("sink applied %d of %d records (exited: %v); log tail:\n%s", got, want, p.Exited(), p.Tail(4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSinkIngest lands a preloaded topic once and reports the ingest rate.
func TestSinkIngest(t *testing.T) {
	env := testenv.Get(t)
	w := workload(11)
	topic := env.NewTopic(t, w.Partitions)
	dbURL := env.NewDatabase(t)
	produce(t, env, topic, w, 0)
	pool := connect(t, dbURL)

	start := time.Now()
	p := testenv.StartProc(t, "sink.log", sinkArgs(t, env, topic, dbURL)...)
	waitApplied(t, pool, topic, int64(w.Count()), p, 3*time.Minute)
	el := time.Since(start)
	t.Logf("ingest on %s: %d messages in %v = %.0f messages/s (process start to last commit, one sink process)",
		env.BrokerKind, w.Count(), el.Round(time.Millisecond), float64(w.Count())/el.Seconds())
	if err := p.Stop(20 * time.Second); err != nil {
		t.Errorf("graceful stop: %v\n%s", err, p.Tail(2000))
	}
	verify(t, pool, model.DefaultRule(), expected(w))
}

// TestSinkExactlyOnceUnderSIGKILL kills the sink at random moments while the
// workload is being produced and checks every row landed exactly once.
func TestSinkExactlyOnceUnderSIGKILL(t *testing.T) {
	env := testenv.Get(t)
	w := workload(12)
	topic := env.NewTopic(t, w.Partitions)
	dbURL := env.NewDatabase(t)
	pool := connect(t, dbURL)
	total := int64(w.Count())

	produced := make(chan struct{})
	go func() {
		defer close(produced)
		produce(t, env, topic, w, 25_000) // about four seconds of input
	}()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	args := sinkArgs(t, env, topic, dbURL)
	kills := 0
	start := time.Now()
	p := testenv.StartProc(t, "sink.log", args...)
	for kills < 3 || !closed(produced) {
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		before := applied(context.Background(), t, pool, topic)
		if before >= total {
			break
		}
		p.Kill()
		kills++
		t.Logf("SIGKILL %d at %v with %d of %d records applied", kills, time.Since(start).Round(time.Millisecond), before, total)
		p = testenv.StartProc(t, "sink.log", args...)
	}
	<-produced
	if kills < 3 {
		t.Fatalf("only %d kills happened mid-run; the run finished too fast to test crashes", kills)
	}
	waitApplied(t, pool, topic, total, p, 3*time.Minute)
	t.Logf("%d messages landed despite %d SIGKILLs in %v", total, kills, time.Since(start).Round(time.Millisecond))
	if err := p.Stop(20 * time.Second); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
	verify(t, pool, model.DefaultRule(), expected(w))
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func connect(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// verify compares every table with the reference model, row by row.
func verify(t *testing.T, pool *pgxpool.Pool, rule model.Rule, parts [][][]byte) {
	t.Helper()
	ctx := context.Background()
	want := model.Run(rule, parts)

	type rideRow struct {
		P           int32
		O           int64
		Pickup      time.Time
		PU          int32
		TotalCents  int64
		DistCenti   *int64
		WindowStart time.Time
		Late        bool
	}
	rows, err := pool.Query(ctx, `SELECT src_partition, src_offset, pickup_at, pu_location_id,
		(total_amount * 100)::bigint, (trip_distance * 100)::bigint, window_start, is_late FROM rides`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rideRow])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want.Rides) {
		t.Errorf("rides: %d rows, model says %d", len(got), len(want.Rides))
	}
	bad := 0
	for _, r := range got {
		m, ok := want.Rides[model.Key{Partition: r.P, Offset: r.O}]
		dist := int64(-1)
		if r.DistCenti != nil {
			dist = *r.DistCenti
		}
		mDist, hasDist := m.Ride.Get(ride.TripDistance)
		if !hasDist {
			mDist = -1
		}
		if !ok || r.Pickup.UnixMilli() != m.Ride.PickupMs || int64(r.PU) != m.Ride.Vals[ride.PULocationID] || r.TotalCents != m.Ride.Vals[ride.TotalAmount] ||
			dist != mDist || r.WindowStart.UnixMilli() != m.WindowStart || r.Late != m.Late {
			if bad++; bad <= 5 {
				t.Errorf("ride p%d@%d: got %+v, model %+v (present %v)", r.P, r.O, r, m, ok)
			}
		}
	}

	rows, err = pool.Query(ctx, `SELECT src_partition, src_offset, error FROM rejected_input`)
	if err != nil {
		t.Fatal(err)
	}
	nRejected := 0
	for rows.Next() {
		var k model.Key
		var reason string
		if err := rows.Scan(&k.Partition, &k.Offset, &reason); err != nil {
			t.Fatal(err)
		}
		nRejected++
		if _, ok := want.Rejected[k]; !ok {
			t.Errorf("rejected p%d@%d (%s) is not rejected by the model", k.Partition, k.Offset, reason)
		}
		if reason == "" {
			t.Errorf("rejected p%d@%d has no reason", k.Partition, k.Offset)
		}
	}
	if nRejected != len(want.Rejected) {
		t.Errorf("rejected_input: %d rows, model says %d", nRejected, len(want.Rejected))
	}

	rows, err = pool.Query(ctx, `SELECT aggregation, src_partition, src_offset, window_start, (extract(epoch FROM late_by) * 1000)::bigint FROM late_rides`)
	if err != nil {
		t.Fatal(err)
	}
	nLate := 0
	for rows.Next() {
		var k model.LateKey
		var ws time.Time
		var by int64
		if err := rows.Scan(&k.Aggregation, &k.Partition, &k.Offset, &ws, &by); err != nil {
			t.Fatal(err)
		}
		nLate++
		if m, ok := want.Late[k]; !ok || m.WindowStart != ws.UnixMilli() || m.LateByMs != by {
			t.Errorf("late p%d@%d: window %v by %dms, model %+v (present %v)", k.Partition, k.Offset, ws, by, m, ok)
		}
	}
	if nLate != len(want.Late) {
		t.Errorf("late_rides: %d rows, model says %d", nLate, len(want.Late))
	}

	// The identity of docs/contract.md, "Guarantees", per partition: records read = rides + rejected + heartbeats.
	var read, rides, rejected, heartbeats int64
	if err := pool.QueryRow(ctx, `SELECT sum(next_offset), sum(rides), sum(rejected), sum(heartbeats) FROM sink_progress`).
		Scan(&read, &rides, &rejected, &heartbeats); err != nil {
		t.Fatal(err)
	}
	if read != rides+rejected+heartbeats || rides != int64(len(want.Rides)) || rejected != int64(len(want.Rejected)) || heartbeats != int64(want.Heartbeats) {
		t.Errorf("progress counters: read %d, rides %d, rejected %d, heartbeats %d; model rides %d rejected %d heartbeats %d",
			read, rides, rejected, heartbeats, len(want.Rides), len(want.Rejected), want.Heartbeats)
	}
	t.Logf("verified against the model: %d rides (%d late), %d rejected, %d heartbeats", len(want.Rides), len(want.Late), len(want.Rejected), want.Heartbeats)
}
