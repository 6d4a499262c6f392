// Package cluster_test runs the pipeline on a three-node Apache Kafka 4
// cluster (replication 3, min.insync.replicas 2) through a broker's crash,
// a rolling restart, and a start with a broker down, with processes and
// the sink SIGKILLed and restarted meanwhile, some inside a leader
// election; the tables must equal the model and no component may exit on
// its own.
package cluster_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/testenv"
)

var cluster *testenv.Cluster

func TestMain(m *testing.M) {
	os.Exit(testenv.MainWith(m, func(env *testenv.Env) (func(), error) {
		c, err := testenv.StartCluster(3)
		if err != nil {
			return nil, err
		}
		cluster = c
		c.UseIn(env)
		return c.Close, nil
	}))
}

// workload is the input of the cluster tests: produced while they run.
func workload(seed uint64) generate.Config {
	return generate.Config{Seed: seed, Rides: 60_000, Partitions: 6, Hours: 12, OutOfOrder: 0.05, Late: 0.01, Malformed: 0.005,
		Duplicates: 0.01, Lateness: 5 * time.Minute, Heartbeats: true}
}

// nodeOf returns the node (1..n) that leads partition p of topic.
func nodeOf(t *testing.T, env *testenv.Env, topic string, p int32) int {
	t.Helper()
	client, err := env.Kafka.NewClient("cluster-test")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.RefreshMetadata(topic); err != nil {
		t.Fatal(err)
	}
	leader, err := client.Leader(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.Index(cluster.Brokers, leader.Addr())
	if i < 0 {
		t.Fatalf("leader %s of %s/%d is not a node of the cluster %v", leader.Addr(), topic, p, cluster.Brokers)
	}
	return i + 1
}

// replication checks that every topic of the pipeline got the cluster's
// replication factor, 3.
func replication(t *testing.T, env *testenv.Env, p *testenv.Pipeline) {
	t.Helper()
	admin, err := env.Kafka.NewAdmin("cluster-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	names := append(pipeline.Spec{Prefix: p.Prefix, Input: p.Topic}.Names().Topics(), pipeline.PipelineTopic(p.Prefix), p.Topic)
	metas, err := admin.DescribeTopics(names)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metas {
		if m.Err != sarama.ErrNoError || len(m.Partitions) == 0 || len(m.Partitions[0].Replicas) != 3 {
			t.Errorf("topic %s: %v, replicas %v; want 3 (the cluster's default)", m.Name, m.Err, replicasOf(m))
		}
	}
}

func replicasOf(m *sarama.TopicMetadata) []int32 {
	if len(m.Partitions) == 0 {
		return nil
	}
	return m.Partitions[0].Replicas
}

// alive fails the test if a component exited on its own.
func alive(t *testing.T, procs ...*testenv.Proc) {
	t.Helper()
	for _, p := range procs {
		if p.Exited() {
			t.Fatalf("%s exited on its own:\n%s", p.Cmd.Args[1], p.Tail(3000))
		}
	}
}

// TestBrokerCrash: the node that leads the pipeline's record is SIGKILLed
// mid-run; at once, inside the leader election, a process and the sink are
// SIGKILLed and started again, and a new process starts; the node comes back
// 15 s later; the other process is SIGKILLed and restarted twice more. No
// component exits on its own and the tables equal the model.
func TestBrokerCrash(t *testing.T) {
	env := testenv.Get(t)
	p, produced := testenv.NewPipeline(t, workload(141), 3000) // about 20 s of input
	p.Started = time.Now()
	procs := []*testenv.Proc{
		testenv.StartProc(t, "process-a.log", p.ProcessArgs("proc-a")...),
		testenv.StartProc(t, "process-b.log", p.ProcessArgs("proc-b")...),
	}
	addr := testenv.FreeAddr(t)
	snk := testenv.StartProc(t, "sink.log", append(p.SinkArgs(), "--http-addr", addr)...)
	viewsAddr := testenv.FreeAddr(t)
	views := testenv.StartProc(t, "views.log", append(append([]string{"views"}, env.KafkaArgs...), "--prefix", p.Prefix,
		"--database-url", p.DBURL, "--http-addr", viewsAddr)...)
	procs = append(procs, views)
	if code, body, ok := testenv.AwaitReadyz(addr, 2*time.Minute, testenv.Ready); !ok {
		t.Fatalf("sink not ready: %d %s\n%s", code, body, snk.Tail(3000))
	}
	time.Sleep(3 * time.Second)
	node := nodeOf(t, env, pipeline.PipelineTopic(p.Prefix), 0)
	killed := time.Now()
	if err := cluster.Kill(node); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILL of node %d (leader of the pipeline record) at %v", node, time.Since(p.Started).Round(time.Millisecond))
	// Inside the election: restart a process and the sink, start a third.
	procs[0].Kill()
	procs[0] = testenv.StartProc(t, "process-a-2.log", p.ProcessArgs("proc-a")...)
	snk.Kill()
	snk = testenv.StartProc(t, "sink-2.log", append(p.SinkArgs(), "--http-addr", addr)...)
	restarted := time.Now()
	procs = append(procs, testenv.StartProc(t, "process-c.log", p.ProcessArgs("proc-c")...))
	code, body, ok := testenv.AwaitReadyz(addr, 2*time.Minute, testenv.Ready)
	if !ok {
		t.Fatalf("the sink restarted during the election is not ready: %d %s\n%s", code, body, snk.Tail(3000))
	}
	t.Logf("the sink, started %v after the broker's crash, was ready %v later", restarted.Sub(killed).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	alive(t, append(procs, snk)...)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	time.Sleep(time.Duration(15_000-time.Since(killed).Milliseconds()) * time.Millisecond)
	if err := cluster.Start(node); err != nil {
		t.Fatal(err)
	}
	t.Logf("node %d back at %v", node, time.Since(p.Started).Round(time.Millisecond))
	for i := range 2 {
		time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
		alive(t, append(procs, snk)...)
		procs[1].Kill()
		procs[1] = testenv.StartProc(t, fmt.Sprintf("process-b-%d.log", i+2), p.ProcessArgs("proc-b")...)
	}
	<-produced
	el := p.WaitDone(t, 5*time.Minute, append(procs, snk)...)
	alive(t, append(procs, snk)...)
	if code, body, ok := testenv.AwaitReadyz(viewsAddr, time.Minute, testenv.Ready); !ok {
		t.Fatalf("views not ready after the broker's crash: %d %s\n%s", code, body, views.Tail(3000))
	}
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	replication(t, env, p)
	t.Logf("all rows in after %v; the views are ready", el.Round(time.Millisecond))
}

// TestRollingRestart: each node in turn is stopped cleanly and started
// again while input arrives and the pipeline runs; nothing exits, nothing
// is lost.
func TestRollingRestart(t *testing.T) {
	env := testenv.Get(t)
	p, produced := testenv.NewPipeline(t, workload(142), 2000) // about 30 s of input
	p.Started = time.Now()
	procs := []*testenv.Proc{
		testenv.StartProc(t, "process-a.log", p.ProcessArgs("proc-a")...),
		testenv.StartProc(t, "process-b.log", p.ProcessArgs("proc-b")...),
		testenv.StartProc(t, "sink.log", p.SinkArgs()...),
	}
	for node := 1; node <= len(cluster.Brokers); node++ {
		time.Sleep(2 * time.Second)
		start := time.Now()
		if err := cluster.Stop(node); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		if err := cluster.Start(node); err != nil {
			t.Fatal(err)
		}
		alive(t, procs...)
		t.Logf("node %d stopped and back in %v", node, time.Since(start).Round(time.Millisecond))
	}
	<-produced
	el := p.WaitDone(t, 5*time.Minute, procs...)
	alive(t, procs...)
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	replication(t, env, p)
	t.Logf("a rolling restart of %d nodes while input arrived; all rows in after %v", len(cluster.Brokers), el.Round(time.Millisecond))
}

// TestStartWithABrokerDown: a node is down when the pipeline first starts
// (it records its settings, creates its topics and runs with two of three
// nodes), and comes back later.
func TestStartWithABrokerDown(t *testing.T) {
	env := testenv.Get(t)
	p, produced := testenv.NewPipeline(t, workload(143), 4000)
	if err := cluster.Kill(3); err != nil {
		t.Fatal(err)
	}
	p.Started = time.Now()
	procs := []*testenv.Proc{
		testenv.StartProc(t, "process.log", p.ProcessArgs("proc-a")...),
		testenv.StartProc(t, "sink.log", p.SinkArgs()...),
	}
	time.Sleep(10 * time.Second)
	alive(t, procs...)
	if err := cluster.Start(3); err != nil {
		t.Fatal(err)
	}
	<-produced
	el := p.WaitDone(t, 5*time.Minute, procs...)
	alive(t, procs...)
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	replication(t, env, p)
	t.Logf("started with node 3 down; all rows in after %v", el.Round(time.Millisecond))
}
