// Package ride decodes and validates taxi-ride messages (docs/contract.md,
// "Input").
//
// Every input yields either a Record (a ride or a heartbeat) or a *DecodeError
// whose message is fit for the rejected table. Money becomes integer cents on
// decode and distances integer hundredths of a mile, so every later sum is
// exact and independent of summation order.
package ride

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind says what a decoded record is.
type Kind uint8

const (
	// KindRide is a taxi ride.
	KindRide Kind = iota + 1
	// KindHeartbeat advances its partition's stream time without being a ride.
	KindHeartbeat
)

// Ride is one valid ride. Times are epoch milliseconds (UTC); the numeric
// fields (Fields) are in Vals, amounts and distances as integer hundredths.
// A field absent from the message is zero in Vals and unset in Has.
type Ride struct {
	PickupMs  int64
	DropoffMs int64
	Vals      [NumFields]int64
	// Has has bit f set when field f is present, and HasPickup and
	// HasDropoff for the times.
	Has uint32
}

// Presence bits of the times in Ride.Has (the fields use bits 0…NumFields-1).
const (
	// HasPickup is set on every ride whose event time is its pickup time
	// (the default); with --event-time-field the pickup is optional.
	HasPickup uint32 = 1 << 30
	// HasDropoff is set when the ride has a dropoff time.
	HasDropoff uint32 = 1 << 31
)

// Bit is the presence bit of field f in Ride.Has.
func Bit(f FieldID) uint32 { return 1 << f }

// Get returns field f's value and whether the ride has it.
func (r *Ride) Get(f FieldID) (int64, bool) { return r.Vals[f], r.Has&Bit(f) != 0 }

// Record is a decoded message: a ride or a heartbeat, with its event time.
type Record struct {
	Kind    Kind
	EventMs int64
	Ride    Ride
}

