package testenv

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// EnvArtifacts names the directory where tests leave files for a person to
// look at (screenshots); unset, os.TempDir()/ridestream-artifacts.
const EnvArtifacts = "RIDESTREAM_TEST_ARTIFACTS"

// Artifacts returns (and makes) the directory for the test's artifacts:
// $RIDESTREAM_TEST_ARTIFACTS or os.TempDir()/ridestream-artifacts, then the
// test's name. Unlike t.TempDir, it outlives the test.
func Artifacts(t testing.TB) string {
	t.Helper()
	root := os.Getenv(EnvArtifacts)
	if root == "" {
		root = filepath.Join(os.TempDir(), "ridestream-artifacts")
	}
	dir := filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Viewport is a browser window's size in CSS pixels.
type Viewport struct{ Width, Height int }

func (v Viewport) String() string { return fmt.Sprintf("%dx%d", v.Width, v.Height) }

// minWindowWidth is the narrowest window headless Chromium makes: a
// narrower --window-size gives a 500 px wide window (its screenshots are
// cut to the size asked for after the page has run at 500 px).
const minWindowWidth = 500

// DumpDOMAt is DumpDOM with a viewport of the given size (layout, and what
// the page's scripts measure, depend on it). Below headless Chromium's
// narrowest window it loads the page in an iframe of that size, through a
// proxy that makes the iframe same-origin, and returns the iframe's DOM
// (without the doctype).
func DumpDOMAt(t testing.TB, target string, size Viewport, budget time.Duration) string {
	t.Helper()
	if size.Width >= minWindowWidth {
		out, err := chromium(t, budget, "--window-size="+fmt.Sprintf("%d,%d", size.Width, size.Height), "--hide-scrollbars", "--dump-dom", target)
		if err != nil {
			t.Fatalf("chromium --dump-dom %s at %v: %v", target, size, err)
		}
		return string(out)
	}
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	mux := http.NewServeMux()
	mux.Handle("/", proxy)
	mux.HandleFunc("GET /testenv-frame", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(rw, framePage, html.EscapeString(u.RequestURI()), size.Width, size.Height)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	out, err := chromium(t, budget, fmt.Sprintf("--window-size=%d,%d", minWindowWidth, size.Height), "--hide-scrollbars", "--dump-dom", srv.URL+"/testenv-frame")
	if err != nil {
		t.Fatalf("chromium --dump-dom %s in a %v frame: %v", target, size, err)
	}
	m := frameCopy.FindSubmatch(out)
	if m == nil || len(m[1]) == 0 {
		t.Fatalf("chromium --dump-dom %s in a %v frame: no copy of the frame's DOM in\n%s", target, size, out)
	}
	return html.UnescapeString(string(m[1]))
}

// framePage shows a page in an iframe of a given size and keeps a copy of
// the iframe's DOM in its own, for --dump-dom.
const framePage = `<!doctype html>
<html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe id="frame" src="%s" style="display:block;border:0;width:%dpx;height:%dpx"></iframe>
<pre id="copy"></pre>
<script>
setInterval(function () {
  try {
    var d = document.getElementById("frame").contentDocument;
    if (d && d.documentElement) document.getElementById("copy").textContent = d.documentElement.outerHTML;
  } catch (e) {}
}, 100);
</script>
</body></html>`

var frameCopy = regexp.MustCompile(`(?s)<pre id="copy">(.*)</pre>`)

// Screenshot loads url in headless Chromium in a window of the given size,
// lets its scripts run for up to budget of virtual time, and saves what the
// window shows as a PNG at path.
func Screenshot(t testing.TB, url string, size Viewport, budget time.Duration, path string) {
	t.Helper()
	_ = os.Remove(path)
	if _, err := chromium(t, budget, "--window-size="+fmt.Sprintf("%d,%d", size.Width, size.Height), "--hide-scrollbars",
		"--screenshot="+path, url); err != nil {
		t.Fatalf("chromium --screenshot %s at %v: %v", url, size, err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Fatalf("chromium --screenshot %s at %v wrote no PNG at %s: %v", url, size, path, err)
	}
}

// chromium runs Debian's headless chromium with args after the common flags
// and returns its standard output.
func chromium(t testing.TB, budget time.Duration, args ...string) ([]byte, error) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (scripts/chromium.sh installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync", "--lang=en-US",
		"--user-data-dir=" + t.TempDir(), fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds())}
	cmd := exec.CommandContext(ctx, bin, append(flags, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v\n%s", err, stderr.String())
	}
	return out, nil
}
