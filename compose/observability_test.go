package compose

// The compose stack's Prometheus and Grafana, checked without a Docker
// engine: prometheus.yml scrapes the services that serve /metrics on their
// real ports and loads alerts.yml, which Prometheus' own rule parser
// accepts; Grafana's provisioned dashboard uses the provisioned datasource;
// and every metric that a dashboard panel or an alert queries is exported,
// with the labels the query selects, by the service its job scrapes, as the
// ridestream binary runs process, sink and views over a small pipeline.

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/testenv"
)

const (
	prometheusConfig = "prometheus/prometheus.yml"
	datasourcesDir   = "grafana/provisioning/datasources"
	providersDir     = "grafana/provisioning/dashboards"
)

// promQL parses as Prometheus does with its default feature flags.
var promQL = parser.NewParser(parser.Options{})

// ---------------------------------------------------------------------------
// prometheus.yml: the part of Prometheus' configuration the stack uses,
// decoded strictly (a misspelt key is an error). Prometheus' own config
// package would bring every service discovery (Kubernetes, clouds) into
// go.mod, so the file is checked here instead.

type promScrapeConfig struct {
	JobName        string `yaml:"job_name"`
	ScrapeInterval string `yaml:"scrape_interval"`
	MetricsPath    string `yaml:"metrics_path"`
	StaticConfigs  []struct {
		Targets []string          `yaml:"targets"`
		Labels  map[string]string `yaml:"labels"`
	} `yaml:"static_configs"`
}

type promConfigFile struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string           `yaml:"rule_files"`
	ScrapeConfigs []promScrapeConfig `yaml:"scrape_configs"`
}

func strictYAML(t *testing.T, file string, out any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	d := yaml.NewDecoder(strings.NewReader(string(b)))
	d.KnownFields(true)
	if err := d.Decode(out); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// mounted is the file or directory of this directory that a service's bind
// mount shows at containerPath, and whether one does.
func mounted(s service, containerPath string) (string, bool) {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue
		}
		src, dst := parts[0], path.Clean(parts[1])
		if rel, ok := strings.CutPrefix(path.Clean(containerPath), dst); ok && (rel == "" || strings.HasPrefix(rel, "/")) {
			return filepath.Join(src, filepath.FromSlash(rel)), true
		}
	}
	return "", false
}

// scrapeJobs maps each of prometheus.yml's jobs to the compose service it
// scrapes, checking the target is that service's HTTP address.
func scrapeJobs(t *testing.T, cf composeFile, pc promConfigFile) map[string]string {
	t.Helper()
	jobs := map[string]string{}
	for _, sc := range pc.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %q, ridestream serves /metrics", sc.JobName, sc.MetricsPath)
		}
		if _, dup := jobs[sc.JobName]; dup {
			t.Errorf("%s: job %q twice", prometheusConfig, sc.JobName)
		}
		var targets []string
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
			if _, ok := st.Labels["job"]; ok {
				t.Errorf("job %s: a static label job would hide the job name the dashboard and alerts select", sc.JobName)
			}
		}
		if len(targets) != 1 {
			t.Errorf("job %s: targets %q, want the one service of its name", sc.JobName, targets)
			continue
		}
		host, port, err := net.SplitHostPort(targets[0])
		if err != nil {
			t.Errorf("job %s: target %q: %v", sc.JobName, targets[0], err)
			continue
		}
		s, ok := cf.Services[host]
		if !ok {
			t.Errorf("job %s scrapes %s, which is no compose service", sc.JobName, targets[0])
			continue
		}
		addr, _ := env(t, s, "RIDESTREAM_HTTP_ADDR")
		if _, p, err := net.SplitHostPort(addr); err != nil || p != port {
			t.Errorf("job %s scrapes %s, but %s serves HTTP on %q", sc.JobName, targets[0], host, addr)
		}
		if sc.JobName != host {
			t.Errorf("job %s scrapes service %s: name the job after its service (the dashboard and the alerts select job=\"<service>\")", sc.JobName, host)
		}
		jobs[sc.JobName] = host
	}
	for _, name := range httpServices {
		if jobs[name] != name {
			t.Errorf("%s: no job scrapes %s's /metrics", prometheusConfig, name)
		}
	}
	return jobs
}

