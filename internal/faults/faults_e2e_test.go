package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// memBoundMB is the peak resident memory every process must stay under.
const memBoundMB = 256

// procs tracks the processes of one run and their peak memory.
type procs struct {
	t    *testing.T
	all  []*testenv.Proc
	peak map[string]int
}

func newProcs(t *testing.T) *procs {
	ps := &procs{t: t, peak: map[string]int{}}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range ps.all {
				var lines []string
				for _, l := range strings.Split(p.Tail(64<<20), "\n") {
					if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
						lines = append(lines, l)
					}
				}
				if len(lines) > 30 {
					lines = append(lines[:15], lines[len(lines)-15:]...)
				}
				all := strings.Split(strings.TrimSpace(p.Tail(4000)), "\n")
				lines = append(lines, "last lines:")
				lines = append(lines, all[max(0, len(all)-8):]...)
				t.Logf("--- %s (%s) warnings and errors:\n%s", p.Role, p.Log, strings.Join(lines, "\n"))
			}
		}
	})
	return ps
}

func (ps *procs) start(role, log string, args ...string) *testenv.Proc {
	p := testenv.StartProc(ps.t, log, args...)
	p.Role = role
	ps.all = append(ps.all, p)
	return p
}

// sample records every live process's peak memory.
func (ps *procs) sample() {
	for _, p := range ps.all {
		if mb := p.PeakRSSMB(); mb > ps.peak[p.Role] {
			ps.peak[p.Role] = mb
		}
	}
}

// checkMemory fails the test when a process exceeded the bound.
func (ps *procs) checkMemory() {
	ps.sample()
	var parts []string
	for role, mb := range ps.peak {
		parts = append(parts, fmt.Sprintf("%s %d MiB", role, mb))
		if mb > memBoundMB {
			ps.t.Errorf("%s peaked at %d MiB, over the %d MiB bound", role, mb, memBoundMB)
		}
	}
	ps.t.Logf("peak RSS: %s (bound %d MiB)", strings.Join(parts, ", "), memBoundMB)
}

// waitDone samples memory while waiting for the pipeline to finish.
func waitDone(t *testing.T, p *testenv.Pipeline, ps *procs, timeout time.Duration) time.Duration {
	t.Helper()
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
				ps.sample()
			}
		}
	}()
	defer close(stop)
	return p.WaitDone(t, timeout, ps.all...)
}

