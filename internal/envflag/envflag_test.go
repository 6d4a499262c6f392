package envflag

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestEnvTwinAndPrecedence(t *testing.T) {
	t.Setenv("RIDESTREAM_BATCH_ROWS", "77")
	t.Setenv("RIDESTREAM_FLUSH_INTERVAL", "3s")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	rows := fs.Int("batch-rows", 1, "rows")
	iv := fs.Duration("flush-interval", time.Second, "interval")
	if err := Parse(fs, []string{"--flush-interval=5s"}); err != nil {
		t.Fatal(err)
	}
	if *rows != 77 || *iv != 5*time.Second {
		t.Fatalf("rows=%d interval=%v", *rows, *iv)
	}
	var help strings.Builder
	fs.SetOutput(&help)
	fs.PrintDefaults()
	if !strings.Contains(help.String(), "$RIDESTREAM_BATCH_ROWS") {
		t.Fatalf("help does not name the twin:\n%s", help.String())
	}
}

func TestBadEnvNamesFlag(t *testing.T) {
	t.Setenv("RIDESTREAM_BATCH_ROWS", "many")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("batch-rows", 1, "rows")
	err := Parse(fs, nil)
	if err == nil || !strings.Contains(err.Error(), "--batch-rows from $RIDESTREAM_BATCH_ROWS") {
		t.Fatalf("got %v", err)
	}
}

func TestOnCommandLine(t *testing.T) {
	args := []string{"--topic", "rides", "--prefix", "kafka-sasl-password", "-database-url=postgres://u:p@h/db", "--", "--brokers"}
	if !OnCommandLine(args, "database-url") || !OnCommandLine(args, "topic") || OnCommandLine(args, "brokers") || OnCommandLine(args, "kafka-sasl-password") {
		t.Fatal("OnCommandLine misread the arguments")
	}
}
