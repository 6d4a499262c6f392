package main

// End-to-end tests of the pipeline's record (one spec for every process) and
// of static membership ids, on the test broker (Kafka 4 under `make test`).

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// runToEnd runs the binary with args and returns its output and exit
// error; it fails the test if the command is still running after limit.
func runToEnd(t *testing.T, limit time.Duration, args ...string) (string, error) {
	t.Helper()
	p := testenv.StartProc(t, "cmd.log", args...)
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	select {
	case err := <-done:
		return p.Tail(8000), err
	case <-time.After(limit):
		t.Fatalf("ridestream %s still running after %v:\n%s", strings.Join(args, " "), limit, p.Tail(3000))
		return "", nil
	}
}

// topics lists the topics of the cluster whose names start with prefix
// (other packages' tests share the broker).
func topics(t *testing.T, env *testenv.Env, prefix string) []string {
	t.Helper()
	admin, err := env.Kafka.NewAdmin("ridestream-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	m, err := admin.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for name := range m {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
	}
}

// TestPipelineRecordRefusesDrift: the sink started before the pipeline
// exists lands nothing and is not ready; process records the pipeline on its
// first start (defaults); every later start of process or sink with a
// setting that differs from the record is refused before it touches a topic,
// naming the flag, both values and the way out; a restart with the same
// values given explicitly runs, and after more input the tables still equal
// the model; the accounting identities hold.
func TestPipelineRecordRefusesDrift(t *testing.T) {
	env := testenv.Get(t)
	w := generate.Config{Seed: 81, Rides: 20_000, Partitions: 4, Hours: 6, OutOfOrder: 0.05, Late: 0.01, Malformed: 0.005,
		Lateness: 5 * time.Minute, Heartbeats: true}
	p, _ := testenv.NewPipeline(t, w, 0)
	// Defaults only: nothing of the spec given but the input topic.
	processArgs := append(append([]string{"process"}, env.KafkaArgs...), "--prefix", p.Prefix, "--topic", p.Topic, "--instance-id", "proc-drift", "--session-timeout", "6s")

	sinkAddr := testenv.FreeAddr(t)
	snk := testenv.StartProc(t, "sink.log", append(p.SinkArgs(), "--http-addr", sinkAddr)...)
	waitFor(t, 20*time.Second, "the sink logs that it waits for the record", func() bool {
		return strings.Contains(snk.Tail(1<<16), "waiting for the pipeline's record")
	})
	if code, body, ok := testenv.AwaitReadyz(sinkAddr, 20*time.Second, func(code int, body string) bool {
		return code == http.StatusServiceUnavailable && strings.Contains(body, "pipeline")
	}); !ok {
		t.Fatalf("sink before the record: /readyz %d %q, want 503 naming the pipeline", code, body)
	}
	time.Sleep(2 * time.Second) // it would land something now if it did not wait for the record
	if applied, _ := p.Counts(t); applied != 0 {
		t.Fatalf("the sink landed %d records before the pipeline's record existed", applied)
	}

	proc := testenv.StartProc(t, "process.log", processArgs...)
	p.Started = time.Now()
	p.WaitDone(t, 3*time.Minute, proc, snk)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	if code, body, ok := testenv.AwaitReadyz(sinkAddr, 30*time.Second, testenv.Ready); !ok {
		t.Fatalf("sink after the record: /readyz %d %q", code, body)
	}
	if err := proc.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	before := topics(t, env, p.Prefix)

	// The sink with another lateness: the first drift.
	out, err := runToEnd(t, 30*time.Second, append(p.SinkArgs(), "--allowed-lateness", "10m")...)
	if err == nil || !strings.Contains(out, "--allowed-lateness is 10m0s here but 5m0s in the record") || !strings.Contains(out, "ridestream reset") {
		t.Fatalf("sink with --allowed-lateness 10m: %v\n%s", err, out)
	}
	// process restarted with another setting, each on its own.
	for _, c := range []struct{ flag, value, want string }{
		{"--window", "30m", "--window is 30m0s here but 1h0m0s in the record"},
		{"--allowed-lateness", "10m", "--allowed-lateness is 10m0s here but 5m0s in the record"},
		{"--time-zone", "America/New_York", "--time-zone is America/New_York here but UTC in the record"},
		{"--max-future-skew", "48h", "--max-future-skew is 48h0m0s here but 24h0m0s in the record"},
		{"--shards", "8", "--shards is 8 here but 1 in the record"},
	} {
		t.Run(c.flag, func(t *testing.T) {
			out, err := runToEnd(t, 30*time.Second, append(slices.Clone(processArgs), c.flag, c.value)...)
			if err == nil || !strings.Contains(out, c.want) || !strings.Contains(out, "ridestream reset --prefix "+p.Prefix) {
				t.Fatalf("process %s %s: %v\n%s", c.flag, c.value, err, out)
			}
		})
	}
	// Through the environment too, all at once.
	cmd := testenv.StartProcEnv(t, "env.log", []string{"RIDESTREAM_WINDOW=2h", "RIDESTREAM_SHARDS=4"}, processArgs...)
	if err := cmd.Wait(); err == nil || !strings.Contains(cmd.Tail(4000), "--window is 2h0m0s here") || !strings.Contains(cmd.Tail(4000), "--shards is 4 here") {
		t.Fatalf("process with $RIDESTREAM_WINDOW and $RIDESTREAM_SHARDS: %v\n%s", err, cmd.Tail(4000))
	}
	if after := topics(t, env, p.Prefix); !slices.Equal(before, after) {
		t.Fatalf("refused starts changed the topics: before %v, after %v", before, after)
	}

	// The same values given explicitly: it starts, and more input lands.
	proc = testenv.StartProc(t, "process2.log", append(slices.Clone(processArgs), "--window", "1h", "--allowed-lateness", "5m",
		"--time-zone", "UTC", "--max-future-skew", "24h", "--shards", "1", "--window-partitions", "0")...)
	more := generate.Config{Seed: 82, Rides: 5_000, Partitions: 4, Hours: 2, Start: generate.DefaultStart.Add(8 * time.Hour),
		OutOfOrder: 0.05, Late: 0.01, Lateness: 5 * time.Minute, Heartbeats: true}
	if _, err := generate.Produce(context.Background(), generate.ProduceOptions{Kafka: env.Kafka, Topic: p.Topic, Total: more.Count()}, more.All); err != nil {
		t.Fatal(err)
	}
	p.Parts = env.ReadTopic(t, p.Topic)
	p.Remodel()
	p.WaitDone(t, 3*time.Minute, proc, snk)
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	if err := proc.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	// A changed partition count is part of the same comparison.
	admin, err := env.Kafka.NewAdmin("ridestream-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreatePartitions(p.Topic, 6, nil, false); err != nil {
		t.Fatal(err)
	}
	out, err = runToEnd(t, 30*time.Second, processArgs...)
	if err == nil || !strings.Contains(out, "partitions of input topic "+p.Topic+" is 6 here but 4 in the record") {
		t.Fatalf("process after the input grew to 6 partitions: %v\n%s", err, out)
	}
}