// TestTwentyKills runs two processor and two sink instances and SIGKILLs one
// of them at random moments, at least twenty times, while input arrives.
func TestTwentyKills(t *testing.T) {
	w := generate.Config{Seed: 51, Rides: 120_000, Partitions: 8, Hours: 12, OutOfOrder: 0.05, Late: 0.01,
		Malformed: 0.01, Lateness: 5 * time.Minute, IdlePartitions: 1, IdleAfter: 0.6, Heartbeats: true}
	p, produced := testenv.NewPipeline(t, w, 6000) // about 20 s of input
	ps := newProcs(t)
	roles := []string{"process-a", "process-b", "sink-a", "sink-b"}
	args := func(role string) []string {
		if strings.HasPrefix(role, "process") {
			return p.ProcessArgs(role)
		}
		a := p.SinkArgs()
		for i := range a {
			if a[i] == "sink-0" {
				a[i] = role
			}
		}
		return a
	}
	live := map[string]*testenv.Proc{}
	for _, r := range roles {
		live[r] = ps.start(r, r+".log", args(r)...)
	}
	p.Started = time.Now()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	kills := 0
	for kills < 20 {
		time.Sleep(time.Duration(200+rng.IntN(900)) * time.Millisecond)
		applied, finals := p.Counts(t)
		if applied == p.Total && finals >= int64(p.FinalCount()) {
			t.Fatalf("the run finished after %d kills; it must be killed at least 20 times mid-run", kills)
		}
		r := roles[rng.IntN(len(roles))]
		ps.sample()
		live[r].Kill()
		kills++
		t.Logf("SIGKILL %d: %s at %v (%d/%d records in raw, %d/%d finals)", kills, r,
			time.Since(p.Started).Round(time.Millisecond), applied, p.Total, finals, p.FinalCount())
		live[r] = ps.start(r, fmt.Sprintf("%s-%d.log", r, kills), args(r)...)
	}
	<-produced
	el := waitDone(t, p, ps, 5*time.Minute)
	t.Logf("%d SIGKILLs of sinks and processors; everything committed %v after start", kills, el.Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	ps.checkMemory()
}

// TestPostgresOutage stops PostgreSQL for 30 seconds mid-run: the sink must
// report not ready, keep its memory bounded, and resume without loss.
func TestPostgresOutage(t *testing.T) {
	env := testenv.Get(t)
	if env.PG == nil {
		t.Fatalf("this test stops PostgreSQL: run it with the throwaway cluster (unset %s)", testenv.EnvDatabaseURL)
	}
	w := generate.Config{Seed: 52, Rides: 100_000, Partitions: 8, Hours: 12, OutOfOrder: 0.05, Late: 0.01,
		Malformed: 0.01, Lateness: 5 * time.Minute, Heartbeats: true}
	p, produced := testenv.NewPipeline(t, w, 2500) // about 40 s of input
	ps := newProcs(t)
	httpAddr, procAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	proc := ps.start("process", "process.log", append(p.ProcessArgs("proc-pg"), "--http-addr", procAddr, "--lag-interval", "1s")...)
	snk := ps.start("sink", "sink.log", append(p.SinkArgs(), "--http-addr", httpAddr)...)
	p.Started = time.Now()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if applied, _ := p.Counts(t); applied > p.Total/10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline did not start\n%s", snk.Tail(3000))
		}
	}
	if code, body, ok := testenv.AwaitReadyz(httpAddr, 30*time.Second, testenv.Ready); !ok {
		t.Fatalf("sink not ready before the outage: %d %s", code, body)
	}
	before, _ := p.Counts(t)
	env.PG.Kill()
	down := time.Now()
	t.Logf("PostgreSQL killed at %v with %d/%d records applied", down.Sub(p.Started).Round(time.Millisecond), before, p.Total)
	sawNotReady := false
	for time.Since(down) < 30*time.Second {
		time.Sleep(time.Second)
		ps.sample()
		if code, body := testenv.Readyz(httpAddr); code == http.StatusServiceUnavailable && strings.Contains(body, "postgres") {
			if v, ok := testenv.Metric(httpAddr, "ridestream_sink_retrying"); ok && v == 1 {
				sawNotReady = true
			}
		}
		if snk.Exited() || proc.Exited() {
			t.Fatalf("a process exited during the outage\n%s", snk.Tail(3000))
		}
	}
	if !sawNotReady {
		t.Errorf("/readyz and ridestream_sink_retrying never reported PostgreSQL down during a 30 s outage")
	}
	if err := env.PG.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	<-produced
	el := waitDone(t, p, ps, 5*time.Minute)
	t.Logf("PostgreSQL down %v; after it returned the sink caught up to zero lag in %v (whole run %v)",
		up.Sub(down).Round(time.Second), time.Since(up).Round(time.Millisecond), el.Round(time.Millisecond))
	if code, body, ok := testenv.AwaitReadyz(httpAddr, 30*time.Second, testenv.Ready); !ok {
		t.Errorf("sink not ready within 30 s after recovery: %d %s", code, body)
	}
	for _, m := range []struct {
		addr, sample string
		min          float64
	}{
		{httpAddr, `ridestream_sink_rows_total{table="rides"}`, float64(len(p.Want.Rides))},
		{httpAddr, `ridestream_sink_rows_total{table="rejected_input"}`, float64(len(p.Want.Rejected))},
		{httpAddr, `ridestream_sink_rows_total{table="hourly_revenue"}`, float64(p.FinalCount())},
		{httpAddr, `ridestream_partition_stream_time_seconds{partition="0"}`, 1.7e9},
		{procAddr, `ridestream_processor_outputs_total{kind="final_rows"}`, float64(p.FinalCount())},
		{procAddr, `ridestream_processor_outputs_total{kind="late"}`, float64(len(p.Want.Late))},
		{procAddr, `ridestream_processor_stream_time_seconds{partition="0"}`, 1.7e9},
	} {
		if v, ok := testenv.Metric(m.addr, m.sample); !ok || v < m.min {
			t.Errorf("metric %s = %v (present %v), want at least %v", m.sample, v, ok, m.min)
		}
	}
	// Every stage's consumer lag is exported and reaches zero once all is processed.
	for _, l := range []struct{ stage, topic string }{
		{"route", p.Topic}, {"route", p.Prefix + "-clock-table"}, {"clock", p.Prefix + "-clock"}, {"windows", p.Prefix + "-windows"},
	} {
		sample := fmt.Sprintf(`ridestream_processor_consumer_lag{partition="0",stage=%q,topic=%q}`, l.stage, l.topic)
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			v, ok := testenv.Metric(procAddr, sample)
			if ok && v == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s = %v (present %v), want 0 once everything is processed", sample, v, ok)
				break
			}
		}
	}
	if v, ok := testenv.Metric(httpAddr, "ridestream_sink_retrying"); !ok || v != 0 {
		t.Errorf("ridestream_sink_retrying = %v after recovery", v)
	}
	if !strings.Contains(snk.Tail(1<<20), `op="commit batch"`) && !strings.Contains(snk.Tail(1<<20), "retrying") {
		t.Errorf("the sink log has no retry line for the outage")
	}
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	ps.checkMemory()
}

