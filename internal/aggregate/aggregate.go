// Package aggregate holds a pipeline's windowed aggregations as values: each
// is a name (its table), a group-by, a window (tumbling or session), a
// list of measures and an allowed lateness. The processors, the sink, the
// views and the reference model all take an Aggregation and iterate its
// lists; none of them names a column. docs/contract.md, "Aggregations",
// states the rules; docs/design.md says how they run.
//
// Declarations are YAML (--aggregations FILE):
//
//	aggregations:
//	  - name: busiest_zones_5m
//	    window: 5m                 # tumbling windows of 5 minutes
//	    group_by: [PULocationID]
//	    measures:
//	      num_trips: count
//	      total_revenue: sum(total_amount)
//	  - name: zone_sessions
//	    session_gap: 5m            # session windows
//	    group_by: [PULocationID]
//	    measures: {num_trips: count}
//	    allowed_lateness: 10m      # this aggregation's own
//
// A pipeline without a declaration has one aggregation, Default: today's
// hourly_revenue.
package aggregate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ridestream/ridestream/internal/ride"
)

// Kind is the kind of window an aggregation groups rides in.
type Kind uint8

const (
	// Tumbling windows of a fixed size (the pipeline's time-zone rule).
	Tumbling Kind = iota + 1
	// Session windows: the on-time rides of a group, clustered by a gap.
	Session
)

// Fn is what a measure computes over the rides of a window and group.
type Fn uint8

const (
	// Count counts rides.
	Count Fn = iota + 1
	// Sum adds a field's values; rides without it add nothing (a sum over
	// no value is 0).
	Sum
	// Min is the smallest value of a field (NULL when no ride has it).
	Min
	// Max is the largest value of a field (NULL when no ride has it).
	Max
)

var fnNames = map[Fn]string{Count: "count", Sum: "sum", Min: "min", Max: "max"}

func (f Fn) String() string { return fnNames[f] }

// Measure is one output column: Fn over Field (no field for Count).
type Measure struct {
	Column string
	Fn     Fn
	Field  ride.FieldID
}

// Aggregation is one declared aggregation.
type Aggregation struct {
	// Name is its table (and the prefix of its other objects).
	Name string
	// GroupBy are the fields whose values make a group (none: one group).
	GroupBy []ride.FieldID
	Kind    Kind
	// Size of the tumbling windows; Gap of the sessions.
	Size, Gap time.Duration
	// Lateness is the allowed lateness L; without OwnLateness it is the
	// pipeline's --allowed-lateness (Resolve fills it in).
	Lateness    time.Duration
	OwnLateness bool
	// Shards spreads a tumbling window's groups over this many keys
	// (default 1: a window's partial sums are pre-aggregated per batch).
	Shards   int
	Measures []Measure
}

// DefaultName is the table of the default aggregation.
const DefaultName = "hourly_revenue"

// Default is the aggregation of a pipeline without a declaration:
// hourly_revenue, trips and money per pickup zone per tumbling window of
// size, with the columns the tutorial's query reads.
func Default(size, lateness time.Duration, shards int) Aggregation {
	return Aggregation{Name: DefaultName, GroupBy: []ride.FieldID{ride.PULocationID}, Kind: Tumbling, Size: size,
		Lateness: lateness, Shards: max(shards, 1), Measures: []Measure{
			{Column: "num_trips", Fn: Count},
			{Column: "total_revenue", Fn: Sum, Field: ride.TotalAmount},
			{Column: "total_distance", Fn: Sum, Field: ride.TripDistance},
			{Column: "total_tips", Fn: Sum, Field: ride.TipAmount},
			{Column: "total_passengers", Fn: Sum, Field: ride.PassengerCount},
		}}
}

// identifier is what a table or column name may be: it is used unquoted in
// the SQL people write, and must leave room for the suffixes of the objects
// derived from it (NAME_corrected).
var identifier = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// Reserved names a declared aggregation cannot take: the pipeline's other
// tables and views.
var Reserved = []string{"rides", "rejected_input", "late_rides", "sink_progress", "window_status", "schema_migrations",
	"ridestream_tables", "redriven_input"}

// WindowColumns are the names of a row's window columns: its start and end.
func (a Aggregation) WindowColumns() (start, end string) {
	if a.Kind == Session {
		return "session_start", "session_end"
	}
	return "window_start", "window_end"
}

// GroupColumns are the columns of the group-by fields.
func (a Aggregation) GroupColumns() []string {
	out := make([]string, len(a.GroupBy))
	for i, f := range a.GroupBy {
		out[i] = ride.Fields[f].Column
	}
	return out
}

// Fields are the ride fields the aggregation reads: its group-by, then
// its measures' (each once, in that order).
func (a Aggregation) Fields() []ride.FieldID {
	out := slices.Clone(a.GroupBy)
	for _, m := range a.Measures {
		if m.Fn != Count && !slices.Contains(out, m.Field) {
			out = append(out, m.Field)
		}
	}
	return out
}