// TestLegacyPipeline: a pipeline whose topics exist but that has no record
// (built before records existed) gets told to reset, by process and sink.
func TestLegacyPipeline(t *testing.T) {
	env := testenv.Get(t)
	topic := env.NewTopic(t, 2)
	prefix := strings.ReplaceAll(topic, "rides_", "legacy_")
	admin, err := env.Kafka.NewAdmin("ridestream-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kafka.EnsureTopics(admin, kafka.Topic{Name: prefix + "-clock", Partitions: 2}, kafka.Topic{Name: prefix + "-finals", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		append(append([]string{"process"}, env.KafkaArgs...), "--prefix", prefix, "--topic", topic),
		append(append([]string{"sink"}, env.KafkaArgs...), "--prefix", prefix, "--database-url", env.NewDatabase(t)),
	} {
		out, err := runToEnd(t, 30*time.Second, args...)
		if err == nil || !strings.Contains(out, "no record of its settings") || !strings.Contains(out, "ridestream reset --prefix "+prefix) {
			t.Fatalf("%s on a pipeline without record: %v\n%s", args[0], err, out)
		}
	}
	out, err := runToEnd(t, 30*time.Second, append(append([]string{"reset"}, env.KafkaArgs...), "--prefix", prefix, "--dry-run")...)
	if err != nil || !strings.Contains(out, "topic: "+prefix+"-clock") {
		t.Fatalf("reset --dry-run: %v\n%s", err, out)
	}
}

