package testenv

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ridestream/ridestream/views"
)

// ServeViews runs the views of p's pipeline with its database, waits (up
// to a minute) for the view to recover and serves their API. All of it
// stops when the test ends.
func (p *Pipeline) ServeViews(t testing.TB, clientID string) *httptest.Server {
	t.Helper()
	v, err := views.NewWindows(p.Topology(t))
	if err != nil {
		t.Fatal(err)
	}
	client, err := p.Env.Kafka.NewClient(clientID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	v.WithDatabase(p.Pool, client)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(time.Minute); !v.Recovered(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("view did not recover within a minute")
		}
	}
	srv := httptest.NewServer(v.Handler())
	t.Cleanup(srv.Close)
	return srv
}
