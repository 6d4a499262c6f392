package ops

import (
	"context"
	"errors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestEndpoints(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ready := NewReadiness("postgres", "kafka")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	component := prometheus.NewRegistry()
	promauto.With(component).NewCounter(prometheus.CounterOpts{Name: "component_total", Help: "a component's metric"}).Inc()
	go func() {
		done <- Serve(ctx, Server{Addr: addr, Ready: ready, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: component})
	}()
	get := func(path string) (int, string) {
		for i := 0; ; i++ {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				if i > 50 {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "postgres: starting") {
		t.Fatalf("readyz before ready: %d %q", code, body)
	}
	ready.Set("postgres", "")
	ready.Set("kafka", "")
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz when ready: %d", code)
	}
	ready.Set("postgres", "commit batch failing: connection refused")
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "connection refused") {
		t.Fatalf("readyz while retrying: %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "component_total 1") ||
		!strings.Contains(body, "ridestream_ready 0") {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	// Profiles only when asked for (--pprof).
	if code, _ := get("/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("/debug/pprof/ without Pprof: %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A watched condition is checked again when /readyz asks and its last
// result is older than Fresh: a recovery shows within about a second, not at
// the next tick of its (here hour-long) interval.
func TestWatchedConditionFollowsReality(t *testing.T) {
	ready := NewReadiness("brokers")
	var up atomic.Bool
	checks := atomic.Int32{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ready.Watch(ctx, "brokers", time.Hour, func(context.Context) error {
		checks.Add(1)
		if up.Load() {
			return nil
		}
		return errors.New("no broker answered")
	})
	waitCheck := func(want string) error {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			err := ready.Check(ctx)
			if (want == "" && err == nil) || (want != "" && err != nil && strings.Contains(err.Error(), want)) {
				return err
			}
			if time.Now().After(deadline) {
				t.Fatalf("readiness did not become %q: %v", want, err)
			}
		}
	}
	waitCheck("brokers: no broker answered")
	up.Store(true)
	flipped := time.Now()
	waitCheck("")
	if el := time.Since(flipped); el > Fresh+ProbeWait+500*time.Millisecond {
		t.Errorf("recovery showed after %v, want about %v", el, Fresh)
	}
	before := checks.Load()
	// Fresh results are served as they are; evidence from the component's
	// own work sets the condition at once.
	for range 20 {
		if err := ready.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := checks.Load() - before; n > 1 {
		t.Errorf("%d checks for 20 requests within %v", n, Fresh)
	}
	up.Store(false)
	ready.Set("brokers", "")
	if err := ready.Check(ctx); err != nil {
		t.Errorf("evidence just given was not served: %v", err)
	}
	waitCheck("brokers: no broker answered")
}

// A check that hangs does not hang /readyz: the request answers with the
// last result after ProbeWait.
func TestHangingCheckDoesNotHangReadyz(t *testing.T) {
	ready := NewReadiness("brokers")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	defer close(release)
	first := make(chan struct{})
	var once sync.Once
	go ready.Watch(ctx, "brokers", time.Hour, func(context.Context) error {
		once.Do(func() { close(first) })
		<-release
		return nil
	})
	<-first
	time.Sleep(Fresh + 50*time.Millisecond)
	start := time.Now()
	err := ready.Check(ctx)
	if el := time.Since(start); el > ProbeWait+500*time.Millisecond {
		t.Errorf("Check took %v with a hanging probe", el)
	}
	if err == nil || !strings.Contains(err.Error(), "starting") {
		t.Errorf("Check = %v, want the last result (starting)", err)
	}
}
