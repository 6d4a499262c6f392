package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ridestream/ridestream/internal/pipeline"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"demo", "embedded broker + throwaway Postgres: generate rides, land them, print hourly revenue", runDemo},
		{"process", "run the goka processors (route, clock, watermark, windows) that compute the final windows", runProcess},
		{"sink", "land raw rides, rejected and late input, and final windows in PostgreSQL exactly once", runSink},
		{"views", "serve the open windows, what holds them back, and a chart page, from goka views", runViews},
		{"heartbeat", "write heartbeat records that advance idle partitions' event time", runHeartbeat},
		{"generate", "produce seeded synthetic rides (or a JSONL file) to the rides topic", runGenerate},
		{"reset", "delete a pipeline's groups and intermediate topics (and optionally PostgreSQL outputs) for a replay", runReset},
		{"redrive", "send rows of rejected_input back to the input topic, each once", runRedrive},
		{"migrate", "apply the schema migrations to PostgreSQL", runMigrate},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return errors.New("no subcommand given")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: ridestream <subcommand> [flags]   (each flag also reads $RIDESTREAM_<FLAG>)")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "run `ridestream <subcommand> --help` for its flags")
}

// logFlags adds --log-level and --log-format and returns a constructor.
func logFlags(fs *flag.FlagSet) func(io.Writer) (*slog.Logger, error) {
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text or json")
	return func(w io.Writer) (*slog.Logger, error) {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(*level)); err != nil {
			return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", *level)
		}
		opts := &slog.HandlerOptions{Level: lv}
		switch *format {
		case "text":
			return slog.New(slog.NewTextHandler(w, opts)), nil
		case "json":
			return slog.New(slog.NewJSONHandler(w, opts)), nil
		}
		return nil, fmt.Errorf("--log-format %q: want text or json", *format)
	}
}

// pipelineFlags adds --prefix and the pipeline's settings (its spec) to fs;
// note says what the subcommand does with them. The returned function gives
// the spec as given, the flags set explicitly, and a validation error.
func pipelineFlags(fs *flag.FlagSet, note string) func() (pipeline.Spec, []string, error) {
	prefix := fs.String("prefix", pipeline.DefaultPrefix, "names the pipeline's topics, consumer groups and record; its settings ("+
		strings.Join(pipeline.SettingFlags(), ", ")+") are recorded: "+note)
	given := pipeline.Flags(fs, pipeline.DefaultSpec())
	return func() (pipeline.Spec, []string, error) {
		spec, set := given()
		spec.Prefix = *prefix
		return spec, set, spec.Validate()
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ridestream "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }
