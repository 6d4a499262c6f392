// Package testenv gives tests real servers: a Kafka broker and PostgreSQL.
//
// RIDESTREAM_TEST_BROKERS names a running Kafka (`make test` starts Apache
// Kafka 4 and sets it); unset, the package starts the in-process kfake broker.
// RIDESTREAM_TEST_DATABASE_URL names a PostgreSQL whose user may create
// databases; unset, the package starts a throwaway cluster from the local
// server binaries. A server that cannot be had fails the tests; nothing skips.
package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"

	"github.com/ridestream/ridestream/internal/broker"
	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/pgserver"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/procstat"
)

// Environment variables that point tests at running servers.
const (
	EnvBrokers     = "RIDESTREAM_TEST_BROKERS"
	EnvDatabaseURL = "RIDESTREAM_TEST_DATABASE_URL"
)

// Env is the servers of one test binary.
type Env struct {
	// Kafka reaches the test broker; KafkaArgs are the command-line flags
	// that give a ridestream process the same connection.
	Kafka     kafka.Conn
	KafkaArgs []string
	// ProcEnv is what ridestream processes need in their environment to
	// connect (KEY=value: a SASL password), for StartProcEnv.
	ProcEnv []string
	// BrokerKind says which broker the tests talk to, for logs.
	BrokerKind string
	// AdminURL connects to PostgreSQL with the right to create databases.
	AdminURL string
	// PG is the throwaway cluster when this package started one (nil otherwise).
	PG *pgserver.Server

	embedded *broker.Embedded
}

var (
	current *Env
	seq     atomic.Int64
)

// Main starts the servers, runs the tests and stops the servers. Call it from
// TestMain: `func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }`.
func Main(m *testing.M) int { return MainWith(m, nil) }

// MainWith is Main with more servers of the package's own: setup starts them
// after the common ones and returns what stops them.
func MainWith(m *testing.M, setup func(*Env) (stop func(), err error)) int {
	env, err := start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv: cannot start test servers:", err)
		return 1
	}
	defer env.stop()
	if setup != nil {
		stop, err := setup(env)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testenv: cannot start test servers:", err)
			return 1
		}
		defer stop()
	}
	current = env
	return m.Run()
}

func start(ctx context.Context) (*Env, error) {
	env := &Env{}
	if b := os.Getenv(EnvBrokers); b != "" {
		env.Kafka = kafka.Conn{Brokers: strings.Split(b, ",")}
		env.BrokerKind = "external broker " + b
	} else {
		e, err := broker.Start("", 0)
		if err != nil {
			return nil, err
		}
		env.embedded = e
		env.Kafka = kafka.Conn{Brokers: e.Addrs()}
		env.BrokerKind = "in-process kfake"
	}
	env.KafkaArgs = []string{"--brokers", strings.Join(env.Kafka.Brokers, ",")}
	if u := os.Getenv(EnvDatabaseURL); u != "" {
		env.AdminURL = u
	} else {
		pg, err := pgserver.Start(ctx, pgserver.Options{Settings: map[string]string{"fsync": "on"}})
		if err != nil {
			env.stop()
			return nil, err
		}
		env.PG = pg
		env.AdminURL = pg.URL
	}
	return env, nil
}

func (e *Env) stop() {
	if e.PG != nil {
		e.PG.Stop()
	}
	if e.embedded != nil {
		e.embedded.Close()
	}
}

// Get returns the environment started by Main.
func Get(t testing.TB) *Env {
	t.Helper()
	if current == nil {
		t.Fatal("testenv.Main was not called from TestMain")
	}
	return current
}

// Name returns a name unique to this test run, for topics, groups and databases.
func Name(t testing.TB, kind string) string {
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '_'
	}, t.Name())
	if len(base) > 30 {
		base = base[:30]
	}
	return fmt.Sprintf("%s_%s_%d_%d", kind, base, time.Now().UnixNano()%1e9, seq.Add(1))
}

