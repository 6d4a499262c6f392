// Command bench measures ridestream on this machine in one run: the
// PostgreSQL ceiling for its ride row, the pipeline end to end and the
// processors alone, and prints a table of rates and ratios (also written to
// BENCHMARKS.md). `make bench` starts Apache Kafka 4 for it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