// Validate reports what is wrong with a, naming the aggregation and the
// field.
func (a Aggregation) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("aggregation %q: %s", a.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case !identifier.MatchString(a.Name):
		return fmt.Errorf("aggregation %q: name: must be a lower-case SQL name of at most 48 characters (letters, digits, _), starting with a letter", a.Name)
	case slices.Contains(Reserved, a.Name) || strings.HasSuffix(a.Name, "_corrected") || strings.HasSuffix(a.Name, "_late") || strings.HasSuffix(a.Name, "_key"):
		return bad("name: %q is taken by ridestream's own tables", a.Name)
	case a.Kind == Tumbling && (a.Size < time.Second || a.Size%time.Millisecond != 0):
		return bad("window: %v must be a whole number of milliseconds, at least 1s", a.Size)
	case a.Kind == Session && (a.Gap < time.Millisecond || a.Gap%time.Millisecond != 0):
		return bad("session_gap: %v must be a whole number of milliseconds, at least 1ms", a.Gap)
	case a.Kind != Tumbling && a.Kind != Session:
		return bad("give either window (tumbling) or session_gap")
	case a.Lateness < 0:
		return bad("allowed_lateness: %v must not be negative", a.Lateness)
	case a.Shards < 1 || a.Shards > 4096:
		return bad("shards: %d must be within 1..4096", a.Shards)
	case len(a.Measures) == 0:
		return bad("measures: give at least one (e.g. num_trips: count)")
	case len(a.Measures) > 64:
		return bad("measures: %d, at most 64", len(a.Measures))
	case len(a.GroupBy) > MaxGroupBy:
		return bad("group_by: %d fields, at most %d", len(a.GroupBy), MaxGroupBy)
	}
	seen := map[string]string{}
	start, end := a.WindowColumns()
	seen[start], seen[end], seen["finalized_at"] = "the window", "the window", "the table"
	for _, f := range a.GroupBy {
		if ride.Fields[f].Kind != ride.Integer {
			return bad("group_by: %s is not an integer field; group by one of %s", ride.Fields[f].Name, strings.Join(groupable(), ", "))
		}
		col := ride.Fields[f].Column
		if _, dup := seen[col]; dup {
			return bad("group_by: %s given twice", ride.Fields[f].Name)
		}
		seen[col] = "group_by"
	}
	for _, m := range a.Measures {
		if !identifier.MatchString(m.Column) {
			return bad("measures: %q: a column name must be lower-case letters, digits and _, starting with a letter", m.Column)
		}
		if by, dup := seen[m.Column]; dup {
			return bad("measures: %s: the column is taken by %s", m.Column, by)
		}
		seen[m.Column] = "another measure"
	}
	return nil
}

// groupable are the JSON names of the fields a group-by may use.
func groupable() []string {
	var out []string
	for _, f := range ride.Fields {
		if f.Kind == ride.Integer {
			out = append(out, f.Name)
		}
	}
	return out
}

// measurable are the JSON names of the fields a measure may use.
func measurable() []string {
	out := make([]string, len(ride.Fields))
	for i, f := range ride.Fields {
		out[i] = f.Name
	}
	return out
}

// declared is one aggregation as written: in YAML (measures a mapping, in
// its order) and in the record's canonical JSON (measures a list of pairs).
type declared struct {
	Name       string      `yaml:"name" json:"name"`
	Window     string      `yaml:"window" json:"window,omitempty"`
	SessionGap string      `yaml:"session_gap" json:"session_gap,omitempty"`
	GroupBy    []string    `yaml:"group_by" json:"group_by"`
	Measures   [][2]string `yaml:"-" json:"measures"`
	Lateness   string      `yaml:"allowed_lateness" json:"allowed_lateness,omitempty"`
	Shards     int         `yaml:"shards" json:"shards,omitempty"`
	// MeasuresYAML is the YAML mapping column: expression.
	MeasuresYAML yaml.Node `yaml:"measures" json:"-"`
}

// measureExpr is a measure's expression: count, count(*), or fn(field).
var measureExpr = regexp.MustCompile(`^\s*(count|sum|min|max)\s*(?:\(\s*([A-Za-z_][A-Za-z0-9_]*|\*)?\s*\))?\s*$`)

