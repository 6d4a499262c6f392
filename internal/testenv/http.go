package testenv

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FreeAddr returns a loopback address with a port nobody listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Metric returns the value of one sample (name with labels, as exposed) from
// http://addr/metrics, and whether it was there.
func Metric(addr, sample string) (float64, bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f, true
			}
		}
	}
	return 0, false
}

// Readyz returns the status code and body of http://addr/readyz.
func Readyz(addr string) (int, string) {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// AwaitReadyz polls http://addr/readyz until want accepts its status code and
// body or limit passes, and returns the last reply and whether want accepted
// it: readiness follows background work, so a test waits for the state it
// expects instead of reading it once.
func AwaitReadyz(addr string, limit time.Duration, want func(code int, body string) bool) (int, string, bool) {
	deadline := time.Now().Add(limit)
	for {
		code, body := Readyz(addr)
		if want(code, body) {
			return code, body, true
		}
		if time.Now().After(deadline) {
			return code, body, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Ready accepts a 200 from /readyz (for AwaitReadyz).
func Ready(code int, _ string) bool { return code == http.StatusOK }
