package main

// The streaming course's homework as an end-to-end test: green-taxi rows of
// October 2025 sent once, as the students' Python producer writes them, into
// a one-partition topic; one pipeline declaring docs/homework.md's three
// aggregations; the bounded input finished with `heartbeat --end-of-input`;
// and the three questions answered from PostgreSQL.

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/testenv"
)

// Homework's planted answers: the busiest 5-minute window of one pickup
// zone, the longest streak of one (trips 4 minutes apart for 4 hours), and
// the hour with the most tips (New York local time).
var (
	busyZone        int32 = 74
	busyFiveMinutes       = "2025-10-15 17:05:00"
	streakZone      int32 = 166
	streakStart           = "2025-10-08 06:00:00"
	streakTrips     int64 = 60
	tippedHour            = "2025-10-20 18:00:00"
)

// greenTrips yields n rides of October 2025 in the shape of the course's
// producer: a pandas row turned into a dict, timestamps through str() (New
// York local time, no zone), json.dumps writing NaN for a missing
// passenger_count, and the rows in file order: by pickup, with the small
// disorder real files have and a few rows much later than their place.
func greenTrips(n int, seed uint64) []generate.Message {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	start := time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC) // a wall clock, written without zone
	span := 31 * 24 * time.Hour
	busy, _ := time.Parse(time.DateTime, busyFiveMinutes)
	streak, _ := time.Parse(time.DateTime, streakStart)
	tipped, _ := time.Parse(time.DateTime, tippedHour)
	var out []generate.Message
	plantedBusy, plantedStreak, plantedTips := false, false, false
	row := func(pickup time.Time, zone int32, tip float64) {
		passengers := strconv.Itoa(1+rng.IntN(4)) + ".0"
		if rng.IntN(10) == 0 {
			passengers = "NaN"
		}
		dist := float64(20+rng.IntN(900)) / 100
		total := 3.5 + dist*2.75 + tip + float64(rng.IntN(300))/100
		dropoff := `"` + pickup.Add(time.Duration(5+rng.IntN(30))*time.Minute).Format(time.DateTime) + `"`
		if rng.IntN(200) == 0 {
			dropoff = `"NaT"`
		}
		v := fmt.Sprintf(`{"lpep_pickup_datetime": "%s", "lpep_dropoff_datetime": %s, "PULocationID": %d, "DOLocationID": %d, `+
			`"passenger_count": %s, "trip_distance": %s, "tip_amount": %s, "total_amount": %s}`,
			pickup.Format(time.DateTime), dropoff, zone, 1+rng.IntN(265), passengers,
			strconv.FormatFloat(dist, 'f', -1, 64), strconv.FormatFloat(tip, 'f', -1, 64), strconv.FormatFloat(total, 'f', 2, 64))
		out = append(out, generate.Message{Partition: 0, Value: []byte(v)})
	}
	for i := range n {
		pickup := start.Add(time.Duration(float64(span) * float64(i) / float64(n))).Add(time.Duration(rng.IntN(90)) * time.Second)
		if rng.IntN(400) == 0 {
			pickup = pickup.Add(-time.Duration(20+rng.IntN(120)) * time.Minute) // a row far behind its place: late
		}
		zone := int32([]int{7, 41, 42, 74, 75, 82, 95, 166}[rng.IntN(8)])
		tip := 0.0
		if rng.IntN(3) == 0 {
			tip = float64(rng.IntN(500)) / 100
		}
		row(pickup, zone, tip)
		// The planted answers, sent where the file would have them.
		if !plantedBusy && pickup.After(busy) {
			for k := range 40 {
				row(busy.Add(time.Duration(k*7)*time.Second), busyZone, 0)
			}
			plantedBusy = true
		}
		if !plantedStreak && pickup.After(streak) {
			for k := range int(streakTrips) {
				row(streak.Add(time.Duration(k*4)*time.Minute), streakZone, 0)
			}
			plantedStreak = true
		}
		if !plantedTips && pickup.After(tipped) {
			for k := range 30 {
				row(tipped.Add(time.Duration(k)*time.Minute), 42, 25)
			}
			plantedTips = true
		}
	}
	return out
}

