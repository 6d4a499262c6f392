// Package ops serves what an operator watches: /healthz (the process is
// alive), /readyz (it is doing its job: connected, caught up, not retrying),
// /metrics (Prometheus) and, when asked for, /debug/pprof/ (Go profiles).
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness collects named conditions; the process is ready when all hold.
//
// A condition is set by the component that knows it (Set, Report) or, for a
// condition that a cheap check can establish (a broker answers), watched
// (Watch): checked every interval in the background and again on demand
// when /readyz asks and the last result is older than Fresh, so a reply
// never repeats a state older than about a second when the truth is one
// round trip away. Evidence from the component's own work (a fetch, a
// commit, a session joined) sets the condition too, at once.
type Readiness struct {
	mu    sync.Mutex
	state map[string]*condition
}

type condition struct {
	why string // "" when ready, else why not
	at  time.Time
	// probe re-checks the condition on demand (Watch); running is set while
	// one runs and closed when it ends.
	probe   func() error
	running chan struct{}
}

// Fresh is how old a watched condition's last result may be before a
// /readyz request checks it again; ProbeWait is how long that request waits
// for the check before it answers with the last result (the check goes on
// and updates the condition when it ends).
const (
	Fresh     = time.Second
	ProbeWait = 900 * time.Millisecond
)

// NewReadiness starts with every named condition not ready.
func NewReadiness(names ...string) *Readiness {
	r := &Readiness{state: map[string]*condition{}}
	now := time.Now()
	for _, n := range names {
		r.state[n] = &condition{why: "starting", at: now}
	}
	return r
}

// Set marks a condition ready (why == "") or not ready, saying why.
func (r *Readiness) Set(name, why string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.state[name]
	if c == nil {
		c = &condition{}
		r.state[name] = c
	}
	c.why, c.at = why, time.Now()
}

// Report returns a function that sets the condition name from an error:
// ready on nil, else not ready with the error's text.
func (r *Readiness) Report(name string) func(error) {
	return func(err error) {
		if err == nil {
			r.Set(name, "")
		} else {
			r.Set(name, err.Error())
		}
	}
}

// Watch checks the condition name with check every interval until ctx ends
// (and once at once), and lets /readyz check it again on demand (see Fresh).
// A check that ends because ctx ended reports nothing.
func (r *Readiness) Watch(ctx context.Context, name string, every time.Duration, check func(context.Context) error) {
	if r == nil {
		return
	}
	// An on-demand check outlives the request that started it (check
	// bounds itself), not the component.
	probe := func() error { return check(ctx) }
	r.mu.Lock()
	if r.state[name] == nil {
		r.state[name] = &condition{why: "starting", at: time.Now()}
	}
	r.state[name].probe = probe
	r.mu.Unlock()
	for {
		<-r.refresh(name)
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// refresh starts the condition's probe unless one runs, and returns a
// channel closed when the running probe ends.
func (r *Readiness) refresh(name string) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.state[name]
	if c.running != nil {
		return c.running
	}
	done := make(chan struct{})
	c.running = done
	go func() {
		err := c.probe()
		r.mu.Lock()
		c.running = nil
		r.mu.Unlock()
		if !errors.Is(err, context.Canceled) {
			r.Report(name)(err)
		}
		close(done)
	}()
	return done
}

// Check returns nil when every condition is ready. Watched conditions whose
// last result is older than Fresh are checked again first, waiting for them
// up to ProbeWait or until ctx ends.
func (r *Readiness) Check(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	var stale []string
	for n, c := range r.state {
		if c.probe != nil && time.Since(c.at) > Fresh {
			stale = append(stale, n)
		}
	}
	r.mu.Unlock()
	if len(stale) > 0 {
		wait, cancel := context.WithTimeout(ctx, ProbeWait)
		for _, n := range stale {
			select {
			case <-r.refresh(n):
			case <-wait.Done():
			}
		}
		cancel()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.state))
	for n := range r.state {
		names = append(names, n)
	}
	slices.Sort(names)
	var errs []error
	for _, n := range names {
		if why := r.state[n].why; why != "" {
			errs = append(errs, fmt.Errorf("%s: %s", n, why))
		}
	}
	return errors.Join(errs...)
}

// Route is an extra handler Serve mounts beside its own endpoints.
type Route struct {
	Pattern string
	Handler http.Handler
}

// Server is what Serve serves.
type Server struct {
	// Addr to listen on; empty serves nothing.
	Addr  string
	Ready *Readiness
	Log   *slog.Logger
	// Metrics are the component's metric families; the Go runtime's and the
	// process's are added.
	Metrics prometheus.Gatherer
	// Pprof mounts /debug/pprof/ (--pprof): profiles cost CPU and show
	// internals, so only when asked for.
	Pprof bool
}

// Serve runs the HTTP endpoints until ctx ends.
func Serve(ctx context.Context, s Server, routes ...Route) error {
	addr, ready, log := s.Addr, s.Ready, s.Log
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready.Check(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	runtime := prometheus.NewRegistry()
	runtime.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ridestream_ready",
			Help: "1 when /readyz would answer 200 (the component is connected, caught up and not retrying), 0 when not.",
		}, func() float64 {
			if ready.Check(ctx) != nil {
				return 0
			}
			return 1
		}))
	gatherers := prometheus.Gatherers{runtime}
	if s.Metrics != nil {
		gatherers = append(gatherers, s.Metrics)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{}))
	if s.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	for _, r := range routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--http-addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving /healthz, /readyz, /metrics", "addr", ln.Addr().String())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

// WaitLog says why a wait goes on: at its first Say, then at most once per
// interval, with how long it has waited so far, so a process that waits for
// something (a record, a topic, a broker) is never silent about it.
type WaitLog struct {
	log         *slog.Logger
	every       time.Duration
	start, last time.Time
}

// NewWaitLog returns a WaitLog that logs to log at most once per every.
func NewWaitLog(log *slog.Logger, every time.Duration) *WaitLog {
	return &WaitLog{log: log, every: every}
}

// Say logs msg with args (and the time waited) unless it logged less than
// the interval ago.
func (w *WaitLog) Say(msg string, args ...any) {
	now := time.Now()
	if w.start.IsZero() {
		w.start = now
	} else if now.Sub(w.last) < w.every {
		return
	}
	w.last = now
	w.log.Info(msg, append(args, "waiting_for", now.Sub(w.start).Round(time.Second))...)
}