// TestDuplicateInstanceID: a second process, and a second sink, started
// with an --instance-id a live one holds stops with an error naming the
// flag; the first keeps running and the pipeline finishes. The reset
// --dry-run lists the pipeline's record.
func TestDuplicateInstanceID(t *testing.T) {
	env := testenv.Get(t)
	w := generate.Config{Seed: 83, Rides: 20_000, Partitions: 4, Hours: 6, OutOfOrder: 0.05, Late: 0.01, Lateness: 5 * time.Minute, Heartbeats: true}
	p, produced := testenv.NewPipeline(t, w, 1500)
	procAddr := testenv.FreeAddr(t)
	first := testenv.StartProc(t, "process-1.log", append(p.ProcessArgs("proc-same"), "--http-addr", procAddr)...)
	snk := testenv.StartProc(t, "sink-1.log", p.SinkArgs()...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the first process:\n%s\nthe first sink:\n%s", first.Tail(6000), snk.Tail(3000))
		}
	})
	waitFor(t, time.Minute, "the first process is ready", func() bool { c, _ := testenv.Readyz(procAddr); return c == http.StatusOK })
	applied, _ := p.Counts(t)
	waitFor(t, time.Minute, "the sink lands input", func() bool { a, _ := p.Counts(t); return a > applied })

	for _, c := range []struct {
		name string
		args []string
	}{
		{"process", p.ProcessArgs("proc-same")},
		{"sink", p.SinkArgs()},
	} {
		start := time.Now()
		out, err := runToEnd(t, 90*time.Second, c.args...)
		if err == nil || !strings.Contains(out, "--instance-id") || !strings.Contains(out, "another live instance holds") {
			t.Fatalf("a second %s with the same --instance-id: %v\n%s", c.name, err, out)
		}
		t.Logf("the second %s stopped %v after its start: %s", c.name, time.Since(start).Round(time.Millisecond), lastLine(out))
	}
	if first.Exited() || snk.Exited() {
		t.Fatalf("the first instances stopped: process %v, sink %v\n%s\n%s", first.Exited(), snk.Exited(), first.Tail(3000), snk.Tail(3000))
	}
	<-produced
	p.WaitDone(t, 3*time.Minute, first, snk)
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)

	out, err := runToEnd(t, 30*time.Second, append(append([]string{"reset"}, env.KafkaArgs...), "--prefix", p.Prefix, "--dry-run")...)
	if err != nil || !strings.Contains(out, "topic: "+p.Prefix+"-pipeline") {
		t.Fatalf("reset --dry-run does not list the record: %v\n%s", err, out)
	}
}