// TestHomework runs the course's homework on the test broker, as
// docs/homework.md says: its declaration, its queries.
func TestHomework(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	declaration, queries := homeworkDoc(t)
	msgs := greenTrips(30_000, 2025)
	in := testenv.Input{Partitions: 1, Count: len(msgs), AllFinal: true, Messages: func(yield func(generate.Message) bool) {
		for _, m := range msgs {
			if !yield(m) {
				return
			}
		}
	}}
	input := ride.Options{Location: ny} // NYC TLC times are New York local time
	rule := model.Rule{Size: time.Hour, Lateness: 5 * time.Minute, MaxFutureSkew: 24 * time.Hour, Location: ny, Input: input}
	env := testenv.Get(t)
	p, _ := testenv.NewPipelineFor(t, env, rule, in, 0)
	p.Declare(t, declaration)
	if len(p.Want.Rides) < 29_000 || len(p.Want.Rejected) != 0 {
		t.Fatalf("the model reads %d rides and rejects %d of the producer's rows: %v", len(p.Want.Rides), len(p.Want.Rejected), p.Want.Rejected)
	}
	p.Started = time.Now()
	procs := []*testenv.Proc{testenv.StartProc(t, "process.log", p.ProcessArgs("proc-hw")...), testenv.StartProc(t, "sink.log", p.SinkArgs()...)}
	// The input is bounded: once every row is in, nothing else would close
	// the last windows and sessions. Finish it.
	waitFor(t, 2*time.Minute, "the sink lands every row", func() bool { a, _ := p.Counts(t); return a >= int64(len(msgs)) })
	out, err := runToEnd(t, time.Minute, append(append([]string{"heartbeat"}, env.KafkaArgs...), "--prefix", p.Prefix, "--end-of-input")...)
	if err != nil || !strings.Contains(out, "wrote 1 heartbeats") {
		t.Fatalf("heartbeat --end-of-input: %v\n%s", err, out)
	}
	t.Logf("%s", lastLine(out))
	p.Parts = env.ReadTopic(t, p.Topic)
	p.Remodel()
	p.WaitDone(t, 3*time.Minute, procs...)
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	ctx := context.Background()
	wallIn := func(wall time.Time) time.Time { // a New York wall time read back as UTC
		at, _ := time.ParseInLocation(time.DateTime, wall.Format(time.DateTime), ny)
		return at
	}
	// best is the model's row with the most of measure m; ties go to the
	// earliest start, then the lowest group.
	best := func(table string, m int) model.Row {
		var top model.Row
		for _, r := range p.Finals[table] {
			g := func(r model.Row) int64 {
				if len(r.Group) == 0 {
					return 0
				}
				return r.Group[0].V
			}
			if top.Measures == nil || r.Measures[m].V > top.Measures[m].V ||
				r.Measures[m].V == top.Measures[m].V && (r.Start < top.Start || r.Start == top.Start && g(r) < g(top)) {
				top = r
			}
		}
		return top
	}

	// Question 1: which pickup zone had the most trips in one 5-minute window?
	var zone int32
	var wall time.Time
	var trips int64
	if err := p.Pool.QueryRow(ctx, queries[0]).Scan(&zone, &wall, &trips); err != nil {
		t.Fatal(err)
	}
	want := best("busiest_zones_5m", 0)
	busy, _ := time.ParseInLocation(time.DateTime, busyFiveMinutes, ny)
	if int64(zone) != want.Group[0].V || wallIn(wall).UnixMilli() != want.Start || trips != want.Measures[0].V || zone != busyZone || !wallIn(wall).Equal(busy) {
		t.Fatalf("question 1: zone %d in [%s, +5m) with %d trips; the model: %+v (planted: zone %d at %s)", zone, wall, trips, want, busyZone, busy)
	}
	t.Logf("question 1: zone %d had the most trips in one 5-minute window: %d, from %s", zone, trips, wall.Format(time.DateTime))

	// Question 2: which pickup zone had the longest streak?
	var streak time.Duration
	if err := p.Pool.QueryRow(ctx, queries[1]).Scan(&zone, &wall, &streak, &trips); err != nil {
		t.Fatal(err)
	}
	want = best("zone_streaks", 0)
	planted, _ := time.ParseInLocation(time.DateTime, streakStart, ny)
	if int64(zone) != want.Group[0].V || wallIn(wall).UnixMilli() != want.Start || trips != want.Measures[0].V ||
		streak.Milliseconds() != want.End-want.Start || zone != streakZone || trips < streakTrips || !wallIn(wall).Equal(planted) {
		t.Fatalf("question 2: zone %d from %s for %v with %d trips; the model: %+v (planted: zone %d at %s, %d trips)", zone, wall, streak, trips, want,
			streakZone, planted, streakTrips)
	}
	t.Logf("question 2: zone %d had the longest streak: %d trips in %v, from %s", zone, trips, streak, wall.Format(time.DateTime))

	// Question 3: which hour had the highest total tips?
	var tips float64
	if err := p.Pool.QueryRow(ctx, queries[2]).Scan(&wall, &tips); err != nil {
		t.Fatal(err)
	}
	want = best("tips_hourly", 0)
	tipped, _ := time.ParseInLocation(time.DateTime, tippedHour, ny)
	if wallIn(wall).UnixMilli() != want.Start || math.Round(tips*100) != float64(want.Measures[0].V) || !wallIn(wall).Equal(tipped) {
		t.Fatalf("question 3: %s with %.2f in tips; the model: %+v (planted: %s)", wall, tips, want, tipped)
	}
	t.Logf("question 3: the hour from %s (New York) had the most tips: %.2f", wall.Format(time.DateTime), tips)
}