// DecodeError says why a message was rejected. Field is empty when the whole
// message is at fault.
type DecodeError struct {
	Field  string
	Reason string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Bounds on event times and amounts. Times outside [MinEventMs, MaxEventMs)
// are rejected at decode; amounts are bounded so that sums of millions of rides
// stay far inside numeric(18,2) and int64.
var (
	MinEventMs = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	MaxEventMs = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
)

// MaxAbsCents bounds every money field: |amount| < 1,000,000.00.
const MaxAbsCents = 100_000_000

// MaxAbsDistanceCenti bounds trip_distance: |distance| < 100,000 miles.
const MaxAbsDistanceCenti = 10_000_000

// MaxMessageBytes is the largest value accepted; larger ones are rejected
// without being parsed.
const MaxMessageBytes = 1 << 20

// wire holds the raw values of the message's keys that the decoder reads,
// indexed like wireNames; RawMessage keeps "absent", "null" and the
// original number text apart.
type wire [numWire]json.RawMessage

// Indexes of wire: the heartbeat and the times, then the fields.
const (
	wHeartbeat = iota
	wPickup
	wLPickup
	wAnyPickup
	wDropoff
	wLDropoff
	wAnyDropoff
	wFields // field f is at wFields + f
	numWire = wFields + int(NumFields)
)

// Options are the decoder's settings; both are part of a pipeline's spec, so
// every process decodes the same log the same way.
type Options struct {
	// EventTimeField names the field that holds a ride's event time; empty:
	// the first present of tpep_pickup_datetime, lpep_pickup_datetime and
	// pickup_datetime.
	EventTimeField string
	// Location reads a time string without zone ("2025-10-01 18:04:11");
	// nil is UTC.
	Location *time.Location
}

// Validate reports an EventTimeField that cannot hold an event time: one
// of the fields the decoder reads as something else.
func (o Options) Validate() error {
	f := o.EventTimeField
	if f == "" || !slices.Contains(wireNames[:], f) || strings.HasSuffix(f, "_datetime") {
		return nil
	}
	return fmt.Errorf("--event-time-field %s: the decoder reads that field as something other than a ride's time; name the field that holds it", f)
}

// Decode parses one message value with the default Options.
func Decode(value []byte) (Record, error) { return Options{}.Decode(value) }

// Decode parses one message value. It never panics; a nil error means the
// Record is valid (docs/contract.md, "Input").
func (o Options) Decode(value []byte) (Record, error) {
	if len(value) > MaxMessageBytes {
		return Record{}, &DecodeError{Reason: fmt.Sprintf("message is %d bytes, limit is %d", len(value), MaxMessageBytes)}
	}
	trimmed := bytes.TrimSpace(value)
	if len(trimmed) == 0 {
		return Record{}, &DecodeError{Reason: "empty message"}
	}
	if trimmed[0] != '{' {
		return Record{}, &DecodeError{Reason: "not a JSON object"}
	}
	custom := o.EventTimeField
	if custom != "" && slices.Contains(wireNames[:], custom) {
		custom = "" // a field the wire struct holds anyway
	}
	var w wire
	event, ok := fastWire(trimmed, &w, custom)
	if !ok {
		w = wire{}
		var err error
		if event, err = slowWire(trimmed, &w, custom); err != nil {
			return Record{}, &DecodeError{Reason: "invalid JSON: " + err.Error()}
		}
	}

	if present(w[wHeartbeat]) {
		ms, err := o.parseTime(w[wHeartbeat])
		if err != nil {
			return Record{}, &DecodeError{Field: "heartbeat", Reason: err.Error()}
		}
		return Record{Kind: KindHeartbeat, EventMs: ms}, nil
	}

	var r Ride
	var err error
	pickField, pick := firstPresent(
		"tpep_pickup_datetime", w[wPickup],
		"lpep_pickup_datetime", w[wLPickup],
		"pickup_datetime", w[wAnyPickup])
	switch {
	case o.EventTimeField != "" && (pick == nil || missingValue(pick)):
		// The event time is elsewhere: the pickup is an optional field.
	case pick == nil:
		return Record{}, &DecodeError{Field: "tpep_pickup_datetime", Reason: "missing (also looked for lpep_pickup_datetime, pickup_datetime)"}
	default:
		ms, err := o.parseTime(pick)
		if err != nil {
			return Record{}, &DecodeError{Field: pickField, Reason: err.Error()}
		}
		r.PickupMs = ms
		r.Has |= HasPickup
	}

	if dropField, drop := firstPresent(
		"tpep_dropoff_datetime", w[wDropoff],
		"lpep_dropoff_datetime", w[wLDropoff],
		"dropoff_datetime", w[wAnyDropoff]); drop != nil && !missingValue(drop) {
		ms, err := o.parseTime(drop)
		if err != nil {
			return Record{}, &DecodeError{Field: dropField, Reason: err.Error()}
		}
		r.DropoffMs = ms
		r.Has |= HasDropoff
	}

	// The required fields first, then the optional ones in table order: the
	// first field at fault names the rejection.
	for _, required := range [...]bool{true, false} {
		for i, f := range Fields {
			if f.Required != required {
				continue
			}
			raw := w[wFields+i]
			switch {
			case !present(raw) && f.Required:
				return Record{}, &DecodeError{Field: f.Name, Reason: "missing"}
			case !present(raw) || (!f.Required && missingValue(raw)):
				continue
			}
			var v int64
			if f.Kind == Integer {
				var x int32
				x, err = parseInt32(raw)
				v = int64(x)
			} else {
				v, err = parseCenti(raw, f.Limit)
			}
			if err != nil {
				return Record{}, &DecodeError{Field: f.Name, Reason: err.Error()}
			}
			r.Vals[i] = v
			r.Has |= Bit(FieldID(i))
		}
	}

	eventMs := r.PickupMs
	switch field := o.EventTimeField; {
	case field == "":
	case custom == "":
		// One of the wire's own fields (a dropoff time, say).
		raw := w.byName(field)
		if !present(raw) {
			return Record{}, &DecodeError{Field: field, Reason: "missing (--event-time-field)"}
		}
		if eventMs, err = o.parseTime(raw); err != nil {
			return Record{}, &DecodeError{Field: field, Reason: err.Error()}
		}
	default:
		if !present(event) {
			return Record{}, &DecodeError{Field: field, Reason: "missing (--event-time-field)"}
		}
		if eventMs, err = o.parseTime(event); err != nil {
			return Record{}, &DecodeError{Field: field, Reason: err.Error()}
		}
	}
	return Record{Kind: KindRide, EventMs: eventMs, Ride: r}, nil
}

// present reports whether a field was given with a non-null value.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// missingValue reports a value that real producers write for "no value":
// Python's NaN, Infinity and -Infinity literals (json.dumps of a float
// column with gaps), and pandas' "NaT" for a missing time. An optional field
// holding one is absent; a required one is rejected.
func missingValue(raw json.RawMessage) bool {
	return nonFinite(raw) || bytes.Equal(raw, []byte(`"NaT"`))
}

func nonFinite(raw []byte) bool {
	return bytes.Equal(raw, []byte("NaN")) || bytes.Equal(raw, []byte("Infinity")) || bytes.Equal(raw, []byte("-Infinity"))
}

func firstPresent(pairs ...any) (string, json.RawMessage) {
	for i := 0; i+1 < len(pairs); i += 2 {
		if raw := pairs[i+1].(json.RawMessage); present(raw) {
			return pairs[i].(string), raw
		}
	}
	return "", nil
}

// timePattern is a date and time as producers write them: RFC 3339, and
// Python's str() of a timestamp ("2025-10-01 18:04:11"), with or without
// fractional seconds and zone.
var timePattern = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}(?::?\d{2})?)?$`)

// parseTime reads an event time: epoch milliseconds as a JSON number (an
// integral float such as 1762078500000.0 too), or a date-time string (see
// timePattern). A string without zone is a wall time of o.Location: one
// shown twice (when clocks go back) is its first occurrence, one skipped
// (when they go forward) is read with the offset before the jump, as
// Python's zoneinfo does. Fractional milliseconds of a string are dropped.
func (o Options) parseTime(raw json.RawMessage) (int64, error) {
	if nonFinite(raw) {
		return 0, fmt.Errorf("%s is not a time", raw)
	}
	var ms int64
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("invalid string: %w", err)
		}
		if s == "NaT" {
			return 0, errors.New(`"NaT" (pandas' missing time) is not a time`)
		}
		var err error
		if ms, err = o.parseTimeString(s); err != nil {
			return 0, err
		}
	} else {
		if raw[0] == '{' || raw[0] == '[' || raw[0] == 't' || raw[0] == 'f' {
			return 0, fmt.Errorf("%s is neither epoch milliseconds nor a date-time string", clip(raw))
		}
		c, err := parseDecimal(raw, 0)
		if err != nil {
			return 0, fmt.Errorf("%s is not epoch milliseconds: %w", clip(raw), err)
		}
		if c.frac {
			return 0, fmt.Errorf("%s has a fractional millisecond: epoch milliseconds must be whole", clip(raw))
		}
		ms = c.v
	}
	if ms < MinEventMs || ms >= MaxEventMs {
		return 0, fmt.Errorf("%s is outside 2000-01-01..2100-01-01 (epoch milliseconds expected)", clip(raw))
	}
	return ms, nil
}

