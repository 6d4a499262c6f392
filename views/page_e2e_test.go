package views_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/model"
	"github.com/ridestream/ridestream/internal/testenv"
	"github.com/ridestream/ridestream/views"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// pageAggregations are two tumbling aggregations, so the page offers a
// choice: hourly revenue per pickup zone, and the same per half hour.
const pageAggregations = `aggregations:
  - name: hourly_revenue
    window: 1h
    group_by: [PULocationID]
    measures: {num_trips: count, total_revenue: sum(total_amount)}
  - name: half_hourly_revenue
    window: 30m
    group_by: [PULocationID]
    measures: {num_trips: count, total_revenue: sum(total_amount), tips: sum(tip_amount)}
`

var (
	wide   = testenv.Viewport{Width: 1366, Height: 768}
	narrow = testenv.Viewport{Width: 390, Height: 844}
)

// TestChartPageShowsTheAPI runs a small pipeline in New York time whose
// last partition never gets its closing heartbeat (so its later windows
// stay open), serves the views with the pipeline's database, and loads the
// chart page in headless Chromium at 1366×768 and at 390×844: it saves a
// screenshot of each (under $RIDESTREAM_TEST_ARTIFACTS, default
// os.TempDir()/ridestream-artifacts) and checks the DOM against the API:
// every bar's numbers, hour labels in the pipeline's time zone, a revenue
// axis in dollars, one strip row per partition with the starved one marked
// as holding back, the selected window's state and top zones, the
// aggregation choice, and that nothing overflows horizontally.
func TestChartPageShowsTheAPI(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	rule := model.Rule{Size: time.Hour, Lateness: 5 * time.Minute, MaxFutureSkew: 24 * time.Hour, Location: ny}
	w := generate.Config{Seed: 212, Rides: 12_000, Partitions: 4, Hours: 12, OutOfOrder: 0.05, Late: 0.02, Malformed: 0.005,
		Lateness: rule.Lateness, IdlePartitions: 1, IdleAfter: 0.5, Heartbeats: true}
	starved := w.Partitions - 1
	in := testenv.WorkloadInput(w)
	all := in.Messages
	in.Messages = func(yield func(generate.Message) bool) {
		for m := range all {
			if m.Kind == generate.Heartbeat && m.Partition == starved {
				continue // the starved partition gets no closing heartbeat
			}
			if !yield(m) {
				return
			}
		}
	}
	in.Count = 0
	for range in.Messages {
		in.Count++
	}
	in.AllFinal = false
	p, _ := testenv.NewPipelineFor(t, testenv.Get(t), rule, in, 0)
	p.Declare(t, pageAggregations)
	p.RunAndVerify(t, "proc-page")

	srv := p.ServeViews(t, "test-page")
	api := &apiClient{t: t, base: srv.URL}
	dir := testenv.Artifacts(t)

	page := api.raw("/")
	if m := external.FindString(page); m != "" {
		t.Fatalf("the page loads %q from outside itself; it must be self-contained", m)
	}
	var pipe struct {
		TimeZone     string   `json:"time_zone"`
		Aggregations []string `json:"aggregations"`
		Partitions   int32    `json:"partitions"`
		Database     bool     `json:"database"`
	}
	api.get("/api/pipeline", &pipe)
	if pipe.TimeZone != "America/New_York" || len(pipe.Aggregations) != 2 || !pipe.Database || pipe.Partitions != w.Partitions {
		t.Fatalf("/api/pipeline: %+v", pipe)
	}
	var parts []views.PartitionJSON
	api.get("/api/partitions", &parts)
	hourly, half := pipe.Aggregations[0], pipe.Aggregations[1]
	var hourlyWindows, halfWindows []views.WindowJSON
	api.get("/api/windows?aggregation="+hourly, &hourlyWindows)
	api.get("/api/windows?aggregation="+half, &halfWindows)
	// What the page was checked against, next to its screenshots.
	api.save(filepath.Join(dir, "api-pipeline.json"), "/api/pipeline")
	api.save(filepath.Join(dir, "api-partitions.json"), "/api/partitions")
	for _, a := range pipe.Aggregations {
		api.save(filepath.Join(dir, "api-windows-"+a+".json"), "/api/windows?zones=1&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&aggregation="+a)
	}

	// Without a choice the page selects the oldest open window: the one
	// the starved partition holds back.
	oldestOpen := slices.IndexFunc(hourlyWindows, func(w views.WindowJSON) bool { return !w.Final })
	if oldestOpen < 0 || !slices.ContainsFunc(hourlyWindows, func(w views.WindowJSON) bool { return w.Final }) {
		t.Fatalf("want final and open hourly windows (without ?from= and ?to=, /api/windows lists the latest windows, final ones from PostgreSQL too); the API lists %+v", hourlyWindows)
	}
	// With ?window=, the busiest final half hour.
	var chosen views.WindowJSON
	for _, w := range halfWindows {
		if w.Final && w.RevenueCents > chosen.RevenueCents {
			chosen = w
		}
	}
	if !chosen.Final {
		t.Fatalf("no final half-hourly window: %+v", halfWindows)
	}
	looks := []struct {
		name   string
		size   testenv.Viewport
		query  string
		agg    string
		list   []views.WindowJSON
		detail views.WindowJSON
	}{
		{"page-1366x768", wide, "", hourly, hourlyWindows, hourlyWindows[oldestOpen]},
		{"page-390x844", narrow, "?aggregation=" + half + "&window=" + url.QueryEscape(chosen.Start.Format(time.RFC3339)), half, halfWindows, chosen},
	}
	var shots []string
	for _, c := range looks {
		target := srv.URL + "/" + c.query
		shot := filepath.Join(dir, c.name+".png")
		testenv.Screenshot(t, target, c.size, 6*time.Second, shot)
		checkPNG(t, shot, c.size)
		shots = append(shots, shot)
		dom := testenv.DumpDOMAt(t, target, c.size, 6*time.Second)
		if err := os.WriteFile(filepath.Join(dir, c.name+".html"), []byte(dom), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(c.name, func(t *testing.T) {
			body := attrs(tagPattern("body").FindString(dom))
			if body["data-loaded"] != "true" {
				t.Fatalf("the page did not render (status %q)", statusPattern.FindStringSubmatch(dom))
			}
			if body["data-width"] != strconv.Itoa(c.size.Width) {
				t.Fatalf("the page ran %q px wide, want %d", body["data-width"], c.size.Width)
			}
			if body["data-overflow"] != "false" {
				t.Errorf("at %v the page is wider than the window (data-overflow %q)", c.size, body["data-overflow"])
			}
			checkBars(t, dom, c.list)
			checkAxes(t, dom, ny, c.size)
			checkPartitions(t, dom, parts, starved)
			checkDetail(t, dom, api, c.agg, c.detail)
			checkChoice(t, dom, pipe.Aggregations, c.agg)
		})
	}
	// A third look, for people: the whole narrow page, below the fold too.
	full := filepath.Join(dir, "page-390x1700-full.png")
	testenv.Screenshot(t, srv.URL+"/"+looks[1].query, testenv.Viewport{Width: 390, Height: 1700}, 6*time.Second, full)
	shots = append(shots, full)
	for _, s := range shots {
		t.Logf("screenshot: %s", s)
	}
	t.Logf("the chart page at %v and %v shows what the API says: %d hourly windows (%d open, waiting for partition %d), %d half-hourly, %d partitions",
		wide, narrow, len(hourlyWindows), len(hourlyWindows)-oldestOpen, starved, len(halfWindows), len(parts))
}

// external matches what would make the page load something from outside
// itself.
var external = regexp.MustCompile(`(?i)<link[^>]*href|<script[^>]+src=|<img|<iframe|@import|@font-face|url\(\s*['"]?(https?:)?//`)

var statusPattern = regexp.MustCompile(`<div id="status">([^<]*)</div>`)

// barPattern is processors' checkPageDuringRun's: the bars must keep it.
var barPattern = regexp.MustCompile(`<rect [^>]*data-window-start="([^"]+)" data-revenue-cents="(-?\d+)" data-trips="(\d+)" data-final="(true|false)"[^>]*>`)

var attrPattern = regexp.MustCompile(`([a-zA-Z-]+)="([^"]*)"`)

// attrs returns the attributes of one start tag.
func attrs(tag string) map[string]string {
	out := map[string]string{}
	for _, m := range attrPattern.FindAllStringSubmatch(tag, -1) {
		out[m[1]] = strings.ReplaceAll(m[2], "&amp;", "&")
	}
	return out
}

// tagPattern matches start tags named name.
func tagPattern(name string) *regexp.Regexp { return regexp.MustCompile(`<` + name + `(\s[^>]*)?>`) }

// checkBars: one bar per window of the API, with its numbers, state and
// late revenue.
func checkBars(t *testing.T, dom string, list []views.WindowJSON) {
	t.Helper()
	bars := barPattern.FindAllStringSubmatch(dom, -1)
	if len(bars) != len(list) {
		t.Fatalf("%d bars, the API lists %d windows", len(bars), len(list))
	}
	for i, b := range bars {
		w := list[i]
		a := attrs(b[0])
		if b[1] != w.Start.Format(time.RFC3339) || b[2] != strconv.FormatInt(w.RevenueCents, 10) || b[3] != strconv.FormatInt(w.Trips, 10) ||
			b[4] != strconv.FormatBool(w.Final) || a["data-late-cents"] != strconv.FormatInt(w.LateRevenueCents, 10) {
			t.Fatalf("bar %d: %q; the API: %s %d cents %d trips final %v late %d cents", i, b[0], w.Start.Format(time.RFC3339),
				w.RevenueCents, w.Trips, w.Final, w.LateRevenueCents)
		}
		if want := map[bool]string{true: "bar final", false: "bar open"}[w.Final]; !strings.HasPrefix(a["class"], want) {
			t.Fatalf("bar %s has class %q, want %q", b[1], a["class"], want)
		}
	}
	late := 0
	for _, w := range list {
		if w.LateRevenueCents > 0 {
			late++
		}
	}
	if caps := len(regexp.MustCompile(`<rect class="late"`).FindAllString(dom, -1)); caps != late {
		t.Fatalf("%d late-revenue caps, the API has %d windows with late revenue", caps, late)
	}
}

var tickPattern = regexp.MustCompile(`<text class="tick-x" data-t="([^"]+)" x="([^"]+)"[^>]*>([^<]+)</text>`)

// checkAxes: round hours of New York's clock on the time axis, far enough
// apart not to overlap, and a revenue axis in dollars.
func checkAxes(t *testing.T, dom string, loc *time.Location, size testenv.Viewport) {
	t.Helper()
	ticks := tickPattern.FindAllStringSubmatch(dom, -1)
	if len(ticks) < 3 || len(ticks) > size.Width/50 {
		t.Fatalf("%d hour labels at width %d: %q", len(ticks), size.Width, ticks)
	}
	last := -1e9
	for _, m := range ticks {
		at, err := time.Parse(time.RFC3339, m[1])
		if err != nil {
			t.Fatal(err)
		}
		local := at.In(loc)
		if local.Minute() != 0 || m[3] != local.Format("15:04") {
			t.Fatalf("hour label %q at %s; New York's clock shows %s", m[3], m[1], local.Format("15:04"))
		}
		x, _ := strconv.ParseFloat(m[2], 64)
		if x-last < 50 {
			t.Fatalf("hour labels %v px apart: %q", x-last, ticks)
		}
		last = x
	}
	if !regexp.MustCompile(`<text class="axis-label" id="y-label"[^>]*>[^<]*\(\$\)</text>`).MatchString(dom) {
		t.Fatal("no revenue axis label with its unit ($)")
	}
	ys := regexp.MustCompile(`<text class="tick-y"[^>]*>([^<]+)</text>`).FindAllStringSubmatch(dom, -1)
	if len(ys) < 3 {
		t.Fatalf("%d revenue axis labels", len(ys))
	}
	for _, y := range ys {
		if !strings.HasPrefix(y[1], "$") {
			t.Fatalf("revenue axis label %q is not in dollars", y[1])
		}
	}
	if n := strings.Count(dom, `<line class="grid"`); n != len(ys) {
		t.Fatalf("%d gridlines for %d revenue labels", n, len(ys))
	}
	t.Logf("time axis %q", ticks)
}

// checkPartitions: one strip row per input partition with the API's
// stream time and lag, only the starved one holding back.
func checkPartitions(t *testing.T, dom string, parts []views.PartitionJSON, starved int32) {
	t.Helper()
	rows := regexp.MustCompile(`<div [^>]*data-partition="[^"]*"[^>]*>`).FindAllString(dom, -1)
	if len(rows) != len(parts) {
		t.Fatalf("%d partition rows, the API lists %d partitions", len(rows), len(parts))
	}
	for i, r := range rows {
		a, p := attrs(r), parts[i]
		st := ""
		if p.StreamTime != nil {
			st = p.StreamTime.Format(time.RFC3339Nano)
		}
		if a["data-partition"] != strconv.Itoa(int(p.Partition)) || a["data-stream-time"] != st || a["data-lag"] != strconv.FormatInt(p.Lag, 10) ||
			a["data-holds-back"] != strconv.FormatBool(p.HoldsBack) {
			t.Fatalf("partition row %q; the API: %+v", r, p)
		}
		if holds := a["data-holds-back"] == "true"; holds != (p.Partition == starved) || holds != strings.Contains(a["class"], "holds") {
			t.Fatalf("partition row %q: only partition %d holds back the oldest open window", r, starved)
		}
	}
	if !regexp.MustCompile(`<span class="holds-tag">holds back the oldest open window[^<]*</span>`).MatchString(dom) {
		t.Fatal("the starved partition's row does not say it holds back the oldest open window")
	}
}

// checkDetail: the selected window's state, numbers, what it waits for,
// and its top zones as the API lists them.
func checkDetail(t *testing.T, dom string, api *apiClient, agg string, want views.WindowJSON) {
	t.Helper()
	d := attrs(regexp.MustCompile(`<aside [^>]*id="detail"[^>]*>`).FindString(dom))
	waiting := make([]string, len(want.Waiting))
	for i, p := range want.Waiting {
		waiting[i] = strconv.Itoa(int(p))
	}
	if d["data-window-start"] != want.Start.Format(time.RFC3339) || d["data-state"] != want.State || d["data-trips"] != strconv.FormatInt(want.Trips, 10) ||
		d["data-revenue-cents"] != strconv.FormatInt(want.RevenueCents, 10) || d["data-waiting"] != strings.Join(waiting, ",") {
		t.Fatalf("selected window %v; the API: %+v", d, want)
	}
	if !want.Final && !strings.Contains(dom, "waits for partition "+strings.Join(waiting, ", ")) {
		t.Fatalf("the open window does not say it waits for partition %v", waiting)
	}
	// The API's zones, by revenue (then trips, then zone), the top ten.
	q := "/api/windows?zones=1&aggregation=" + agg + "&from=" + url.QueryEscape(want.Start.Format(time.RFC3339Nano)) +
		"&to=" + url.QueryEscape(want.Start.Add(time.Millisecond).Format(time.RFC3339Nano))
	var one []struct {
		Zones []struct {
			Zone    *int64 `json:"PULocationID"`
			Trips   int64  `json:"num_trips"`
			Revenue string `json:"total_revenue"`
		} `json:"zones"`
	}
	api.get(q, &one)
	if len(one) != 1 || len(one[0].Zones) == 0 {
		t.Fatalf("GET %s: %+v", q, one)
	}
	zs := one[0].Zones
	cents := func(s string) int64 {
		neg := strings.HasPrefix(s, "-")
		i, f, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
		n, _ := strconv.ParseInt(i+(f + "00")[:2], 10, 64)
		if neg {
			return -n
		}
		return n
	}
	slices.SortFunc(zs, func(x, y struct {
		Zone    *int64 `json:"PULocationID"`
		Trips   int64  `json:"num_trips"`
		Revenue string `json:"total_revenue"`
	}) int {
		zx, zy := int64(-1), int64(-1)
		if x.Zone != nil {
			zx = *x.Zone
		}
		if y.Zone != nil {
			zy = *y.Zone
		}
		return cmp.Or(cmp.Compare(cents(y.Revenue), cents(x.Revenue)), cmp.Compare(y.Trips, x.Trips), cmp.Compare(zx, zy))
	})
	rows := regexp.MustCompile(`<tr class="zone"[^>]*>`).FindAllString(dom, -1)
	if len(rows) != min(len(zs), 10) {
		t.Fatalf("%d zone rows; the API has %d zones", len(rows), len(zs))
	}
	for i, r := range rows {
		a, z := attrs(r), zs[i]
		zone := ""
		if z.Zone != nil {
			zone = strconv.FormatInt(*z.Zone, 10)
		}
		if a["data-zone"] != zone || a["data-trips"] != strconv.FormatInt(z.Trips, 10) || a["data-revenue"] != z.Revenue {
			t.Fatalf("zone row %d %q; the API's %d-th zone by revenue: %s, %d trips, %s", i, r, i+1, zone, z.Trips, z.Revenue)
		}
	}
}

// checkChoice: a choice of the pipeline's aggregations, the shown one
// selected.
func checkChoice(t *testing.T, dom string, aggs []string, agg string) {
	t.Helper()
	if !regexp.MustCompile(`<label id="agg-picker">`).MatchString(dom) {
		t.Fatal("the aggregation picker is hidden though the pipeline has two tumbling aggregations")
	}
	opts := regexp.MustCompile(`<option value="([^"]+)"( selected="")?>`).FindAllStringSubmatch(dom, -1)
	var got []string
	selected := ""
	for _, o := range opts {
		got = append(got, o[1])
		if o[2] != "" {
			selected = o[1]
		}
	}
	if !slices.Equal(got, aggs) {
		t.Fatalf("aggregation options %q, want %q", got, aggs)
	}
	if selected != agg {
		t.Fatalf("the picker shows %q selected, the chart %q", selected, agg)
	}
	if !strings.Contains(dom, `<h2 id="chart-title">`) {
		t.Fatal("no chart title")
	}
}

// checkPNG: a PNG of the window's size.
func checkPNG(t *testing.T, path string, size testenv.Viewport) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r := img.Bounds(); r.Dx() != size.Width || r.Dy() != size.Height {
		t.Fatalf("%s is %dx%d, want %v", path, r.Dx(), r.Dy(), size)
	}
}

type apiClient struct {
	t    *testing.T
	base string
}

func (c *apiClient) raw(path string) string {
	c.t.Helper()
	resp, err := http.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %d %v: %s", path, resp.StatusCode, err, b)
	}
	return string(b)
}

func (c *apiClient) get(path string, into any) {
	c.t.Helper()
	if err := json.Unmarshal([]byte(c.raw(path)), into); err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
}

func (c *apiClient) save(file, path string) {
	c.t.Helper()
	if err := os.WriteFile(file, []byte(c.raw(path)), 0o644); err != nil {
		c.t.Fatal(fmt.Errorf("save %s: %w", path, err))
	}
}
