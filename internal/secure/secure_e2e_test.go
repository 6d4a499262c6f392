package secure_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/pgserver"
	"github.com/ridestream/ridestream/internal/testenv"
	"github.com/ridestream/ridestream/views"
)

var (
	broker *testenv.SecureKafka
	tlsPG  *pgserver.Server
)

func TestMain(m *testing.M) {
	os.Exit(testenv.MainWith(m, func(*testenv.Env) (func(), error) {
		dir, err := os.MkdirTemp("", "ridestream-kafka4-secure-")
		if err != nil {
			return nil, err
		}
		if broker, err = testenv.StartSecureKafka(dir); err != nil {
			return nil, err
		}
		// A PostgreSQL with TLS, its server certificate signed by the same
		// test CA (valid for 127.0.0.1 and localhost).
		tlsPG, err = pgserver.Start(context.Background(), pgserver.Options{
			TLSCertFile: broker.File("server.pem"), TLSKeyFile: broker.File("server.key")})
		if err != nil {
			broker.Stop()
			return nil, err
		}
		return func() {
			tlsPG.Stop()
			broker.Stop()
			os.RemoveAll(dir)
		}, nil
	}))
}

// verifyFull is a URL of the TLS PostgreSQL that only connects over TLS to a
// server whose certificate the test CA signed for its host.
func verifyFull(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Query()
	q.Set("sslmode", "verify-full")
	q.Set("sslrootcert", broker.File("ca.pem"))
	p.RawQuery = q.Encode()
	return p.String()
}

func start(t *testing.T, env *testenv.Env, log string, args ...string) *testenv.Proc {
	t.Helper()
	return testenv.StartProcEnv(t, log, env.ProcEnv, args...)
}

// runPipeline runs processors, sink and views over env's connection and
// checks every table and the views API against the model; no log holds the
// password.
func runPipeline(t *testing.T, env *testenv.Env, password string, w generate.Config) *testenv.Pipeline {
	t.Helper()
	p, _ := testenv.NewPipelineOn(t, env, w, 0)
	p.Started = time.Now()
	proc := start(t, env, "process.log", p.ProcessArgs("proc-secure")...)
	snk := start(t, env, "sink.log", p.SinkArgs()...)
	viewsAddr := testenv.FreeAddr(t)
	vw := start(t, env, "views.log", append(append([]string{"views"}, env.KafkaArgs...), "--prefix", p.Prefix, "--http-addr", viewsAddr,
		"--database-url", p.DBURL)...)
	el := p.WaitDone(t, 3*time.Minute, proc, snk)
	t.Logf("over %s: %d records to raw rows and %d final rows in %v", env.BrokerKind, p.Total, p.FinalCount(), el.Round(time.Millisecond))
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)

	// The views API over the same connection.
	var api []views.WindowJSON
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get("http://" + viewsAddr + "/api/windows?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z")
		if err == nil {
			ok := resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&api) == nil
			resp.Body.Close()
			if ok {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("views API not ready over %s: %v\n%s", env.BrokerKind, err, vw.Tail(3000))
		}
	}
	// Every window is final now: the API lists each, from PostgreSQL (the
	// window stage forgets them), with the model's sums.
	byWindow := map[int64][2]int64{}
	for _, f := range p.Finals[aggregate.DefaultName] {
		v := byWindow[f.Start]
		byWindow[f.Start] = [2]int64{v[0] + f.Measures[0].V, v[1] + f.Measures[1].V}
	}
	if len(api) != len(byWindow) {
		t.Errorf("views API lists %d windows, the model has %d final", len(api), len(byWindow))
	}
	for _, w := range api {
		if want, ok := byWindow[w.Start.UnixMilli()]; !ok || !w.Final || w.Trips != want[0] || w.RevenueCents != want[1] {
			t.Errorf("views API: window %s (final %v) has %d trips %d cents, model %v", w.Start, w.Final, w.Trips, w.RevenueCents, want)
		}
	}
	for _, pr := range []*testenv.Proc{proc, snk, vw} {
		if password != "" && strings.Contains(pr.Tail(64<<20), password) {
			t.Errorf("%s's log holds the SASL password", pr.Cmd.Args[1])
		}
	}
	return p
}