func (o Options) parseTimeString(s string) (int64, error) {
	m := timePattern.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is neither epoch milliseconds nor a date-time (YYYY-MM-DD HH:MM:SS[.fff][zone])", clip([]byte(s)))
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	y, mo, d, h, mi, sec := n(1), n(2), n(3), n(4), n(5), n(6)
	wall := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC)
	if wall.Year() != y || int(wall.Month()) != mo || wall.Day() != d || wall.Hour() != h || wall.Minute() != mi || wall.Second() != sec {
		return 0, fmt.Errorf("%q is not a valid date-time", s)
	}
	ms := wall.UnixMilli()
	if frac := m[7]; frac != "" {
		frac = (frac + "00")[:3] // milliseconds; finer digits are dropped
		f, _ := strconv.Atoi(frac)
		ms += int64(f)
	}
	switch zone := m[8]; zone {
	case "Z", "z":
		return ms, nil
	case "":
		return wallToInstant(ms, o.Location), nil
	default:
		digits := strings.ReplaceAll(zone[1:], ":", "")
		hh, _ := strconv.Atoi(digits[:2])
		mm := 0
		if len(digits) == 4 {
			mm, _ = strconv.Atoi(digits[2:])
		}
		if hh > 23 || mm > 59 {
			return 0, fmt.Errorf("%q has an invalid zone offset", s)
		}
		off := int64(hh*3600+mm*60) * 1000
		if zone[0] == '-' {
			off = -off
		}
		return ms - off, nil
	}
}

// wallToInstant is the instant at which loc's clock shows wall (a wall time
// as milliseconds counted like UTC): its first occurrence when shown twice,
// and with the offset before the jump when skipped.
func wallToInstant(wall int64, loc *time.Location) int64 {
	if loc == nil || loc == time.UTC {
		return wall
	}
	offset := func(u int64) int64 {
		_, off := time.UnixMilli(u).In(loc).Zone()
		return int64(off) * 1000
	}
	const day = 86_400_000
	before, after := offset(wall-day), offset(wall+day) // offsets around: DST changes are rare
	uBefore, uAfter := wall-before, wall-after
	okBefore, okAfter := offset(uBefore) == before, offset(uAfter) == after
	switch {
	case okBefore && okAfter:
		return min(uBefore, uAfter) // shown twice (or one offset): the first
	case okBefore:
		return uBefore
	case okAfter:
		return uAfter
	}
	return uBefore // skipped: the offset before the jump
}

