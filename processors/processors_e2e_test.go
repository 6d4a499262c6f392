package processors_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/testenv"
	"github.com/ridestream/ridestream/views"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// workload is the window issue's acceptance workload: 200,000 rides over 8
// partitions and 24 event-hours, ~5% out of order within the lateness, ~1%
// late beyond it, partitions 6 and 7 idle for the second half and released
// only by the closing heartbeats, and malformed messages.
func workload(seed uint64) generate.Config {
	return generate.Config{Seed: seed, Rides: 200_000, Partitions: 8, Hours: 24, OutOfOrder: 0.05, Late: 0.01,
		Malformed: 0.005, Lateness: 5 * time.Minute, IdlePartitions: 2, IdleAfter: 0.5, Heartbeats: true}
}

// verifyForgotten checks, once every window is final, that the window
// stage has forgotten them all: its changelog holds no live key, a goka view
// restored from it holds none, and the API lists no window.
func verifyForgotten(t *testing.T, p *testenv.Pipeline) {
	t.Helper()
	took := p.AwaitForgotten(t, time.Minute)
	top := p.Topology(t)
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
	for i, a := range top.Aggs {
		if a.Kind != aggregate.Tumbling {
			continue
		}
		all, err := v.All(i)
		if err != nil || len(all) != 0 {
			t.Fatalf("a goka view of the window table holds %d windows of %s (%v), want none", len(all), a.Name, err)
		}
	}
	srv := httptest.NewServer(v.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/windows")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var api []views.WindowJSON
	if err := json.NewDecoder(resp.Body).Decode(&api); err != nil || resp.StatusCode != http.StatusOK || len(api) != 0 {
		t.Fatalf("GET /api/windows: %d %v, %d windows; want none", resp.StatusCode, err, len(api))
	}
	t.Logf("every window was forgotten %v after all were final: no live key in %s, none in a goka view, none in the API", took.Round(time.Millisecond), top.WindowsTable)
}

// TestFinalsMatchModel runs one processor and one sink process over the
// acceptance workload, checks every table against the model, then resets
// the pipeline and replays: the final table must be byte-identical.
func TestFinalsMatchModel(t *testing.T) {
	w := workload(21)
	p, _ := testenv.NewPipeline(t, w, 0)
	p.Started = time.Now()
	addr := testenv.FreeAddr(t)
	proc := testenv.StartProc(t, "process.log", append(p.ProcessArgs("proc-0"), "--http-addr", addr, "--lag-interval", "100ms")...)
	lag := sampleMetric(addr, `ridestream_processor_consumer_lag{partition="0",stage="route",topic="`+p.Topic+`"}`)
	snk := testenv.StartProc(t, "sink.log", p.SinkArgs()...)
	el := p.WaitDone(t, 5*time.Minute, proc, snk)
	t.Logf("end to end on %s: %d records to raw rows and %d final rows in %v = %.0f rides/s",
		p.Env.BrokerKind, p.Total, p.FinalCount(), el.Round(time.Millisecond), float64(w.Rides)/el.Seconds())
	// The input was preloaded: route's exported lag starts at most at the
	// partition's size and ends at zero.
	if most, last := lag(15 * time.Second); most <= 0 || most > float64(len(p.Parts[0])) || last != 0 {
		t.Errorf("route's consumer lag on partition 0: largest %v, last %v; want within (0, %d], then 0", most, last, len(p.Parts[0]))
	}
	time.Sleep(time.Second) // a late duplicate or stray final would show up now
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	verifyForgotten(t, p)
	verifyPurged(t, p)
	p.ResetAndReplay(t, proc, snk)
}

// verifyPurged checks that the internal streams hold nothing once every
// stage has committed all: their records were deleted, not kept for a
// retention time.
func verifyPurged(t *testing.T, p *testenv.Pipeline) {
	t.Helper()
	top := p.Topology(t)
	for _, topic := range []string{top.Clock, top.Watermark, top.Windows} {
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
			held := p.Env.Held(t, topic)
			if held == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still holds %d records a minute after the run: its stage's committed records are not deleted", topic, held)
			}
		}
	}
	t.Logf("the internal streams hold no record once processed")
}

// sampleMetric polls a /metrics sample until the returned function is
// called; that waits up to settle for the sample to reach zero and returns
// the largest value seen and the last.
func sampleMetric(addr, sample string) func(settle time.Duration) (most, last float64) {
	var most, last float64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if v, ok := testenv.Metric(addr, sample); ok {
				most, last = max(most, v), v
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func(settle time.Duration) (float64, float64) {
		for deadline := time.Now().Add(settle); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if v, ok := testenv.Metric(addr, sample); ok && v == 0 {
				break
			}
		}
		close(stop)
		<-done
		if v, ok := testenv.Metric(addr, sample); ok {
			most, last = max(most, v), v
		}
		return most, last
	}
}

