package main

import (
	"bytes"
	"context"
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
		{[]string{"sink", "--brokers", "b:9092", "--database-url", "postgres://u:secret@h/db"}, "--database-url"},
		{[]string{"sink", "--brokers", "b:9092", "--allowed-lateness", "-1m"}, "--allowed-lateness"},
		{[]string{"process", "--brokers", "b:9092", "--time-zone", "Mars/Olympus"}, "--time-zone"},
		{[]string{"process", "--brokers", "b:9092", "--stages", "route,sort"}, "--stages"},
		{[]string{"process", "--brokers", "b:9092", "--window", "10ms"}, "--window"},
		{[]string{"generate", "--brokers", "b:9092", "--late", "2"}, "--late"},
		{[]string{"generate", "--brokers", "b:9092", "--partitions", "0"}, "--partitions"},
		{[]string{"reset", "--brokers", "b:9092", "--postgres", "some"}, "--postgres"},
		{[]string{"heartbeat", "--brokers", "b:9092", "--time", "soon"}, "--time"},
		{[]string{"sink", "--log-level", "loud"}, "--log-level"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), c.args, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), c.flag) {
				t.Fatalf("got %v, want an error naming %s", err, c.flag)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(errb.String(), "secret") {
				t.Fatalf("the password leaked: %v", err)
			}
		})
	}
}

func TestHelpListsEnvTwinsWithoutSecrets(t *testing.T) {
	t.Setenv("RIDESTREAM_DATABASE_URL", "postgres://u:secret@h/db")
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"sink", "--help"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "help") {
		t.Fatalf("--help: %v", err)
	}
	help := errb.String()
	if !strings.Contains(help, "$RIDESTREAM_DATABASE_URL") || !strings.Contains(help, "$RIDESTREAM_BATCH_ROWS") {
		t.Fatalf("help lacks env twins:\n%s", help)
	}
	if strings.Contains(help, "secret") {
		t.Fatal("help printed the password from the environment")
	}
}
