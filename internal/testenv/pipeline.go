package testenv

import (
	"context"
	"fmt"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/window"
	"github.com/ridestream/ridestream/processors"
)

// Pipeline is one end-to-end run under test: an input topic, a database,
// a processor prefix, and the reference model's answer for the input.
type Pipeline struct {
	Env    *Env
	Topic  string
	Prefix string
	DBURL  string
	Pool   *pgxpool.Pool
	Parts  [][][]byte
	Want   model.Result
	Finals map[model.FinalKey]model.FinalRow
	Total  int64
	// Rule is the window rule the processes run with and the model applies.
	Rule model.Rule
	// AllFinal: the input ends with heartbeats, so every window must be final.
	AllFinal bool
	Started  time.Time
}

// Input is what a test produces into its topic.
type Input struct {
	Partitions int32
	Messages   iter.Seq[generate.Message]
	// Count is how many messages Messages yields.
	Count int
	// AllFinal: the input ends with heartbeats that release every window.
	AllFinal bool
}

// WorkloadInput is the input of a generated workload.
func WorkloadInput(w generate.Config) Input {
	return Input{Partitions: w.Partitions, Messages: w.All, Count: w.Count(), AllFinal: w.Heartbeats}
}

// NewPipeline makes a topic, a database and the model's answer, and produces
// the workload at rate messages/s (0: at once); produced closes when done.
func NewPipeline(t *testing.T, w generate.Config, rate float64) (p *Pipeline, produced chan struct{}) {
	return NewPipelineOn(t, Get(t), w, rate)
}

// NewPipelineOn is NewPipeline on the given servers.
func NewPipelineOn(t *testing.T, env *Env, w generate.Config, rate float64) (p *Pipeline, produced chan struct{}) {
	return NewPipelineFor(t, env, model.DefaultRule(), WorkloadInput(w), rate)
}

// NewPipelineFor is NewPipeline for any input and window rule.
func NewPipelineFor(t *testing.T, env *Env, rule model.Rule, in Input, rate float64) (p *Pipeline, produced chan struct{}) {
	p = &Pipeline{Env: env, Rule: rule, Total: int64(in.Count), AllFinal: in.AllFinal}
	p.Topic = env.NewTopic(t, in.Partitions)
	p.Prefix = strings.ReplaceAll(p.Topic, "rides_", "rs_")
	p.DBURL = env.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), p.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	p.Pool = pool
	p.Parts = make([][][]byte, in.Partitions)
	for m := range in.Messages {
		p.Parts[m.Partition] = append(p.Parts[m.Partition], m.Value)
	}
	p.Remodel()
	produced = make(chan struct{})
	go func() {
		defer close(produced)
		n, err := generate.Produce(context.Background(), generate.ProduceOptions{Kafka: env.Kafka, Topic: p.Topic, Rate: rate, Total: in.Count,
			MaxMessageBytes: MaxInputBytes}, in.Messages)
		if err != nil || n != in.Count {
			t.Errorf("produced %d of %d: %v", n, in.Count, err)
		}
	}()
	if rate == 0 {
		<-produced
	}
	return p, produced
}

// Remodel recomputes the model's answer and the record count from p.Parts
// (after a test changed them, e.g. by reading back heartbeats the pipeline
// wrote itself).
func (p *Pipeline) Remodel() {
	p.Want = model.Run(p.Rule, p.Parts)
	p.Finals = model.Finals(p.Rule, p.Parts, p.Want)
	p.Total = 0
	for _, vs := range p.Parts {
		p.Total += int64(len(vs))
	}
}

// WindowSpec is p.Rule as the processors' configuration, for tests that
// start processors in-process.
func (p *Pipeline) WindowSpec() window.Spec {
	return window.Spec{Size: p.Rule.Size, Lateness: p.Rule.Lateness, MaxFutureSkew: p.Rule.MaxFutureSkew, Location: p.Rule.Location}
}

// RuleArgs are the command-line flags of p.Rule.
func (p *Pipeline) RuleArgs() []string {
	zone := func(loc *time.Location) string {
		if loc == nil {
			return "UTC"
		}
		return loc.String()
	}
	args := []string{"--window", p.Rule.Size.String(), "--allowed-lateness", p.Rule.Lateness.String(),
		"--max-future-skew", p.Rule.MaxFutureSkew.String(), "--time-zone", zone(p.Rule.Location),
		"--input-time-zone", zone(p.Rule.Input.Location)}
	if f := p.Rule.Input.EventTimeField; f != "" {
		args = append(args, "--event-time-field", f)
	}
	return args
}