// TestFinalsUnderSIGKILL runs two processor instances and kills them at
// random moments at least ten times; the tables must still equal the model.
func TestFinalsUnderSIGKILL(t *testing.T) {
	w := workload(22)
	p, produced := testenv.NewPipeline(t, w, 12_000) // about 17 s of input
	p.Started = time.Now()
	procs := []*testenv.Proc{
		testenv.StartProc(t, "process-a.log", p.ProcessArgs("proc-a")...),
		testenv.StartProc(t, "process-b.log", p.ProcessArgs("proc-b")...),
	}
	snk := testenv.StartProc(t, "sink.log", p.SinkArgs()...)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	kills := 0
	for kills < 10 {
		time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
		applied, finals := p.Counts(t)
		if finals >= int64(p.FinalCount()) {
			t.Fatalf("the run finished after %d kills; it must be killed at least 10 times mid-run", kills)
		}
		i := rng.IntN(2)
		procs[i].Kill()
		kills++
		t.Logf("SIGKILL %d of processor %d at %v (%d/%d records in raw, %d/%d finals)", kills, i,
			time.Since(p.Started).Round(time.Millisecond), applied, p.Total, finals, p.FinalCount())
		procs[i] = testenv.StartProc(t, fmt.Sprintf("process-%d-%d.log", i, kills), p.ProcessArgs([]string{"proc-a", "proc-b"}[i])...)
	}
	<-produced
	el := p.WaitDone(t, 8*time.Minute, append(procs, snk)...)
	t.Logf("%d SIGKILLs; all finals in after %v", kills, el.Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
}

// heartbeatsWritten counts the records of each partition that the
// workload did not hold: the heartbeats live mode wrote.
func heartbeatsWritten(p *testenv.Pipeline, w generate.Config) []int {
	orig := expectedWithout(w)
	out := make([]int, len(p.Parts))
	for i := range p.Parts {
		out[i] = len(p.Parts[i]) - len(orig[i])
	}
	return out
}

// noRejectedHeartbeat checks that no heartbeat (a control record, some
// written by ridestream itself) landed in rejected_input.
func noRejectedHeartbeat(t *testing.T, p *testenv.Pipeline) {
	t.Helper()
	var n int
	if err := p.Pool.QueryRow(context.Background(), `SELECT count(*) FROM rejected_input WHERE position(convert_to('heartbeat', 'UTF8') in raw) > 0`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d heartbeats in rejected_input (%v)", n, err)
	}
}

// TestIdleHeartbeats streams a workload whose last partition goes idle and
// that has no closing heartbeats: the processors' live mode writes heartbeats
// into the idle partition while the others run ahead, and into every
// partition once all are quiet, so every window becomes final; the final
// table equals the model run over the input log as it now stands,
// heartbeats included.
func TestIdleHeartbeats(t *testing.T) {
	w := generate.Config{Seed: 31, Rides: 40_000, Partitions: 4, Hours: 8, OutOfOrder: 0.05, Late: 0.01,
		Lateness: 5 * time.Minute, IdlePartitions: 1, IdleAfter: 0.4}
	p, _ := testenv.NewPipeline(t, w, 0)
	before := p.FinalCount()
	proc := testenv.StartProc(t, "process.log", append(p.ProcessArgs("proc-idle"), "--idle-heartbeat", "1s")...)
	snk := testenv.StartProc(t, "sink.log", p.SinkArgs()...)
	p.Settle(t, proc, snk)
	hb := heartbeatsWritten(p, w)
	if hb[w.Partitions-1] <= 0 {
		t.Fatalf("no heartbeat was written into the idle partition\n%s", proc.Tail(3000))
	}
	p.AllFinal = true // live mode closed every window with rides
	p.WaitDone(t, time.Minute, proc, snk)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	noRejectedHeartbeat(t, p)
	t.Logf("heartbeats written per partition %v released %d more final rows (%d without live mode)", hb, p.FinalCount()-before, before)
}

// backfill is a 72-hour backfill over 4 partitions: partition 3 receives no
// rides at all, partition 0 its first ride about 43 event-hours after the
// others' first.
func backfill(seed uint64, heartbeats bool) generate.Config {
	return generate.Config{Seed: seed, Rides: 60_000, Partitions: 4, Hours: 72, OutOfOrder: 0.05, Late: 0.01, Malformed: 0.002,
		Lateness: 5 * time.Minute, IdlePartitions: 1, IdleAfter: 0, LateStartPartitions: 1, LateStartAfter: 0.6, Heartbeats: heartbeats}
}

// TestBackfillWithEmptyAndLatePartitions: the final heartbeat, the empty
// partition's only record, closes every window of the 72 hours, and the
// late partition's first ride closes every window before it: all windows
// become final and equal the model.
func TestBackfillWithEmptyAndLatePartitions(t *testing.T) {
	w := backfill(71, true)
	p, _ := testenv.NewPipeline(t, w, 0)
	first := map[int32]model.Key{}
	for k := range p.Want.Rides {
		if f, ok := first[k.Partition]; !ok || k.Offset < f.Offset {
			first[k.Partition] = k
		}
	}
	pickup := func(part int32) time.Time { return time.UnixMilli(p.Want.Rides[first[part]].Ride.PickupMs).UTC() }
	if _, ok := first[3]; ok || len(p.Parts[3]) != 1 || pickup(0).Sub(pickup(1)) < 40*time.Hour {
		t.Fatalf("workload: partition 3 holds %d records, partition 0's first ride is at %v, partition 1's at %v", len(p.Parts[3]), pickup(0), pickup(1))
	}
	t.Logf("partition 3 holds only the closing heartbeat; partition 0's first ride %v, %v after partition 1's", pickup(0), pickup(0).Sub(pickup(1)))
	p.RunAndVerify(t, "proc-backfill")
	noRejectedHeartbeat(t, p)
}

// TestBackfillWithIdleHeartbeats: the same backfill without closing
// heartbeats, released by live mode alone: the empty partition follows the
// others however far they run ahead, and once everything is quiet every
// window with rides becomes final.
func TestBackfillWithIdleHeartbeats(t *testing.T) {
	w := backfill(72, false)
	p, _ := testenv.NewPipeline(t, w, 0)
	proc := testenv.StartProc(t, "process.log", append(p.ProcessArgs("proc-backfill-idle"), "--idle-heartbeat", "1s")...)
	snk := testenv.StartProc(t, "sink.log", p.SinkArgs()...)
	p.Settle(t, proc, snk)
	hb := heartbeatsWritten(p, w)
	if hb[3] <= 0 {
		t.Fatalf("no heartbeat was written into the empty partition\n%s", proc.Tail(3000))
	}
	p.AllFinal = true
	p.WaitDone(t, time.Minute, proc, snk)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	noRejectedHeartbeat(t, p)
	windows := map[int64]bool{}
	for k := range p.Finals[aggregate.DefaultName] {
		windows[k.Start] = true
	}
	if len(windows) < w.Hours {
		t.Fatalf("%d final windows over %d hours of rides", len(windows), w.Hours)
	}
	t.Logf("live mode wrote heartbeats %v per partition; %d windows final", hb, len(windows))
}

func expectedWithout(w generate.Config) [][][]byte {
	parts := make([][][]byte, w.Partitions)
	for m := range w.All {
		parts[m.Partition] = append(parts[m.Partition], m.Value)
	}
	return parts
}

// checkPageDuringRun loads the chart page in headless Chromium while windows
// are still forming and compares it with the API right after: final bars
// (until forgotten) must equal the API exactly, open bars can only have
// grown since.
func checkPageDuringRun(t *testing.T, p *testenv.Pipeline) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, finals := p.Counts(t); finals > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no final window within a minute of the start")
		}
	}
	v, err := views.NewWindows(p.Topology(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(v.Handler())
	defer srv.Close()
	for deadline := time.Now().Add(time.Minute); !v.Recovered(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("view did not recover within a minute")
		}
	}
	dom := testenv.DumpDOM(t, srv.URL+"/", 3*time.Second)
	resp, err := http.Get(srv.URL + "/api/windows")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var api []views.WindowJSON
	if err := json.NewDecoder(resp.Body).Decode(&api); err != nil {
		t.Fatal(err)
	}
	byStart := map[string]views.WindowJSON{}
	for _, w := range api {
		byStart[w.Start.Format(time.RFC3339)] = w
	}
	// A bar the API no longer has was final, or became final, and was
	// forgotten in between: the model's final window bounds it instead.
	modelTrips, modelCents := map[string]int64{}, map[string]int64{}
	for k, r := range p.Finals[aggregate.DefaultName] {
		at := time.UnixMilli(k.Start).UTC().Format(time.RFC3339)
		modelTrips[at] += r.Measures[0].V
		modelCents[at] += r.Measures[1].V
	}
	open, final := 0, 0
	for _, b := range barPattern.FindAllStringSubmatch(dom, -1) {
		w, ok := byStart[b[1]]
		cents, _ := strconv.ParseInt(b[2], 10, 64)
		trips, _ := strconv.ParseInt(b[3], 10, 64)
		if !ok {
			w = views.WindowJSON{Final: true, Trips: modelTrips[b[1]], RevenueCents: modelCents[b[1]]}
		}
		switch {
		case b[4] == "true":
			final++
			if !w.Final || w.Trips != trips || w.RevenueCents != cents {
				t.Fatalf("final bar %s: %d trips %d cents; API (or, forgotten, the model) %+v", b[1], trips, cents, w)
			}
		default:
			open++
			if w.Trips < trips {
				t.Fatalf("open bar %s shows %d trips, the API (or, forgotten, the model) later only %d", b[1], trips, w.Trips)
			}
		}
	}
	if open == 0 {
		status := statusPattern.FindStringSubmatch(dom)
		t.Fatalf("mid-run the chart should show open windows; it shows %d open, %d final (final ones are forgotten a moment after); status %q; the API had %d windows",
			open, final, status, len(api))
	}
	t.Logf("mid-run, headless Chromium's chart showed %d final and %d open windows, consistent with the API (or, for windows forgotten since, the model)", final, open)
}

