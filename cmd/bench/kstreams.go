package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/ridestream/ridestream/internal/procstat"
)

type kstreamsResult struct {
	Seconds     float64 // process start to its last final
	CPU         float64
	PeakRSS     int
	Finals      int64
	Trips       int64
	LateDropped int64
}

// runKStreams runs the Kafka Streams peer on topic until it has aggregated
// every ride and emitted its last final, and reads what it printed.
func runKStreams(ctx context.Context, c config, topic string, run, rides int) (kstreamsResult, error) {
	state, err := os.MkdirTemp("", "ridestream-bench-kstreams-")
	if err != nil {
		return kstreamsResult{}, err
	}
	defer os.RemoveAll(state)
	cmd := exec.CommandContext(ctx, c.kstreams, "run", "--bootstrap", c.brokers, "--input", topic, "--finals", fmt.Sprintf("bench_ks%d-finals", run),
		"--app-id", fmt.Sprintf("bench-ks%d", run), "--expect-rides", strconv.Itoa(rides), "--guarantee", "exactly_once_v2",
		"--threads", strconv.Itoa(c.kstreamsThreads), "--state-dir", state)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return kstreamsResult{}, err
	}
	if err := cmd.Start(); err != nil {
		return kstreamsResult{}, err
	}
	// The script execs java, so the pid is the JVM's; sample its memory
	// and CPU until it prints its result.
	var res kstreamsResult
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			res.PeakRSS = max(res.PeakRSS, procstat.PeakRSSMB(cmd.Process.Pid))
			res.CPU = max(res.CPU, cpuTree(cmd.Process.Pid))
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	var out struct {
		Seconds float64 `json:"process_seconds_to_last_final"`
		Finals  int64   `json:"finals_in_topic"`
		Trips   int64   `json:"trips_in_finals"`
		Late    int64   `json:"late_dropped"`
		Rides   int64   `json:"rides_aggregated"`
	}
	decodeErr := json.NewDecoder(stdout).Decode(&out)
	close(stop)
	<-done
	if err := cmd.Wait(); err != nil {
		return res, fmt.Errorf("peer exited: %w", err)
	}
	if decodeErr != nil {
		return res, fmt.Errorf("peer output: %w", decodeErr)
	}
	if out.Seconds <= 0 || out.Rides < int64(rides) {
		return res, fmt.Errorf("peer did not finish: %+v", out)
	}
	res.Seconds, res.Finals, res.Trips, res.LateDropped = out.Seconds, out.Finals, out.Trips, out.Late
	return res, nil
}