func loadPrometheus(t *testing.T) (composeFile, promConfigFile, map[string]string) {
	t.Helper()
	cf := loadCompose(t)
	var pc promConfigFile
	strictYAML(t, prometheusConfig, &pc)
	return cf, pc, scrapeJobs(t, cf, pc)
}

// ruleFiles are the host paths of the rule files prometheus.yml loads.
func ruleFiles(t *testing.T, cf composeFile, pc promConfigFile) []string {
	t.Helper()
	prom := cf.Services["prometheus"]
	var out []string
	for _, rf := range pc.RuleFiles {
		host, ok := mounted(prom, rf)
		if !ok {
			t.Errorf("%s: rule file %s is mounted from nowhere in the prometheus service (volumes %q)", prometheusConfig, rf, prom.Volumes)
			continue
		}
		if _, err := os.Stat(host); err != nil {
			t.Errorf("rule file %s: %v", rf, err)
			continue
		}
		out = append(out, host)
	}
	if len(out) == 0 {
		t.Fatalf("%s loads no rule file", prometheusConfig)
	}
	return out
}

// parseRules parses a rule file as Prometheus does when it loads it.
func parseRules(file string) (*rulefmt.RuleGroups, []error) {
	return rulefmt.ParseFile(file, false, model.UTF8Validation, promQL, slog.New(slog.DiscardHandler))
}

// imageTag is an image pinned to a release.
var imageTag = regexp.MustCompile(`^[a-z0-9./-]+:v?\d+\.\d+\.\d+$`)

func TestPrometheusConfig(t *testing.T) {
	cf, pc, _ := loadPrometheus(t)
	prom, ok := cf.Services["prometheus"]
	if !ok {
		t.Fatal("no prometheus service")
	}
	for name, want := range map[string]string{"prometheus": "prom/prometheus:", "grafana": "grafana/grafana:"} {
		img := cf.Services[name].Image
		if !strings.HasPrefix(img, want) || !imageTag.MatchString(img) {
			t.Errorf("%s image %q: want %s<x.y.z>, a pinned release", name, img, want)
		}
	}
	for _, d := range []string{pc.Global.ScrapeInterval, pc.Global.EvaluationInterval} {
		if _, err := model.ParseDuration(d); err != nil {
			t.Errorf("%s: global interval %q: %v", prometheusConfig, d, err)
		}
	}
	var cmd []string
	if prom.Command != nil {
		cmd = *prom.Command
	}
	var configFile string
	for _, a := range cmd {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			configFile = v
		}
	}
	if configFile == "" {
		configFile = "/etc/prometheus/prometheus.yml" // the image's default
	}
	if host, ok := mounted(prom, configFile); !ok || filepath.Clean(host) != filepath.Clean(prometheusConfig) {
		t.Errorf("prometheus reads %s, mounted from %q (%v), want ./%s", configFile, host, ok, prometheusConfig)
	}
	if !slices.Contains(cmd, "--storage.tsdb.path=/prometheus") {
		t.Errorf("prometheus command %q: keep --storage.tsdb.path=/prometheus (its volume)", cmd)
	}
	for _, v := range prom.Volumes {
		if strings.HasPrefix(v, ".") {
			if _, err := os.Stat(strings.Split(v, ":")[0]); err != nil {
				t.Errorf("prometheus mounts %s: %v", v, err)
			}
		}
	}
	if files := ruleFiles(t, cf, pc); !slices.Contains(files, filepath.Join("prometheus", "alerts.yml")) {
		t.Errorf("prometheus does not load prometheus/alerts.yml (loads %q)", files)
	}
}

// The alerts the stack promises, each saying what to do.
var wantAlerts = []string{"RidestreamProcessorLagGrowing", "RidestreamSinkLagGrowing", "RidestreamWindowHeldBack",
	"RidestreamRejectedRateHigh", "RidestreamNotReady", "RidestreamDown", "RidestreamSinkRetrying"}

