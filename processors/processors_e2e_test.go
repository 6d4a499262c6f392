package processors_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/testenv"
	"github.com/ridestream/ridestream/internal/window"
	"github.com/ridestream/ridestream/processors"
	"github.com/ridestream/ridestream/views"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const horizon = 24 * time.Hour

// workload is the window issue's acceptance workload: 200,000 rides over 8
// partitions and 24 event-hours, ~5% out of order within the lateness, ~1%
// late beyond it, partitions 6 and 7 idle for the second half and released
// only by the closing heartbeats, and malformed messages.
func workload(seed uint64) generate.Config {
	return generate.Config{Seed: seed, Rides: 200_000, Partitions: 8, Hours: 24, OutOfOrder: 0.05, Late: 0.01,
		Malformed: 0.005, Lateness: 5 * time.Minute, IdlePartitions: 2, IdleAfter: 0.5, Heartbeats: true}
}

type pipeline struct {
	env    *testenv.Env
	topic  string
	prefix string
	dbURL  string
	pool   *pgxpool.Pool
	parts  [][][]byte
	want   model.Result
	finals map[model.FinalKey]model.FinalRow
	total  int64
	spec   window.Spec
	// allFinal: the workload ends with heartbeats, so every window must be final.
	allFinal bool
	started  time.Time
}

// newPipeline makes a topic, a database and the model's answer, and produces
// the workload at rate messages/s (0: at once); produced closes when done.
func newPipeline(t *testing.T, w generate.Config, rate float64) (p *pipeline, produced chan struct{}) {
	env := testenv.Get(t)
	p = &pipeline{env: env, spec: window.DefaultSpec(), total: int64(w.Count()), allFinal: w.Heartbeats}
	p.topic = env.NewTopic(t, w.Partitions)
	p.prefix = strings.ReplaceAll(p.topic, "rides_", "rs_")
	p.dbURL = env.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), p.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	p.pool = pool
	p.parts = make([][][]byte, w.Partitions)
	for m := range w.All {
		p.parts[m.Partition] = append(p.parts[m.Partition], m.Value)
	}
	p.want = model.Run(p.spec, p.parts)
	p.finals = model.Finals(p.spec, horizon, p.parts, p.want)
	produced = make(chan struct{})
	go func() {
		defer close(produced)
		n, err := generate.Produce(context.Background(), generate.ProduceOptions{Brokers: env.Brokers, Topic: p.topic, Rate: rate, Total: w.Count()}, w.All)
		if err != nil || n != w.Count() {
			t.Errorf("produced %d of %d: %v", n, w.Count(), err)
		}
	}()
	if rate == 0 {
		<-produced
	}
	return p, produced
}

func (p *pipeline) processArgs(instance string) []string {
	return []string{"process", "--brokers", strings.Join(p.env.Brokers, ","), "--topic", p.topic, "--prefix", p.prefix,
		"--instance-id", instance, "--session-timeout", "6s", "--finality-horizon", horizon.String()}
}

func (p *pipeline) sinkArgs() []string {
	return []string{"sink", "--brokers", strings.Join(p.env.Brokers, ","), "--topic", p.topic, "--finals-topic", p.prefix + "-finals",
		"--group", p.prefix + "-sink", "--database-url", p.dbURL, "--instance-id", "sink-0", "--session-timeout", "6s"}
}

// counts returns records applied from the input and final rows stored.
func (p *pipeline) counts(t *testing.T) (applied, finals int64) {
	t.Helper()
	err := p.pool.QueryRow(context.Background(), `SELECT
		coalesce((SELECT sum(rides + rejected + heartbeats) FROM sink_progress WHERE topic = $1), 0),
		(SELECT count(*) FROM hourly_revenue)`, p.topic).Scan(&applied, &finals)
	if err != nil && !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("counts: %v", err)
	}
	return applied, finals
}

