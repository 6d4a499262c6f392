package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestBadConfigNamesFlag: a bad setting fails before anything connects, with
// the flag's name in the error.
func TestBadConfigNamesFlag(t *testing.T) {
	cases := []struct {
		args []string
		flag string
	}{
		{[]string{"sink", "--database-url", "postgres://u@h/db"}, "--brokers"},
		{[]string{"sink", "--brokers", "b:9092"}, "--database-url"},
		{[]string{"sink", "--brokers", "b:9092", "--database-url", "postgres://u:hunter2-pg@h/db"}, "--database-url"},
		{[]string{"sink", "--brokers", "b:9092", "--allowed-lateness", "-1m"}, "--allowed-lateness"},
		{[]string{"process", "--brokers", "b:9092", "--time-zone", "Mars/Olympus"}, "--time-zone"},
		{[]string{"process", "--brokers", "b:9092", "--stages", "route,sort"}, "--stages"},
		{[]string{"process", "--brokers", "b:9092", "--window", "10ms"}, "--window"},
		{[]string{"process", "--brokers", "b:9092", "--time-zone", "Local"}, "--time-zone"},
		{[]string{"sink", "--brokers", "b:9092", "--input-time-zone", "Local"}, "--input-time-zone"},
		{[]string{"process", "--brokers", "b:9092", "--event-time-field", "total_amount"}, "--event-time-field"},
		{[]string{"process", "--brokers", "b:9092", "--event-time-field", "heartbeat"}, "--event-time-field"},
		{[]string{"generate", "--brokers", "b:9092", "--late", "2"}, "--late"},
		{[]string{"generate", "--brokers", "b:9092", "--partitions", "0"}, "--partitions"},
		{[]string{"reset", "--brokers", "b:9092", "--postgres", "some"}, "--postgres"},
		{[]string{"heartbeat", "--brokers", "b:9092", "--time", "soon"}, "--time"},
		{[]string{"heartbeat", "--brokers", "b:9092", "--time", "0"}, "--time"},
		{[]string{"heartbeat", "--brokers", "b:9092", "--time", "3000-01-01T00:00:00Z"}, "--time"},
		{[]string{"sink", "--log-level", "loud"}, "--log-level"},
		{[]string{"process", "--brokers", "b:9092", "--kafka-sasl-password", "hunter2-kafka"}, "--kafka-sasl-password"},
		{[]string{"process", "--brokers", "b:9092", "--kafka-sasl-mechanism", "GSSAPI"}, "--kafka-sasl-mechanism"},
		{[]string{"sink", "--brokers", "b:9092", "--kafka-sasl-mechanism", "SCRAM-SHA-512"}, "--kafka-sasl-username"},
		{[]string{"sink", "--brokers", "b:9092", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "u"}, "--kafka-sasl-password-file"},
		{[]string{"views", "--brokers", "b:9092", "--kafka-tls-ca-file", "/nonexistent/ca.pem"}, "--kafka-tls-ca-file"},
		{[]string{"generate", "--brokers", "b:9092", "--kafka-tls-cert-file", "c.pem"}, "--kafka-tls-key-file"},
		{[]string{"reset", "--brokers", "b:9092", "--kafka-sasl-password-file", "/nonexistent/pw"}, "--kafka-sasl-password-file"},
		{[]string{"heartbeat", "--kafka-sasl-username", "u"}, "--brokers"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), c.args, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), c.flag) {
				t.Fatalf("got %v, want an error naming %s", err, c.flag)
			}
			for _, pw := range []string{"hunter2-pg", "hunter2-kafka"} {
				if strings.Contains(err.Error(), pw) || strings.Contains(errb.String(), pw) {
					t.Fatalf("the password leaked: %v", err)
				}
			}
		})
	}
}

func TestHelpListsEnvTwinsWithoutSecrets(t *testing.T) {
	t.Setenv("RIDESTREAM_DATABASE_URL", "postgres://u:hunter2-pg@h/db")
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"sink", "--help"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "help") {
		t.Fatalf("--help: %v", err)
	}
	help := errb.String()
	for _, twin := range []string{"$RIDESTREAM_DATABASE_URL", "$RIDESTREAM_BATCH_ROWS", "$RIDESTREAM_KAFKA_SASL_PASSWORD", "$RIDESTREAM_KAFKA_TLS_CA_FILE"} {
		if !strings.Contains(help, twin) {
			t.Fatalf("help lacks %s:\n%s", twin, help)
		}
	}
	if strings.Contains(help, "hunter2") {
		t.Fatal("help printed a password from the environment")
	}
}

// TestKafkaFlagsEverywhere: every subcommand that reaches Kafka has the one
// connection flag set.
func TestKafkaFlagsEverywhere(t *testing.T) {
	flags := []string{"brokers", "kafka-tls", "kafka-tls-ca-file", "kafka-tls-cert-file", "kafka-tls-key-file", "kafka-tls-server-name",
		"kafka-tls-insecure-skip-verify", "kafka-sasl-mechanism", "kafka-sasl-username", "kafka-sasl-password", "kafka-sasl-password-file"}
	for _, sub := range []string{"process", "sink", "views", "generate", "heartbeat", "reset"} {
		var out, errb bytes.Buffer
		_ = run(context.Background(), []string{sub, "--help"}, &out, &errb)
		for _, f := range flags {
			if !regexp.MustCompile(`(?m)^  -` + f + `(\s|$)`).MatchString(errb.String()) {
				t.Errorf("%s --help lacks --%s", sub, f)
			}
		}
	}
}

// A password with no mechanism to use it, and an empty password file, are
// configuration errors too, naming the flags.
func TestPasswordSettingsNamed(t *testing.T) {
	dir := t.TempDir()
	pw, empty := dir+"/pw", dir+"/empty"
	if err := os.WriteFile(pw, []byte("hunter2-kafka\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		env   string
		args  []string
		flags []string
	}{
		{"", []string{"process", "--brokers", "b:9092", "--kafka-sasl-password-file", pw}, []string{"--kafka-sasl-password-file", "--kafka-sasl-mechanism"}},
		{"hunter2-kafka", []string{"sink", "--brokers", "b:9092"}, []string{"$RIDESTREAM_KAFKA_SASL_PASSWORD", "--kafka-sasl-mechanism"}},
		{"", []string{"generate", "--brokers", "b:9092", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "u", "--kafka-sasl-password-file", empty}, []string{"--kafka-sasl-password-file", "empty"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Setenv("RIDESTREAM_KAFKA_SASL_PASSWORD", c.env)
			var out, errb bytes.Buffer
			err := run(context.Background(), c.args, &out, &errb)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, f := range c.flags {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("%v does not name %s", err, f)
				}
			}
			if strings.Contains(err.Error()+errb.String(), "hunter2") {
				t.Fatalf("the password leaked: %v", err)
			}
		})
	}
}
