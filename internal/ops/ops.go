// Package ops serves what an operator watches: /healthz (the process is
// alive), /readyz (it is doing its job: connected, caught up, not retrying),
// /metrics (Prometheus) and /debug/pprof/ (Go profiles).
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness collects named conditions; the process is ready when all hold.
type Readiness struct {
	mu    sync.Mutex
	state map[string]string // name -> "" when ready, else why not
}

// NewReadiness starts with every named condition not ready.
func NewReadiness(names ...string) *Readiness {
	r := &Readiness{state: map[string]string{}}
	for _, n := range names {
		r.state[n] = "starting"
	}
	return r
}

// Set marks a condition ready (why == "") or not ready, saying why.
func (r *Readiness) Set(name, why string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.state[name] = why
	r.mu.Unlock()
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

// Check returns nil when every condition is ready.
func (r *Readiness) Check() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for n, why := range r.state {
		if why != "" {
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

// Serve runs the HTTP endpoints on addr until ctx ends. An empty addr serves nothing.
func Serve(ctx context.Context, addr string, ready *Readiness, log *slog.Logger, routes ...Route) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready.Check(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
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