// TestPipelineOverSASLSCRAM: the whole pipeline (produce, process, sink,
// views API) over SASL_SSL with SCRAM-SHA-512, landing in a PostgreSQL
// reached with sslmode=verify-full, equals the model.
func TestPipelineOverSASLSCRAM(t *testing.T) {
	base := *testenv.Get(t)
	base.AdminURL = verifyFull(t, tlsPG.URL)
	env, err := broker.SASLEnv(&base, kafka.MechanismSHA512, testenv.SCRAM512User, testenv.SCRAM512Password)
	if err != nil {
		t.Fatal(err)
	}
	w := generate.Config{Seed: 91, Rides: 30_000, Partitions: 4, Hours: 6, OutOfOrder: 0.05, Late: 0.01, Malformed: 0.005,
		Lateness: 5 * time.Minute, Heartbeats: true}
	p := runPipeline(t, env, testenv.SCRAM512Password, w)

	// The sink reached PostgreSQL over TLS, and the server's certificate was
	// verified for its host: pgx refuses anything else with verify-full.
	conn, err := pgx.Connect(context.Background(), p.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var ssl bool
	if err := conn.QueryRow(context.Background(), `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&ssl); err != nil || !ssl {
		t.Fatalf("a connection with %s is not TLS: %v %v", p.DBURL, ssl, err)
	}
	if !strings.Contains(p.DBURL, "sslmode=verify-full") {
		t.Fatalf("database URL %s", p.DBURL)
	}
}

// TestPipelineOverMutualTLS: the same over the listener that requires a
// client certificate.
func TestPipelineOverMutualTLS(t *testing.T) {
	env, err := broker.MutualTLSEnv(testenv.Get(t))
	if err != nil {
		t.Fatal(err)
	}
	w := generate.Config{Seed: 92, Rides: 20_000, Partitions: 3, Hours: 4, OutOfOrder: 0.05, Late: 0.01,
		Lateness: 5 * time.Minute, Heartbeats: true}
	runPipeline(t, env, "", w)
}

// TestMechanisms: PLAIN (how Confluent Cloud's API keys work) and
// SCRAM-SHA-256 (Redpanda Cloud's) reach the SASL_SSL listener too.
func TestMechanisms(t *testing.T) {
	for _, c := range []struct{ mechanism, user, password string }{
		{kafka.MechanismPlain, testenv.PlainUser, testenv.PlainPassword},
		{kafka.MechanismSHA256, testenv.SCRAM256User, testenv.SCRAM256Password},
	} {
		t.Run(c.mechanism, func(t *testing.T) {
			env, err := broker.SASLEnv(testenv.Get(t), c.mechanism, c.user, c.password)
			if err != nil {
				t.Fatal(err)
			}
			topic := testenv.Name(t, "rides")
			gen := start(t, env, "generate.log", append(append([]string{"generate"}, env.KafkaArgs...), "--topic", topic, "--rides", "500",
				"--partitions", "2", "--malformed", "0", "--heartbeats=false")...)
			if err := gen.Wait(); err != nil || !strings.Contains(gen.Tail(2000), "produced 500 messages") {
				t.Fatalf("generate over %s: %v\n%s", c.mechanism, err, gen.Tail(2000))
			}
			hb := start(t, env, "heartbeat.log", append(append([]string{"heartbeat"}, env.KafkaArgs...), "--topic", topic)...)
			if err := hb.Wait(); err != nil {
				t.Fatalf("heartbeat over %s: %v\n%s", c.mechanism, err, hb.Tail(2000))
			}
			parts := env.ReadTopic(t, topic)
			n := 0
			for _, vs := range parts {
				n += len(vs)
			}
			if len(parts) != 2 || n != 502 {
				t.Fatalf("read back %d records from %d partitions over %s, want 502 from 2", n, len(parts), c.mechanism)
			}
		})
	}
}

// TestConnectionFailures: a wrong setting ends the command within 30 s with
// an error naming the flags involved, and never prints the password.
func TestConnectionFailures(t *testing.T) {
	base := testenv.Get(t)
	sasl := broker.Listeners["SASL_SSL"]
	mtls := broker.Listeners["SSL"]
	ca, other := broker.File("ca.pem"), broker.File("other-ca.pem")
	cases := []struct {
		name     string
		args     []string
		password string
		flags    []string
	}{
		{"wrong SCRAM password", []string{"--brokers", sasl, "--kafka-tls-ca-file", ca, "--kafka-sasl-mechanism", "SCRAM-SHA-512",
			"--kafka-sasl-username", testenv.SCRAM512User}, "not-the-password", []string{"--kafka-sasl-username", "--kafka-sasl-password-file"}},
		{"wrong PLAIN password", []string{"--brokers", sasl, "--kafka-tls-ca-file", ca, "--kafka-sasl-mechanism", "PLAIN",
			"--kafka-sasl-username", testenv.PlainUser}, "not-the-secret", []string{"--kafka-sasl-username", "--kafka-sasl-password-file"}},
		{"unknown CA", []string{"--brokers", sasl, "--kafka-tls-ca-file", other, "--kafka-sasl-mechanism", "SCRAM-SHA-512",
			"--kafka-sasl-username", testenv.SCRAM512User}, testenv.SCRAM512Password, []string{"--kafka-tls-ca-file"}},
		{"missing client certificate", []string{"--brokers", mtls, "--kafka-tls-ca-file", ca}, "", []string{"--kafka-tls-cert-file", "--kafka-tls-key-file"}},
		{"plaintext against TLS", []string{"--brokers", mtls}, "", []string{"--kafka-tls"}},
		{"plaintext against SASL_SSL", []string{"--brokers", sasl}, "", []string{"--kafka-tls", "--kafka-sasl-mechanism"}},
		{"TLS against plaintext", []string{"--brokers", broker.Listeners["PLAINTEXT"], "--kafka-tls-ca-file", ca}, "", []string{"--kafka-tls"}},
		{"no SASL against SASL_SSL", []string{"--brokers", sasl, "--kafka-tls-ca-file", ca}, "", []string{"--kafka-sasl-mechanism"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := []string(nil)
			if c.password != "" {
				env = []string{"RIDESTREAM_KAFKA_SASL_PASSWORD=" + c.password}
			}
			for _, sub := range [][]string{
				{"process", "--topic", "rides", "--prefix", testenv.Name(t, "p")},
				{"sink", "--prefix", testenv.Name(t, "p"), "--database-url", base.AdminURL},
			} {
				start := time.Now()
				p := testenv.StartProcEnv(t, sub[0]+".log", env, append(append([]string{sub[0]}, c.args...), sub[1:]...)...)
				out := expectFailure(t, p, sub[0], 30*time.Second, c.flags, c.password)
				t.Logf("%s failed in %v: %s", sub[0], time.Since(start).Round(time.Millisecond), lastLine(out))
			}
		})
	}
}

// expectFailure waits up to within for p (the command name) to end with an
// error naming every flag in flags and not printing password; it returns
// the command's output.
func expectFailure(t *testing.T, p *testenv.Proc, name string, within time.Duration, flags []string, password string) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(within):
		t.Fatalf("%s still running %v later:\n%s", name, within, p.Tail(3000))
	}
	out := p.Tail(8000)
	if err == nil {
		t.Fatalf("%s exited without error:\n%s", name, out)
	}
	for _, f := range flags {
		if !strings.Contains(out, f) {
			t.Errorf("%s: the error does not name %s:\n%s", name, f, out)
		}
	}
	if password != "" && strings.Contains(out, password) {
		t.Errorf("%s printed the password:\n%s", name, out)
	}
	return out
}

// A sink started while no broker answers waits for one, not ready; when a
// broker answers and refuses its password, it ends naming the flags instead
// of retrying for ever.
func TestWrongPasswordOnceTheBrokerAnswers(t *testing.T) {
	base := testenv.Get(t)
	addr, httpAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	const password = "not-the-password"
	p := testenv.StartProcEnv(t, "sink.log", []string{"RIDESTREAM_KAFKA_SASL_PASSWORD=" + password}, "sink",
		"--brokers", addr, "--kafka-tls-ca-file", broker.File("ca.pem"), "--kafka-sasl-mechanism", "SCRAM-SHA-512",
		"--kafka-sasl-username", testenv.SCRAM512User, "--prefix", testenv.Name(t, "p"), "--database-url", base.AdminURL,
		"--http-addr", httpAddr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := testenv.Readyz(httpAddr)
		if code == http.StatusServiceUnavailable && strings.Contains(body, "no broker answered") {
			t.Logf("while no broker answers: %d %s", code, body)
			break
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("the sink is not waiting for the brokers (readyz %d %q):\n%s", code, body, p.Tail(3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The broker comes up at addr: a TCP relay to the SASL_SSL listener.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go relay(ln, broker.Listeners["SASL_SSL"])
	start := time.Now()
	out := expectFailure(t, p, "sink", 30*time.Second, []string{"--kafka-sasl-username", "--kafka-sasl-password-file"}, password)
	t.Logf("sink failed %v after the broker answered: %s", time.Since(start).Round(time.Millisecond), lastLine(out))
}

// relay forwards every connection accepted on ln to target.
func relay(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			go io.Copy(u, c)
			io.Copy(c, u)
		}()
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return fmt.Sprint(lines[len(lines)-1])
}
