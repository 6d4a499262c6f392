package compose

// These tests keep docker-compose.yml, .env.example and ../Dockerfile correct
// without a Docker engine: they parse the files and check them against the
// ridestream binary built from this tree, whose `help` lists the real
// subcommands and whose `<subcommand> --help` lists the real flags with their
// RIDESTREAM_* environment twins.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ridestream/ridestream/internal/testenv"
)

const (
	composePath = "docker-compose.yml"
	envExample  = ".env.example"
	repoRoot    = ".."
	binaryPath  = "/usr/local/bin/ridestream" // where the Dockerfile installs it
	envPrefix   = "RIDESTREAM_"
)

// ---------------------------------------------------------------------------
// The ridestream binary: its subcommands and their flags.

var bin struct {
	path     string
	buildErr error
	subs     []string                     // subcommands from `ridestream help`
	flags    map[string]map[string]string // subcommand -> env twin -> flag name
	probeErr error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ridestream-compose-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.path = filepath.Join(dir, "ridestream")
	bin.buildErr = buildBinary(bin.path)
	if bin.buildErr == nil {
		bin.subs, bin.flags, bin.probeErr = probeBinary(bin.path)
	}
	// Kafka and PostgreSQL for observability_test.go, which runs the binary.
	code := testenv.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildBinary(out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go tool not on PATH: %w", err)
	}
	cmd := exec.Command(goBin, "build", "-o", out, "./cmd/ridestream")
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/ridestream: %v\n%s", err, b)
	}
	return nil
}

// cleanEnv is the test's environment without RIDESTREAM_* variables, which
// the binary would read (and could reject) before printing its help.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			env = append(env, kv)
		}
	}
	return env
}

