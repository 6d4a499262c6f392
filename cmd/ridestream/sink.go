package main

import (
	"context"
	"errors"
	"io"
	neturl "net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/ridestream/ridestream/internal/envflag"
	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/ops"
	"github.com/ridestream/ridestream/schema"
	"github.com/ridestream/ridestream/sink"
)

// databaseFlags adds --database-url and --database-url-file. A URL with a
// password is refused on the command line (other users see it in ps): it
// comes from $RIDESTREAM_DATABASE_URL or a file, and is never logged.
func databaseFlags(fs interface {
	String(name, value, usage string) *string
}) func(args []string) (string, error) {
	url := fs.String("database-url", "", "PostgreSQL connection URL; one with a password only through $RIDESTREAM_DATABASE_URL or --database-url-file")
	file := fs.String("database-url-file", "", "file holding the PostgreSQL connection URL")
	return func(args []string) (string, error) {
		if *file != "" {
			b, err := os.ReadFile(*file)
			if err != nil {
				return "", errors.New("--database-url-file: " + err.Error())
			}
			return strings.TrimSpace(string(b)), nil
		}
		if envflag.OnCommandLine(args, "database-url") && hasPassword(*url) {
			return "", errors.New("--database-url: holds a password; pass it through $RIDESTREAM_DATABASE_URL or --database-url-file, not the command line")
		}
		return *url, nil
	}
}

func runSink(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("sink", stderr)
	kafkaConn := kafkaFlags(fs)
	instance := fs.String("instance-id", "", "static group membership id, one per instance (a restart takes its partitions back at once)")
	batch := fs.Int("batch-rows", 10000, "rows per PostgreSQL transaction at most")
	flush := fs.Duration("flush-interval", 200_000_000, "longest a row waits for its batch")
	session := fs.Duration("session-timeout", 10_000_000_000, "consumer group session timeout")
	httpAddr := fs.String("http-addr", "", "serve /healthz, /readyz and /metrics here, e.g. :8081 (empty: off)")
	pprof := pprofFlag(fs)
	dbURL := databaseFlags(fs)
	pipe := pipelineFlags(fs, "the sink takes them from the pipeline's record, waits until it exists, and refuses a flag that differs from it")
	logger := logFlags(fs)
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	log, err := logger(stderr)
	if err != nil {
		return err
	}
	conn, err := kafkaConn(args)
	if err != nil {
		return err
	}
	given, set, err := pipe()
	if err != nil {
		return err
	}
	url, err := dbURL(args)
	if err != nil {
		return err
	}
	cfg := sink.Config{
		Kafka: conn, Pipeline: given, Set: set, InstanceID: *instance,
		DatabaseURL: url, BatchRows: *batch, FlushInterval: *flush, SessionTimeout: *session,
		Logger: log, Ready: ops.NewReadiness("pipeline", "postgres", "kafka", kafka.ReadyBrokers),
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := checkKafka(ctx, log, conn, true); err != nil {
		return err
	}
	return runWithOps(ctx, ops.Server{Addr: *httpAddr, Ready: cfg.Ready, Log: log, Metrics: sink.Metrics, Pprof: *pprof},
		func(ctx context.Context) error { return sink.Run(ctx, cfg) })
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	dbURL := databaseFlags(fs)
	if err := envflag.Parse(fs, args); err != nil {
		return err
	}
	url, err := dbURL(args)
	if err != nil {
		return err
	}
	if url == "" {
		return errors.New("--database-url: must not be empty")
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	applied, err := schema.Migrate(ctx, conn)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		_, err = io.WriteString(stdout, "schema is up to date\n")
		return err
	}
	for _, v := range applied {
		if _, err := io.WriteString(stdout, "applied migration "+itoa(v)+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// hasPassword reports whether a PostgreSQL URL or key=value DSN carries a password.
func hasPassword(dsn string) bool {
	if u, err := neturl.Parse(dsn); err == nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			return true
		}
		return u.Query().Get("password") != ""
	}
	return strings.Contains(strings.ToLower(dsn), "password=")
}
