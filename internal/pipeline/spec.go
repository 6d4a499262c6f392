// Package pipeline is the contract between a pipeline's processes: the Spec
// that decides its final table (with the flags that set it, their
// validation, and the record of it kept in the log), the names of its topics
// and consumer groups, and every record that crosses a process boundary with
// its encoding. It imports no Kafka, database or metrics package; process,
// sink, views, reset, heartbeat and generate all build on it.
//
// docs/contract.md states the contract in words; docs/design.md says what
// each topic holds and why.
package pipeline

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/window"
)

// Defaults of the names.
const (
	DefaultPrefix = "ridestream"
	DefaultTopic  = "rides"
)

// Spec is a pipeline's identity: everything that decides its final table.
// The first start of `ridestream process` records it in the pipeline's
// record topic; every later start of any subcommand reads it from there, so
// configuration cannot drift between processes or restarts.
type Spec struct {
	// Prefix names the pipeline's topics and groups; it is how the record is
	// found, not part of it.
	Prefix string
	// Input is the rides topic.
	Input string
	// InputPartitions is the input topic's partition count: finality waits
	// for every partition, so a changed count is a new pipeline.
	InputPartitions int32
	// Window is the event-time rule: size, lateness, future skew, time zone.
	Window window.Spec
	// Decode is how input messages are read: the event-time field and the
	// time zone of times written without one.
	Decode ride.Options
	// Shards spreads the default aggregation's windows over this many keys
	// each; 0 in a given spec means DefaultShards (the record always holds
	// a number).
	Shards int
	// Aggregations are the declared aggregations (--aggregations); none:
	// the default, hourly_revenue (Aggs).
	Aggregations []aggregate.Aggregation
	// WindowPartitions of the windows and finals topics (0: as many as the
	// input has).
	WindowPartitions int32
	// Wire is the version of the internal messages (WireVersion).
	Wire int
}

// DefaultSpec is a new pipeline's spec when no flag says otherwise.
func DefaultSpec() Spec {
	return Spec{Prefix: DefaultPrefix, Input: DefaultTopic, Window: window.DefaultSpec(), Wire: WireVersion}
}

// DefaultShards is the default aggregation's shard count: 1. A window's
// key holds the partial sums of the clock's batches, not rides, so one key
// per window is enough unless a window has very many groups.
func DefaultShards(time.Duration) int { return 1 }

// Resolved is s with the shard count decided (see DefaultShards).
func (s Spec) Resolved() Spec {
	if s.Shards == 0 {
		s.Shards = DefaultShards(s.Window.Size)
	}
	return s
}

// Aggs are the pipeline's aggregations: the declared ones, each with its
// allowed lateness (its own, or --allowed-lateness), or the default one.
func (s Spec) Aggs() []aggregate.Aggregation {
	if len(s.Aggregations) == 0 {
		return []aggregate.Aggregation{aggregate.Default(s.Window.Size, s.Window.Lateness, max(s.Shards, 1))}
	}
	out := slices.Clone(s.Aggregations)
	for i := range out {
		out[i] = s.resolveLateness(out[i])
	}
	return out
}

// resolveLateness gives a the pipeline's lateness unless it has its own.
func (s Spec) resolveLateness(a aggregate.Aggregation) aggregate.Aggregation {
	if !a.OwnLateness {
		a.Lateness = s.Window.Lateness
	}
	return a
}

// AggWindow is the tumbling window rule of aggregation a: its size and
// lateness with the pipeline's time zone and skew.
func (s Spec) AggWindow(a aggregate.Aggregation) window.Spec {
	w := s.Window
	w.Size, w.Lateness = a.Size, a.Lateness
	return w
}

// A setting is one recorded field of Spec with its flag: the flag set, the
// record and the drift check are all built from this table, so a new setting
// is one entry here (and its field above).
type setting struct {
	flag  string
	usage string
	get   func(Spec) string
	set   func(*Spec, string) error
}