func runBinary(path string, args ...string) (string, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = cleanEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("ridestream %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

var (
	subcommandLine = regexp.MustCompile(`^  ([a-z][a-z0-9-]*)\s{2,}\S`)
	flagLine       = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9-]*)(\s|$)`)
	envTwin        = regexp.MustCompile(`\[\$(` + envPrefix + `[A-Z0-9_]+)\]`)
)

// parseSubcommands reads the subcommand table of `ridestream help`.
func parseSubcommands(help string) []string {
	var subs []string
	for _, line := range strings.Split(help, "\n") {
		if m := subcommandLine.FindStringSubmatch(line); m != nil {
			subs = append(subs, m[1])
		}
	}
	return subs
}

// parseFlags reads the flag package's usage output: a line "  -name type"
// followed by tab-indented usage lines, which end with "[$RIDESTREAM_NAME]".
// It returns env twin -> flag name.
func parseFlags(help string) (map[string]string, error) {
	type block struct{ name, text string }
	var blocks []block
	for _, line := range strings.Split(help, "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			blocks = append(blocks, block{name: m[1], text: line})
			continue
		}
		if len(blocks) > 0 && strings.HasPrefix(strings.TrimLeft(line, " "), "\t") {
			blocks[len(blocks)-1].text += "\n" + line
		}
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("no flags found in:\n%s", help)
	}
	twins := map[string]string{}
	for _, b := range blocks {
		m := envTwin.FindStringSubmatch(b.text)
		if m == nil {
			return nil, fmt.Errorf("flag -%s names no $%s* twin in its usage:\n%s", b.name, envPrefix, b.text)
		}
		if want := envName(b.name); m[1] != want {
			return nil, fmt.Errorf("flag -%s: usage names $%s, want $%s", b.name, m[1], want)
		}
		twins[m[1]] = b.name
	}
	return twins, nil
}

// envName is the environment twin of a flag: RIDESTREAM_, upper case, dashes
// to underscores.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func probeBinary(path string) ([]string, map[string]map[string]string, error) {
	help, err := runBinary(path, "help")
	if err != nil {
		return nil, nil, err
	}
	subs := parseSubcommands(help)
	if len(subs) == 0 {
		return nil, nil, fmt.Errorf("no subcommands in `ridestream help`:\n%s", help)
	}
	flags := map[string]map[string]string{}
	for _, sub := range subs {
		out, err := runBinary(path, sub, "--help")
		if err != nil {
			return nil, nil, err
		}
		if !strings.Contains(out, "Usage of ridestream "+sub+":") {
			return nil, nil, fmt.Errorf("ridestream %s --help printed no usage:\n%s", sub, out)
		}
		twins, err := parseFlags(out)
		if err != nil {
			return nil, nil, fmt.Errorf("ridestream %s --help: %w", sub, err)
		}
		flags[sub] = twins
	}
	return subs, flags, nil
}

func binary(t *testing.T) {
	t.Helper()
	if bin.buildErr != nil {
		t.Fatal(bin.buildErr)
	}
	if bin.probeErr != nil {
		t.Fatal(bin.probeErr)
	}
}

func TestHelpParsers(t *testing.T) {
	subs := parseSubcommands("usage: ridestream <subcommand> [flags]   (each flag ...)\n  demo       embedded broker\n  sink       land rides\nrun `ridestream <subcommand> --help` for its flags\n")
	if !slices.Equal(subs, []string{"demo", "sink"}) {
		t.Errorf("parseSubcommands = %v", subs)
	}
	twins, err := parseFlags("Usage of ridestream x:\n  -batch-rows int\n    \trows [$RIDESTREAM_BATCH_ROWS] (default 1)\n  -force\n    \tdelete [$RIDESTREAM_FORCE]\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(twins) != 2 || twins["RIDESTREAM_BATCH_ROWS"] != "batch-rows" || twins["RIDESTREAM_FORCE"] != "force" {
		t.Errorf("parseFlags = %v", twins)
	}
	if _, err := parseFlags("  -x string\n    \tno twin here\n"); err == nil {
		t.Error("parseFlags accepted a flag without an environment twin")
	}
	if _, err := parseFlags("  -x string\n    \twrong twin [$RIDESTREAM_Y]\n"); err == nil {
		t.Error("parseFlags accepted a twin that is not the flag's name")
	}
}

func TestBinaryHasTheSubcommandsComposeRuns(t *testing.T) {
	binary(t)
	for _, sub := range []string{"generate", "process", "sink", "views", "heartbeat"} {
		if !slices.Contains(bin.subs, sub) {
			t.Errorf("ridestream help does not list %q (has %v)", sub, bin.subs)
		}
		if _, ok := bin.flags[sub]["RIDESTREAM_BROKERS"]; !ok {
			t.Errorf("ridestream %s has no --brokers flag", sub)
		}
	}
	if _, ok := bin.flags["sink"]["RIDESTREAM_DATABASE_URL"]; !ok {
		t.Error("ridestream sink has no --database-url flag")
	}
	for _, sub := range httpServices {
		if _, ok := bin.flags[sub]["RIDESTREAM_HTTP_ADDR"]; !ok {
			t.Errorf("ridestream %s has no --http-addr flag", sub)
		}
	}
	for _, k := range []string{"RIDESTREAM_TOPIC", "RIDESTREAM_PREFIX", "RIDESTREAM_SHARDS"} {
		if _, ok := bin.flags["views"][k]; !ok {
			t.Errorf("ridestream views has no %s twin", k)
		}
	}
}

// httpServices are the compose services (each running the subcommand of its
// name) that serve HTTP: /healthz, /readyz and /metrics, and views its chart
// page and /api/windows.
var httpServices = []string{"process", "sink", "views"}

// ---------------------------------------------------------------------------
// docker-compose.yml, decoded loosely enough for the forms compose accepts.

// strList is a compose string-or-list field (command, entrypoint, test).
type strList []string

func (s *strList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*s = nil
			return nil
		}
		*s = strings.Fields(n.Value) // compose splits shell-like; no quoting in ours
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*s = l
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list", n.Line)
}

// envMap is a compose environment: a mapping, or a list of KEY=value.
type envMap map[string]string

func (e *envMap) UnmarshalYAML(n *yaml.Node) error {
	out := envMap{}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: environment %s: want a scalar", v.Line, k.Value)
			}
			if v.Tag == "!!null" {
				out[k.Value] = ""
			} else {
				out[k.Value] = v.Value
			}
		}
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, kv := range l {
			k, v, _ := strings.Cut(kv, "=")
			out[k] = v
		}
	default:
		return fmt.Errorf("line %d: environment: want a mapping or a list", n.Line)
	}
	*e = out
	return nil
}

// dependsOn maps a dependency to its condition ("" in the short list form,
// which means service_started).
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	out := dependsOn{}
	switch n.Kind {
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, s := range l {
			out[s] = ""
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := n.Decode(&m); err != nil {
			return err
		}
		for s, c := range m {
			out[s] = c.Condition
		}
	default:
		return fmt.Errorf("line %d: depends_on: want a list or a mapping", n.Line)
	}
	*d = out
	return nil
}

// buildSpec is a compose build: a context path, or {context, dockerfile}.
type buildSpec struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func (b *buildSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain buildSpec
	return n.Decode((*plain)(b))
}

type healthcheck struct {
	Test          strList `yaml:"test"`
	Disable       bool    `yaml:"disable"`
	Interval      string  `yaml:"interval"`
	Timeout       string  `yaml:"timeout"`
	Retries       int     `yaml:"retries"`
	StartPeriod   string  `yaml:"start_period"`
	StartInterval string  `yaml:"start_interval"`
}

type service struct {
	Image       string       `yaml:"image"`
	Build       *buildSpec   `yaml:"build"`
	Entrypoint  *strList     `yaml:"entrypoint"`
	Command     *strList     `yaml:"command"`
	Environment envMap       `yaml:"environment"`
	DependsOn   dependsOn    `yaml:"depends_on"`
	Healthcheck *healthcheck `yaml:"healthcheck"`
	Restart     string       `yaml:"restart"`
	Profiles    []string     `yaml:"profiles"`
	Ports       []string     `yaml:"ports"`
	Volumes     []string     `yaml:"volumes"`
}

type composeFile struct {
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := decodeCompose(b, &cf); err != nil {
		t.Fatalf("%s: %v", composePath, err)
	}
	if len(cf.Services) == 0 {
		t.Fatalf("%s: no services", composePath)
	}
	return cf
}

// decodeCompose decodes the file, rejecting unknown keys in a service (a
// misspelt key is an error, not silently ignored); the top level may hold
// extension keys (x-*).
func decodeCompose(b []byte, cf *composeFile) error {
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(b, &top); err != nil {
		return err
	}
	for k := range top {
		if !slices.Contains([]string{"name", "services", "volumes", "networks", "configs", "secrets"}, k) && !strings.HasPrefix(k, "x-") {
			return fmt.Errorf("unknown top-level key %q", k)
		}
	}
	svcs, ok := top["services"]
	if !ok {
		return fmt.Errorf("no services")
	}
	cf.Services = map[string]service{}
	// Merge keys (<<: *anchor) are resolved by decoding each service through
	// a map first, then into the struct with unknown keys rejected.
	for i := 0; i+1 < len(svcs.Content); i += 2 {
		name, node := svcs.Content[i].Value, svcs.Content[i+1]
		var flat map[string]any
		if err := node.Decode(&flat); err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
		b, err := yaml.Marshal(flat)
		if err != nil {
			return err
		}
		d := yaml.NewDecoder(bytes.NewReader(b))
		d.KnownFields(true)
		var s service
		if err := d.Decode(&s); err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
		cf.Services[name] = s
	}
	if v, ok := top["volumes"]; ok {
		if err := v.Decode(&cf.Volumes); err != nil {
			return fmt.Errorf("volumes: %w", err)
		}
	}
	return nil
}

// ridestreamServices are the services built from the repository's Dockerfile.
func ridestreamServices(cf composeFile) map[string]service {
	out := map[string]service{}
	for name, s := range cf.Services {
		if s.Build != nil {
			out[name] = s
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Interpolation: ${NAME:-default} and $$ only, so `up` works without a .env.

var interp = regexp.MustCompile(`\$\$|\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)
var interpDefault = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*):-(.*)$`)

// interpolate replaces each ${NAME:-default} with its default and $$ with $,
// recording NAME -> default in vars; any other form is an error.
func interpolate(s string, vars map[string]string) (string, error) {
	var err error
	out := interp.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sm := interp.FindStringSubmatch(m)
		d := interpDefault.FindStringSubmatch(sm[1])
		if d == nil {
			err = fmt.Errorf("%q: use ${NAME:-default} so the stack runs without a .env", m)
			return m
		}
		if prev, ok := vars[d[1]]; ok && prev != d[2] {
			err = fmt.Errorf("${%s} has two defaults: %q and %q", d[1], prev, d[2])
		}
		vars[d[1]] = d[2]
		return d[2]
	})
	return out, err
}

// interpolatedDefaults collects every variable the compose file interpolates
// with its default, checking each has one default everywhere.
func interpolatedDefaults(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if _, err := interpolate(line, vars); err != nil {
			t.Errorf("%s:%d: %v", composePath, i+1, err)
		}
	}
	return vars
}

func TestInterpolate(t *testing.T) {
	vars := map[string]string{}
	got, err := interpolate("a ${X:-1} $${Y} ${X:-1}", vars)
	if err != nil || got != "a 1 ${Y} 1" || vars["X"] != "1" || len(vars) != 1 {
		t.Errorf("interpolate = %q, %v, %v", got, vars, err)
	}
	for _, bad := range []string{"${X}", "$X", "${X:?required}", "${X:-1} ${X:-2}"} {
		if _, err := interpolate(bad, map[string]string{}); err == nil {
			t.Errorf("interpolate(%q) accepted it", bad)
		}
	}
}

// env returns a service's environment value with defaults interpolated.
func env(t *testing.T, s service, key string) (string, bool) {
	t.Helper()
	raw, ok := s.Environment[key]
	if !ok {
		return "", false
	}
	v, err := interpolate(raw, map[string]string{})
	if err != nil {
		t.Errorf("%s: %v", key, err)
	}
	return v, true
}

// ---------------------------------------------------------------------------
// The Dockerfile.

type dockerStage struct {
	from, name string
	lines      []string // instructions after FROM, continuations joined
}

func loadDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []dockerStage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		fields := strings.Fields(line)
		if strings.EqualFold(fields[0], "FROM") {
			st := dockerStage{}
			args := slices.DeleteFunc(fields[1:], func(s string) bool { return strings.HasPrefix(s, "--") })
			if len(args) > 0 {
				st.from = args[0]
			}
			if len(args) == 3 && strings.EqualFold(args[1], "AS") {
				st.name = args[2]
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			t.Errorf("Dockerfile: %q before the first FROM", line)
			return
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a runtime stage", len(stages))
	}
	return stages
}

func instruction(st dockerStage, name string) []string {
	var out []string
	for _, l := range st.lines {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], name) {
			out = append(out, strings.TrimSpace(l[len(f[0]):]))
		}
	}
	return out
}

// dockerEntrypoint is the final stage's exec-form ENTRYPOINT.
func dockerEntrypoint(t *testing.T) []string {
	t.Helper()
	stages := loadDockerfile(t)
	eps := instruction(stages[len(stages)-1], "ENTRYPOINT")
	if len(eps) != 1 {
		t.Fatalf("Dockerfile runtime stage: %d ENTRYPOINTs, want 1", len(eps))
	}
	var ep []string
	if err := yaml.Unmarshal([]byte(eps[0]), &ep); err != nil || len(ep) == 0 {
		t.Fatalf("Dockerfile ENTRYPOINT %s: want the exec (JSON) form: %v", eps[0], err)
	}
	return ep
}

type goVersion struct {
	major, minor, patch int
	hasPatch            bool
}

var goVersionRe = regexp.MustCompile(`^(\d+)\.(\d+)(?:\.(\d+))?`)

func parseGoVersion(s string) (goVersion, bool) {
	m := goVersionRe.FindStringSubmatch(s)
	if m == nil {
		return goVersion{}, false
	}
	v := goVersion{}
	v.major, _ = strconv.Atoi(m[1])
	v.minor, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		v.patch, _ = strconv.Atoi(m[3])
		v.hasPatch = true
	}
	return v, true
}

// satisfies reports whether an image tagged with v can build a module whose
// go line is need. A tag without a patch (golang:1.26) floats to the newest
// 1.26.x release, which is at least any released 1.26.x a go line names.
func (v goVersion) satisfies(need goVersion) bool {
	if v.major != need.major {
		return v.major > need.major
	}
	if v.minor != need.minor {
		return v.minor > need.minor
	}
	return !v.hasPatch || v.patch >= need.patch
}

func TestGoVersionSatisfies(t *testing.T) {
	need, _ := parseGoVersion("1.26.5")
	for tag, want := range map[string]bool{
		"1.26": true, "1.26-bookworm": true, "1.26.5": true, "1.26.8-alpine": true, "1.27": true, "2.0": true,
		"1.26.4": false, "1.25": false, "1.25.9": false,
	} {
		v, ok := parseGoVersion(tag)
		if !ok || v.satisfies(need) != want {
			t.Errorf("golang:%s satisfies go %s = %v, want %v", tag, "1.26.5", !want, want)
		}
	}
}

// ---------------------------------------------------------------------------
// The checks.

func TestServicesExist(t *testing.T) {
	cf := loadCompose(t)
	for _, name := range []string{"redpanda", "postgres", "generate", "process", "sink", "views"} {
		if _, ok := cf.Services[name]; !ok {
			t.Errorf("service %q missing", name)
		}
	}
	rs := ridestreamServices(cf)
	for _, name := range []string{"generate", "process", "sink", "views"} {
		if _, ok := rs[name]; !ok {
			t.Errorf("service %q is not built from the repository (no build:)", name)
		}
	}
	if img := cf.Services["redpanda"].Image; !regexp.MustCompile(`^docker\.redpanda\.com/redpandadata/redpanda:v2[45]\.\d+\.\d+$`).MatchString(img) {
		t.Errorf("redpanda image %q: want docker.redpanda.com/redpandadata/redpanda pinned to a v24/v25 release", img)
	}
	if img := cf.Services["postgres"].Image; img != "postgres:16" && !strings.HasPrefix(img, "postgres:16.") {
		t.Errorf("postgres image %q: want postgres:16", img)
	}
	for name, s := range rs {
		ctx := filepath.Join(".", s.Build.Context) // relative to this directory, as compose resolves it
		if ctx != filepath.Clean(repoRoot) {
			t.Errorf("%s: build context %q, want the repository root %q", name, s.Build.Context, repoRoot)
		}
		df := s.Build.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if _, err := os.Stat(filepath.Join(ctx, df)); err != nil {
			t.Errorf("%s: dockerfile: %v", name, err)
		}
	}
	// Named volumes a service mounts must be declared.
	for name, s := range cf.Services {
		for _, v := range s.Volumes {
			src, _, ok := strings.Cut(v, ":")
			if ok && src != "" && !strings.ContainsAny(src[:1], "./~$") {
				if _, declared := cf.Volumes[src]; !declared {
					t.Errorf("%s: volume %q is not declared under volumes:", name, src)
				}
			}
		}
	}
	if len(cf.Services["postgres"].Volumes) == 0 {
		t.Error("postgres has no volume for its data")
	}
}

func TestCommandsNameRealSubcommands(t *testing.T) {
	binary(t)
	cf := loadCompose(t)
	imageEP := dockerEntrypoint(t)
	if !slices.Equal(imageEP, []string{binaryPath}) {
		t.Fatalf("Dockerfile ENTRYPOINT %q, want [%q]", imageEP, binaryPath)
	}
	want := map[string]string{"generate": "generate", "process": "process", "sink": "sink", "views": "views", "heartbeat": "heartbeat"}
	for name, s := range ridestreamServices(cf) {
		var argv []string
		if s.Entrypoint != nil {
			// An entrypoint set in compose drops the image's CMD.
			argv = append(argv, *s.Entrypoint...)
		} else {
			argv = append(argv, imageEP...)
		}
		if s.Command != nil {
			argv = append(argv, *s.Command...)
		}
		if len(argv) < 2 || argv[0] != binaryPath {
			t.Errorf("%s runs %q, want %s <subcommand>", name, argv, binaryPath)
			continue
		}
		sub := argv[1]
		if !slices.Contains(bin.subs, sub) {
			t.Errorf("%s runs subcommand %q, which ridestream does not have (it has %v)", name, sub, bin.subs)
		}
		if w, ok := want[name]; ok && sub != w {
			t.Errorf("%s runs %q, want %q", name, sub, w)
		}
		if len(argv) > 2 {
			t.Errorf("%s passes arguments %q: configure ridestream services by RIDESTREAM_* environment only", name, argv[2:])
		}
	}
}

// subcommandOf is the subcommand a ridestream service runs.
func subcommandOf(s service, imageEP []string) string {
	argv := slices.Clone(imageEP)
	if s.Entrypoint != nil {
		argv = slices.Clone(*s.Entrypoint)
	}
	if s.Command != nil {
		argv = append(argv, *s.Command...)
	}
	if len(argv) < 2 {
		return ""
	}
	return argv[1]
}

func TestEnvironmentNamesRealFlags(t *testing.T) {
	binary(t)
	cf := loadCompose(t)
	imageEP := dockerEntrypoint(t)
	rs := ridestreamServices(cf)
	for name, s := range cf.Services {
		_, isRidestream := rs[name]
		sub := subcommandOf(s, imageEP)
		for key, val := range s.Environment {
			if !isRidestream {
				if strings.HasPrefix(key, envPrefix) {
					t.Errorf("%s sets %s but does not run ridestream", name, key)
				}
				continue
			}
			if !strings.HasPrefix(key, envPrefix) {
				t.Errorf("%s: %s is not a %s* variable (ridestream reads no other)", name, key, envPrefix)
				continue
			}
			flag, ok := bin.flags[sub][key]
			if !ok {
				t.Errorf("%s: %s is no flag's twin in `ridestream %s` (its twins: %v)", name, key, sub, keys(bin.flags[sub]))
				continue
			}
			if strings.TrimSpace(val) == "" {
				t.Errorf("%s: %s (--%s) is empty", name, key, flag)
			}
		}
		if isRidestream {
			if v, _ := env(t, s, "RIDESTREAM_BROKERS"); v != "redpanda:9092" {
				t.Errorf("%s: RIDESTREAM_BROKERS = %q, want redpanda:9092 (the broker's internal listener)", name, v)
			}
		}
	}
	gen := cf.Services["generate"]
	if v, _ := env(t, gen, "RIDESTREAM_RIDES"); v != "100000" {
		t.Errorf("generate: RIDESTREAM_RIDES defaults to %q, want 100000", v)
	}
	for _, name := range []string{"generate", "process"} {
		if v, _ := env(t, cf.Services[name], "RIDESTREAM_REPLICATION"); v != "1" {
			t.Errorf("%s: RIDESTREAM_REPLICATION = %q, want 1 on a single broker", name, v)
		}
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// pipelineSettings are the environment twins of the settings recorded in a
// pipeline's record: process sets them; sink and views read the record.
var pipelineSettings = []string{"RIDESTREAM_TOPIC", "RIDESTREAM_WINDOW", "RIDESTREAM_ALLOWED_LATENESS", "RIDESTREAM_MAX_FUTURE_SKEW",
	"RIDESTREAM_TIME_ZONE", "RIDESTREAM_SHARDS", "RIDESTREAM_WINDOW_PARTITIONS"}

func TestPipelineSettingsAgree(t *testing.T) {
	cf := loadCompose(t)
	proc := cf.Services["process"]
	// process, sink and views name the same pipeline, explicitly.
	prefix, ok := env(t, proc, "RIDESTREAM_PREFIX")
	if !ok {
		t.Fatal("process: set RIDESTREAM_PREFIX explicitly so sink and views name the same pipeline")
	}
	for _, name := range []string{"sink", "views"} {
		s, ok := cf.Services[name]
		if !ok {
			t.Fatalf("no %s service", name)
		}
		if v, ok := env(t, s, "RIDESTREAM_PREFIX"); !ok || v != prefix {
			t.Errorf("%s: RIDESTREAM_PREFIX = %q (set %v), process has %q", name, v, ok, prefix)
		}
		// The record carries the pipeline's settings: setting one here too
		// can only disagree with it some day.
		for _, k := range pipelineSettings {
			if _, ok := env(t, s, k); ok {
				t.Errorf("%s sets %s: %s takes it from the pipeline's record; set it on process only", name, k, name)
			}
		}
	}
	// generate and heartbeat write into process's input topic.
	topic, ok := env(t, proc, "RIDESTREAM_TOPIC")
	if !ok {
		t.Fatal("process: set RIDESTREAM_TOPIC explicitly so generate and heartbeat write into it")
	}
	for _, name := range []string{"generate", "heartbeat"} {
		if v, ok := env(t, cf.Services[name], "RIDESTREAM_TOPIC"); !ok || v != topic {
			t.Errorf("%s: RIDESTREAM_TOPIC = %q (set %v), process reads %q", name, v, ok, topic)
		}
	}
	// Static membership ids are per service.
	if a, b := proc.Environment["RIDESTREAM_INSTANCE_ID"], cf.Services["sink"].Environment["RIDESTREAM_INSTANCE_ID"]; a != "" && a == b {
		t.Errorf("process and sink share RIDESTREAM_INSTANCE_ID %q", a)
	}
}

func TestDatabaseURLMatchesPostgres(t *testing.T) {
	cf := loadCompose(t)
	pg, sink := cf.Services["postgres"], cf.Services["sink"]
	raw, ok := sink.Environment["RIDESTREAM_DATABASE_URL"]
	if !ok {
		t.Fatal("sink: RIDESTREAM_DATABASE_URL not set")
	}
	// The URL must be built from the same expressions as the postgres
	// service's settings, so overriding one overrides both.
	for _, k := range []string{"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} {
		expr := pg.Environment[k]
		if !strings.HasPrefix(expr, "${") {
			t.Errorf("postgres: %s = %q, want an overridable ${%s:-default}", k, expr, k)
		}
		if !strings.Contains(raw, expr) {
			t.Errorf("sink: RIDESTREAM_DATABASE_URL does not use postgres's %s expression %q", k, expr)
		}
	}
	v, _ := env(t, sink, "RIDESTREAM_DATABASE_URL")
	u, err := url.Parse(v)
	if err != nil {
		t.Fatalf("RIDESTREAM_DATABASE_URL %q: %v", v, err)
	}
	user, _ := env(t, pg, "POSTGRES_USER")
	pass, _ := env(t, pg, "POSTGRES_PASSWORD")
	db, _ := env(t, pg, "POSTGRES_DB")
	gotPass, _ := u.User.Password()
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		t.Errorf("scheme %q", u.Scheme)
	}
	if u.Host != "postgres:5432" {
		t.Errorf("host %q, want postgres:5432", u.Host)
	}
	if u.User.Username() != user || gotPass != pass || strings.TrimPrefix(u.Path, "/") != db {
		t.Errorf("URL %q does not match postgres user %q, password %q, database %q", v, user, pass, db)
	}
	if u.Query().Get("sslmode") != "disable" {
		t.Errorf("URL %q: want sslmode=disable (the postgres image serves no TLS)", v)
	}
}

// views read the final rows and window_status from the sink's database
// (`ridestream views` refuses to start without --database-url).
func TestViewsReadTheSinksDatabase(t *testing.T) {
	cf := loadCompose(t)
	sink, views := cf.Services["sink"].Environment["RIDESTREAM_DATABASE_URL"], cf.Services["views"].Environment["RIDESTREAM_DATABASE_URL"]
	if views == "" || views != sink {
		t.Errorf("views: RIDESTREAM_DATABASE_URL %q, want the sink's %q", views, sink)
	}
	if got := cf.Services["views"].DependsOn["postgres"]; got != "service_healthy" {
		t.Errorf("views: depends_on postgres condition %q, want service_healthy", got)
	}
}

func TestHealthchecks(t *testing.T) {
	cf := loadCompose(t)
	for name, want := range map[string]string{"redpanda": "rpk cluster health", "postgres": "pg_isready"} {
		hc := cf.Services[name].Healthcheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 {
			t.Errorf("%s: no healthcheck", name)
			continue
		}
		if hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL" {
			t.Errorf("%s: healthcheck test starts %q, want CMD or CMD-SHELL", name, hc.Test[0])
		}
		if !strings.Contains(strings.Join(hc.Test[1:], " "), want) {
			t.Errorf("%s: healthcheck %q does not run %s", name, hc.Test, want)
		}
	}
	// The runtime image is distroless: a shell healthcheck could never pass.
	stages := loadDockerfile(t)
	if runtime := stages[len(stages)-1].from; strings.Contains(runtime, "distroless") {
		for name, s := range ridestreamServices(cf) {
			if s.Healthcheck != nil && !s.Healthcheck.Disable && len(s.Healthcheck.Test) > 0 && s.Healthcheck.Test[0] == "CMD-SHELL" {
				t.Errorf("%s: CMD-SHELL healthcheck, but %s has no shell", name, runtime)
			}
		}
	}
}

func TestDependsOnConditions(t *testing.T) {
	cf := loadCompose(t)
	for name, s := range cf.Services {
		for dep, cond := range s.DependsOn {
			target, ok := cf.Services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %q", name, dep)
				continue
			}
			switch cond {
			case "service_healthy":
				if target.Healthcheck == nil || target.Healthcheck.Disable {
					t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			case "service_completed_successfully":
				if target.Restart != "no" {
					t.Errorf("%s waits for %s to complete, but %s has restart %q", name, dep, dep, target.Restart)
				}
			default:
				t.Errorf("%s depends on %s with condition %q: want service_healthy (or service_completed_successfully for a one-shot)", name, dep, cond)
			}
			if len(target.Profiles) > 0 && len(s.Profiles) == 0 {
				t.Errorf("%s (always started) depends on %s, which only a profile starts", name, dep)
			}
		}
	}
	need := map[string][]string{
		"generate":  {"redpanda"},
		"process":   {"redpanda"},
		"sink":      {"redpanda", "postgres"},
		"views":     {"redpanda"},
		"heartbeat": {"redpanda"},
	}
	for name, deps := range need {
		s, ok := cf.Services[name]
		if !ok {
			continue
		}
		for _, dep := range deps {
			if got := s.DependsOn[dep]; got != "service_healthy" {
				t.Errorf("%s: depends_on %s condition %q, want service_healthy", name, dep, got)
			}
		}
	}
}

// Redpanda's dev-container mode turns topic auto-creation on, and a client's
// metadata request for a missing topic would then create it with the
// broker's default partition count, which generate and process refuse. So a
// one-shot turns it off, and every ridestream service waits for it.
func TestAutoCreateOffBeforeRidestream(t *testing.T) {
	cf := loadCompose(t)
	var initName string
	for name, s := range cf.Services {
		argv := []string{}
		if s.Entrypoint != nil {
			argv = append(argv, *s.Entrypoint...)
		}
		if s.Command != nil {
			argv = append(argv, *s.Command...)
		}
		cmd := strings.Join(argv, " ")
		if strings.Contains(cmd, "cluster config set auto_create_topics_enabled false") {
			initName = name
			if !strings.Contains(cmd, "admin.hosts=redpanda:9644") {
				t.Errorf("%s: %q does not reach the broker's admin API (admin.hosts=redpanda:9644)", name, cmd)
			}
			if s.Restart != "no" || len(s.Profiles) > 0 {
				t.Errorf("%s: want a one-shot (restart \"no\") that every `up` runs", name)
			}
			if s.DependsOn["redpanda"] != "service_healthy" {
				t.Errorf("%s: does not wait for redpanda to be healthy", name)
			}
		}
	}
	if initName == "" {
		t.Fatal("no service runs `rpk cluster config set auto_create_topics_enabled false`")
	}
	for name, s := range ridestreamServices(cf) {
		if got := s.DependsOn[initName]; got != "service_completed_successfully" {
			t.Errorf("%s: depends_on %s condition %q, want service_completed_successfully", name, initName, got)
		}
	}
}

func TestRestartPolicies(t *testing.T) {
	cf := loadCompose(t)
	for name, want := range map[string]string{"process": "unless-stopped", "sink": "unless-stopped", "views": "unless-stopped", "generate": "no"} {
		if got := cf.Services[name].Restart; got != want {
			t.Errorf("%s: restart %q, want %q", name, got, want)
		}
	}
}

func TestRedpandaListeners(t *testing.T) {
	cf := loadCompose(t)
	rp := cf.Services["redpanda"]
	if rp.Command == nil {
		t.Fatal("redpanda: no command")
	}
	cmd, err := interpolate(strings.Join(*rp.Command, " "), map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"redpanda start", "--mode dev-container", "--smp 1", "--overprovisioned",
		"internal://0.0.0.0:9092", "external://0.0.0.0:19092", "internal://redpanda:9092"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("redpanda command %q lacks %q", cmd, want)
		}
	}
	// The host port is published and is what the external listener advertises.
	m := regexp.MustCompile(`external://localhost:(\d+)`).FindStringSubmatch(cmd)
	if m == nil {
		t.Fatalf("redpanda command %q advertises no external://localhost:<port>", cmd)
	}
	published := false
	for _, p := range rp.Ports {
		p, err := interpolate(p, map[string]string{})
		if err != nil {
			t.Error(err)
		}
		parts := strings.Split(p, ":")
		if len(parts) >= 2 && parts[len(parts)-1] == "19092" && parts[len(parts)-2] == m[1] {
			published = true
		}
	}
	if !published {
		t.Errorf("redpanda publishes %q, want host port %s to container port 19092", rp.Ports, m[1])
	}
}