// ProcessArgs runs the processors of p as instance.
func (p *Pipeline) ProcessArgs(instance string) []string {
	args := append([]string{"process"}, p.Env.KafkaArgs...)
	args = append(args, "--topic", p.Topic, "--prefix", p.Prefix, "--instance-id", instance, "--session-timeout", "6s")
	return append(args, p.RuleArgs()...)
}

// SinkArgs runs the sink of p: the pipeline's prefix is all it needs to know
// of it (its record says the rest).
func (p *Pipeline) SinkArgs() []string {
	args := append([]string{"sink"}, p.Env.KafkaArgs...)
	return append(args, "--prefix", p.Prefix, "--database-url", p.DBURL, "--instance-id", "sink-0", "--session-timeout", "6s")
}

// Topology is p's pipeline as its record describes it, for tests that read
// its state in-process (views).
func (p *Pipeline) Topology(t testing.TB) *processors.Topology {
	t.Helper()
	return processors.NewTopology(processors.Config{Spec: p.Env.ReadSpec(t, p.Prefix), Kafka: p.Env.Kafka})
}

// Counts returns records applied from the input and final rows stored.
func (p *Pipeline) Counts(t *testing.T) (applied, finals int64) {
	t.Helper()
	err := p.Pool.QueryRow(context.Background(), `SELECT
		coalesce((SELECT sum(rides + rejected + heartbeats) FROM sink_progress WHERE topic = $1), 0),
		(SELECT count(*) FROM hourly_revenue)`, p.Topic).Scan(&applied, &finals)
	if err != nil && !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("counts: %v", err)
	}
	return applied, finals
}