var statusPattern = regexp.MustCompile(`<div id="status">([^<]*)</div>`)

var barPattern = regexp.MustCompile(`<rect [^>]*data-window-start="([^"]+)" data-revenue-cents="(-?\d+)" data-trips="(\d+)" data-final="(true|false)"`)

// closeTimes returns, per final window of the model, the broker timestamp of
// the record that closed it on the last partition to close it.
func closeTimes(t *testing.T, p *testenv.Pipeline) map[int64]time.Time {
	msgs := p.Env.ReadMessages(t, p.Topic)
	closedAt := map[int64]time.Time{}
	for k := range p.Finals[aggregate.DefaultName] {
		if _, ok := closedAt[k.Start]; ok {
			continue
		}
		offsets := p.Want.ClosedAt(aggregate.DefaultName, k.Start)
		if offsets == nil {
			t.Fatalf("final window %s was not closed on every partition", time.UnixMilli(k.Start).UTC())
		}
		var last time.Time
		for part, o := range offsets {
			if ts := msgs[part][o].Timestamp; ts.After(last) {
				last = ts
			}
		}
		closedAt[k.Start] = last
	}
	return closedAt
}

// TestFinalsLatency streams input at a fixed rate and reports how long final
// rows take to be committed after the record that closed their window was
// produced (the last partition's closing record). It asserts correctness;
// the latency is reported, not asserted.
func TestFinalsLatency(t *testing.T) {
	w := generate.Config{Seed: 41, Rides: 30_000, Partitions: 4, Hours: 12, OutOfOrder: 0.05, Late: 0.01,
		Lateness: 5 * time.Minute, Heartbeats: true}
	const rate = 2500 // messages/s: a window closes about every second
	p, produced := testenv.NewPipeline(t, w, rate)
	proc := testenv.StartProc(t, "process.log", p.ProcessArgs("proc-lat")...)
	snk := testenv.StartProc(t, "sink.log", p.SinkArgs()...)
	p.Started = time.Now()
	checkPageDuringRun(t, p)
	<-produced
	p.WaitDone(t, 3*time.Minute, proc, snk)
	p.VerifyFinals(t)

	closedAt := closeTimes(t, p)
	rows, err := p.Pool.Query(context.Background(), `SELECT window_start, min(finalized_at) FROM hourly_revenue GROUP BY 1`)
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
		rate, p.Env.BrokerKind, len(lags), lags[len(lags)/2].Round(time.Millisecond),
		lags[(len(lags)*99)/100].Round(time.Millisecond), lags[len(lags)-1].Round(time.Millisecond))
}

