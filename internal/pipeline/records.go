package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/ride"
)

// Heartbeat is the documented heartbeat record, {"heartbeat": <epoch ms>}:
// it advances its partition's stream time without being a ride, and it lives
// in the input log, so replays see it too.
func Heartbeat(ms int64) []byte {
	return []byte(`{"heartbeat":` + strconv.FormatInt(ms, 10) + `}`)
}

// Value is one column's value; Null when it has none.
type Value struct {
	V    int64
	Null bool
}

// Final is a record of the finals topic: one final row of an aggregation,
// written by the window stage and landed in the aggregation's table by the
// sink. Start and End are the window's bounds (a session's first and last
// event times), Group the group-by fields' values, Measures the measures'
// (hundredths for money and miles).
type Final struct {
	Aggregation string
	Start, End  int64
	Group       []Value
	Measures    []Value
}

// Key is the record's key: aggregation, start and group.
func (f Final) Key() string {
	var b strings.Builder
	b.WriteString(f.Aggregation)
	b.WriteByte('@')
	b.WriteString(strconv.FormatInt(f.Start, 10))
	for _, g := range f.Group {
		b.WriteByte(':')
		if g.Null {
			b.WriteString("null")
		} else {
			b.WriteString(strconv.FormatInt(g.V, 10))
		}
	}
	return b.String()
}

// Encode is the record's value: one JSON object with the aggregation's
// name, its window columns (RFC 3339), each group-by field by its JSON name
// and each measure by its column; money and miles as exact decimal
// strings, counts and ids as numbers, no value as null.
func (f Final) Encode(a aggregate.Aggregation) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"aggregation":`...)
	b = strconv.AppendQuote(b, f.Aggregation)
	start, end := a.WindowColumns()
	b = append(b, `,"`+start+`":"`...)
	b = append(b, FormatMs(f.Start)...)
	b = append(b, `","`+end+`":"`...)
	b = append(b, FormatMs(f.End)...)
	b = append(b, '"')
	for i, fid := range a.GroupBy {
		b = appendValue(b, ride.Fields[fid].Name, f.Group[i], ride.Integer)
	}
	for i, m := range a.Measures {
		b = appendValue(b, m.Column, f.Measures[i], m.Scale())
	}
	return append(b, '}')
}

func appendValue(b []byte, name string, v Value, kind ride.FieldKind) []byte {
	b = append(b, ',')
	b = strconv.AppendQuote(b, name)
	b = append(b, ':')
	switch {
	case v.Null:
		return append(b, "null"...)
	case kind == ride.Hundredths:
		return strconv.AppendQuote(b, Cents(v.V))
	}
	return strconv.AppendInt(b, v.V, 10)
}

// DecodeFinal reads a finals record of one of aggs.
func DecodeFinal(aggs []aggregate.Aggregation, b []byte) (Final, aggregate.Aggregation, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Final{}, aggregate.Aggregation{}, err
	}
	var f Final
	if err := json.Unmarshal(raw["aggregation"], &f.Aggregation); err != nil {
		return f, aggregate.Aggregation{}, errors.New("finals record without aggregation")
	}
	i := slices.IndexFunc(aggs, func(a aggregate.Aggregation) bool { return a.Name == f.Aggregation })
	if i < 0 {
		return f, aggregate.Aggregation{}, fmt.Errorf("finals record of aggregation %q, which the pipeline does not declare", f.Aggregation)
	}
	a := aggs[i]
	start, end := a.WindowColumns()
	var err error
	if f.Start, err = readTime(raw[start]); err != nil {
		return f, a, fmt.Errorf("%s: %w", start, err)
	}
	if f.End, err = readTime(raw[end]); err != nil {
		return f, a, fmt.Errorf("%s: %w", end, err)
	}
	f.Group = make([]Value, len(a.GroupBy))
	for i, fid := range a.GroupBy {
		if f.Group[i], err = readValue(raw, ride.Fields[fid].Name, ride.Integer); err != nil {
			return f, a, err
		}
	}
	f.Measures = make([]Value, len(a.Measures))
	for i, m := range a.Measures {
		if f.Measures[i], err = readValue(raw, m.Column, m.Scale()); err != nil {
			return f, a, err
		}
	}
	return f, a, nil
}