// portSpec is a compose short-syntax port, [[IP:]HOST:]CONTAINER[/PROTOCOL],
// with defaults interpolated.
type portSpec struct{ ip, host, container string }

func parsePort(spec string) (portSpec, error) {
	s, err := interpolate(spec, map[string]string{})
	if err != nil {
		return portSpec{}, err
	}
	s, _, _ = strings.Cut(s, "/")
	var p portSpec
	switch parts := strings.Split(s, ":"); len(parts) {
	case 1:
		p.container = parts[0]
	case 2:
		p.host, p.container = parts[0], parts[1]
	case 3:
		p.ip, p.host, p.container = parts[0], parts[1], parts[2]
	default:
		return portSpec{}, fmt.Errorf("port %q: want IP:HOST:CONTAINER", spec)
	}
	for _, n := range []string{p.host, p.container} {
		if n == "" {
			continue
		}
		if v, err := strconv.Atoi(n); err != nil || v < 1 || v > 65535 {
			return portSpec{}, fmt.Errorf("port %q: %q is not a port number", spec, n)
		}
	}
	if p.container == "" {
		return portSpec{}, fmt.Errorf("port %q: no container port", spec)
	}
	return p, nil
}

func TestParsePort(t *testing.T) {
	for spec, want := range map[string]portSpec{
		"127.0.0.1:${X:-8090}:8090": {"127.0.0.1", "8090", "8090"},
		"8080:80/tcp":               {"", "8080", "80"},
		"5432":                      {"", "", "5432"},
	} {
		if got, err := parsePort(spec); err != nil || got != want {
			t.Errorf("parsePort(%q) = %+v, %v; want %+v", spec, got, err, want)
		}
	}
	for _, bad := range []string{"a:b:c:d", "127.0.0.1:x:80", "127.0.0.1:80:", "${X}:80"} {
		if _, err := parsePort(bad); err == nil {
			t.Errorf("parsePort(%q) accepted it", bad)
		}
	}
}