// TestDailyNewYorkAcrossDST runs daily New York windows over four days
// around each of the two 2025 DST changes (one input log, spring first) and
// checks the tables against the model: one 23-hour window for 9 March, one
// 25-hour window for 2 November, one row per (local day, zone), and no ride
// late that the rule says is on time.
func TestDailyNewYorkAcrossDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	rule := model.Rule{Size: 24 * time.Hour, Lateness: 5 * time.Minute, MaxFutureSkew: 6000 * time.Hour, Location: ny}
	spring := generate.Config{Seed: 61, Rides: 30_000, Partitions: 4, Hours: 96, Start: time.Date(2025, 3, 8, 5, 0, 0, 0, time.UTC),
		OutOfOrder: 0.05, Late: 0.01, Malformed: 0.002, Lateness: rule.Lateness, Heartbeats: true}
	fall := spring
	fall.Seed, fall.Start = 62, time.Date(2025, 10, 31, 4, 0, 0, 0, time.UTC)
	in := testenv.Input{Partitions: 4, Count: spring.Count() + fall.Count(), AllFinal: true,
		Messages: func(yield func(generate.Message) bool) {
			for m := range spring.All {
				if !yield(m) {
					return
				}
			}
			for m := range fall.All {
				if !yield(m) {
					return
				}
			}
		}}
	p, _ := testenv.NewPipelineFor(t, testenv.Get(t), rule, in, 0)
	p.RunAndVerify(t, "proc-dst")

	ctx := context.Background()
	for _, c := range []struct{ day, start, end string }{
		{"2025-03-09", "2025-03-09T05:00:00Z", "2025-03-10T04:00:00Z"},
		{"2025-11-02", "2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z"},
	} {
		var starts, ends []time.Time
		rows, err := p.Pool.Query(ctx, `SELECT DISTINCT window_start, window_end FROM hourly_revenue
			WHERE (window_start AT TIME ZONE 'America/New_York')::date = $1::date`, c.day)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s, e time.Time
			if err := rows.Scan(&s, &e); err != nil {
				t.Fatal(err)
			}
			starts, ends = append(starts, s), append(ends, e)
		}
		if len(starts) != 1 || starts[0].Format(time.RFC3339) != c.start || ends[0].UTC().Format(time.RFC3339) != c.end {
			t.Fatalf("%s: windows starting %v ending %v, want one [%s, %s)", c.day, starts, ends, c.start, c.end)
		}
		// Brute force from the input: the on-time rides picked up on that
		// local day are exactly the day's trips.
		want := 0
		for _, r := range p.Want.Rides {
			if !r.Late && time.UnixMilli(r.Ride.PickupMs).In(ny).Format("2006-01-02") == c.day {
				want++
			}
		}
		var got int
		if err := p.Pool.QueryRow(ctx, `SELECT sum(num_trips) FROM hourly_revenue WHERE window_start = $1`, starts[0]).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want || want == 0 {
			t.Fatalf("%s: %d trips in its window, %d on-time rides picked up that local day", c.day, got, want)
		}
		t.Logf("%s New York: one window [%s, %s) with %d trips", c.day, c.start, c.end, got)
	}
	var overlaps int
	if err := p.Pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT DISTINCT window_start, window_end FROM hourly_revenue) a
		JOIN (SELECT DISTINCT window_start, window_end FROM hourly_revenue) b
		ON a.window_start < b.window_start AND b.window_start < a.window_end`).Scan(&overlaps); err != nil || overlaps != 0 {
		t.Fatalf("%d overlapping windows in hourly_revenue (%v)", overlaps, err)
	}
}

// declared is a pipeline of four aggregations of every shape: daily local
// windows across a DST change, 15-minute windows of zone pairs with min and
// max, sessions with a lateness of their own, and hourly totals of one group
// (payment_type, which the generator never sends: a NULL group) spread over
// four shards.
const declared = `
aggregations:
  - name: daily_zone_revenue
    window: 24h
    group_by: [PULocationID]
    measures: {trips: count, revenue: sum(total_amount), top_fare: max(fare_amount)}
  - name: zone_pairs_15m
    window: 15m
    group_by: [PULocationID, DOLocationID]
    measures: {trips: count, shortest: min(trip_distance), longest: max(trip_distance)}
  - name: zone_sessions
    session_gap: 20m
    allowed_lateness: 30m
    group_by: [PULocationID]
    measures: {rides: count, tips: sum(tip_amount), least_tip: min(tip_amount)}
  - name: hourly_by_payment
    window: 1h
    shards: 4
    group_by: [payment_type]
    measures: {trips: count, passengers: sum(passenger_count)}
