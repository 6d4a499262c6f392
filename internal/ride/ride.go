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
	"fmt"
	"strconv"
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

// Optional fields a ride may carry; Ride.Has reports which are present.
const (
	HasDropoff uint16 = 1 << iota
	HasDOLocation
	HasDistance
	HasPassengers
	HasVendor
	HasFare
	HasTip
	HasTolls
)

// Ride is one valid ride. Times are epoch milliseconds (UTC), amounts integer
// cents, distance integer hundredths of a mile. Optional fields are zero
// unless their bit is set in Has.
type Ride struct {
	PickupMs       int64
	DropoffMs      int64
	PULocationID   int32
	DOLocationID   int32
	DistanceCenti  int64
	PassengerCount int32
	VendorID       int32
	TotalCents     int64
	FareCents      int64
	TipCents       int64
	TollsCents     int64
	Has            uint16
}

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

// wire is the JSON shape; RawMessage keeps "absent", "null" and the original
// number text apart.
type wire struct {
	Heartbeat json.RawMessage `json:"heartbeat"`

	Pickup     json.RawMessage `json:"tpep_pickup_datetime"`
	LPickup    json.RawMessage `json:"lpep_pickup_datetime"`
	AnyPickup  json.RawMessage `json:"pickup_datetime"`
	Dropoff    json.RawMessage `json:"tpep_dropoff_datetime"`
	LDropoff   json.RawMessage `json:"lpep_dropoff_datetime"`
	AnyDropoff json.RawMessage `json:"dropoff_datetime"`

	PU         json.RawMessage `json:"PULocationID"`
	DO         json.RawMessage `json:"DOLocationID"`
	Distance   json.RawMessage `json:"trip_distance"`
	Passengers json.RawMessage `json:"passenger_count"`
	Vendor     json.RawMessage `json:"VendorID"`
	Total      json.RawMessage `json:"total_amount"`
	Fare       json.RawMessage `json:"fare_amount"`
	Tip        json.RawMessage `json:"tip_amount"`
	Tolls      json.RawMessage `json:"tolls_amount"`
}

// Decode parses one message value. It never panics; a nil error means the
// Record is valid (docs/contract.md, "Input").
func Decode(value []byte) (Record, error) {
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
	var w wire
	if !fastWire(trimmed, &w) {
		w = wire{}
		if err := json.Unmarshal(trimmed, &w); err != nil {
			return Record{}, &DecodeError{Reason: "invalid JSON: " + err.Error()}
		}
	}

	if present(w.Heartbeat) {
		ms, err := parseTime(w.Heartbeat)
		if err != nil {
			return Record{}, &DecodeError{Field: "heartbeat", Reason: err.Error()}
		}
		return Record{Kind: KindHeartbeat, EventMs: ms}, nil
	}

	var r Ride
	pickField, pick := firstPresent(
		"tpep_pickup_datetime", w.Pickup,
		"lpep_pickup_datetime", w.LPickup,
		"pickup_datetime", w.AnyPickup)
	if pick == nil {
		return Record{}, &DecodeError{Field: "tpep_pickup_datetime", Reason: "missing (also looked for lpep_pickup_datetime, pickup_datetime)"}
	}
	ms, err := parseTime(pick)
	if err != nil {
		return Record{}, &DecodeError{Field: pickField, Reason: err.Error()}
	}
	r.PickupMs = ms

	if dropField, drop := firstPresent(
		"tpep_dropoff_datetime", w.Dropoff,
		"lpep_dropoff_datetime", w.LDropoff,
		"dropoff_datetime", w.AnyDropoff); drop != nil {
		ms, err := parseTime(drop)
		if err != nil {
			return Record{}, &DecodeError{Field: dropField, Reason: err.Error()}
		}
		r.DropoffMs = ms
		r.Has |= HasDropoff
	}

	if !present(w.PU) {
		return Record{}, &DecodeError{Field: "PULocationID", Reason: "missing"}
	}
	if r.PULocationID, err = parseInt32(w.PU); err != nil {
		return Record{}, &DecodeError{Field: "PULocationID", Reason: err.Error()}
	}
	if !present(w.Total) {
		return Record{}, &DecodeError{Field: "total_amount", Reason: "missing"}
	}
	if r.TotalCents, err = parseCenti(w.Total, MaxAbsCents); err != nil {
		return Record{}, &DecodeError{Field: "total_amount", Reason: err.Error()}
	}

	optionalInts := []struct {
		name string
		raw  json.RawMessage
		dst  *int32
		bit  uint16
	}{
		{"DOLocationID", w.DO, &r.DOLocationID, HasDOLocation},
		{"passenger_count", w.Passengers, &r.PassengerCount, HasPassengers},
		{"VendorID", w.Vendor, &r.VendorID, HasVendor},
	}
	for _, f := range optionalInts {
		if !present(f.raw) {
			continue
		}
		v, err := parseInt32(f.raw)
		if err != nil {
			return Record{}, &DecodeError{Field: f.name, Reason: err.Error()}
		}
		*f.dst = v
		r.Has |= f.bit
	}

	optionalCenti := []struct {
		name  string
		raw   json.RawMessage
		dst   *int64
		bit   uint16
		limit int64
	}{
		{"trip_distance", w.Distance, &r.DistanceCenti, HasDistance, MaxAbsDistanceCenti},
		{"fare_amount", w.Fare, &r.FareCents, HasFare, MaxAbsCents},
		{"tip_amount", w.Tip, &r.TipCents, HasTip, MaxAbsCents},
		{"tolls_amount", w.Tolls, &r.TollsCents, HasTolls, MaxAbsCents},
	}
	for _, f := range optionalCenti {
		if !present(f.raw) {
			continue
		}
		v, err := parseCenti(f.raw, f.limit)
		if err != nil {
			return Record{}, &DecodeError{Field: f.name, Reason: err.Error()}
		}
		*f.dst = v
		r.Has |= f.bit
	}
	return Record{Kind: KindRide, EventMs: r.PickupMs, Ride: r}, nil
}

// present reports whether a field was given with a non-null value.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

func firstPresent(pairs ...any) (string, json.RawMessage) {
	for i := 0; i+1 < len(pairs); i += 2 {
		if raw := pairs[i+1].(json.RawMessage); present(raw) {
			return pairs[i].(string), raw
		}
	}
	return "", nil
}

// parseTime accepts epoch milliseconds (a JSON integer) or an RFC 3339 string.
func parseTime(raw json.RawMessage) (int64, error) {
	var ms int64
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("invalid string: %w", err)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, fmt.Errorf("%q is neither epoch milliseconds nor an RFC 3339 time", s)
		}
		ms = t.UnixMilli()
	} else {
		v, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s is not an integer of epoch milliseconds", clip(raw))
		}
		ms = v
	}
	if ms < MinEventMs || ms >= MaxEventMs {
		return 0, fmt.Errorf("%s is outside 2000-01-01..2100-01-01 (epoch milliseconds expected)", clip(raw))
	}
	return ms, nil
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