// Everything is published on the host's loopback only (the stack has demo
// passwords and no authentication), each on a host port of its own.
func TestPublishedPortsLoopback(t *testing.T) {
	cf := loadCompose(t)
	owner := map[string]string{} // host port -> service
	for name, s := range cf.Services {
		for _, spec := range s.Ports {
			p, err := parsePort(spec)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if p.ip != "127.0.0.1" || p.host == "" {
				t.Errorf("%s publishes %q: want 127.0.0.1:<host port>:<container port>", name, spec)
				continue
			}
			if other, dup := owner[p.host]; dup {
				t.Errorf("%s and %s both publish host port %s", name, other, p.host)
			}
			owner[p.host] = name
		}
	}
	for _, name := range []string{"redpanda", "postgres", "views"} {
		if len(cf.Services[name].Ports) == 0 {
			t.Errorf("%s publishes no port", name)
		}
	}
}

// process, sink and views serve HTTP (health, readiness and metrics for
// Prometheus; views also its chart and API) on an address reachable from
// other containers and through a published port, and a ridestream service
// publishes no port but that one.
func TestHTTPAddrs(t *testing.T) {
	cf := loadCompose(t)
	for name, s := range ridestreamServices(cf) {
		addr, ok := env(t, s, "RIDESTREAM_HTTP_ADDR")
		if !ok {
			if slices.Contains(httpServices, name) {
				t.Errorf("%s: set RIDESTREAM_HTTP_ADDR (e.g. :8080) so its /healthz, /readyz and /metrics are served", name)
			}
			if len(s.Ports) > 0 {
				t.Errorf("%s publishes %q but serves no HTTP", name, s.Ports)
			}
			continue
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s: RIDESTREAM_HTTP_ADDR %q: %v", name, addr, err)
			continue
		}
		if host != "" && host != "0.0.0.0" {
			t.Errorf("%s: RIDESTREAM_HTTP_ADDR %q listens on %s only, unreachable from outside the container: want :%s", name, addr, host, port)
		}
		for _, spec := range s.Ports {
			if p, err := parsePort(spec); err == nil && p.container != port {
				t.Errorf("%s publishes container port %s, but serves HTTP on %s", name, p.container, port)
			}
		}
	}
	views := cf.Services["views"]
	addr, _ := env(t, views, "RIDESTREAM_HTTP_ADDR")
	_, port, _ := net.SplitHostPort(addr)
	published := false
	for _, spec := range views.Ports {
		if p, err := parsePort(spec); err == nil && p.container == port {
			published = true
		}
	}
	if !published {
		t.Errorf("views publishes %q, not its HTTP port %s (RIDESTREAM_HTTP_ADDR %q)", views.Ports, port, addr)
	}
}