`

// TestDeclaredAggregationsUnderSIGKILL runs the four declared aggregations
// over three New York days around the 2025 fall DST change (disorder, late
// rides, duplicates, malformed input, a partition idle for the last third),
// SIGKILLs the two processor instances at random moments, and checks every
// table and corrected view against the model; then resets and replays:
// every table must come out byte-identical.
func TestDeclaredAggregationsUnderSIGKILL(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	rule := model.Rule{Size: time.Hour, Lateness: 5 * time.Minute, MaxFutureSkew: 24 * time.Hour, Location: ny}
	w := generate.Config{Seed: 91, Rides: 60_000, Partitions: 4, Hours: 72, Start: time.Date(2025, 11, 1, 4, 0, 0, 0, time.UTC),
		OutOfOrder: 0.05, Late: 0.01, Malformed: 0.003, Duplicates: 0.01, Lateness: rule.Lateness,
		IdlePartitions: 1, IdleAfter: 0.66, Heartbeats: true}
	in := testenv.WorkloadInput(w)
	p, produced := testenv.NewPipelineFor(t, testenv.Get(t), rule, in, 5000) // about 12 s of input
	p.Declare(t, declared)
	for _, a := range p.Rule.Aggs() {
		if len(p.Finals[a.Name]) == 0 {
			t.Fatalf("the model has no final row of %s: the workload does not exercise it", a.Name)
		}
	}
	p.Started = time.Now()
	names := []string{"proc-a", "proc-b"}
	procs := []*testenv.Proc{
		testenv.StartProc(t, "process-a.log", p.ProcessArgs(names[0])...),
		testenv.StartProc(t, "process-b.log", p.ProcessArgs(names[1])...),
	}
	snk := testenv.StartProc(t, "sink.log", p.SinkArgs()...)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 19))
	// At least six kills, two of them while final rows are being written.
	kills, amidFinals := 0, 0
	for kills < 6 || amidFinals < 2 {
		time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
		applied, finals := p.Counts(t)
		if finals >= int64(p.FinalCount()) {
			if kills < 6 {
				t.Fatalf("the run finished after %d kills; it must be killed at least 6 times mid-run", kills)
			}
			break
		}
		i := rng.IntN(2)
		procs[i].Kill()
		if kills++; finals > 0 {
			amidFinals++
		}
		t.Logf("SIGKILL %d of processor %d at %v (%d/%d records in raw, %d/%d final rows)", kills, i,
			time.Since(p.Started).Round(time.Millisecond), applied, p.Total, finals, p.FinalCount())
		procs[i] = testenv.StartProc(t, fmt.Sprintf("process-%d-%d.log", i, kills), p.ProcessArgs(names[i])...)
	}
	<-produced
	el := p.WaitDone(t, 8*time.Minute, append(procs, snk)...)
	t.Logf("%d SIGKILLs (%d while final rows were being written); all %d final rows in after %v", kills, amidFinals, p.FinalCount(), el.Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	verifyForgotten(t, p)

	// The fall-back day is one 25-hour window of daily_zone_revenue.
	var starts int
	var hours float64
	if err := p.Pool.QueryRow(context.Background(), `SELECT count(DISTINCT window_start), max(extract(epoch FROM window_end - window_start) / 3600)
		FROM daily_zone_revenue WHERE window_start = '2025-11-02T04:00:00Z'`).Scan(&starts, &hours); err != nil || starts != 1 || hours != 25 {
		t.Fatalf("2 November in New York: %d windows, longest %v hours (%v); want one of 25", starts, hours, err)
	}
	p.ResetAndReplay(t, append(procs, snk)...)
}

// TestClockChangelogCompacted: route is down while the clock works through
// a backlog, the clock changelog is compacted before route reads it, and
// route's committed offsets are gone (what happens to a route stopped for
// longer than min.compaction.lag.ms, and than offsets.retention.minutes:
// both are 7 days by default). Route then reads its inputs from their
// start: the clock skips the batches it applied, and the watermark stage
// derives the clock writes compaction removed again from the input. Every
// table still equals the model.
func TestClockChangelogCompacted(t *testing.T) {
	w := generate.Config{Seed: 101, Rides: 40_000, Partitions: 4, Hours: 12, OutOfOrder: 0.05, Late: 0.01, Malformed: 0.003,
		Lateness: 5 * time.Minute, Heartbeats: true}
	p, _ := testenv.NewPipeline(t, w, 0)
	route := func(log string) *testenv.Proc {
		return testenv.StartProc(t, log, append(p.ProcessArgs("proc-route"), "--stages", "route", "--batch-max", "20")...)
	}
	// Route alone batches the whole input for the clock, and stops.
	r := route("route-1.log")
	top := p.AwaitTopology(t, time.Minute, r)
	p.Env.AwaitCommitted(t, top.RouteGroup, p.Topic, 2*time.Minute)
	if err := r.Stop(30 * time.Second); err != nil {
		t.Fatalf("route did not stop on SIGTERM: %v", err)
	}
	// The clock changelog may now be compacted as soon as a segment rolls.
	p.Env.AlterTopic(t, top.ClockTable, map[string]string{"min.compaction.lag.ms": "0", "segment.ms": "1",
		"min.cleanable.dirty.ratio": "0.01", "cleanup.policy": "compact"})
	addr := testenv.FreeAddr(t)
	rest := testenv.StartProc(t, "process.log", append(p.ProcessArgs("proc-rest"), "--stages", "clock,watermark,windows", "--http-addr", addr)...)
	snk := testenv.StartProc(t, "sink.log", p.SinkArgs()...)
	p.Env.AwaitCommitted(t, top.ClockGroup, top.Clock, 2*time.Minute)
	removed := p.Env.AwaitCompacted(t, top.ClockTable, time.Minute)
	t.Logf("the clock applied every batch while route was down; compaction removed %d of its changelog's records before route read them", removed)
	p.Env.DeleteGroup(t, top.RouteGroup, time.Minute)

	p.Started = time.Now()
	r = route("route-2.log")
	p.WaitDone(t, 3*time.Minute, r, rest, snk)
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	repairs, _ := testenv.Metric(addr, `ridestream_processor_clock_repairs_total{stage="watermark"}`)
	if repairs == 0 {
		t.Fatalf("the watermark stage repaired nothing: route cannot have read every clock write after %d were compacted away", removed)
	}
	t.Logf("the watermark stage derived missing clock writes from the input %v times", repairs)
}

// TestOutliersDoNotTakeAPartitionDown: a ride dated 2009 at the head of a
// partition, one dated 2088 in the middle of another, and one dated 2088 as
// the first ride after a quiet week (the week's real rides follow) are
// rejected as outliers; every ride around them counts, the real jump after
// the quiet week included. Two partitions, 2,000 rides each over six hours
// of 1 October 2025 (the reproduction).
func TestOutliersDoNotTakeAPartitionDown(t *testing.T) {
	day := generate.Config{Seed: 111, Rides: 4000, Partitions: 2, Hours: 6, Start: time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC),
		OutOfOrder: 0.05, Lateness: 5 * time.Minute}
	week := generate.Config{Seed: 112, Rides: 400, Partitions: 2, Hours: 1, Start: day.Start.Add(7 * 24 * time.Hour),
		Lateness: 5 * time.Minute, Heartbeats: true}
	at := func(p int32, ts time.Time) generate.Message {
		return generate.Message{Partition: p, Kind: generate.Ride,
			Value: fmt.Appendf(nil, `{"PULocationID":132,"total_amount":12.5,"tpep_pickup_datetime":%d}`, ts.UnixMilli())}
	}
	outliers := []generate.Message{
		at(0, time.Date(2009, 1, 1, 8, 0, 0, 0, time.UTC)),
		at(1, time.Date(2088, 1, 1, 8, 0, 0, 0, time.UTC)),
		at(0, time.Date(2088, 6, 1, 8, 0, 0, 0, time.UTC)),
	}
	in := testenv.Input{Partitions: 2, Count: day.Count() + week.Count() + len(outliers), AllFinal: true,
		Messages: func(yield func(generate.Message) bool) {
			if !yield(outliers[0]) {
				return
			}
			i := 0
			for m := range day.All {
				if i++; i == 2000 && !yield(outliers[1]) {
					return
				}
				if !yield(m) {
					return
				}
			}
			if !yield(outliers[2]) {
				return
			}
			for m := range week.All {
				if !yield(m) {
					return
				}
			}
		}}
	rule := model.DefaultRule()
	p, _ := testenv.NewPipelineFor(t, testenv.Get(t), rule, in, 0)
	p.RunAndVerify(t, "proc-outliers")

	// Beyond the model: the three outliers are the only rejected input, each
	// with its reason, and every other ride is in a final window.
	rows, err := p.Pool.Query(context.Background(), `SELECT error FROM rejected_input ORDER BY src_partition, src_offset`)
	if err != nil {
		t.Fatal(err)
	}
	reasons, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(reasons) != 3 {
		t.Fatalf("%d rejected records, want the 3 outliers: %q", len(reasons), reasons)
	}
	for _, r := range reasons {
		if !strings.HasPrefix(r, "outlier: event time 20") || !strings.Contains(r, "--max-future-skew") {
			t.Errorf("rejected for %q, want the outlier reason", r)
		}
	}
	var trips, late int64
	if err := p.Pool.QueryRow(context.Background(), `SELECT (SELECT sum(num_trips) FROM hourly_revenue), (SELECT count(*) FROM late_rides)`).Scan(&trips, &late); err != nil {
		t.Fatal(err)
	}
	if trips+late != int64(day.Rides+week.Rides) || late > int64(day.Rides)/50 {
		t.Fatalf("final windows count %d trips and %d rides are late, of %d rides around the outliers", trips, late, day.Rides+week.Rides)
	}
	t.Logf("3 outliers rejected with their reason (%q); %d of %d rides in final windows, %d late", reasons[0], trips, day.Rides+week.Rides, late)
}

// TestWindowStatusShowsWhatHoldsWindowsBack: the closing heartbeat reaches
// every partition but the last, which went quiet half way: window_status
// shows every window after its stream time as open, waiting on exactly that
// partition (with its stream time as the lowest), and the rest final as the
// model says.
func TestWindowStatusShowsWhatHoldsWindowsBack(t *testing.T) {
	w := generate.Config{Seed: 121, Rides: 20_000, Partitions: 4, Hours: 12, OutOfOrder: 0.05, Late: 0.01, Malformed: 0.005,
		Lateness: 5 * time.Minute, IdlePartitions: 1, IdleAfter: 0.5, Heartbeats: true}
	in := testenv.WorkloadInput(w)
	all := in.Messages
	in.Messages = func(yield func(generate.Message) bool) {
		for m := range all {
			if m.Kind == generate.Heartbeat && m.Partition == w.Partitions-1 {
				continue // the starved partition gets no heartbeat
			}
			if !yield(m) {
				return
			}
		}
	}
	in.Count--
	in.AllFinal = false
	p, _ := testenv.NewPipelineFor(t, testenv.Get(t), model.DefaultRule(), in, 0)
	p.RunAndVerify(t, "proc-status")
	starved := w.Partitions - 1
	var open int
	rows, err := p.Pool.Query(context.Background(), `SELECT window_start, waiting_partitions, lowest_stream_time FROM window_status WHERE state = 'open'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var start, lowest time.Time
		var waiting []int32
		if err := rows.Scan(&start, &waiting, &lowest); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(waiting, []int32{starved}) || lowest.UnixMilli() != p.Want.StreamTime[starved] {
			t.Fatalf("open window %s waits for %v (lowest stream time %s); want partition %d at %s", start, waiting, lowest.UTC(),
				starved, time.UnixMilli(p.Want.StreamTime[starved]).UTC())
		}
		open++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if open < w.Hours/3 {
		t.Fatalf("%d open windows; the starved partition stopped half way through %d hours", open, w.Hours)
	}
	t.Logf("%d windows open, each waiting for partition %d at %s", open, starved, time.UnixMilli(p.Want.StreamTime[starved]).UTC())
	verifyAPI(t, p, starved, open)
}

