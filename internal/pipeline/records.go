package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Heartbeat is the documented heartbeat record, {"heartbeat": <epoch ms>}:
// it advances its partition's stream time without being a ride, and it lives
// in the input log, so replays see it too.
func Heartbeat(ms int64) []byte {
	return []byte(`{"heartbeat":` + strconv.FormatInt(ms, 10) + `}`)
}

// Final is a record of the finals topic: one (window, zone) row, written by
// the window stage and landed in hourly_revenue by the sink. Amounts travel
// as integer cents; TotalRevenue repeats them as an exact decimal for
// readers of the topic.
type Final struct {
	WindowStart     time.Time `json:"window_start"`
	WindowEnd       time.Time `json:"window_end"`
	Zone            int32     `json:"PULocationID"`
	Trips           int64     `json:"num_trips"`
	TotalRevenue    string    `json:"total_revenue"`
	RevenueCents    int64     `json:"total_revenue_cents"`
	DistanceCenti   int64     `json:"total_distance_centi"`
	TipCents        int64     `json:"total_tips_cents"`
	TotalPassengers int64     `json:"total_passengers"`
}

// Encode is the record's value.
func (f Final) Encode() []byte {
	f.TotalRevenue = Cents(f.RevenueCents)
	b, _ := json.Marshal(f)
	return b
}

// Key is the record's key: window start and zone.
func (f Final) Key() string {
	return strconv.FormatInt(f.WindowStart.UnixMilli(), 10) + "#" + strconv.Itoa(int(f.Zone))
}

// DecodeFinal reads a finals record.
func DecodeFinal(b []byte) (Final, error) {
	var f struct {
		Final
		Zone *int32 `json:"PULocationID"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return Final{}, err
	}
	if f.Zone == nil || f.WindowStart.IsZero() || f.WindowEnd.IsZero() {
		return Final{}, errors.New("finals record without window_start, window_end or PULocationID")
	}
	f.Final.Zone = *f.Zone
	return f.Final, nil
}

// Late is a record of the late topic: a ride that missed its window.
type Late struct {
	Partition   int32     `json:"partition"`
	Offset      int64     `json:"offset"`
	PickupMs    int64     `json:"tpep_pickup_datetime"`
	Zone        int32     `json:"PULocationID"`
	TotalAmount string    `json:"total_amount"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	StreamTime  time.Time `json:"stream_time"`
	LateByMs    int64     `json:"late_by_ms"`
}

// Encode is the record's value.
func (l Late) Encode() []byte {
	b, _ := json.Marshal(l)
	return b
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
