package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ridestream/ridestream/internal/broker"
	"github.com/ridestream/ridestream/internal/kafka"
)

// Broker is a broker of a test's own that it may stop and start again on the
// same address: Apache Kafka 4 (scripts/kafka4.sh) when the package runs
// against Kafka 4 (RIDESTREAM_TEST_BROKERS set), else an in-process kfake
// persisting to a directory.
type Broker struct {
	Addr  string
	Kind  string
	dir   string
	port  int
	kfake *broker.Embedded
}

func kafka4Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "kafka4.sh")
}

// NewBroker starts a dedicated broker, stopped at the end of the test.
func NewBroker(t testing.TB) *Broker {
	t.Helper()
	b := &Broker{dir: t.TempDir()}
	if os.Getenv(EnvBrokers) != "" {
		b.Kind = "dedicated Apache Kafka 4"
	} else {
		b.Kind = "dedicated kfake"
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

// Start starts the broker (again), on the address it had before.
func (b *Broker) Start() error {
	if b.Kind == "dedicated kfake" {
		e, err := broker.Start(b.dir, b.port)
		if err != nil {
			return err
		}
		b.kfake = e
		b.Addr = e.Addrs()[0]
		if b.port == 0 {
			_, port, _ := strings.Cut(b.Addr, ":")
			fmt.Sscan(port, &b.port)
		}
		return nil
	}
	out, err := exec.Command(kafka4Script(), "start", b.dir).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return fmt.Errorf("start Kafka 4: %v\n%s", err, stderr)
	}
	b.Addr = strings.TrimSpace(string(out))
	return nil
}

// Stop stops the broker; its data stays for Start.
func (b *Broker) Stop() {
	if b.kfake != nil {
		b.kfake.Close()
		b.kfake = nil
		return
	}
	if b.Kind != "dedicated kfake" {
		_ = exec.Command(kafka4Script(), "stop", b.dir).Run()
	}
}

// Env returns a copy of env that points at this broker.
func (b *Broker) Env(env *Env) *Env {
	c := *env
	c.Kafka = kafka.Conn{Brokers: []string{b.Addr}}
	c.KafkaArgs = []string{"--brokers", b.Addr}
	c.BrokerKind = b.Kind
	return &c
}