func TestAlertRules(t *testing.T) {
	cf, pc, _ := loadPrometheus(t)
	var alerts []string
	for _, file := range ruleFiles(t, cf, pc) {
		groups, errs := parseRules(file)
		for _, err := range errs {
			t.Errorf("Prometheus would refuse %s: %v", file, err)
		}
		if groups == nil {
			continue
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				alerts = append(alerts, r.Alert)
				for _, k := range []string{"summary", "description"} {
					if strings.TrimSpace(r.Annotations[k]) == "" {
						t.Errorf("alert %s: no %s annotation", r.Alert, k)
					}
				}
				if r.Labels["severity"] == "" {
					t.Errorf("alert %s: no severity label", r.Alert)
				}
			}
		}
	}
	for _, a := range wantAlerts {
		if !slices.Contains(alerts, a) {
			t.Errorf("no alert %s (have %v)", a, alerts)
		}
	}
	t.Logf("%d alerts, accepted by Prometheus' rule parser: %v", len(alerts), alerts)
}

// The rule check is Prometheus' own: it refuses what Prometheus refuses.
func TestParseRulesRefusesBadRules(t *testing.T) {
	for name, body := range map[string]string{
		"bad PromQL":      "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n",
		"bad template":    "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotations:\n          summary: \"{{ $labels.job \"\n",
		"unknown field":   "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        four: 5m\n",
		"duplicate group": "groups:\n  - name: g\n    rules: [{alert: A, expr: up == 0}]\n  - name: g\n    rules: [{alert: B, expr: up == 0}]\n",
	} {
		f := filepath.Join(t.TempDir(), "rules.yml")
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, errs := parseRules(f); len(errs) == 0 {
			t.Errorf("%s: accepted\n%s", name, body)
		}
	}
}

// ---------------------------------------------------------------------------
// Grafana: the provisioned datasource and dashboards.

type datasourcesFile struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name      string         `yaml:"name"`
		UID       string         `yaml:"uid"`
		Type      string         `yaml:"type"`
		Access    string         `yaml:"access"`
		URL       string         `yaml:"url"`
		IsDefault bool           `yaml:"isDefault"`
		Editable  bool           `yaml:"editable"`
		JSONData  map[string]any `yaml:"jsonData"`
	} `yaml:"datasources"`
}

type providersFile struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name                  string `yaml:"name"`
		Type                  string `yaml:"type"`
		Folder                string `yaml:"folder"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		Options               struct {
			Path string `yaml:"path"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

