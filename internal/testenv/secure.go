package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ridestream/ridestream/internal/kafka"
)

// SecureKafka is the Apache Kafka 4 broker of `scripts/kafka4.sh
// start-secure`: a SASL_SSL listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
// an SSL listener that requires client certificates, and a PLAINTEXT one,
// with certificates made by openssl when it starts.
type SecureKafka struct {
	Dir string
	// Listeners by name: PLAINTEXT, SASL_SSL, SSL (host:port).
	Listeners map[string]string
}

// Users of the secure broker's SASL_SSL listener.
const (
	PlainUser, PlainPassword       = "apikey", "apisecret"
	SCRAM256User, SCRAM256Password = "rpuser", "rp-scram-256-pw"
	SCRAM512User, SCRAM512Password = "ridestream", "rs-scram-512-pw"
)

// StartSecureKafka starts the secure broker with its state in dir.
func StartSecureKafka(dir string) (*SecureKafka, error) {
	out, err := exec.Command(kafka4Script(), "start-secure", dir).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return nil, fmt.Errorf("start the secure Kafka 4 broker: %v\n%s", err, stderr)
	}
	k := &SecureKafka{Dir: dir, Listeners: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if name, addr, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
			k.Listeners[name] = addr
		}
	}
	for _, l := range []string{"PLAINTEXT", "SASL_SSL", "SSL"} {
		if k.Listeners[l] == "" {
			k.Stop()
			return nil, fmt.Errorf("the secure broker printed no %s listener:\n%s", l, out)
		}
	}
	return k, nil
}

// Stop stops the broker.
func (k *SecureKafka) Stop() { _ = exec.Command(kafka4Script(), "stop", k.Dir).Run() }

// File is the path of one of the certificates the broker was started with:
// ca.pem, other-ca.pem (an unrelated CA), client.pem, client.key,
// server.pem, server.key.
func (k *SecureKafka) File(name string) string { return filepath.Join(k.Dir, "tls", name) }

// SASLEnv is env reaching the SASL_SSL listener as user with mechanism; the
// password goes to processes through $RIDESTREAM_KAFKA_SASL_PASSWORD (see
// ProcEnv), never on their command line.
func (k *SecureKafka) SASLEnv(env *Env, mechanism, user, password string) (*Env, error) {
	args := []string{"--brokers", k.Listeners["SASL_SSL"], "--kafka-tls-ca-file", k.File("ca.pem"),
		"--kafka-sasl-mechanism", mechanism, "--kafka-sasl-username", user}
	return k.env(env, "secure Kafka 4 SASL_SSL "+mechanism, args, password)
}

// MutualTLSEnv is env reaching the SSL listener with the client certificate.
func (k *SecureKafka) MutualTLSEnv(env *Env) (*Env, error) {
	args := []string{"--brokers", k.Listeners["SSL"], "--kafka-tls-ca-file", k.File("ca.pem"),
		"--kafka-tls-cert-file", k.File("client.pem"), "--kafka-tls-key-file", k.File("client.key")}
	return k.env(env, "secure Kafka 4 mutual TLS", args, "")
}

func (k *SecureKafka) env(base *Env, kind string, args []string, password string) (*Env, error) {
	c := *base
	c.BrokerKind, c.KafkaArgs = kind, args
	c.ProcEnv = nil
	if password != "" {
		c.ProcEnv = []string{"RIDESTREAM_KAFKA_SASL_PASSWORD=" + password}
	}
	conn, err := kafka.ConnFromArgs(args, password)
	if err != nil {
		return nil, err
	}
	c.Kafka = conn
	return &c, nil
}

// secureKafkaDir is a new directory for a secure broker's state.
func secureKafkaDir() (string, error) { return os.MkdirTemp("", "ridestream-kafka4-secure-") }