// waitDone waits until every input record and every expected final row is in
// PostgreSQL.
func (p *pipeline) waitDone(t *testing.T, timeout time.Duration, procs ...*testenv.Proc) time.Duration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		applied, finals := p.counts(t)
		if applied == p.total && finals >= int64(len(p.finals)) {
			return time.Since(p.started)
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, pr := range procs {
				fmt.Fprintf(&logs, "--- %s (exited %v)\n%s\n", pr.Cmd.Args[1], pr.Exited(), pr.Tail(3000))
			}
			t.Fatalf("after %v: %d of %d records applied, %d of %d final rows\n%s", timeout, applied, p.total, finals, len(p.finals), logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// verifyFinals compares hourly_revenue with the model's finals row for row.
func (p *pipeline) verifyFinals(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	rows, err := p.pool.Query(ctx, `SELECT window_start, window_end, pu_location_id, num_trips, (total_revenue*100)::bigint,
		(total_distance*100)::bigint, (total_tips*100)::bigint, total_passengers FROM hourly_revenue`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[model.FinalKey]model.FinalRow{}
	for rows.Next() {
		var ws, we time.Time
		var f model.FinalRow
		if err := rows.Scan(&ws, &we, &f.Zone, &f.Trips, &f.Cents, &f.DistCenti, &f.TipCents, &f.Passengers); err != nil {
			t.Fatal(err)
		}
		f.WindowStart, f.WindowEnd = ws.UnixMilli(), we.UnixMilli()
		got[model.FinalKey{WindowStart: f.WindowStart, Zone: f.Zone}] = f
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for k, w := range p.finals {
		if g, ok := got[k]; !ok || g != w {
			if bad++; bad <= 5 {
				t.Errorf("final %s zone %d: got %+v (present %v), model %+v", time.UnixMilli(k.WindowStart).UTC(), k.Zone, g, ok, w)
			}
		}
	}
	for k := range got {
		if _, ok := p.finals[k]; !ok {
			if bad++; bad <= 10 {
				t.Errorf("final %s zone %d is not final in the model", time.UnixMilli(k.WindowStart).UTC(), k.Zone)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d final rows differ from the model (%d rows, model %d)", bad, len(got), len(p.finals))
	}
	windows := map[int64]bool{}
	for k := range p.finals {
		windows[k.WindowStart] = true
	}
	var onTime, inFinal, late, raw int64
	for _, r := range p.want.Rides {
		switch {
		case r.Late:
			late++
		case windows[r.WindowStart]:
			onTime++
			inFinal++
		default:
			onTime++
		}
	}
	var trips int64
	for _, f := range p.finals {
		trips += f.Trips
	}
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM rides`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if onTime+late != raw || trips != inFinal {
		t.Errorf("identity: on-time %d + late %d != raw %d, or final trips %d != on-time rides of final windows %d", onTime, late, raw, trips, inFinal)
	}
	if p.allFinal && inFinal != onTime {
		t.Errorf("%d on-time rides are in no final window; the closing heartbeats should have released every window", onTime-inFinal)
	}
	t.Logf("hourly_revenue equals the model: %d rows over %d final windows, %d trips; %d late rides, %d rejected",
		len(p.finals), len(windows), trips, late, len(p.want.Rejected))
}

// verifyRawAndLate compares raw rides, late rides and rejected input with the model.
func (p *pipeline) verifyRawAndLate(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var rides, late, rejected, read, heartbeats int64
	err := p.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM rides), (SELECT count(*) FROM late_rides),
		(SELECT count(*) FROM rejected_input), (SELECT sum(next_offset) FROM sink_progress WHERE topic = $1),
		(SELECT sum(heartbeats) FROM sink_progress WHERE topic = $1)`, p.topic).Scan(&rides, &late, &rejected, &read, &heartbeats)
	if err != nil {
		t.Fatal(err)
	}
	if rides != int64(len(p.want.Rides)) || late != int64(len(p.want.Late)) || rejected != int64(len(p.want.Rejected)) ||
		heartbeats != int64(p.want.Heartbeats) || read != rides+rejected+heartbeats {
		t.Errorf("tables: rides %d late %d rejected %d heartbeats %d read %d; model %d %d %d %d",
			rides, late, rejected, heartbeats, read, len(p.want.Rides), len(p.want.Late), len(p.want.Rejected), p.want.Heartbeats)
	}
	rows, err := p.pool.Query(ctx, `SELECT src_partition, src_offset, window_start FROM late_rides`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k model.Key
		var ws time.Time
		if err := rows.Scan(&k.Partition, &k.Offset, &ws); err != nil {
			t.Fatal(err)
		}
		if m, ok := p.want.Late[k]; !ok || m.WindowStart != ws.UnixMilli() {
			t.Errorf("late ride p%d@%d not late in the model", k.Partition, k.Offset)
		}
	}
}

// verifyView reads every final window back through a goka view: with the
// murmur2 hasher the view must find every shard key the processors wrote.
func (p *pipeline) verifyView(t *testing.T) {
	t.Helper()
	top, err := processors.Setup(processors.Config{Brokers: p.env.Brokers, InputTopic: p.topic, Prefix: p.prefix, Window: p.spec, Horizon: horizon})
	if err != nil {
		t.Fatal(err)
	}
	v, err := views.NewWindows(top)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("view run: %v", err)
		}
	}()
	for deadline := time.Now().Add(time.Minute); !v.Recovered(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("view did not recover within a minute")
		}
	}
	byWindow := map[int64][]model.FinalRow{}
	for _, f := range p.finals {
		byWindow[f.WindowStart] = append(byWindow[f.WindowStart], f)
	}
	for start, rows := range byWindow {
		w, ok, err := v.Get(start)
		if err != nil || !ok {
			t.Fatalf("view: window %s not found (%v)", time.UnixMilli(start).UTC(), err)
		}
		if w.ShardsFound != top.Shards || !w.Final || len(w.Zones) != len(rows) {
			t.Fatalf("view: window %s has %d of %d shards, final %v, %d zones (model %d)",
				time.UnixMilli(start).UTC(), w.ShardsFound, top.Shards, w.Final, len(w.Zones), len(rows))
		}
		for _, z := range w.Zones {
			f := p.finals[model.FinalKey{WindowStart: start, Zone: z.Zone}]
			if z.Trips != f.Trips || z.Cents != f.Cents {
				t.Fatalf("view: window %s zone %d has %d trips %d cents, model %d %d", time.UnixMilli(start).UTC(), z.Zone, z.Trips, z.Cents, f.Trips, f.Cents)
			}
		}
	}
	t.Logf("a goka view found all %d shard keys of each of %d final windows, with the model's sums", top.Shards, len(byWindow))
}

// checksum is an ordered digest of the deterministic columns of hourly_revenue.
func (p *pipeline) checksum(t *testing.T) string {
	t.Helper()
	var sum string
	err := p.pool.QueryRow(context.Background(), `SELECT md5(string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s', window_start, window_end,
		pu_location_id, num_trips, total_revenue, total_distance, total_tips, total_passengers), E'\n'
		ORDER BY window_start, pu_location_id)) FROM hourly_revenue`).Scan(&sum)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestFinalsMatchModel runs one processor and one sink process over the
// acceptance workload, checks every table against the model, then resets
// the pipeline and replays: the final table must be byte-identical.
func TestFinalsMatchModel(t *testing.T) {
	w := workload(21)
	p, _ := newPipeline(t, w, 0)
	p.started = time.Now()
	proc := testenv.StartProc(t, "process.log", p.processArgs("proc-0")...)
	snk := testenv.StartProc(t, "sink.log", p.sinkArgs()...)
	el := p.waitDone(t, 5*time.Minute, proc, snk)
	t.Logf("end to end on %s: %d records to raw rows and %d final rows in %v = %.0f rides/s",
		p.env.BrokerKind, p.total, len(p.finals), el.Round(time.Millisecond), float64(w.Rides)/el.Seconds())
	time.Sleep(time.Second) // a late duplicate or stray final would show up now
	p.verifyFinals(t)
	p.verifyRawAndLate(t)
	p.verifyView(t)
	first := p.checksum(t)

	// Full reset and replay.
	if err := proc.Stop(30 * time.Second); err != nil {
		t.Fatalf("processor did not stop on SIGTERM: %v", err)
	}
	if err := snk.Stop(30 * time.Second); err != nil {
		t.Fatalf("sink did not stop on SIGTERM: %v", err)
	}
	reset := testenv.StartProc(t, "reset.log", "reset", "--brokers", strings.Join(p.env.Brokers, ","), "--topic", p.topic,
		"--prefix", p.prefix, "--postgres", "finals", "--database-url", p.dbURL)
	if err := reset.Wait(); err != nil {
		t.Fatalf("reset: %v\n%s", err, reset.Tail(3000))
	}
	if _, finals := p.counts(t); finals != 0 {
		t.Fatalf("reset left %d final rows", finals)
	}
	p.started = time.Now()
	proc = testenv.StartProc(t, "process2.log", p.processArgs("proc-0")...)
	snk = testenv.StartProc(t, "sink2.log", p.sinkArgs()...)
	el = p.waitDone(t, 5*time.Minute, proc, snk)
	time.Sleep(time.Second)
	p.verifyFinals(t)
	if second := p.checksum(t); second != first {
		t.Fatalf("replay changed the final table: checksum %s, first run %s", second, first)
	}
	t.Logf("reset + replay in %v: byte-identical final table (md5 %s)", el.Round(time.Millisecond), first)
}

// TestFinalsUnderSIGKILL runs two processor instances and kills them at
// random moments at least ten times; the tables must still equal the model.
func TestFinalsUnderSIGKILL(t *testing.T) {
	w := workload(22)
	p, produced := newPipeline(t, w, 12_000) // about 17 s of input
	p.started = time.Now()
	procs := []*testenv.Proc{
		testenv.StartProc(t, "process-a.log", p.processArgs("proc-a")...),
		testenv.StartProc(t, "process-b.log", p.processArgs("proc-b")...),
	}
	snk := testenv.StartProc(t, "sink.log", p.sinkArgs()...)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	kills := 0
	for kills < 10 {
		time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
		applied, finals := p.counts(t)
		if finals >= int64(len(p.finals)) {
			t.Fatalf("the run finished after %d kills; it must be killed at least 10 times mid-run", kills)
		}
		i := rng.IntN(2)
		procs[i].Kill()
		kills++
		t.Logf("SIGKILL %d of processor %d at %v (%d/%d records in raw, %d/%d finals)", kills, i,
			time.Since(p.started).Round(time.Millisecond), applied, p.total, finals, len(p.finals))
		procs[i] = testenv.StartProc(t, fmt.Sprintf("process-%d-%d.log", i, kills), p.processArgs([]string{"proc-a", "proc-b"}[i])...)
	}
	<-produced
	el := p.waitDone(t, 8*time.Minute, append(procs, snk)...)
	t.Logf("%d SIGKILLs; all finals in after %v", kills, el.Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	p.verifyFinals(t)
	p.verifyRawAndLate(t)
}

// TestIdleHeartbeats streams a workload whose last partition goes idle and
// that has no closing heartbeats: the processors' live mode writes heartbeats
// into the idle partition, and the final table equals the model run over the
// input log as it now stands, heartbeats included.
func TestIdleHeartbeats(t *testing.T) {
	w := generate.Config{Seed: 31, Rides: 40_000, Partitions: 4, Hours: 8, OutOfOrder: 0.05, Late: 0.01,
		Lateness: 5 * time.Minute, IdlePartitions: 1, IdleAfter: 0.4}
	p, _ := newPipeline(t, w, 0)
	if len(p.finals) != 0 {
		// Partition 3 stops at 40%: without heartbeats only windows before that can close.
		t.Logf("before live mode, the model finalizes %d rows", len(p.finals))
	}
	before := len(p.finals)
	args := append(p.processArgs("proc-idle"), "--idle-heartbeat", "1s")
	proc := testenv.StartProc(t, "process.log", args...)
	snk := testenv.StartProc(t, "sink.log", p.sinkArgs()...)

	// Wait until heartbeats stop being written and the finals stop changing.
	var last string
	stableSince := time.Now()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Since(stableSince) < 6*time.Second {
		if time.Now().After(deadline) {
			t.Fatalf("pipeline did not settle\n%s\n%s", proc.Tail(3000), snk.Tail(2000))
		}
		time.Sleep(500 * time.Millisecond)
		applied, finals := p.counts(t)
		state := fmt.Sprint(applied, finals, len(p.env.ReadTopic(t, p.topic)[w.Partitions-1]))
		if state != last {
			last, stableSince = state, time.Now()
		}
	}
	p.parts = p.env.ReadTopic(t, p.topic)
	hb := len(p.parts[w.Partitions-1]) - len(expectedWithout(w)[w.Partitions-1])
	if hb <= 0 {
		t.Fatalf("no heartbeat was written into the idle partition\n%s", proc.Tail(3000))
	}
	p.want = model.Run(p.spec, p.parts)
	p.finals = model.Finals(p.spec, horizon, p.parts, p.want)
	p.total = 0
	for _, vs := range p.parts {
		p.total += int64(len(vs))
	}
	if len(p.finals) <= before {
		t.Fatalf("live mode released nothing: %d final rows, %d without it", len(p.finals), before)
	}
	p.waitDone(t, time.Minute, proc, snk)
	p.verifyFinals(t)
	p.verifyRawAndLate(t)
	t.Logf("%d heartbeats written into the idle partition released %d more final rows (%d without live mode)", hb, len(p.finals)-before, before)
}

func expectedWithout(w generate.Config) [][][]byte {
	parts := make([][][]byte, w.Partitions)
	for m := range w.All {
		parts[m.Partition] = append(parts[m.Partition], m.Value)
	}
	return parts
}

// TestFinalsLatency streams input at a fixed rate and reports how long final
// rows take to be committed after the record that closed their window was
// produced (the last partition's closing record). It asserts correctness;
// the latency is reported, not asserted.
func TestFinalsLatency(t *testing.T) {
	w := generate.Config{Seed: 41, Rides: 30_000, Partitions: 4, Hours: 12, OutOfOrder: 0.05, Late: 0.01,
		Lateness: 5 * time.Minute, Heartbeats: true}
	const rate = 2500 // messages/s: a window closes about every second
	p, produced := newPipeline(t, w, rate)
	proc := testenv.StartProc(t, "process.log", p.processArgs("proc-lat")...)
	snk := testenv.StartProc(t, "sink.log", p.sinkArgs()...)
	p.started = time.Now()
	<-produced
	p.waitDone(t, 3*time.Minute, proc, snk)
	p.verifyFinals(t)

	msgs := p.env.ReadMessages(t, p.topic)
	closedAt := map[int64]time.Time{} // window start -> when its last partition closed it
	for _, ms := range msgs {
		var clock window.Clock
		first := map[int64]bool{}
		for _, m := range ms {
			rec, err := ride.Decode(m.Value)
			if err != nil {
				continue
			}
			before := clock
			if p.spec.Observe(&clock, rec.EventMs).Verdict == window.TooFarAhead {
				continue
			}
			from, to := p.spec.Closes(before, clock, horizon)
			for s := from; s < to; s = p.spec.End(s) {
				if !first[s] {
					first[s] = true
					if m.Timestamp.After(closedAt[s]) {
						closedAt[s] = m.Timestamp
					}
				}
			}
		}
	}
	rows, err := p.pool.Query(context.Background(), `SELECT window_start, min(finalized_at) FROM hourly_revenue GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var lags []time.Duration
	for rows.Next() {
		var ws, fin time.Time
		if err := rows.Scan(&ws, &fin); err != nil {
			t.Fatal(err)
		}
		c, ok := closedAt[ws.UnixMilli()]
		if !ok {
			t.Fatalf("final window %s was never closed by the input", ws)
		}
		lags = append(lags, fin.Sub(c))
	}
	slices.Sort(lags)
	if len(lags) == 0 {
		t.Fatal("no final windows")
	}
	t.Logf("at %d msg/s on %s: window close -> final rows committed in PostgreSQL over %d windows: p50 %v, p99 %v, max %v",
		rate, p.env.BrokerKind, len(lags), lags[len(lags)/2].Round(time.Millisecond),
		lags[(len(lags)*99)/100].Round(time.Millisecond), lags[len(lags)-1].Round(time.Millisecond))
}
