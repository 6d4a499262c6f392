package main

// The streaming course's homework as an end-to-end test: green-taxi rows of
// October 2025 sent once, as the students' Python producer writes them, into
// a one-partition topic; an hourly and a 5-minute pipeline over it; the
// bounded input finished with `heartbeat --end-of-input`; and the two
// questions answered from PostgreSQL.

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

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/testenv"
)

// Homework's planted answers: the busiest 5-minute window of one pickup
// zone, and the hour with the most tips (New York local time).
var (
	busyZone        int32 = 74
	busyFiveMinutes       = "2025-10-15 17:05:00"
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
	tipped, _ := time.Parse(time.DateTime, tippedHour)
	var out []generate.Message
	plantedBusy, plantedTips := false, false
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
		if !plantedTips && pickup.After(tipped) {
			for k := range 30 {
				row(tipped.Add(time.Duration(k)*time.Minute), 42, 25)
			}
			plantedTips = true
		}
	}
	return out
}

// TestHomework runs the course's homework on the test broker.
func TestHomework(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	msgs := greenTrips(30_000, 2025)
	in := testenv.Input{Partitions: 1, Count: len(msgs), AllFinal: true, Messages: func(yield func(generate.Message) bool) {
		for _, m := range msgs {
			if !yield(m) {
				return
			}
		}
	}}
	input := ride.Options{Location: ny} // NYC TLC times are New York local time
	hourly := model.Rule{Size: time.Hour, Lateness: 5 * time.Minute, MaxFutureSkew: 24 * time.Hour, Location: ny, Input: input}
	env := testenv.Get(t)
	h, _ := testenv.NewPipelineFor(t, env, hourly, in, 0)
	five := model.DefaultRule()
	five.Size, five.Input = 5*time.Minute, input
	f := h.Twin(t, "_5m", five)
	for _, p := range []*testenv.Pipeline{h, f} {
		if len(p.Want.Rides) < 29_000 || len(p.Want.Rejected) != 0 {
			t.Fatalf("the model reads %d rides and rejects %d of the producer's rows: %v", len(p.Want.Rides), len(p.Want.Rejected), p.Want.Rejected)
		}
	}
	var procs []*testenv.Proc
	for _, p := range []*testenv.Pipeline{h, f} {
		p.Started = time.Now()
		procs = append(procs, testenv.StartProc(t, p.Prefix+"-process.log", p.ProcessArgs("proc-hw")...),
			testenv.StartProc(t, p.Prefix+"-sink.log", p.SinkArgs()...))
	}
	// The input is bounded: once every row is in, nothing else would close
	// the last windows. Finish it, for each pipeline.
	for _, p := range []*testenv.Pipeline{h, f} {
		waitFor(t, 2*time.Minute, p.Prefix+" lands every row", func() bool { a, _ := p.Counts(t); return a >= int64(len(msgs)) })
		out, err := runToEnd(t, time.Minute, append(append([]string{"heartbeat"}, env.KafkaArgs...), "--prefix", p.Prefix, "--end-of-input")...)
		if err != nil || !strings.Contains(out, "wrote 1 heartbeats") {
			t.Fatalf("heartbeat --end-of-input: %v\n%s", err, out)
		}
		t.Logf("%s: %s", p.Prefix, lastLine(out))
	}
	for _, p := range []*testenv.Pipeline{h, f} {
		p.Parts = env.ReadTopic(t, p.Topic)
		p.Remodel()
		p.WaitDone(t, 3*time.Minute, procs...)
	}
	time.Sleep(time.Second)
	for _, p := range []*testenv.Pipeline{h, f} {
		p.VerifyFinals(t)
		p.VerifyRawAndLate(t)
	}

	// The questions, with the queries docs/homework.md gives.
	q1, q2 := homeworkQueries(t)

	// Question 1: which pickup zone had the most trips in one 5-minute window?
	ctx := context.Background()
	var zone int32
	var wall time.Time // New York wall time
	var trips int64
	if err := f.Pool.QueryRow(ctx, q1).Scan(&zone, &wall, &trips); err != nil {
		t.Fatal(err)
	}
	window, _ := time.ParseInLocation(time.DateTime, wall.Format(time.DateTime), ny)
	var want struct{ zone, start, trips int64 }
	for _, r := range f.Finals[aggregate.DefaultName] {
		z, n := r.Group[0].V, r.Measures[0].V // pu_location_id, num_trips
		if n > want.trips || n == want.trips && (r.Start < want.start || r.Start == want.start && z < want.zone) {
			want.zone, want.start, want.trips = z, r.Start, n
		}
	}
	busy, _ := time.ParseInLocation(time.DateTime, busyFiveMinutes, ny)
	if int64(zone) != want.zone || window.UnixMilli() != want.start || trips != want.trips || zone != busyZone || !window.Equal(busy) {
		t.Fatalf("question 1: zone %d in [%s, +5m) with %d trips; the model: zone %d at %s with %d (planted: zone %d at %s)",
			zone, window.In(ny), trips, want.zone, time.UnixMilli(want.start).In(ny), want.trips, busyZone, busy)
	}
	t.Logf("question 1: zone %d had the most trips in one 5-minute window: %d, from %s", zone, trips, window.In(ny).Format(time.DateTime))

	// Question 2: which hour had the highest total tips?
	var hourWall time.Time
	var tips float64
	if err := h.Pool.QueryRow(ctx, q2).Scan(&hourWall, &tips); err != nil {
		t.Fatal(err)
	}
	hour, _ := time.ParseInLocation(time.DateTime, hourWall.Format(time.DateTime), ny)
	byHour := map[int64]int64{}
	for _, r := range h.Finals[aggregate.DefaultName] {
		byHour[r.Start] += r.Measures[3].V // total_tips
	}
	var top int64
	for start, cents := range byHour {
		if cents > byHour[top] || cents == byHour[top] && start < top {
			top = start
		}
	}
	tipped, _ := time.ParseInLocation(time.DateTime, tippedHour, ny)
	if hour.UnixMilli() != top || math.Round(tips*100) != float64(byHour[top]) || !hour.Equal(tipped) {
		t.Fatalf("question 2: %s with %.2f in tips; the model: %s with %d cents (planted: %s)", hour.In(ny), tips,
			time.UnixMilli(top).In(ny), byHour[top], tipped)
	}
	t.Logf("question 2: the hour from %s (New York) had the most tips: %.2f", hour.In(ny).Format(time.DateTime), tips)
}

// homeworkQueries returns the two SQL blocks of docs/homework.md: the test
// runs the queries the walkthrough gives.
func homeworkQueries(t *testing.T) (q1, q2 string) {
	t.Helper()
	b, err := os.ReadFile("../../docs/homework.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, part := range strings.Split(string(b), "```sql\n")[1:] {
		blocks = append(blocks, part[:strings.Index(part, "```")])
	}
	if len(blocks) != 2 {
		t.Fatalf("docs/homework.md has %d SQL blocks, want the two questions'", len(blocks))
	}
	return blocks[0], blocks[1]
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