// Parse reads a YAML declaration (see the package comment). Every error
// names the aggregation and the field at fault.
func Parse(text []byte) ([]Aggregation, error) {
	var d struct {
		Aggregations []declared `yaml:"aggregations"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("aggregations: %w", err)
	}
	for i := range d.Aggregations {
		y := &d.Aggregations[i]
		n := &y.MeasuresYAML
		switch {
		case n.Kind == 0:
			continue // build says it is missing
		case n.Kind != yaml.MappingNode:
			return nil, fmt.Errorf("aggregation %q: measures: line %d: want a mapping of column: expression", y.Name, n.Line)
		}
		for j := 0; j+1 < len(n.Content); j += 2 {
			y.Measures = append(y.Measures, [2]string{n.Content[j].Value, n.Content[j+1].Value})
		}
	}
	return build(d.Aggregations)
}

// build makes and validates the aggregations of a declaration.
func build(list []declared) ([]Aggregation, error) {
	if len(list) == 0 {
		return nil, errors.New("aggregations: the declaration lists none (want aggregations: [ {name: …, window: …, measures: …} ])")
	}
	var out []Aggregation
	names := map[string]bool{}
	for i, y := range list {
		a := Aggregation{Name: y.Name, Shards: max(y.Shards, 1)}
		if a.Name == "" {
			return nil, fmt.Errorf("aggregations[%d]: name: missing", i)
		}
		if names[a.Name] {
			return nil, fmt.Errorf("aggregation %q: name: declared twice", a.Name)
		}
		names[a.Name] = true
		bad := func(format string, args ...any) error {
			return fmt.Errorf("aggregation %q: %s", a.Name, fmt.Sprintf(format, args...))
		}
		var err error
		switch {
		case y.Window != "" && y.SessionGap != "":
			return nil, bad("give window (tumbling) or session_gap, not both")
		case y.Window != "":
			a.Kind = Tumbling
			if a.Size, err = time.ParseDuration(y.Window); err != nil {
				return nil, bad("window: %v", err)
			}
		case y.SessionGap != "":
			a.Kind = Session
			if a.Gap, err = time.ParseDuration(y.SessionGap); err != nil {
				return nil, bad("session_gap: %v", err)
			}
		default:
			return nil, bad("window: missing (give window: 1h for tumbling windows, or session_gap: 5m for sessions)")
		}
		if y.Lateness != "" {
			if a.Lateness, err = time.ParseDuration(y.Lateness); err != nil {
				return nil, bad("allowed_lateness: %v", err)
			}
			a.OwnLateness = true
		}
		for _, g := range y.GroupBy {
			f, ok := ride.FieldByName(g)
			if !ok {
				return nil, bad("group_by: unknown field %q (one of %s)", g, strings.Join(groupable(), ", "))
			}
			a.GroupBy = append(a.GroupBy, f)
		}
		if len(y.Measures) == 0 {
			return nil, bad("measures: missing (e.g. measures: {num_trips: count, total_revenue: sum(total_amount)})")
		}
		for _, m := range y.Measures {
			mm, err := ParseMeasure(m[0], m[1])
			if err != nil {
				return nil, bad("measures: %v", err)
			}
			a.Measures = append(a.Measures, mm)
		}
		if err := a.Validate(); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// ParseMeasure reads one measure: count (or count(*)), or sum, min or max of
// a field.
func ParseMeasure(column, expr string) (Measure, error) {
	m := measureExpr.FindStringSubmatch(expr)
	if m == nil {
		return Measure{}, fmt.Errorf("%s: %q is not count, sum(field), min(field) or max(field)", column, expr)
	}
	out := Measure{Column: column}
	for fn, name := range fnNames {
		if name == m[1] {
			out.Fn = fn
		}
	}
	arg := m[2]
	switch {
	case out.Fn == Count && (arg == "" || arg == "*"):
		return out, nil
	case out.Fn == Count:
		return Measure{}, fmt.Errorf("%s: count takes no field (count counts rides)", column)
	case arg == "" || arg == "*":
		return Measure{}, fmt.Errorf("%s: %s needs a field, e.g. %s(total_amount)", column, m[1], m[1])
	}
	f, ok := ride.FieldByName(arg)
	if !ok {
		return Measure{}, fmt.Errorf("%s: unknown field %q (one of %s)", column, arg, strings.Join(measurable(), ", "))
	}
	out.Field = f
	return out, nil
}

// Canonical is the list as canonical JSON: equal lists give equal bytes
// (the pipeline's record keeps it, and drift compares it).
func Canonical(list []Aggregation) string {
	out := make([]declared, len(list))
	for i, a := range list {
		r := declared{Name: a.Name, GroupBy: []string{}, Shards: a.Shards}
		if a.Kind == Session {
			r.SessionGap = a.Gap.String()
		} else {
			r.Window = a.Size.String()
		}
		if a.OwnLateness {
			r.Lateness = a.Lateness.String()
		}
		for _, f := range a.GroupBy {
			r.GroupBy = append(r.GroupBy, ride.Fields[f].Name)
		}
		for _, m := range a.Measures {
			expr := m.Fn.String()
			if m.Fn != Count {
				expr += "(" + ride.Fields[m.Field].Name + ")"
			}
			r.Measures = append(r.Measures, [2]string{m.Column, expr})
		}
		out[i] = r
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// FromCanonical reads what Canonical wrote.
func FromCanonical(text string) ([]Aggregation, error) {
	var list []declared
	if err := json.Unmarshal([]byte(text), &list); err != nil {
		return nil, fmt.Errorf("aggregations: %w", err)
	}
	return build(list)
}