// TestSimultaneousDuplicateInstanceID: two processes, and two sinks,
// started at the same moment with one --instance-id (a service scaled to two
// replicas sharing one environment): neither finds the other registered, yet
// of each pair exactly one stops, naming the flag, and the other finishes
// the pipeline.
func TestSimultaneousDuplicateInstanceID(t *testing.T) {
	w := generate.Config{Seed: 89, Rides: 20_000, Partitions: 4, Hours: 6, OutOfOrder: 0.05, Late: 0.01, Lateness: 5 * time.Minute, Heartbeats: true}
	p, produced := testenv.NewPipeline(t, w, 1500)
	pairs := [][]*testenv.Proc{
		{testenv.StartProc(t, "process-a.log", p.ProcessArgs("proc-twin")...), testenv.StartProc(t, "process-b.log", p.ProcessArgs("proc-twin")...)},
		{testenv.StartProc(t, "sink-a.log", p.SinkArgs()...), testenv.StartProc(t, "sink-b.log", p.SinkArgs()...)},
	}
	start := time.Now()
	for _, pair := range pairs {
		waitFor(t, 2*time.Minute, "one of two "+pair[0].Cmd.Args[1]+"es with one --instance-id stops", func() bool { return pair[0].Exited() || pair[1].Exited() })
	}
	time.Sleep(15 * time.Second) // the other one must keep running
	var survivors []*testenv.Proc
	for _, pair := range pairs {
		name := pair[0].Cmd.Args[1]
		if pair[0].Exited() == pair[1].Exited() {
			t.Fatalf("%s: want exactly one of the two stopped, got %v and %v\n%s\n%s", name, pair[0].Exited(), pair[1].Exited(), pair[0].Tail(3000), pair[1].Tail(3000))
		}
		gone, kept := pair[0], pair[1]
		if kept.Exited() {
			gone, kept = kept, gone
		}
		if out := gone.Tail(8000); !strings.Contains(out, "--instance-id") || !strings.Contains(out, "another live instance holds") {
			t.Fatalf("the %s that stopped does not name --instance-id:\n%s", name, out)
		}
		t.Logf("one %s stopped: %s", name, lastLine(gone.Tail(8000)))
		survivors = append(survivors, kept)
	}
	<-produced
	p.WaitDone(t, 3*time.Minute, survivors...)
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	t.Logf("the survivors finished the pipeline %v after the four started", time.Since(start).Round(time.Second))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return fmt.Sprint(lines[len(lines)-1])
}

// TestPipelinesShareADatabase: a second pipeline's sink pointed at the
// schema another pipeline's tables are in is refused, naming both
// pipelines and the way out (a schema of its own); given one
// (search_path), the two pipelines land their own raw and final tables in
// one database, each equal to its model.
func TestPipelinesShareADatabase(t *testing.T) {
	w := generate.Config{Seed: 84, Rides: 20_000, Partitions: 4, Hours: 6, OutOfOrder: 0.05, Late: 0.01, Malformed: 0.005,
		Lateness: 5 * time.Minute, Heartbeats: true}
	p, _ := testenv.NewPipeline(t, w, 0)
	p.RunAndVerify(t, "proc-a")

	intruder := p.Beside(t, "-b", "", "")
	p.Env.RecordPipeline(t, intruder.Prefix, p.Topic)
	out, err := runToEnd(t, time.Minute, intruder.SinkArgs()...)
	if err == nil || !strings.Contains(out, "belongs to pipeline \""+p.Prefix+"\"") || !strings.Contains(out, intruder.Prefix) || !strings.Contains(out, "search_path") {
		t.Fatalf("a sink of pipeline %s over %s's tables: %v\n%s", intruder.Prefix, p.Prefix, err, out)
	}

	q := p.Beside(t, "-c", "questions", `
aggregations:
  - name: busiest_zones_5m
    window: 5m
    group_by: [PULocationID]
    measures: {num_trips: count}
  - name: zone_sessions
    session_gap: 5m
    group_by: [PULocationID]
    measures: {num_trips: count, revenue: sum(total_amount)}
`)
	q.RunAndVerify(t, "proc-c")
	p.VerifyFinals(t) // the first pipeline's tables are untouched
	p.VerifyRawAndLate(t)
	var schemas []string
	rows, err := p.Pool.Query(context.Background(), `SELECT DISTINCT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_name IN ('rides', 'hourly_revenue', 'busiest_zones_5m', 'zone_sessions') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	if schemas, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	want := []string{"public.hourly_revenue", "public.rides", "questions.busiest_zones_5m", "questions.rides", "questions.zone_sessions"}
	if !slices.Equal(schemas, want) {
		t.Fatalf("tables %v, want %v", schemas, want)
	}
	t.Logf("one database, two pipelines: %v; a third in the first one's schema was refused", schemas)
}