// WaitDone waits until every input record and every expected final row is in
// PostgreSQL.
func (p *Pipeline) WaitDone(t *testing.T, timeout time.Duration, procs ...*Proc) time.Duration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		applied, finals := p.Counts(t)
		if applied == p.Total && finals >= int64(len(p.Finals)) {
			return time.Since(p.Started)
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, pr := range procs {
				fmt.Fprintf(&logs, "--- %s (exited %v)\n%s\n", pr.Cmd.Args[1], pr.Exited(), pr.Tail(3000))
			}
			t.Fatalf("after %v: %d of %d records applied, %d of %d final rows\n%s", timeout, applied, p.Total, finals, len(p.Finals), logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// VerifyFinals compares hourly_revenue with the model's finals row for row.
func (p *Pipeline) VerifyFinals(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	rows, err := p.Pool.Query(ctx, `SELECT window_start, window_end, pu_location_id, num_trips, (total_revenue*100)::bigint,
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
	for k, w := range p.Finals {
		if g, ok := got[k]; !ok || g != w {
			if bad++; bad <= 5 {
				t.Errorf("final %s zone %d: got %+v (present %v), model %+v", time.UnixMilli(k.WindowStart).UTC(), k.Zone, g, ok, w)
			}
		}
	}
	for k := range got {
		if _, ok := p.Finals[k]; !ok {
			if bad++; bad <= 10 {
				t.Errorf("final %s zone %d is not final in the model", time.UnixMilli(k.WindowStart).UTC(), k.Zone)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d final rows differ from the model (%d rows, model %d)", bad, len(got), len(p.Finals))
	}
	windows := map[int64]bool{}
	for k := range p.Finals {
		windows[k.WindowStart] = true
	}
	var onTime, inFinal, late, raw int64
	for _, r := range p.Want.Rides {
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
	for _, f := range p.Finals {
		trips += f.Trips
	}
	if err := p.Pool.QueryRow(ctx, `SELECT count(*) FROM rides`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if onTime+late != raw || trips != inFinal {
		t.Errorf("identity: on-time %d + late %d != raw %d, or final trips %d != on-time rides of final windows %d", onTime, late, raw, trips, inFinal)
	}
	if p.AllFinal && inFinal != onTime {
		t.Errorf("%d on-time rides are in no final window; the closing heartbeats should have released every window", onTime-inFinal)
	}
	t.Logf("hourly_revenue equals the model: %d rows over %d final windows, %d trips; %d late rides, %d rejected",
		len(p.Finals), len(windows), trips, late, len(p.Want.Rejected))
}

// VerifyRawAndLate compares raw rides, late rides and rejected input with the model.
func (p *Pipeline) VerifyRawAndLate(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var rides, late, rejected, read, heartbeats int64
	err := p.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM rides), (SELECT count(*) FROM late_rides),
		(SELECT count(*) FROM rejected_input), (SELECT sum(next_offset) FROM sink_progress WHERE topic = $1),
		(SELECT sum(heartbeats) FROM sink_progress WHERE topic = $1)`, p.Topic).Scan(&rides, &late, &rejected, &read, &heartbeats)
	if err != nil {
		t.Fatal(err)
	}
	if rides != int64(len(p.Want.Rides)) || late != int64(len(p.Want.Late)) || rejected != int64(len(p.Want.Rejected)) ||
		heartbeats != int64(p.Want.Heartbeats) || read != rides+rejected+heartbeats {
		t.Errorf("tables: rides %d late %d rejected %d heartbeats %d read %d; model %d %d %d %d",
			rides, late, rejected, heartbeats, read, len(p.Want.Rides), len(p.Want.Late), len(p.Want.Rejected), p.Want.Heartbeats)
	}
	// The accounting identities, in PostgreSQL alone: the raw rides marked
	// late are the late rides, and (once every window is final) the raw
	// rides on time are the final trips.
	var rawLate, rawOnTime, finalTrips int64
	if err := p.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM rides WHERE is_late), (SELECT count(*) FROM rides WHERE NOT is_late),
		(SELECT coalesce(sum(num_trips), 0) FROM hourly_revenue)`).Scan(&rawLate, &rawOnTime, &finalTrips); err != nil {
		t.Fatal(err)
	}
	if rawLate != late {
		t.Errorf("rides marked late: %d, late_rides: %d", rawLate, late)
	}
	if p.AllFinal && rawOnTime != finalTrips {
		t.Errorf("rides on time: %d, trips in hourly_revenue: %d", rawOnTime, finalTrips)
	}
	rows, err := p.Pool.Query(ctx, `SELECT src_partition, src_offset, window_start FROM late_rides`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k model.Key
		var ws time.Time
		if err := rows.Scan(&k.Partition, &k.Offset, &ws); err != nil {
			t.Fatal(err)
		}
		if m, ok := p.Want.Late[k]; !ok || m.WindowStart != ws.UnixMilli() {
			t.Errorf("late ride p%d@%d not late in the model", k.Partition, k.Offset)
		}
	}
}

// Checksum is an ordered digest of the deterministic columns of hourly_revenue.
func (p *Pipeline) Checksum(t *testing.T) string {
	t.Helper()
	var sum string
	err := p.Pool.QueryRow(context.Background(), `SELECT md5(string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s', window_start, window_end,
		pu_location_id, num_trips, total_revenue, total_distance, total_tips, total_passengers), E'\n'
		ORDER BY window_start, pu_location_id)) FROM hourly_revenue`).Scan(&sum)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// Twin is a second pipeline over p's input topic: its own prefix, database
// and window rule (a 5-minute pipeline beside an hourly one, say).
func (p *Pipeline) Twin(t *testing.T, suffix string, rule model.Rule) *Pipeline {
	t.Helper()
	q := &Pipeline{Env: p.Env, Topic: p.Topic, Prefix: p.Prefix + suffix, Rule: rule, AllFinal: p.AllFinal,
		Parts: p.Parts, DBURL: p.Env.NewDatabase(t)}
	pool, err := pgxpool.New(context.Background(), q.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	q.Pool = pool
	q.Remodel()
	return q
}

// Settle waits until the pipeline stops changing: no record is added to
// the input (live mode writes heartbeats into it) and PostgreSQL's counts
// stay the same for 6 seconds. It then re-reads the input log into p and
// recomputes the model over it, heartbeats written by live mode included.
func (p *Pipeline) Settle(t *testing.T, procs ...*Proc) {
	t.Helper()
	var last string
	stableSince := time.Now()
	deadline := time.Now().Add(4 * time.Minute)
	for time.Since(stableSince) < 6*time.Second {
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, pr := range procs {
				fmt.Fprintf(&logs, "--- %s\n%s\n", pr.Cmd.Args[1], pr.Tail(3000))
			}
			t.Fatalf("pipeline did not settle\n%s", logs.String())
		}
		time.Sleep(500 * time.Millisecond)
		applied, finals := p.Counts(t)
		records := 0
		for _, vs := range p.Env.ReadTopic(t, p.Topic) {
			records += len(vs)
		}
		state := fmt.Sprint(applied, finals, records)
		if state != last {
			last, stableSince = state, time.Now()
		}
	}
	p.Parts = p.Env.ReadTopic(t, p.Topic)
	p.Remodel()
}

// RunAndVerify runs one processor and one sink process over p until every
// record and every final row of the model is in PostgreSQL, and checks the
// tables against the model.
func (p *Pipeline) RunAndVerify(t *testing.T, instance string) {
	t.Helper()
	proc := StartProcEnv(t, "process.log", p.Env.ProcEnv, p.ProcessArgs(instance)...)
	snk := StartProcEnv(t, "sink.log", p.Env.ProcEnv, p.SinkArgs()...)
	p.Started = time.Now()
	p.WaitDone(t, 5*time.Minute, proc, snk)
	time.Sleep(time.Second) // a late duplicate or stray final would show up now
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
}