// parseInt32 accepts a JSON integer, or a number with a zero fraction (186.0,
// as pandas writes integer columns that contain nulls).
func parseInt32(raw json.RawMessage) (int32, error) {
	if raw[0] == '"' || raw[0] == '{' || raw[0] == '[' || raw[0] == 't' || raw[0] == 'f' {
		return 0, fmt.Errorf("%s is not a number", clip(raw))
	}
	c, err := parseDecimal(raw, 0)
	if err != nil {
		return 0, err
	}
	if c.frac {
		return 0, fmt.Errorf("%s is not an integer", clip(raw))
	}
	if c.v < -1<<31 || c.v > 1<<31-1 {
		return 0, fmt.Errorf("%s is out of range for an integer id", clip(raw))
	}
	return int32(c.v), nil
}

// parseCenti parses a JSON number into hundredths, exactly: the decimal text
// is scaled by 100 and rounded half away from zero; binary floating point is
// never involved. |result| must be < limit.
func parseCenti(raw json.RawMessage, limit int64) (int64, error) {
	if raw[0] == '"' || raw[0] == '{' || raw[0] == '[' || raw[0] == 't' || raw[0] == 'f' {
		return 0, fmt.Errorf("%s is not a number", clip(raw))
	}
	c, err := parseDecimal(raw, 2)
	if err != nil {
		return 0, err
	}
	if c.v <= -limit || c.v >= limit {
		return 0, fmt.Errorf("%s is out of range (|x| < %d)", clip(raw), limit/100)
	}
	return c.v, nil
}

type scaled struct {
	v    int64
	frac bool // a non-zero digit was dropped by scaling (before rounding)
}

// parseDecimal converts JSON number text to an integer scaled by 10^scale,
// rounding half away from zero. It rejects NaN/Inf (not JSON) and magnitudes
// beyond 10^15 at scale.
func parseDecimal(raw []byte, scale int) (scaled, error) {
	s := raw
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg = true
		s = s[1:]
	}
	var mant []byte // significant digits
	exp := 0        // value = mant * 10^exp
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		mant = append(mant, s[i])
		i++
	}
	if i == 0 {
		return scaled{}, fmt.Errorf("%s is not a finite number", clip(raw))
	}
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			mant = append(mant, s[i])
			exp--
			i++
		}
		if i == start {
			return scaled{}, fmt.Errorf("%s is not a valid number", clip(raw))
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		e, err := strconv.Atoi(string(s[i:]))
		if err != nil || e > 400 || e < -400 {
			return scaled{}, fmt.Errorf("%s has an invalid exponent", clip(raw))
		}
		exp += e
		i = len(s)
	}
	if i != len(s) {
		return scaled{}, fmt.Errorf("%s is not a valid number", clip(raw))
	}
	// Strip leading zeros so the magnitude check counts real digits.
	for len(mant) > 1 && mant[0] == '0' {
		mant = mant[1:]
	}
	exp += scale
	var out scaled
	var v int64
	if exp >= 0 {
		if len(mant)+exp > 16 && !(len(mant) == 1 && mant[0] == '0') {
			return scaled{}, fmt.Errorf("%s is too large", clip(raw))
		}
		for _, d := range mant {
			v = v*10 + int64(d-'0')
		}
		for range exp {
			v *= 10
		}
	} else {
		keep := len(mant) + exp // digits left of the scaled decimal point
		if keep > 16 {
			return scaled{}, fmt.Errorf("%s is too large", clip(raw))
		}
		var roundUp bool
		if keep >= 0 {
			for _, d := range mant[:keep] {
				v = v*10 + int64(d-'0')
			}
			dropped := mant[keep:]
			roundUp = dropped[0] >= '5'
			for _, d := range dropped {
				if d != '0' {
					out.frac = true
				}
			}
		} else {
			for _, d := range mant {
				if d != '0' {
					out.frac = true
				}
			}
		}
		if roundUp {
			v++
		}
	}
	if neg {
		v = -v
	}
	out.v = v
	return out, nil
}

// clip shortens a raw value for an error message.
func clip(raw []byte) string {
	const max = 40
	if len(raw) <= max {
		return string(raw)
	}
	return string(raw[:max]) + "…"
}