// verifyAPI checks the views' API, with the pipeline's database, against
// the model: every window's trips and revenue (final ones exactly, from
// PostgreSQL), state, late rides and what an open one waits for; every
// partition's stream time, and that the starved one holds back the oldest
// open window.
func verifyAPI(t *testing.T, p *testenv.Pipeline, starved int32, open int) {
	t.Helper()
	top := p.Topology(t)
	srv := p.ServeViews(t, "test-views")
	get := func(path string, into any) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
	}
	var api []views.WindowJSON
	get("/api/windows?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z", &api)
	status := model.WindowStatus(p.Rule, p.Want)[aggregate.DefaultName]
	trips, cents := map[int64]int64{}, map[int64]int64{}
	for k, r := range p.Finals[aggregate.DefaultName] {
		trips[k.Start] += r.Measures[0].V
		cents[k.Start] += r.Measures[1].V
	}
	late := map[int64]int64{}
	for k, l := range p.Want.Late {
		if k.Aggregation == aggregate.DefaultName {
			late[l.WindowStart] += p.Want.Rides[k.Key].Ride.Vals[ride.TotalAmount]
		}
	}
	if len(api) != len(status) {
		t.Fatalf("/api/windows lists %d windows, the model has %d with rides", len(api), len(status))
	}
	gotOpen := 0
	for _, w := range api {
		s := w.Start.UnixMilli()
		st, ok := status[s]
		if !ok || w.Final != st.Final || w.Rides != st.Rides || w.LateRides != st.Late || w.LateRevenueCents != late[s] ||
			(w.State == "final") != st.Final {
			t.Fatalf("window %s: API %+v, model %+v (late revenue %d)", w.Start, w, st, late[s])
		}
		if st.Final && (w.Trips != trips[s] || w.RevenueCents != cents[s]) {
			t.Fatalf("final window %s: API %d trips %d cents, model %d and %d", w.Start, w.Trips, w.RevenueCents, trips[s], cents[s])
		}
		if !st.Final {
			gotOpen++
			if !slices.Equal(w.Waiting, []int32{starved}) || w.LowestStreamTime == nil || w.LowestStreamTime.UnixMilli() != p.Want.StreamTime[starved] {
				t.Fatalf("open window %s: API waits for %v since %v", w.Start, w.Waiting, w.LowestStreamTime)
			}
		}
	}
	if gotOpen != open {
		t.Fatalf("/api/windows: %d open, window_status %d", gotOpen, open)
	}
	var parts []views.PartitionJSON
	get("/api/partitions", &parts)
	for _, pj := range parts {
		want, ok := p.Want.StreamTime[pj.Partition]
		if !ok || pj.StreamTime == nil || pj.StreamTime.UnixMilli() != want || pj.Lag != 0 || pj.HoldsBack != (pj.Partition == starved) {
			t.Fatalf("partition %+v; model stream time %d, starved %d", pj, want, starved)
		}
	}
	if len(parts) != int(top.Sources) {
		t.Fatalf("/api/partitions lists %d partitions, the input has %d", len(parts), top.Sources)
	}
	t.Logf("/api/windows and /api/partitions agree with the model: %d windows, %d open, partition %d holds them back", len(api), open, starved)
}