func readTime(raw json.RawMessage) (int64, error) {
	var t time.Time
	if err := json.Unmarshal(raw, &t); err != nil || t.IsZero() {
		return 0, errors.New("missing or not a time")
	}
	return t.UnixMilli(), nil
}

func readValue(raw map[string]json.RawMessage, name string, kind ride.FieldKind) (Value, error) {
	r, ok := raw[name]
	if !ok {
		return Value{}, fmt.Errorf("%s: missing", name)
	}
	if string(r) == "null" {
		return Value{Null: true}, nil
	}
	if kind == ride.Hundredths {
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			return Value{}, fmt.Errorf("%s: %w", name, err)
		}
		v, err := ParseCents(s)
		return Value{V: v}, err
	}
	v, err := strconv.ParseInt(string(r), 10, 64)
	if err != nil {
		return Value{}, fmt.Errorf("%s: %w", name, err)
	}
	return Value{V: v}, nil
}

// ParseCents reads what Cents writes ("-12.05") back into hundredths.
func ParseCents(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	whole, frac, ok := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	w, err := strconv.ParseInt(whole, 10, 64)
	if !ok || len(frac) != 2 || err != nil || strings.HasPrefix(whole, "-") {
		return 0, fmt.Errorf("%q is not an amount with two decimals", s)
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an amount with two decimals", s)
	}
	v := w*100 + f
	if neg {
		v = -v
	}
	return v, nil
}

// Late is a record of the late topic: a ride that missed its window, or
// came too late to join a session, in one aggregation.
type Late struct {
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
	Aggregation string `json:"aggregation"`
	EventTime   string `json:"event_time"`
	// WindowStart and WindowEnd are the tumbling window it missed.
	WindowStart string `json:"window_start,omitempty"`
	WindowEnd   string `json:"window_end,omitempty"`
	StreamTime  string `json:"stream_time"`
	LateByMs    int64  `json:"late_by_ms"`
}

// Encode is the record's value: Late's fields, then the ride's fields that
// the aggregation reads, by their JSON names.
func (l Late) Encode(a aggregate.Aggregation, r *ride.Ride) []byte {
	b, _ := json.Marshal(l)
	b = b[:len(b)-1]
	for _, f := range a.Fields() {
		if v, ok := r.Get(f); ok {
			b = appendValue(b, ride.Fields[f].Name, Value{V: v}, ride.Fields[f].Kind)
		}
	}
	return append(b, '}')
}

// Rejected is a record of the rejected topic. Raw holds at most
// MaxRejectedRaw bytes of the message (the rejected_input table has all of
// it).
type Rejected struct {
	Partition    int32  `json:"partition"`
	Offset       int64  `json:"offset"`
	Error        string `json:"error"`
	Raw          []byte `json:"raw_base64,omitempty"`
	RawTruncated bool   `json:"raw_truncated,omitempty"`
}

// MaxRejectedRaw bounds the raw bytes copied into the rejected topic, so a
// huge poison message cannot make its own rejection too large to write.
const MaxRejectedRaw = 64 << 10

// NewRejected is the rejection of the message raw at partition/offset.
func NewRejected(partition int32, offset int64, raw []byte, reason string) Rejected {
	r := Rejected{Partition: partition, Offset: offset, Error: reason, Raw: raw}
	if len(raw) > MaxRejectedRaw {
		r.Raw, r.RawTruncated = raw[:MaxRejectedRaw], true
	}
	return r
}

// Encode is the record's value.
func (r Rejected) Encode() []byte {
	b, _ := json.Marshal(r)
	return b
}

// SkewReason is the rejection reason of a ride more than --max-future-skew
// ahead of its partition's stream time; the processors' rejected topic and
// the sink's rejected_input table give the same text.
func SkewReason(eventMs int64, skew time.Duration, streamTime int64) string {
	return fmt.Sprintf("event time %s is more than --max-future-skew %v ahead of the partition's stream time %s",
		FormatMs(eventMs), skew, FormatMs(streamTime))
}

// FormatMs formats epoch milliseconds as RFC 3339 in UTC.
func FormatMs(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

// Cents formats integer cents as an exact decimal string ("-12.05").
func Cents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}