var settings = []setting{
	{"topic", "rides input topic",
		func(s Spec) string { return s.Input },
		func(s *Spec, v string) error {
			if v == "" {
				return errors.New("must not be empty")
			}
			s.Input = v
			return nil
		}},
	{"window", "tumbling window size (with --time-zone it must divide 24h)",
		func(s Spec) string { return s.Window.Size.String() },
		func(s *Spec, v string) error { return setDuration(&s.Window.Size, v) }},
	{"allowed-lateness", "allowed lateness L: a window closes for a partition once its stream time reaches end+L",
		func(s Spec) string { return s.Window.Lateness.String() },
		func(s *Spec, v string) error { return setDuration(&s.Window.Lateness, v) }},
	{"max-future-skew", "a ride further than this ahead of its partition's stream time (or its first) counts only if the rides after it are near it; else it is rejected as an outlier",
		func(s Spec) string { return s.Window.MaxFutureSkew.String() },
		func(s *Spec, v string) error { return setDuration(&s.Window.MaxFutureSkew, v) }},
	{"time-zone", "IANA time zone whose local wall clock aligns the windows (UTC: aligned to the epoch)",
		func(s Spec) string { return zoneName(s.Window.Location) },
		func(s *Spec, v string) error { return setLocation(&s.Window.Location, v) }},
	{"input-time-zone", "IANA time zone of event times written without a zone, such as \"2025-10-01 18:04:11\" (NYC TLC times are America/New_York)",
		func(s Spec) string { return zoneName(s.Decode.Location) },
		func(s *Spec, v string) error { return setLocation(&s.Decode.Location, v) }},
	{"event-time-field", "field that holds a ride's event time (empty: the first of tpep_pickup_datetime, lpep_pickup_datetime, pickup_datetime)",
		func(s Spec) string { return s.Decode.EventTimeField },
		func(s *Spec, v string) error { s.Decode.EventTimeField = v; return nil }},
	{"shards", "keys each window of the default aggregation is spread over (0: 1)",
		func(s Spec) string { return strconv.Itoa(s.Shards) },
		func(s *Spec, v string) error {
			n, err := strconv.Atoi(v)
			s.Shards = n
			return err
		}},
	{"aggregations", "YAML file declaring the pipeline's aggregations (empty: one, hourly_revenue); docs/contract.md, \"Aggregations\"",
		func(s Spec) string {
			if len(s.Aggregations) == 0 {
				return ""
			}
			return aggregate.Canonical(s.Aggregations)
		},
		func(s *Spec, v string) error {
			list, err := readAggregations(v)
			s.Aggregations = list
			return err
		}},
	{"window-partitions", "partitions of the windows and finals topics (0: as many as the input)",
		func(s Spec) string { return strconv.Itoa(int(s.WindowPartitions)) },
		func(s *Spec, v string) error {
			n, err := strconv.ParseInt(v, 10, 32)
			s.WindowPartitions = int32(n)
			return err
		}},
}

// readAggregations reads --aggregations: empty (none declared), the
// canonical JSON a record keeps, or the path of a YAML declaration.
func readAggregations(v string) ([]aggregate.Aggregation, error) {
	switch t := strings.TrimSpace(v); {
	case t == "":
		return nil, nil
	case strings.HasPrefix(t, "["):
		return aggregate.FromCanonical(t)
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return nil, err
	}
	return aggregate.Parse(b)
}

func setDuration(d *time.Duration, v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	*d = x
	return nil
}

func setLocation(loc **time.Location, v string) error {
	x, err := location(v)
	if err != nil {
		return err
	}
	*loc = x
	return nil
}

// location loads an IANA time zone; UTC (or empty) is nil. "Local" is
// refused: it is each machine's own zone, and every process of a pipeline
// must read the same one.
func location(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return nil, nil
	case "Local":
		return nil, errors.New("Local is each machine's own zone; name an IANA zone such as America/New_York")
	}
	return time.LoadLocation(name)
}