// NewDatabase creates an empty database for the test, dropped at its end,
// and returns its URL.
func (e *Env) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	name := Name(t, "db")
	admin, err := pgx.Connect(ctx, e.AdminURL)
	if err != nil {
		t.Fatalf("connect to test PostgreSQL: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, e.AdminURL)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	u, err := url.Parse(e.AdminURL)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvDatabaseURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// ReadSpec returns the record of the pipeline prefix.
func (e *Env) ReadSpec(t testing.TB, prefix string) pipeline.Spec {
	t.Helper()
	var spec pipeline.Spec
	err := e.withCluster(func(client sarama.Client, _ sarama.ClusterAdmin) error {
		var err error
		spec, err = kafka.ReadSpec(client, prefix)
		return err
	})
	if err != nil {
		t.Fatalf("read the record of pipeline %s: %v", prefix, err)
	}
	return spec
}

// RecordPipeline writes the record of a pipeline with the default settings
// over input, as the processors' first start would, for tests that run a
// sink without processors.
func (e *Env) RecordPipeline(t testing.TB, prefix, input string) pipeline.Spec {
	t.Helper()
	spec := pipeline.DefaultSpec()
	spec.Prefix, spec.Input = prefix, input
	err := e.withCluster(func(client sarama.Client, admin sarama.ClusterAdmin) error {
		var err error
		spec, err = kafka.ResolveSpec(client, admin, spec, nil, true, 1)
		return err
	})
	if err != nil {
		t.Fatalf("record pipeline %s: %v", prefix, err)
	}
	return spec
}

func (e *Env) withCluster(fn func(sarama.Client, sarama.ClusterAdmin) error) error {
	return e.Kafka.WithCluster("ridestream-test", fn)
}

// NewTopic creates a topic with the given partitions and returns its name.
func (e *Env) NewTopic(t testing.TB, partitions int32) string {
	t.Helper()
	name := Name(t, "rides")
	admin, err := e.Kafka.NewAdmin("ridestream-test")
	if err != nil {
		t.Fatalf("connect to test broker (%s): %v", e.BrokerKind, err)
	}
	defer admin.Close()
	if _, err := kafka.EnsureTopics(admin, generate.InputTopic(name, partitions, 0)); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	return name
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/ridestream once per test binary and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "ridestream-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ridestream")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/ridestream")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/ridestream: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Proc is a ridestream subprocess started by a test.
type Proc struct {
	Cmd *exec.Cmd
	Log string
	// Role names the process in reports.
	Role string
	done chan error
}

// StartProc runs the ridestream binary with args, logging to a file in the
// test's temp dir.
func StartProc(t testing.TB, logName string, args ...string) *Proc {
	t.Helper()
	return StartProcEnv(t, logName, nil, args...)
}

// StartProcEnv is StartProc with env (KEY=value) added to the environment.
func StartProcEnv(t testing.TB, logName string, env []string, args ...string) *Proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), logName)
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Binary(t), args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(append(os.Environ(), "GORACE=halt_on_error=1"), env...)
	// A test binary killed by its timeout leaves no processes behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start ridestream %v: %v", args, err)
	}
	p := &Proc{Cmd: cmd, Log: logPath, done: make(chan error, 1)}
	go func() {
		p.done <- cmd.Wait()
		f.Close()
	}()
	t.Cleanup(func() { p.Kill() })
	return p
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Kill()
	p.Wait()
}

// Stop sends SIGTERM and waits up to timeout, then kills.
func (p *Proc) Stop(timeout time.Duration) error {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("process did not stop within %v of SIGTERM", timeout)
	}
}

// Wait waits for the process to end and returns its exit error.
func (p *Proc) Wait() error {
	err := <-p.done
	p.done <- err
	return err
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return true
	default:
		return false
	}
}

// PeakRSSMB is the process's peak resident memory so far (VmHWM), in MiB;
// 0 once it has exited.
func (p *Proc) PeakRSSMB() int { return procstat.PeakRSSMB(p.Cmd.Process.Pid) }

// Tail returns the last n bytes of the process log.
func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.Log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// ReadTopic returns every value of every partition of topic, in offset order,
// up to the high-water marks at the time of the call.
func (e *Env) ReadTopic(t testing.TB, topic string) [][][]byte {
	t.Helper()
	return values(e.ReadMessages(t, topic))
}

// ReadValues is ReadTopic over a log with gaps in its offsets (the commit
// markers of a transactional producer): the values in offset order, without
// the models' assumption that a record's offset is its index.
func (e *Env) ReadValues(t testing.TB, topic string) [][][]byte {
	t.Helper()
	return values(e.readMessages(t, topic, false))
}

func values(msgs [][]*sarama.ConsumerMessage) [][][]byte {
	out := make([][][]byte, len(msgs))
	for p, ms := range msgs {
		for _, m := range ms {
			out[p] = append(out[p], m.Value)
		}
	}
	return out
}

// ReadMessages is ReadTopic with the whole messages (timestamps included).
func (e *Env) ReadMessages(t testing.TB, topic string) [][]*sarama.ConsumerMessage {
	t.Helper()
	return e.readMessages(t, topic, true)
}

func (e *Env) readMessages(t testing.TB, topic string, gapless bool) [][]*sarama.ConsumerMessage {
	t.Helper()
	client, err := e.Kafka.NewClient("ridestream-test-reader")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]*sarama.ConsumerMessage, len(parts))
	err = kafka.ReadTopic(client, topic, func(m *sarama.ConsumerMessage) error {
		if gapless && m.Offset != int64(len(out[m.Partition])) {
			return fmt.Errorf("%s/%d: offset %d after %d records; this reader assumes a gapless log", topic, m.Partition, m.Offset, len(out[m.Partition]))
		}
		out[m.Partition] = append(out[m.Partition], m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// DumpDOM loads url in headless Chromium (Debian's chromium, which make test
// installs), lets its scripts run for up to budget of virtual time, and
// returns the resulting DOM. A missing browser fails the test.
func DumpDOM(t testing.TB, url string, budget time.Duration) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (scripts/chromium.sh installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds()), "--dump-dom", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, stderr.String())
	}
	return string(out)
}