// The README sends readers to the views page and API on the default host port.
func TestReadmeNamesViewsPort(t *testing.T) {
	cf := loadCompose(t)
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var host string
	for _, spec := range cf.Services["views"].Ports {
		if p, err := parsePort(spec); err == nil {
			host = p.host
		}
	}
	if host == "" {
		t.Fatal("views publishes no host port")
	}
	for _, want := range []string{"http://localhost:" + host + "/", "localhost:" + host + "/api/windows"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("README.md does not mention %s (views' published port is %s)", want, host)
		}
	}
}

func TestEnvExampleDocumentsVariables(t *testing.T) {
	used := interpolatedDefaults(t)
	if len(used) == 0 {
		t.Fatal("docker-compose.yml interpolates no variables")
	}
	b, err := os.ReadFile(envExample)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s:%d: %q is not NAME=value", envExample, i+1, line)
			continue
		}
		documented[k] = v
	}
	for k, def := range used {
		v, ok := documented[k]
		switch {
		case !ok:
			t.Errorf("%s does not document %s (used by docker-compose.yml)", envExample, k)
		case v != def:
			t.Errorf("%s: %s=%s, but docker-compose.yml's default is %q", envExample, k, v, def)
		}
	}
	for k := range documented {
		if _, ok := used[k]; !ok {
			t.Errorf("%s documents %s, which docker-compose.yml does not use", envExample, k)
		}
	}
	for _, k := range []string{"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} {
		if _, ok := used[k]; !ok {
			t.Errorf("docker-compose.yml does not take %s from the environment", k)
		}
	}
}