// homeworkDoc returns the declaration and the three SQL blocks of
// docs/homework.md: the test runs what the walkthrough gives.
func homeworkDoc(t *testing.T) (declaration string, queries []string) {
	t.Helper()
	b, err := os.ReadFile("../../docs/homework.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := func(lang string) []string {
		var out []string
		for _, part := range strings.Split(string(b), "```"+lang+"\n")[1:] {
			out = append(out, part[:strings.Index(part, "```")])
		}
		return out
	}
	yaml, queries := blocks("yaml"), blocks("sql")
	if len(yaml) != 1 || len(queries) != 3 {
		t.Fatalf("docs/homework.md has %d YAML and %d SQL blocks, want the declaration and the three questions'", len(yaml), len(queries))
	}
	return yaml[0], queries
}

// TestOnePartitionFinishedByLiveMode: the same kind of bounded input in one
// partition, finished by the processors' live mode instead: once the topic
// is quiet, --idle-heartbeat writes the heartbeat that closes the last
// windows (the decision is in the log, and the model runs over it).
func TestOnePartitionFinishedByLiveMode(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	msgs := greenTrips(5_000, 7)
	in := testenv.Input{Partitions: 1, Count: len(msgs), Messages: func(yield func(generate.Message) bool) {
		for _, m := range msgs {
			if !yield(m) {
				return
			}
		}
	}}
	rule := model.DefaultRule()
	rule.Input = ride.Options{Location: ny}
	p, _ := testenv.NewPipelineFor(t, testenv.Get(t), rule, in, 0)
	if p.FinalCount() == 0 || p.Want.StreamTime[0] == 0 {
		t.Fatal("workload without rides")
	}
	before := p.FinalCount()
	proc := testenv.StartProc(t, "process.log", append(p.ProcessArgs("proc-live"), "--idle-heartbeat", "1s")...)
	snk := testenv.StartProc(t, "sink.log", p.SinkArgs()...)
	p.Settle(t, proc, snk)
	if added := len(p.Parts[0]) - len(msgs); added < 1 {
		t.Fatalf("live mode wrote no heartbeat into the quiet partition\n%s", proc.Tail(3000))
	}
	p.AllFinal = true
	p.WaitDone(t, time.Minute, proc, snk)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	t.Logf("live mode finished the one-partition input: %d final rows, %d before its heartbeats", p.FinalCount(), before)
}

// TestTransactionalProducer: the same kind of input written by a
// transactional producer (an exactly-once sink of Flink or Kafka Streams
// upstream), whose commit markers occupy offsets no consumer is given: the
// pipeline reads every ride, and `heartbeat --end-of-input` ends, finishing
// the input; the tables equal the model.
func TestTransactionalProducer(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	env := testenv.Get(t)
	rule := model.DefaultRule()
	rule.Input = ride.Options{Location: ny}
	p, _ := testenv.NewPipelineFor(t, env, rule, testenv.Input{Partitions: 2, Messages: func(func(generate.Message) bool) {}}, 0)
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.TransactionalID(p.Prefix+"-upstream"), kgo.DefaultProduceTopic(p.Topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msgs := greenTrips(4_000, 11)
	for len(msgs) > 0 {
		n := min(500, len(msgs))
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs[:n] {
			if err := cl.ProduceSync(ctx, &kgo.Record{Partition: int32(i % 2), Value: m.Value}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
	p.Parts = env.ReadValues(t, p.Topic)
	p.Remodel()
	proc := testenv.StartProc(t, "process.log", p.ProcessArgs("proc-tx")...)
	snk := testenv.StartProc(t, "sink.log", p.SinkArgs()...)
	waitFor(t, 2*time.Minute, "the sink lands every record", func() bool { a, _ := p.Counts(t); return a >= p.Total })
	out, err := runToEnd(t, time.Minute, append(append([]string{"heartbeat"}, env.KafkaArgs...), "--prefix", p.Prefix, "--end-of-input")...)
	if err != nil || !strings.Contains(out, "wrote 2 heartbeats") {
		t.Fatalf("heartbeat --end-of-input: %v\n%s", err, out)
	}
	p.Parts = env.ReadValues(t, p.Topic)
	p.Remodel()
	p.AllFinal = true
	p.WaitDone(t, 2*time.Minute, proc, snk)
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	var rides, late int
	if err := p.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM rides), (SELECT count(*) FROM late_rides)`).Scan(&rides, &late); err != nil {
		t.Fatal(err)
	}
	if rides != len(p.Want.Rides) || late != len(p.Want.Late) {
		t.Fatalf("rides %d, late %d; the model: %d and %d", rides, late, len(p.Want.Rides), len(p.Want.Late))
	}
	t.Logf("transactional input of %d records finished: %d final rows; %s", p.Total, p.FinalCount(), lastLine(out))
}