type panelJSON struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Datasource  *dsRef      `json:"datasource"`
	GridPos     gridPos     `json:"gridPos"`
	Targets     []target    `json:"targets"`
	Panels      []panelJSON `json:"panels"` // a collapsed row's
	Description string      `json:"description"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gridPos struct{ H, W, X, Y int }

type target struct {
	RefID      string `json:"refId"`
	Datasource *dsRef `json:"datasource"`
	Expr       string `json:"expr"`
}

type dashboardJSON struct {
	UID        string      `json:"uid"`
	Title      string      `json:"title"`
	Panels     []panelJSON `json:"panels"`
	Templating struct {
		List []json.RawMessage `json:"list"`
	} `json:"templating"`
}

// query is a PromQL expression and where it comes from.
type query struct{ from, expr string }

// grafanaQueries checks the provisioning and returns every panel's query.
func grafanaQueries(t *testing.T, cf composeFile) []query {
	t.Helper()
	graf, ok := cf.Services["grafana"]
	if !ok {
		t.Fatal("no grafana service")
	}
	if host, ok := mounted(graf, "/etc/grafana/provisioning"); !ok || filepath.Clean(host) != filepath.Join("grafana", "provisioning") {
		t.Fatalf("grafana: /etc/grafana/provisioning mounted from %q (%v), want ./grafana/provisioning", host, ok)
	}
	// The datasource: the stack's Prometheus.
	dsFiles, _ := filepath.Glob(filepath.Join(datasourcesDir, "*.yml"))
	if len(dsFiles) != 1 {
		t.Fatalf("%s: %d files, want one", datasourcesDir, len(dsFiles))
	}
	var ds datasourcesFile
	strictYAML(t, dsFiles[0], &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("%s: apiVersion %d, %d datasources; want 1 and one", dsFiles[0], ds.APIVersion, len(ds.Datasources))
	}
	src := ds.Datasources[0]
	u, err := url.Parse(src.URL)
	if src.Type != "prometheus" || src.UID == "" || err != nil || u.Scheme != "http" || u.Host != "prometheus:9090" {
		t.Errorf("datasource %+v: want type prometheus with a uid, at http://prometheus:9090 (%v)", src, err)
	}
	if _, ok := cf.Services[u.Hostname()]; !ok {
		t.Errorf("datasource URL %s: no service %s", src.URL, u.Hostname())
	}
	var pc promConfigFile
	strictYAML(t, prometheusConfig, &pc)
	if ti, _ := src.JSONData["timeInterval"].(string); ti != pc.Global.ScrapeInterval {
		t.Errorf("datasource timeInterval %q, Prometheus scrapes every %q: $__rate_interval needs them equal", ti, pc.Global.ScrapeInterval)
	}

	// The dashboards: the files the provider's path shows.
	provFiles, _ := filepath.Glob(filepath.Join(providersDir, "*.yml"))
	if len(provFiles) != 1 {
		t.Fatalf("%s: %d files, want one", providersDir, len(provFiles))
	}
	var pf providersFile
	strictYAML(t, provFiles[0], &pf)
	if pf.APIVersion != 1 || len(pf.Providers) != 1 || pf.Providers[0].Type != "file" {
		t.Fatalf("%s: want apiVersion 1 and one provider of type file", provFiles[0])
	}
	dir, ok := mounted(graf, pf.Providers[0].Options.Path)
	if !ok {
		t.Fatalf("grafana: the provider's path %s is mounted from nowhere (volumes %q)", pf.Providers[0].Options.Path, graf.Volumes)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Fatalf("%s: no dashboard", dir)
	}
	if home, ok := graf.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; ok {
		if host, ok := mounted(graf, home); !ok || !slices.Contains(files, host) {
			t.Errorf("grafana's home dashboard %s is not one of the provisioned %q", home, files)
		}
	}
	var out []query
	for _, f := range files {
		out = append(out, dashboardQueries(t, f, src.UID)...)
	}
	return out
}

// dashboardQueries checks one dashboard's layout and datasources and
// returns its queries.
func dashboardQueries(t *testing.T, file, dsUID string) []query {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboardJSON
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: no uid or title", file)
	}
	if len(d.Templating.List) > 0 {
		t.Errorf("%s: template variables: this test substitutes Grafana's global ones only", file)
	}
	var all []panelJSON
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	ids := map[int]string{}
	var out []query
	var placed []panelJSON
	for _, p := range all {
		where := fmt.Sprintf("%s panel %q", filepath.Base(file), p.Title)
		if prev, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("%s: id %d (also %q)", where, p.ID, prev)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24-column grid", where, g)
		}
		for _, q := range placed {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("%s overlaps panel %q (%+v, %+v)", where, q.Title, g, h)
			}
		}
		placed = append(placed, p)
		if p.Type == "row" {
			continue
		}
		if p.Description == "" {
			t.Errorf("%s: no description", where)
		}
		if p.Datasource == nil || p.Datasource.UID != dsUID {
			t.Errorf("%s: datasource %+v, want the provisioned uid %q", where, p.Datasource, dsUID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no query", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if refs[tg.RefID] || tg.RefID == "" {
				t.Errorf("%s: refId %q empty or repeated", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != dsUID {
				t.Errorf("%s %s: datasource %+v, want uid %q", where, tg.RefID, tg.Datasource, dsUID)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s %s: empty expr", where, tg.RefID)
				continue
			}
			out = append(out, query{from: where + " " + tg.RefID, expr: tg.Expr})
		}
	}
	return out
}

// grafanaVars are Grafana's global variables that a query may use, with a
// value of their kind for parsing.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$__range", "1h")

// The dashboard has a panel for each thing an operator watches.
var wantDashboardMetrics = []string{
	"ridestream_processor_messages_total",       // throughput: input read
	"ridestream_sink_rows_total",                // throughput: rows landed
	"ridestream_processor_consumer_lag",         // lag per stage
	"ridestream_sink_consumer_lag",              // the sink's lag
	"ridestream_processor_stream_time_seconds",  // stream time per partition
	"ridestream_processor_watermark_seconds",    // the global watermark
	"ridestream_open_windows",                   // open windows
	"ridestream_oldest_open_window_age_seconds", // their oldest's age
	"ridestream_processor_outputs_total",        // late and rejected
	"ridestream_sink_batch_seconds_bucket",      // batch latency
	"ridestream_sink_retrying",                  // PostgreSQL retry state
	"ridestream_ready",                          // readiness
}

func TestGrafanaProvisioning(t *testing.T) {
	cf := loadCompose(t)
	queries := grafanaQueries(t, cf)
	used := map[string]bool{}
	for _, q := range queries {
		sels, err := selectors(grafanaVars.Replace(q.expr))
		if err != nil {
			t.Errorf("%s: %v", q.from, err)
		}
		for _, s := range sels {
			used[s.name] = true
		}
	}
	for _, m := range wantDashboardMetrics {
		if !used[m] {
			t.Errorf("no dashboard panel queries %s", m)
		}
	}
	t.Logf("%d dashboard queries over %d metrics", len(queries), len(used))
}

// ---------------------------------------------------------------------------
// PromQL selectors and exported series.

// selector is one vector selector of a query: a metric name and the other
// label matchers.
type selector struct {
	name     string
	matchers []*labels.Matcher
}

func (s selector) String() string {
	var ms []string
	for _, m := range s.matchers {
		ms = append(ms, m.String())
	}
	return s.name + "{" + strings.Join(ms, ", ") + "}"
}

// selectors parses expr with Prometheus' PromQL parser and returns its
// vector selectors (in range vectors and subqueries too).
func selectors(expr string) ([]selector, error) {
	e, err := promQL.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var out []selector
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		s := selector{name: vs.Name}
		for _, m := range vs.LabelMatchers {
			if m.Name != labels.MetricName {
				s.matchers = append(s.matchers, m)
			} else if m.Type != labels.MatchEqual {
				bad = fmt.Errorf("%s: a metric name by %s; name it, so that it can be checked", expr, m)
			} else {
				s.name = m.Value
			}
		}
		out = append(out, s)
		return nil
	})
	if bad != nil {
		return nil, bad
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: queries no metric", expr)
	}
	return out, nil
}

// series is one exported sample's series, named as Prometheus stores it.
type series struct {
	name   string
	labels map[string]string
}

// exposition reads a /metrics page into its families and the series
// Prometheus makes of them (a histogram's _bucket, _sum and _count).
func exposition(r io.Reader) (map[string]*dto.MetricFamily, []series, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, nil, err
	}
	var out []series
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			base := map[string]string{}
			for _, l := range m.GetLabel() {
				base[l.GetName()] = l.GetValue()
			}
			with := func(k, v string) map[string]string {
				c := map[string]string{k: v}
				for a, b := range base {
					c[a] = b
				}
				return c
			}
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				for _, b := range m.GetHistogram().GetBucket() {
					out = append(out, series{name + "_bucket", with("le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))})
				}
				out = append(out, series{name + "_bucket", with("le", "+Inf")}, series{name + "_sum", base}, series{name + "_count", base})
			case dto.MetricType_SUMMARY:
				for _, q := range m.GetSummary().GetQuantile() {
					out = append(out, series{name, with("quantile", strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64))})
				}
				out = append(out, series{name + "_sum", base}, series{name + "_count", base})
			default:
				out = append(out, series{name, base})
			}
		}
	}
	return fams, out, nil
}

func scrape(addr string) (map[string]*dto.MetricFamily, []series, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return exposition(resp.Body)
}

// targetLabels are the labels Prometheus gives every series of a target;
// they are checked against the scrape jobs, not the exposition.
var targetLabels = []string{"job", "instance"}

// perTarget are the series Prometheus writes itself for every target.
var perTarget = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"}

// unmatched says why no scraped series answers s ("" when one does): jobs
// are the scrape jobs with their service's series.
func unmatched(s selector, jobs map[string][]series) string {
	var candidates []string
	for job := range jobs {
		if !slices.ContainsFunc(s.matchers, func(m *labels.Matcher) bool { return m.Name == "job" && !m.Matches(job) }) {
			candidates = append(candidates, job)
		}
	}
	slices.Sort(candidates)
	if len(candidates) == 0 {
		return "selects no scrape job"
	}
	if slices.Contains(perTarget, s.name) {
		return ""
	}
	named := false
	for _, job := range candidates {
		for _, ser := range jobs[job] {
			if ser.name != s.name {
				continue
			}
			named = true
			if matchesAll(s.matchers, ser.labels) {
				return ""
			}
		}
	}
	if named {
		return fmt.Sprintf("exported by job %v, but no series has the labels it selects", candidates)
	}
	return fmt.Sprintf("not exported by job %v", candidates)
}

func matchesAll(ms []*labels.Matcher, ls map[string]string) bool {
	for _, m := range ms {
		if slices.Contains(targetLabels, m.Name) {
			continue
		}
		if !m.Matches(ls[m.Name]) {
			return false
		}
	}
	return true
}

func TestUnmatched(t *testing.T) {
	jobs := map[string][]series{
		"process": {{"ridestream_processor_outputs_total", map[string]string{"kind": "late"}}},
		"sink":    {{"ridestream_sink_batch_seconds_bucket", map[string]string{"le": "0.005"}}},
	}
	for expr, want := range map[string]string{
		`rate(ridestream_processor_outputs_total{kind="late"}[5m])`:                "",
		`ridestream_processor_outputs_total{job="process", kind=~"late|rejected"}`: "",
		`up{job="sink"}`: "",
		`histogram_quantile(0.9, rate(ridestream_sink_batch_seconds_bucket[1m]))`: "",
		`ridestream_processor_outputs_total{kind="final"}`:                        "no series has the labels",
		`ridestream_processor_outputs_total{job="sink"}`:                          "not exported by job [sink]",
		`ridestream_processor_outputs_totl`:                                       "not exported",
		`up{job="grafana"}`:                                                       "selects no scrape job",
		`min_over_time(sum(deriv(ridestream_sink_retrying[5m]))[10m:1m])`:         "not exported",
	} {
		sels, err := selectors(expr)
		if err != nil || len(sels) != 1 {
			t.Fatalf("selectors(%s) = %v, %v", expr, sels, err)
		}
		got := unmatched(sels[0], jobs)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", expr, got, want)
		}
	}
	if _, err := selectors(`{__name__=~"ridestream_.*"}`); err == nil {
		t.Error("a metric name by regular expression was accepted")
	}
	if _, err := selectors(`sum(rate(x[5m])`); err == nil {
		t.Error("bad PromQL was accepted")
	}
}

// TestMonitoringMatchesMetrics runs process, sink and views over a small
// pipeline and checks that every metric the dashboard and the alerts query
// is exported, with the labels selected, by the service its job scrapes;
// and that each service exports its own families only.
func TestMonitoringMatchesMetrics(t *testing.T) {
	cf, pc, jobs := loadPrometheus(t)
	queries := grafanaQueries(t, cf)
	panelQueries := len(queries)
	for _, file := range ruleFiles(t, cf, pc) {
		groups, errs := parseRules(file)
		if len(errs) > 0 {
			t.Fatalf("Prometheus would refuse %s: %v", file, errs)
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				queries = append(queries, query{from: fmt.Sprintf("%s rule %s%s", file, r.Alert, r.Record), expr: r.Expr})
			}
		}
	}
	type use struct {
		sel  selector
		from string
	}
	var uses []use
	for _, q := range queries {
		sels, err := selectors(grafanaVars.Replace(q.expr))
		if err != nil {
			t.Fatalf("%s: %v", q.from, err)
		}
		for _, s := range sels {
			uses = append(uses, use{s, q.from})
		}
	}

	env := testenv.Get(t)
	w := generate.Config{Seed: 97, Rides: 10_000, Partitions: 4, Hours: 4, OutOfOrder: 0.05, Late: 0.01, Malformed: 0.01,
		Lateness: 5 * time.Minute, Heartbeats: true}
	p, _ := testenv.NewPipeline(t, w, 0)
	addrs := map[string]string{"process": testenv.FreeAddr(t), "sink": testenv.FreeAddr(t), "views": testenv.FreeAddr(t)}
	proc := testenv.StartProc(t, "process.log", append(p.ProcessArgs("proc-metrics"), "--http-addr", addrs["process"], "--lag-interval", "1s")...)
	snk := testenv.StartProc(t, "sink.log", append(p.SinkArgs(), "--http-addr", addrs["sink"])...)
	vw := testenv.StartProc(t, "views.log", append(append([]string{"views"}, env.KafkaArgs...),
		"--prefix", p.Prefix, "--database-url", p.DBURL, "--http-addr", addrs["views"])...)
	procs := map[string]*testenv.Proc{"process": proc, "sink": snk, "views": vw}
	logs := func() string {
		var b strings.Builder
		for _, name := range httpServices {
			fmt.Fprintf(&b, "--- %s (exited %v)\n%s\n", name, procs[name].Exited(), procs[name].Tail(3000))
		}
		return b.String()
	}
	p.Started = time.Now()
	el := p.WaitDone(t, 3*time.Minute, proc, snk)
	t.Logf("%d records to raw rows and %d final rows in %v (%s)", p.Total, p.FinalCount(), el.Round(time.Millisecond), env.BrokerKind)
	if code, body, ok := testenv.AwaitReadyz(addrs["views"], time.Minute, testenv.Ready); !ok {
		t.Fatalf("views not ready: /readyz %d %q\n%s", code, body, logs())
	}

	// Gauges set by background loops (lag every --lag-interval) come a
	// moment after the work: read until every selector is answered.
	var missing []string
	byJob := map[string][]series{}
	fams := map[string]map[string]*dto.MetricFamily{}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		missing = nil
		for job, svc := range jobs {
			f, s, err := scrape(addrs[svc])
			if err != nil {
				t.Fatalf("job %s: %v\n%s", job, err, logs())
			}
			fams[job], byJob[job] = f, s
		}
		for _, u := range uses {
			if why := unmatched(u.sel, byJob); why != "" {
				missing = append(missing, fmt.Sprintf("%s: %s %s", u.from, u.sel, why))
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	slices.Sort(missing)
	missing = slices.Compact(missing)
	for _, m := range missing {
		t.Error(m)
	}

	// Each service exports its own families, ridestream_ready and the Go
	// runtime's; none another component's.
	foreign := map[string][]string{
		"process": {"ridestream_sink_", "ridestream_views_", "ridestream_partition_stream_time_seconds"},
		"sink":    {"ridestream_processor_", "ridestream_views_", "ridestream_open_windows", "ridestream_oldest_open_window_age_seconds"},
		"views":   {"ridestream_processor_", "ridestream_sink_", "ridestream_open_windows", "ridestream_oldest_open_window_age_seconds", "ridestream_partition_stream_time_seconds"},
	}
	own := map[string]string{"process": "ridestream_processor_", "sink": "ridestream_sink_", "views": "ridestream_views_"}
	for job, f := range fams {
		var names []string
		for n := range f {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			for _, prefix := range foreign[job] {
				if strings.HasPrefix(n, prefix) {
					t.Errorf("%s's /metrics exports %s, another component's", job, n)
				}
			}
		}
		for _, want := range []string{"ridestream_ready", "go_goroutines", "process_cpu_seconds_total"} {
			if _, ok := f[want]; !ok {
				t.Errorf("%s's /metrics has no %s", job, want)
			}
		}
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, own[job]) }) {
			t.Errorf("%s's /metrics has no %s* family: %v", job, own[job], names)
		}
	}
	if t.Failed() {
		t.Logf("\n%s", logs())
	}
	names := map[string]bool{}
	for _, u := range uses {
		names[u.sel.name] = true
	}
	read := func(job, sample string) float64 { v, _ := testenv.Metric(addrs[job], sample); return v }
	t.Logf("%d dashboard and %d alert queries, %d selectors over %d metrics: each answered by a series of the job it selects; "+
		"route read %.0f records, the sink landed %.0f rides", panelQueries, len(queries)-panelQueries, len(uses), len(names),
		read("process", `ridestream_processor_messages_total{stage="route_input"}`), read("sink", `ridestream_sink_rows_total{table="rides"}`))
}
