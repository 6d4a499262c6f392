package testenv

import (
	"context"
	"fmt"
	"iter"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/ride"
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
	// Finals are the model's final rows, per aggregation.
	Finals map[string]map[model.RowKey]model.Row
	Total  int64
	// Rule is the window rule the processes run with and the model applies.
	Rule model.Rule
	// Aggregations is the declaration (YAML) the processes run with, when
	// Rule has declared aggregations.
	Aggregations string
	// AllFinal: the input ends with heartbeats, so every window must be final.
	AllFinal bool
	Started  time.Time
	aggFile  string
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
	// Input at a rate is meant to arrive while the test's processes run:
	// build their binary before it starts (on a slow machine the build
	// alone outlasts a test's whole input).
	if rate > 0 {
		Binary(t)
	}
	produced = make(chan struct{})
	go func() {
		defer close(produced)
		n, err := generate.Produce(context.Background(), generate.ProduceOptions{Kafka: env.Kafka, Topic: p.Topic, Rate: rate, Total: in.Count}, in.Messages)
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
	p.Finals = model.Finals(p.Rule, p.Want)
	p.Total = 0
	for _, vs := range p.Parts {
		p.Total += int64(len(vs))
	}
}

// FinalCount is how many final rows the model expects, in all tables.
func (p *Pipeline) FinalCount() int {
	n := 0
	for _, rows := range p.Finals {
		n += len(rows)
	}
	return n
}

// Declare makes p's pipeline run the aggregations declared in yaml (and the
// model apply them).
func (p *Pipeline) Declare(t testing.TB, yaml string) {
	t.Helper()
	list, err := aggregate.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	p.Rule.Aggregations, p.Aggregations = list, yaml
	p.Remodel()
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
	if p.Aggregations != "" {
		args = append(args, "--aggregations", p.aggregationsFile())
	}
	return args
}

// aggregationsFile writes p.Aggregations to a file once and names it.
func (p *Pipeline) aggregationsFile() string {
	if p.aggFile == "" {
		f, err := os.CreateTemp("", "ridestream-aggregations-*.yaml")
		if err != nil {
			panic(err)
		}
		defer f.Close()
		if _, err := f.WriteString(p.Aggregations); err != nil {
			panic(err)
		}
		p.aggFile = f.Name()
	}
	return p.aggFile
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

// AwaitTopology waits for the pipeline's record, which the first of procs
// to start writes, and returns the pipeline it describes.
func (p *Pipeline) AwaitTopology(t testing.TB, limit time.Duration, procs ...*Proc) *processors.Topology {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(200 * time.Millisecond) {
		var spec pipeline.Spec
		err := p.Env.withCluster(func(client sarama.Client, _ sarama.ClusterAdmin) error {
			var err error
			spec, err = kafka.ReadSpec(client, p.Prefix)
			return err
		})
		if err == nil {
			return processors.NewTopology(processors.Config{Spec: spec, Kafka: p.Env.Kafka})
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, pr := range procs {
				fmt.Fprintf(&logs, "--- %s\n%s\n", pr.Cmd.Args[1], pr.Tail(3000))
			}
			t.Fatalf("no record of pipeline %s after %v: %v\n%s", p.Prefix, limit, err, logs.String())
		}
	}
}

// Counts returns records applied from the input and final rows stored, in
// all of the pipeline's tables.
func (p *Pipeline) Counts(t *testing.T) (applied, finals int64) {
	t.Helper()
	q := `SELECT coalesce((SELECT sum(rides + rejected + heartbeats) FROM sink_progress WHERE topic = $1), 0)`
	for _, a := range p.Rule.Aggs() {
		q += ` + 0, (SELECT count(*) FROM ` + a.Name + `)`
	}
	vals := make([]int64, 1+len(p.Rule.Aggs()))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	err := p.Pool.QueryRow(context.Background(), strings.Replace(q, " + 0", "", -1), p.Topic).Scan(dest...)
	if err != nil && !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("counts: %v", err)
	}
	for _, v := range vals[1:] {
		finals += v
	}
	return vals[0], finals
}

// WaitDone waits until every input record and every expected final row is in
// PostgreSQL.
func (p *Pipeline) WaitDone(t *testing.T, timeout time.Duration, procs ...*Proc) time.Duration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		applied, finals := p.Counts(t)
		if applied == p.Total && finals >= int64(p.FinalCount()) {
			return time.Since(p.Started)
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, pr := range procs {
				fmt.Fprintf(&logs, "--- %s (exited %v)\n%s\n", pr.Cmd.Args[1], pr.Exited(), pr.Tail(3000))
			}
			t.Fatalf("after %v: %d of %d records applied, %d of %d final rows\n%s", timeout, applied, p.Total, finals, p.FinalCount(), logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ReadTable reads aggregation a's table as the model's rows: measures of
// money and miles in hundredths.
func ReadTable(t testing.TB, pool *pgxpool.Pool, a aggregate.Aggregation) map[model.RowKey]model.Row {
	t.Helper()
	got := map[model.RowKey]model.Row{}
	for k, r := range readRows(t, pool, a, a.Name, false) {
		got[k] = r.Row
	}
	return got
}

// ReadCorrected reads aggregation a's corrected view as the model's rows.
func ReadCorrected(t testing.TB, pool *pgxpool.Pool, a aggregate.Aggregation) map[model.RowKey]model.CorrectedRow {
	t.Helper()
	return readRows(t, pool, a, a.Name+"_corrected", true)
}

// readRows reads relation, shaped like a's table (and, when corrected, with
// its late_rides and late sums after the measures).
func readRows(t testing.TB, pool *pgxpool.Pool, a aggregate.Aggregation, relation string, corrected bool) map[model.RowKey]model.CorrectedRow {
	t.Helper()
	start, end := a.WindowColumns()
	cols := []string{start, end}
	for _, c := range a.GroupColumns() {
		cols = append(cols, c+"::bigint")
	}
	scaled := func(m aggregate.Measure, col string) string {
		if m.Scale() == ride.Hundredths {
			return "(" + col + "*100)::bigint"
		}
		return col + "::bigint"
	}
	for _, m := range a.Measures {
		cols = append(cols, scaled(m, m.Column))
	}
	sums := 0
	if corrected {
		cols = append(cols, "late_rides")
		for _, m := range a.Measures {
			if m.Fn == aggregate.Sum {
				cols = append(cols, scaled(m, "late_"+m.Column))
				sums++
			}
		}
	}
	rows, err := pool.Query(context.Background(), "SELECT "+strings.Join(cols, ", ")+" FROM "+relation)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[model.RowKey]model.CorrectedRow{}
	for rows.Next() {
		var ws, we time.Time
		vals := make([]*int64, len(a.GroupBy)+len(a.Measures)+sums)
		dest := []any{&ws, &we}
		for i := range vals[:len(a.GroupBy)+len(a.Measures)] {
			dest = append(dest, &vals[i])
		}
		var late int64
		if corrected {
			dest = append(dest, &late)
			for i := len(a.GroupBy) + len(a.Measures); i < len(vals); i++ {
				dest = append(dest, &vals[i])
			}
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		r := model.CorrectedRow{Row: model.Row{Start: ws.UnixMilli(), End: we.UnixMilli()}, LateRides: late}
		for i, v := range vals {
			mv := model.Value{Null: v == nil}
			if v != nil {
				mv.V = *v
			}
			switch {
			case i < len(a.GroupBy):
				r.Group = append(r.Group, mv)
			case i < len(a.GroupBy)+len(a.Measures):
				r.Measures = append(r.Measures, mv)
			default:
				r.LateSums = append(r.LateSums, mv)
			}
		}
		got[model.RowKey{Start: r.Start, Group: model.GroupKey(r.Group)}] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// VerifyFinals compares every aggregation's table with the model's finals,
// row for row, and checks that each on-time ride of a final window or
// session is counted once.
func (p *Pipeline) VerifyFinals(t *testing.T) {
	t.Helper()
	var summary []string
	corrected := model.Corrected(p.Rule, p.Want)
	for _, a := range p.Rule.Aggs() {
		want := p.Finals[a.Name]
		got := ReadTable(t, p.Pool, a)
		bad := 0
		for k, w := range want {
			if g, ok := got[k]; !ok || fmt.Sprint(g) != fmt.Sprint(w) {
				if bad++; bad <= 5 {
					t.Errorf("%s: final %s group %s: got %+v (present %v), model %+v", a.Name, time.UnixMilli(k.Start).UTC(), k.Group, g, ok, w)
				}
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				if bad++; bad <= 10 {
					t.Errorf("%s: final %s group %s is not final in the model", a.Name, time.UnixMilli(k.Start).UTC(), k.Group)
				}
			}
		}
		if bad > 0 {
			t.Fatalf("%s: %d final rows differ from the model (%d rows, model %d)", a.Name, bad, len(got), len(want))
		}
		inFinal, onTime := p.Want.OnTimeFinal(p.Rule, a.Name)
		if i := slices.IndexFunc(a.Measures, func(m aggregate.Measure) bool { return m.Fn == aggregate.Count }); i >= 0 {
			var trips int64
			for _, r := range got {
				trips += r.Measures[i].V
			}
			if trips != inFinal {
				t.Errorf("%s: identity: %s sums to %d, the on-time rides of final windows are %d", a.Name, a.Measures[i].Column, trips, inFinal)
			}
		}
		if p.AllFinal && inFinal != onTime {
			t.Errorf("%s: %d on-time rides are in no final window or session; the closing heartbeats should have released all", a.Name, onTime-inFinal)
		}
		verifyCorrected(t, p.Pool, a, corrected[a.Name])
		summary = append(summary, fmt.Sprintf("%s %d rows", a.Name, len(want)))
	}
	open := p.VerifyWindowStatus(t)
	t.Logf("every table equals the model (window_status too, %d windows open): %s; %d raw rides, %d late for some aggregation, %d rejected", open,
		strings.Join(summary, ", "), len(p.Want.Rides), len(p.Want.Late), len(p.Want.Rejected))
}

// VerifyWindowStatus compares window_status with the model's: every
// tumbling window with on-time rides, its counts, whether it is final, and
// for one that is not, the partitions it waits for. It returns how many
// rows are open.
func (p *Pipeline) VerifyWindowStatus(t *testing.T) (open int) {
	t.Helper()
	want := model.WindowStatus(p.Rule, p.Want)
	rows, err := p.Pool.Query(context.Background(), `SELECT aggregation, window_start, window_end, state, rides, late_rides,
		coalesce(waiting_partitions, '{}'), finalized_at IS NOT NULL FROM window_status`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]map[int64]model.Status{}
	for rows.Next() {
		var agg, state string
		var start, end time.Time
		var st model.Status
		var finalized bool
		if err := rows.Scan(&agg, &start, &end, &state, &st.Rides, &st.Late, &st.Waiting, &finalized); err != nil {
			t.Fatal(err)
		}
		st.End, st.Final = end.UnixMilli(), state == "final"
		if st.Final != finalized || (state != "final" && state != "open") {
			t.Fatalf("window_status %s %s: state %q, finalized_at set %v", agg, start, state, finalized)
		}
		if len(st.Waiting) == 0 {
			st.Waiting = nil
		}
		if got[agg] == nil {
			got[agg] = map[int64]model.Status{}
		}
		got[agg][start.UnixMilli()] = st
		if !st.Final {
			open++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for agg, ws := range want {
		for start, w := range ws {
			if g, ok := got[agg][start]; !ok || fmt.Sprint(g) != fmt.Sprint(w) {
				if bad++; bad <= 5 {
					t.Errorf("window_status %s %s: got %+v (present %v), model %+v", agg, time.UnixMilli(start).UTC(), g, ok, w)
				}
			}
		}
		if len(got[agg]) != len(ws) {
			t.Errorf("window_status %s: %d rows, model %d", agg, len(got[agg]), len(ws))
			bad++
		}
	}
	if bad > 0 {
		t.FailNow()
	}
	return open
}

// verifyCorrected compares aggregation a's corrected view with the model's:
// the final rows with the late rides that missed them added.
func verifyCorrected(t *testing.T, pool *pgxpool.Pool, a aggregate.Aggregation, want map[model.RowKey]model.CorrectedRow) {
	t.Helper()
	got := ReadCorrected(t, pool, a)
	bad := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || fmt.Sprint(g) != fmt.Sprint(w) {
			if bad++; bad <= 5 {
				t.Errorf("%s_corrected: %s group %s: got %+v (present %v), model %+v", a.Name, time.UnixMilli(k.Start).UTC(), k.Group, g, ok, w)
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			if bad++; bad <= 10 {
				t.Errorf("%s_corrected: %s group %s is not in the model's", a.Name, time.UnixMilli(k.Start).UTC(), k.Group)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%s_corrected: %d rows differ from the model (%d rows, model %d)", a.Name, bad, len(got), len(want))
	}
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
		heartbeats != int64(p.Want.Heartbeats) || read != rides+rejected+heartbeats+int64(p.Want.Pending) {
		t.Errorf("tables: rides %d late %d rejected %d heartbeats %d read %d; model %d %d %d %d (+%d waiting)",
			rides, late, rejected, heartbeats, read, len(p.Want.Rides), len(p.Want.Late), len(p.Want.Rejected), p.Want.Heartbeats, p.Want.Pending)
	}
	// The accounting identities, in PostgreSQL alone: the raw rides marked
	// late are the first aggregation's late rides.
	first := p.Rule.Aggs()[0]
	var rawLate, firstLate int64
	if err := p.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM rides WHERE is_late),
		(SELECT count(*) FROM late_rides WHERE aggregation = $1)`, first.Name).Scan(&rawLate, &firstLate); err != nil {
		t.Fatal(err)
	}
	if rawLate != firstLate {
		t.Errorf("rides marked late: %d, late_rides of %s: %d", rawLate, first.Name, firstLate)
	}
	rows, err := p.Pool.Query(ctx, `SELECT aggregation, src_partition, src_offset, coalesce(window_start, event_at) FROM late_rides`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k model.LateKey
		var at time.Time
		if err := rows.Scan(&k.Aggregation, &k.Partition, &k.Offset, &at); err != nil {
			t.Fatal(err)
		}
		m, ok := p.Want.Late[k]
		want := m.WindowStart
		if m.WindowEnd == 0 {
			want = m.EventMs
		}
		if !ok || want != at.UnixMilli() {
			t.Errorf("late ride %s p%d@%d not late in the model (model %+v, present %v)", k.Aggregation, k.Partition, k.Offset, m, ok)
		}
	}
}

// Checksum is an ordered digest of the deterministic columns of every
// aggregation's table.
func (p *Pipeline) Checksum(t *testing.T) string {
	t.Helper()
	var sums []string
	for _, a := range p.Rule.Aggs() {
		start, end := a.WindowColumns()
		cols := append([]string{start, end}, a.GroupColumns()...)
		for _, m := range a.Measures {
			cols = append(cols, m.Column)
		}
		order := append([]string{start}, a.GroupColumns()...)
		var sum string
		err := p.Pool.QueryRow(context.Background(), `SELECT coalesce(md5(string_agg(concat_ws('|', `+strings.Join(cols, ", ")+`), E'\n' ORDER BY `+
			strings.Join(order, ", ")+`)), '') FROM `+a.Name).Scan(&sum)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, a.Name+":"+sum)
	}
	return strings.Join(sums, " ")
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

// Beside is a second pipeline over p's input topic in p's database, in the
// schema given (empty: the database's default, p's own): its own prefix and
// declared aggregations (yaml, empty: the default one).
func (p *Pipeline) Beside(t *testing.T, suffix, schema, yaml string) *Pipeline {
	t.Helper()
	q := &Pipeline{Env: p.Env, Topic: p.Topic, Prefix: p.Prefix + suffix, Rule: p.Rule, AllFinal: p.AllFinal,
		Parts: p.Parts, DBURL: p.DBURL, Total: p.Total}
	q.Rule.Aggregations = nil
	if schema != "" {
		u, err := url.Parse(p.DBURL)
		if err != nil {
			t.Fatal(err)
		}
		v := u.Query()
		v.Set("search_path", schema)
		u.RawQuery = v.Encode()
		q.DBURL = u.String()
	}
	pool, err := pgxpool.New(context.Background(), q.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	q.Pool = pool
	if yaml != "" {
		q.Declare(t, yaml)
	} else {
		q.Remodel()
	}
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

// ResetAndReplay stops procs (SIGTERM), resets the pipeline (`ridestream
// reset --postgres finals`), runs one processor and one sink over the same
// input again and checks that every final table is byte-identical to the
// first run's and equals the model.
func (p *Pipeline) ResetAndReplay(t *testing.T, procs ...*Proc) {
	t.Helper()
	first := p.Checksum(t)
	for _, pr := range procs {
		if err := pr.Stop(30 * time.Second); err != nil {
			t.Fatalf("%s did not stop on SIGTERM: %v", pr.Cmd.Args[1], err)
		}
	}
	reset := StartProcEnv(t, "reset.log", p.Env.ProcEnv, append(append([]string{"reset"}, p.Env.KafkaArgs...),
		"--prefix", p.Prefix, "--postgres", "finals", "--database-url", p.DBURL)...)
	if err := reset.Wait(); err != nil {
		t.Fatalf("reset: %v\n%s", err, reset.Tail(3000))
	}
	if _, finals := p.Counts(t); finals != 0 {
		t.Fatalf("reset left %d final rows", finals)
	}
	p.Started = time.Now()
	proc := StartProcEnv(t, "process-replay.log", p.Env.ProcEnv, p.ProcessArgs("proc-replay")...)
	snk := StartProcEnv(t, "sink-replay.log", p.Env.ProcEnv, p.SinkArgs()...)
	el := p.WaitDone(t, 5*time.Minute, proc, snk)
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	if second := p.Checksum(t); second != first {
		t.Fatalf("replay changed the final tables: checksums %s, first run %s", second, first)
	}
	t.Logf("reset + replay in %v: byte-identical final tables (md5 %s)", el.Round(time.Millisecond), first)
}

// LiveKeys counts the keys of a compacted topic whose latest record is not a
// tombstone: what a goka table restored from it holds.
func (e *Env) LiveKeys(t testing.TB, topic string) int {
	t.Helper()
	latest := map[string]bool{}
	for _, ms := range e.readMessages(t, topic, false) {
		for _, m := range ms {
			latest[string(m.Key)] = m.Value != nil
		}
	}
	n := 0
	for _, live := range latest {
		if live {
			n++
		}
	}
	return n
}

// AwaitForgotten waits until the pipeline's window table holds no key
// (every window and session final and forgotten) and returns how long that
// took after the call; it fails the test after limit.
func (p *Pipeline) AwaitForgotten(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	table := pipeline.Spec{Prefix: p.Prefix}.Names().WindowsTable
	start := time.Now()
	for {
		n := p.Env.LiveKeys(t, table)
		if n == 0 {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%d live keys left in %s %v after everything was final; every final window must be deleted", n, table, limit)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