// TestBrokerRestart stops the Kafka broker mid-run and starts it again:
// processors and sink reconnect and the tables still equal the model.
func TestBrokerRestart(t *testing.T) {
	b := testenv.NewBroker(t)
	env := b.Env(testenv.Get(t))
	w := generate.Config{Seed: 53, Rides: 150_000, Partitions: 8, Hours: 12, OutOfOrder: 0.05, Late: 0.01,
		Malformed: 0.01, Lateness: 5 * time.Minute, Heartbeats: true}
	p, _ := testenv.NewPipelineOn(t, env, w, 0)
	ps := newProcs(t)
	procAddr, sinkAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	ps.start("process", "process.log", append(p.ProcessArgs("proc-br"), "--http-addr", procAddr)...)
	ps.start("sink", "sink.log", append(p.SinkArgs(), "--http-addr", sinkAddr)...)
	p.Started = time.Now()
	// Mid-run: the processors are running and a fifth of the input is in.
	if code, body, ok := testenv.AwaitReadyz(procAddr, 2*time.Minute, testenv.Ready); !ok {
		t.Fatalf("process not ready on %s: %d %s\n%s", b.Kind, code, body, ps.all[0].Tail(3000))
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if applied, _ := p.Counts(t); applied > p.Total/5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline did not start on %s\n%s", b.Kind, ps.all[0].Tail(3000))
		}
	}
	applied, finals := p.Counts(t)
	b.Stop()
	down := time.Now()
	t.Logf("%s stopped at %v (%d/%d records in raw, %d/%d finals)", b.Kind, down.Sub(p.Started).Round(time.Millisecond),
		applied, p.Total, finals, p.FinalCount())
	// While the broker is away, /readyz says so, and why.
	why := map[string]string{}
	for time.Since(down) < 15*time.Second {
		time.Sleep(500 * time.Millisecond)
		for role, addr := range map[string]string{"process": procAddr, "sink": sinkAddr} {
			if code, body := testenv.Readyz(addr); code == http.StatusServiceUnavailable && strings.Contains(body, "no broker answered") {
				why[role] = body
			}
		}
	}
	for _, role := range []string{"process", "sink"} {
		if why[role] == "" {
			t.Errorf("%s's /readyz never said that no broker answered while the broker was down", role)
		}
		t.Logf("%s /readyz while the broker was down: %.300s", role, why[role])
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	el := waitDone(t, p, ps, 5*time.Minute)
	t.Logf("broker down %v; zero lag %v after it was back (whole run %v)", up.Sub(down).Round(time.Second),
		time.Since(up).Round(time.Millisecond), el.Round(time.Millisecond))
	// Readiness follows the components' own evidence and a check made on
	// demand: both are ready soon after the pipeline has caught up.
	for role, addr := range map[string]string{"process": procAddr, "sink": sinkAddr} {
		start := time.Now()
		if code, body, ok := testenv.AwaitReadyz(addr, 30*time.Second, testenv.Ready); !ok {
			t.Errorf("%s not ready within 30 s after the pipeline caught up: %d %s", role, code, body)
		} else {
			t.Logf("%s ready %v after the pipeline caught up", role, time.Since(start).Round(time.Millisecond))
		}
	}
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	ps.checkMemory()
}

// TestPoisonInput mixes 100,000 malformed messages (random bytes, truncated
// JSON, wrong types, NaN, huge numbers, nulls, tombstones, times before 2000
// and years ahead, payloads over 1 MiB) into 100,000 good rides.
func TestPoisonInput(t *testing.T) {
	w := generate.Config{Seed: 54, Rides: 100_000, Partitions: 8, Hours: 12, OutOfOrder: 0.05, Late: 0.01,
		Malformed: 1.0, Lateness: 5 * time.Minute, Heartbeats: true}
	p, _ := testenv.NewPipeline(t, w, 0)
	ps := newProcs(t)
	ps.start("process", "process.log", p.ProcessArgs("proc-poison")...)
	snk := ps.start("sink", "sink.log", p.SinkArgs()...)
	p.Started = time.Now()
	el := waitDone(t, p, ps, 5*time.Minute)
	t.Logf("200,000 messages, half of them poison, landed in %v", el.Round(time.Millisecond))
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	var huge, tomb, future int
	reasons := map[string]int{}
	for k, reason := range p.Want.Rejected {
		v := p.Parts[k.Partition][k.Offset]
		switch {
		case v == nil:
			tomb++
		case len(v) > 1<<20:
			huge++
		case reason == "outlier": // the model's reason; the sink's names the rule
			future++
		}
		r, _, _ := strings.Cut(reason, ":")
		reasons[r]++
	}
	if huge == 0 || tomb == 0 || future == 0 {
		t.Errorf("workload lacks a poison kind: %d over 1 MiB, %d tombstones, %d far ahead", huge, tomb, future)
	}
	var rows int
	if err := p.Pool.QueryRow(context.Background(), `SELECT count(*) FROM rejected_input WHERE error = '' OR error IS NULL`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d rejected rows without a reason (%v)", rows, err)
	}
	if snk.Exited() {
		t.Errorf("sink exited on poison input\n%s", snk.Tail(2000))
	}
	t.Logf("rejected %d: %d over 1 MiB, %d tombstones, %d far ahead of stream time; by reason: %v",
		len(p.Want.Rejected), huge, tomb, future, reasons)
	ps.checkMemory()
}