func TestDockerfile(t *testing.T) {
	stages := loadDockerfile(t)
	build := stages[0]
	img, tag, _ := strings.Cut(build.from, ":")
	if img != "golang" {
		t.Fatalf("Dockerfile build stage FROM %s, want golang:<version>", build.from)
	}
	have, ok := parseGoVersion(tag)
	if !ok {
		t.Fatalf("Dockerfile build stage golang:%s has no Go version", tag)
	}
	mod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go\s+(\S+)\s*$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	need, ok := parseGoVersion(string(m[1]))
	if !ok {
		t.Fatalf("go.mod go line %q", m[1])
	}
	if !have.satisfies(need) {
		t.Errorf("Dockerfile builds with golang:%s, older than go.mod's go %s", tag, m[1])
	}

	runs := strings.Join(instruction(build, "RUN"), "\n")
	for _, want := range []string{"CGO_ENABLED=0", "go build", "-o /ridestream", "./cmd/ridestream"} {
		if !strings.Contains(runs, want) {
			t.Errorf("Dockerfile build stage does not run %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(repoRoot, "cmd", "ridestream")); err != nil {
		t.Errorf("Dockerfile builds ./cmd/ridestream: %v", err)
	}
	final := stages[len(stages)-1]
	if strings.HasPrefix(final.from, "golang") {
		t.Errorf("Dockerfile runtime stage FROM %s: want a small base, not the Go toolchain", final.from)
	}
	copied := false
	for _, c := range instruction(final, "COPY") {
		if strings.Contains(c, "--from="+build.name) && strings.HasSuffix(c, "/ridestream "+binaryPath) {
			copied = true
		}
	}
	if build.name == "" || !copied {
		t.Errorf("Dockerfile runtime stage does not COPY --from=<build stage> /ridestream %s", binaryPath)
	}
	if ep := dockerEntrypoint(t); !slices.Equal(ep, []string{binaryPath}) {
		t.Errorf("ENTRYPOINT %q, want [%q]", ep, binaryPath)
	}
}

func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			entries = append(entries, strings.Trim(line, "/"))
		}
	}
	for _, want := range []string{".cache", "bin", ".git"} {
		if !slices.Contains(entries, want) {
			t.Errorf(".dockerignore does not exclude %s (has %v)", want, entries)
		}
	}
}