func zoneName(loc *time.Location) string {
	if loc == nil {
		return "UTC"
	}
	return loc.String()
}

// Validate reports a configuration error naming the flag.
func (s Spec) Validate() error {
	switch {
	case s.Prefix == "":
		return errors.New("--prefix: must not be empty")
	case s.Input == "":
		return errors.New("--topic: must not be empty")
	case s.Shards < 0 || s.Shards > 4096:
		return fmt.Errorf("--shards %d: must be within 1..4096 (0: from the window)", s.Shards)
	case s.WindowPartitions < 0:
		return fmt.Errorf("--window-partitions %d: must not be negative", s.WindowPartitions)
	}
	if err := s.Decode.Validate(); err != nil {
		return err
	}
	if err := s.Window.Validate(); err != nil {
		return err
	}
	for _, a := range s.Aggregations {
		a = s.resolveLateness(a)
		if err := a.Validate(); err != nil {
			return fmt.Errorf("--aggregations: %w", err)
		}
		if a.Kind == aggregate.Tumbling {
			if err := s.AggWindow(a).Validate(); err != nil {
				return fmt.Errorf("--aggregations: aggregation %q: window: %w", a.Name, err)
			}
		}
	}
	return nil
}

// Flags registers the spec's settings on fs, each defaulting to spec's
// value, and returns a function that reads them after parsing: the spec as
// given and the names of the flags that were set (on the command line or
// through their environment twins).
func Flags(fs *flag.FlagSet, spec Spec) func() (Spec, []string) {
	given := spec
	for _, st := range settings {
		fs.Var(settingValue{&given, st}, st.flag, st.usage)
	}
	return func() (Spec, []string) {
		var set []string
		fs.Visit(func(f *flag.Flag) {
			if slices.ContainsFunc(settings, func(st setting) bool { return st.flag == f.Name }) {
				set = append(set, f.Name)
			}
		})
		return given, set
	}
}

type settingValue struct {
	spec *Spec
	st   setting
}

func (v settingValue) String() string {
	if v.spec == nil {
		return ""
	}
	return v.st.get(*v.spec)
}

func (v settingValue) Set(s string) error { return v.st.set(v.spec, s) }

// SettingFlags are the names of every setting's flag.
func SettingFlags() []string {
	out := make([]string, len(settings))
	for i, st := range settings {
		out[i] = st.flag
	}
	return out
}

// Difference is one setting on which a given spec disagrees with the record.
type Difference struct {
	Flag, Recorded, Given string
}

// Drift lists the flags in set whose given value differs from the recorded
// one. A value that means "automatic" is compared as what it resolves to
// in the pipeline given: --shards 0 from the window (the given one, or the
// recorded one when --window is not set), --window-partitions 0 as the
// input's partition count.
func Drift(recorded, given Spec, set []string) []Difference {
	effective := recorded
	for _, st := range settings {
		if slices.Contains(set, st.flag) {
			if err := st.set(&effective, st.get(given)); err != nil {
				panic("pipeline: a setting does not read back its own value: " + err.Error())
			}
		}
	}
	resolve := func(s Spec) Spec {
		s = s.Resolved()
		if s.WindowPartitions == 0 {
			s.WindowPartitions = recorded.InputPartitions
		}
		return s
	}
	recorded, effective = resolve(recorded), resolve(effective)
	var out []Difference
	for _, st := range settings {
		if !slices.Contains(set, st.flag) {
			continue
		}
		if r, g := st.get(recorded), st.get(effective); r != g {
			out = append(out, Difference{Flag: "--" + st.flag, Recorded: r, Given: g})
		}
	}
	return out
}

// DriftError refuses a start whose settings differ from the pipeline's
// record, before any topic is touched.
type DriftError struct {
	Prefix string
	Diffs  []Difference
}

func (e *DriftError) Error() string {
	parts := make([]string, len(e.Diffs))
	for i, d := range e.Diffs {
		parts[i] = fmt.Sprintf("%s is %s here but %s in the record", d.Flag, d.Given, d.Recorded)
	}
	return fmt.Sprintf("pipeline %q was created with other settings: %s. The final table is a pure function of the log and these settings, "+
		"so a change needs `ridestream reset --prefix %s --postgres all` and a replay (README: \"Changing a pipeline's settings\"); "+
		"or drop the flags to use the recorded values",
		e.Prefix, strings.Join(parts, "; "), e.Prefix)
}

// Adopt returns the recorded spec for a subcommand that was given spec with
// the flags in set: an error naming every flag that disagrees with the
// record, and the input partition count when the topic now has another.
func Adopt(recorded, given Spec, set []string, inputPartitions int32) (Spec, error) {
	diffs := Drift(recorded, given, set)
	if inputPartitions > 0 && inputPartitions != recorded.InputPartitions {
		diffs = append(diffs, Difference{Flag: "partitions of input topic " + recorded.Input,
			Recorded: strconv.Itoa(int(recorded.InputPartitions)), Given: strconv.Itoa(int(inputPartitions))})
	}
	if len(diffs) > 0 {
		return recorded, &DriftError{Prefix: recorded.Prefix, Diffs: diffs}
	}
	return recorded, nil
}

// recordFormat is the version of the record's JSON.
const recordFormat = 1

type record struct {
	Format          int               `json:"format"`
	Wire            int               `json:"wire"`
	InputPartitions int32             `json:"input_partitions"`
	Settings        map[string]string `json:"settings"`
}

// Record is the spec's record in the log: JSON of every setting by its flag
// name (the shard count resolved).
func (s Spec) Record() []byte {
	s = s.Resolved()
	r := record{Format: recordFormat, Wire: s.Wire, InputPartitions: s.InputPartitions, Settings: map[string]string{}}
	for _, st := range settings {
		r.Settings[st.flag] = st.get(s)
	}
	b, _ := json.Marshal(r)
	return b
}

// ParseRecord reads a record written by Record for the pipeline prefix. A
// setting it lacks (written by an older release) takes today's default; one
// this release does not know, or another wire version, is an error.
func ParseRecord(prefix string, b []byte) (Spec, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return Spec{}, fmt.Errorf("pipeline %q: unreadable record: %w", prefix, err)
	}
	if r.Format != recordFormat {
		return Spec{}, fmt.Errorf("pipeline %q: record format %d, this release reads %d: use the release that created it", prefix, r.Format, recordFormat)
	}
	s := DefaultSpec()
	s.Prefix, s.Wire, s.InputPartitions = prefix, r.Wire, r.InputPartitions
	for name, v := range r.Settings {
		i := slices.IndexFunc(settings, func(st setting) bool { return st.flag == name })
		if i < 0 {
			return Spec{}, fmt.Errorf("pipeline %q: its record has setting %q, unknown to this release: use the release that created it", prefix, name)
		}
		if err := settings[i].set(&s, v); err != nil {
			return Spec{}, fmt.Errorf("pipeline %q: recorded --%s %q: %w", prefix, name, v, err)
		}
	}
	s = s.Resolved()
	if s.Wire != WireVersion {
		return Spec{}, fmt.Errorf("pipeline %q was built by a release with internal wire version %d, this release speaks %d: "+
			"run `ridestream reset --prefix %s --postgres finals` and replay", prefix, s.Wire, WireVersion, prefix)
	}
	return s, s.Validate()
}

// Summary is the spec in one line, for logs.
func (s Spec) Summary() string {
	parts := []string{fmt.Sprintf("input %s (%d partitions)", s.Input, s.InputPartitions)}
	for _, st := range settings[1:] {
		parts = append(parts, "--"+st.flag+" "+st.get(s))
	}
	return strings.Join(parts, ", ")
}
