package ride

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeTutorialRide(t *testing.T) {
	rec, err := Decode([]byte(`{"PULocationID": 186, "DOLocationID": 79, "trip_distance": 1.72,
 "total_amount": 17.31, "tpep_pickup_datetime": 1730429702000}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Ride{PickupMs: 1730429702000, Has: HasPickup | Bit(PULocationID) | Bit(DOLocationID) | Bit(TripDistance) | Bit(TotalAmount)}
	want.Vals[PULocationID], want.Vals[DOLocationID], want.Vals[TripDistance], want.Vals[TotalAmount] = 186, 79, 172, 1731
	if rec.Kind != KindRide || rec.EventMs != 1730429702000 || rec.Ride != want {
		t.Fatalf("got %+v, want ride %+v", rec, want)
	}
}

func TestDecodeVariants(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		eventMs int64
		cents   int64
		kind    Kind
	}{
		{"rfc3339", `{"PULocationID":1,"total_amount":5,"tpep_pickup_datetime":"2024-11-01T02:55:02Z"}`, 1730429702000, 500, KindRide},
		{"rfc3339 offset", `{"PULocationID":1,"total_amount":5,"tpep_pickup_datetime":"2024-10-31T22:55:02-04:00"}`, 1730429702000, 500, KindRide},
		{"green taxi", `{"PULocationID":1,"total_amount":-5.5,"lpep_pickup_datetime":1730429702000}`, 1730429702000, -550, KindRide},
		{"fhv", `{"PULocationID":265,"total_amount":0.005,"pickup_datetime":1730429702000}`, 1730429702000, 1, KindRide},
		{"exponent", `{"PULocationID":1,"total_amount":1.731e1,"tpep_pickup_datetime":1730429702000}`, 1730429702000, 1731, KindRide},
		{"round half away", `{"PULocationID":1,"total_amount":-0.125,"tpep_pickup_datetime":1730429702000}`, 1730429702000, -13, KindRide},
		{"pandas float id", `{"PULocationID":186.0,"total_amount":1,"tpep_pickup_datetime":1730429702000}`, 1730429702000, 100, KindRide},
		{"unknown fields", `{"PULocationID":1,"total_amount":1,"tpep_pickup_datetime":1730429702000,"store_and_fwd_flag":"N","x":[1,{}]}`, 1730429702000, 100, KindRide},
		{"heartbeat", `{"heartbeat":1730429702000}`, 1730429702000, 0, KindHeartbeat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, err := Decode([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if rec.Kind != c.kind || rec.EventMs != c.eventMs || rec.Ride.Vals[TotalAmount] != c.cents {
				t.Fatalf("got %+v", rec)
			}
		})
	}
}

func TestDecodeTLCColumns(t *testing.T) {
	rec, err := Decode([]byte(`{"VendorID":2,"tpep_pickup_datetime":1730429702000,"tpep_dropoff_datetime":1730430702000,
	"passenger_count":3,"trip_distance":10,"PULocationID":132,"DOLocationID":null,"fare_amount":40.1,
	"tip_amount":8.02,"tolls_amount":6.94,"total_amount":60.31}`))
	if err != nil {
		t.Fatal(err)
	}
	r := rec.Ride
	want := Ride{PickupMs: 1730429702000, DropoffMs: 1730430702000}
	for f, v := range map[FieldID]int64{PULocationID: 132, TripDistance: 1000, PassengerCount: 3, VendorID: 2,
		TotalAmount: 6031, FareAmount: 4010, TipAmount: 802, TollsAmount: 694} {
		want.Vals[f] = v
		want.Has |= Bit(f)
	}
	want.Has |= HasPickup | HasDropoff
	if r != want {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := []struct {
		name, in, field, reason string
	}{
		{"empty", ``, "", "empty"},
		{"garbage", "\x00\xff\x13", "", "not a JSON object"},
		{"array", `[1,2]`, "", "not a JSON object"},
		{"truncated", `{"PULocationID": 186, "total_am`, "", "invalid JSON"},
		{"no pickup", `{"PULocationID":1,"total_amount":1}`, "tpep_pickup_datetime", "missing"},
		{"null pickup", `{"PULocationID":1,"total_amount":1,"tpep_pickup_datetime":null}`, "tpep_pickup_datetime", "missing"},
		{"no zone", `{"total_amount":1,"tpep_pickup_datetime":1730429702000}`, "PULocationID", "missing"},
		{"no amount", `{"PULocationID":1,"tpep_pickup_datetime":1730429702000}`, "total_amount", "missing"},
		{"string amount", `{"PULocationID":1,"total_amount":"17.31","tpep_pickup_datetime":1730429702000}`, "total_amount", "not a number"},
		{"huge amount", `{"PULocationID":1,"total_amount":1e300,"tpep_pickup_datetime":1730429702000}`, "total_amount", "too large"},
		{"big amount", `{"PULocationID":1,"total_amount":1000000,"tpep_pickup_datetime":1730429702000}`, "total_amount", "out of range"},
		{"nan amount", `{"PULocationID":1,"total_amount":NaN,"tpep_pickup_datetime":1730429702000}`, "total_amount", "NaN is not a finite number"},
		{"infinite zone", `{"PULocationID":-Infinity,"total_amount":1,"tpep_pickup_datetime":1730429702000}`, "PULocationID", "not a finite number"},
		{"nan pickup", `{"PULocationID":1,"total_amount":1,"lpep_pickup_datetime":NaN}`, "lpep_pickup_datetime", "NaN is not a time"},
		{"NaT pickup", `{"PULocationID":1,"total_amount":1,"lpep_pickup_datetime":"NaT"}`, "lpep_pickup_datetime", "NaT"},
		{"fraction zone", `{"PULocationID":1.5,"total_amount":1,"tpep_pickup_datetime":1730429702000}`, "PULocationID", "not an integer"},
		{"bool zone", `{"PULocationID":true,"total_amount":1,"tpep_pickup_datetime":1730429702000}`, "PULocationID", "not a number"},
		{"seconds not ms", `{"PULocationID":1,"total_amount":1,"tpep_pickup_datetime":1730429702}`, "tpep_pickup_datetime", "outside 2000-01-01"},
		{"year 1999", `{"PULocationID":1,"total_amount":1,"tpep_pickup_datetime":"1999-12-31T23:59:59Z"}`, "tpep_pickup_datetime", "outside"},
		{"bad time string", `{"PULocationID":1,"total_amount":1,"tpep_pickup_datetime":"yesterday"}`, "tpep_pickup_datetime", "date-time"},
		{"fractional ms", `{"PULocationID":1,"total_amount":1,"tpep_pickup_datetime":1730429702000.5}`, "tpep_pickup_datetime", "fractional millisecond"},
		{"bad heartbeat", `{"heartbeat":"soon"}`, "heartbeat", "date-time"},
		{"nan heartbeat", `{"heartbeat":NaN}`, "heartbeat", "not a time"},
		{"too big", `{"x":"` + strings.Repeat("a", MaxMessageBytes) + `"}`, "", "limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode([]byte(c.in))
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("want *DecodeError, got %v", err)
			}
			if de.Field != c.field || !strings.Contains(de.Reason, c.reason) {
				t.Fatalf("got field %q reason %q, want field %q reason containing %q", de.Field, de.Reason, c.field, c.reason)
			}
		})
	}
}

func TestParseCentiExact(t *testing.T) {
	cases := map[string]int64{
		"0": 0, "0.0": 0, "-0": 0, "17.31": 1731, "17.305": 1731, "17.304999": 1730, "0.1": 10,
		"123456.78": 12345678, "-0.005": -1, "1E2": 10000, "5e-3": 1, "4e-3": 0, "999999.994": 99999999,
		"0.29": 29, "1.15": 115, "2.675": 268,
	}
	for in, want := range cases {
		got, err := parseCenti([]byte(in), MaxAbsCents)
		if err != nil || got != want {
			t.Errorf("parseCenti(%s) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	seeds := []string{
		`{"PULocationID": 186, "DOLocationID": 79, "trip_distance": 1.72, "total_amount": 17.31, "tpep_pickup_datetime": 1730429702000}`,
		`{"heartbeat":1730429702000}`,
		`{"PULocationID":1,"total_amount":-1e-9,"tpep_pickup_datetime":"2024-11-01T02:55:02.123456789+05:30"}`,
		`{"PULocationID":1e9,"total_amount":1e15,"pickup_datetime":1}`,
		`{"total_amount":99999999999999999999}`,
		`null`, `{}`, `{"a":`, "\xff",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := Decode(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		switch rec.Kind {
		case KindRide:
			r := rec.Ride
			if total, _ := r.Get(TotalAmount); rec.EventMs != r.PickupMs || total <= -MaxAbsCents || total >= MaxAbsCents {
				t.Fatalf("invalid ride accepted: %+v", rec)
			}
		case KindHeartbeat:
		default:
			t.Fatalf("unknown kind %d", rec.Kind)
		}
		if rec.EventMs < MinEventMs || rec.EventMs >= MaxEventMs {
			t.Fatalf("event time out of bounds accepted: %d", rec.EventMs)
		}
	})
}

// FuzzFastWire: whenever the fast path accepts a message, encoding/json
// accepts it too and fills the same fields with the same bytes.
func FuzzFastWire(f *testing.F) {
	for _, s := range []string{
		`{"VendorID":2,"PULocationID":132,"DOLocationID":7,"passenger_count":1,"trip_distance":3.05,"fare_amount":12.50,"tip_amount":0,"total_amount":16.3,"tpep_pickup_datetime":1730419200000}`,
		`{"heartbeat":1730429702000}`, ` { "PULocationID" : 1 , "total_amount" : -0.5e+2 , "tpep_pickup_datetime" : "2024-11-01 00:00:03" } `,
		`{"pulocationid":1}`, `{"PULocationID":1,"PULocationID":2}`, `{"x":{"y":1}}`, `{"a":"\u0041"}`, `{"a":1,}`,
		`{"total_amount":01}`, `{"total_amount":1.}`, `{"total_amount":-}`, `{"total_amount":nul}`, `{"VendorID":null}`,
		`{}`, `{"a":1}x`, "{\"a\":\"\x01\"}", "{\"\xc5\xbf\":1}", `{"trip_distance":true}`,
		`{"lpep_pickup_datetime": "2025-10-01 18:04:11", "PULocationID": 74, "passenger_count": NaN, "tip_amount": 0.0, "total_amount": 12.3}`,
		`{"passenger_count":-Infinity,"x":Infinity,"pickup_ts":"2025-10-01T18:04:11"}`, `{"a":NaNx}`, `{"a":"NaN","b":-Infinity}`,
		`{"a":"\u0000ridestreamNaN","b":NaN}`, `{"pickup_ts":1,"pickup_ts":NaN}`, `{"x":[NaN]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, custom := range []string{"", "pickup_ts"} {
			var fast wire
			fastEvent, ok := fastWire(b, &fast, custom)
			if !ok {
				continue
			}
			var slow wire
			slowEvent, err := slowWire(b, &slow, custom)
			if err != nil {
				t.Fatalf("fast path accepted %q, the fallback: %v", b, err)
			}
			for i := range fast {
				x, y := fast[i], slow[i]
				if !bytes.Equal(x, y) || (x == nil) != (y == nil) {
					t.Fatalf("%q: field %s: fast %q, fallback %q", b, wireNames[i], x, y)
				}
			}
			if !bytes.Equal(fastEvent, slowEvent) || (fastEvent == nil) != (slowEvent == nil) {
				t.Fatalf("%q: --event-time-field %s: fast %q, fallback %q", b, custom, fastEvent, slowEvent)
			}
		}
	})
}

// TestWireNames: the fast path and the fallback's struct know every entry,
// by the same names.
func TestWireNames(t *testing.T) {
	if wireStruct.NumField() != len(wireNames) {
		t.Fatalf("wire struct has %d fields, wireNames %d", wireStruct.NumField(), len(wireNames))
	}
	for i := range wireStruct.NumField() {
		if tag := wireStruct.Field(i).Tag.Get("json"); tag != wireNames[i] {
			t.Errorf("field %d: tag %q, wireNames %q", i, tag, wireNames[i])
		}
		var w wire
		if w.field([]byte(wireNames[i])) != &w[i] {
			t.Errorf("field(%q) is not entry %d", wireNames[i], i)
		}
	}
}

// TestDecodeProducerShapes: what real producers send, each accepted with
// the right event time or rejected with a reason naming the field.
func TestDecodeProducerShapes(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) int64 {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UnixMilli()
	}
	ride := func(pickup string) string {
		return `{"PULocationID": 74, "total_amount": 12.3, "lpep_pickup_datetime": ` + pickup + `}`
	}
	cases := []struct {
		name   string
		in     string
		opt    Options
		event  int64
		field  string // rejected: the field named
		reason string
	}{
		{"pandas str(), no zone: UTC by default", ride(`"2025-10-01 18:04:11"`), Options{}, at("2025-10-01T18:04:11Z"), "", ""},
		{"no zone, --input-time-zone New York", ride(`"2025-10-01 18:04:11"`), Options{Location: ny}, at("2025-10-01T22:04:11Z"), "", ""},
		{"ISO without zone", ride(`"2025-11-02T10:11:00"`), Options{}, at("2025-11-02T10:11:00Z"), "", ""},
		{"microseconds dropped to ms", ride(`"2025-10-01 18:04:11.123456"`), Options{}, at("2025-10-01T18:04:11.123Z"), "", ""},
		{"pandas str() of a UTC time", ride(`"2025-10-01 18:04:11+00:00"`), Options{Location: ny}, at("2025-10-01T18:04:11Z"), "", ""},
		{"compact offset", ride(`"2025-10-01T18:04:11-0400"`), Options{}, at("2025-10-01T22:04:11Z"), "", ""},
		{"RFC 3339 nanoseconds", ride(`"2025-10-01T18:04:11.999999999Z"`), Options{}, at("2025-10-01T18:04:11.999Z"), "", ""},
		{"epoch ms as a float", ride(`1762078500000.0`), Options{}, 1762078500000, "", ""},
		{"epoch ms with an exponent", ride(`1.7620785e12`), Options{}, 1762078500000, "", ""},
		{"repeated hour: first occurrence", ride(`"2025-11-02 01:30:00"`), Options{Location: ny}, at("2025-11-02T05:30:00Z"), "", ""},
		{"skipped hour: offset before the jump", ride(`"2025-03-09 02:30:00"`), Options{Location: ny}, at("2025-03-09T07:30:00Z"), "", ""},
		{"heartbeat as a string", `{"heartbeat": "2025-10-02 00:00:00"}`, Options{}, at("2025-10-02T00:00:00Z"), "", ""},
		{"--event-time-field a dropoff", `{"PULocationID": 74, "total_amount": 1, "lpep_pickup_datetime": "2025-10-01 18:04:11", "lpep_dropoff_datetime": "2025-10-01 18:30:00"}`,
			Options{EventTimeField: "lpep_dropoff_datetime"}, at("2025-10-01T18:30:00Z"), "", ""},
		{"--event-time-field a field of its own", `{"PULocationID": 74, "total_amount": 1, "pickup_datetime": 1762078500000, "ts": "2025-10-01 18:30:00"}`,
			Options{EventTimeField: "ts"}, at("2025-10-01T18:30:00Z"), "", ""},
		{"--event-time-field of its own, no pickup", `{"PULocationID": 74, "total_amount": 1, "ts": "2025-10-01 18:30:00"}`,
			Options{EventTimeField: "ts"}, at("2025-10-01T18:30:00Z"), "", ""},
		{"--event-time-field of its own, NaT pickup", `{"PULocationID": 74, "total_amount": 1, "tpep_pickup_datetime": "NaT", "ts": "2025-10-01 18:30:00"}`,
			Options{EventTimeField: "ts"}, at("2025-10-01T18:30:00Z"), "", ""},
		{"--event-time-field a dropoff, no pickup", `{"PULocationID": 74, "total_amount": 1, "tpep_dropoff_datetime": 1762078500000}`,
			Options{EventTimeField: "tpep_dropoff_datetime"}, 1762078500000, "", ""},

		{"fractional epoch ms", ride(`1762078500000.5`), Options{}, 0, "lpep_pickup_datetime", "fractional millisecond"},
		{"month 13", ride(`"2025-13-01 00:00:00"`), Options{}, 0, "lpep_pickup_datetime", "not a valid date-time"},
		{"no seconds", ride(`"2025-10-01 18:04"`), Options{}, 0, "lpep_pickup_datetime", "date-time"},
		{"US date", ride(`"10/01/2025 18:04:11"`), Options{}, 0, "lpep_pickup_datetime", "date-time"},
		{"NaN pickup", ride(`NaN`), Options{}, 0, "lpep_pickup_datetime", "NaN is not a time"},
		{"--event-time-field missing", ride(`"2025-10-01 18:04:11"`), Options{EventTimeField: "ts"}, 0, "ts", "missing"},
		{"--event-time-field, a malformed pickup", `{"PULocationID": 74, "total_amount": 1, "pickup_datetime": "soon", "ts": "2025-10-01 18:30:00"}`,
			Options{EventTimeField: "ts"}, 0, "pickup_datetime", "date-time"},
		{"--event-time-field NaT", `{"PULocationID": 74, "total_amount": 1, "lpep_pickup_datetime": "2025-10-01 18:04:11", "lpep_dropoff_datetime": "NaT"}`,
			Options{EventTimeField: "lpep_dropoff_datetime"}, 0, "lpep_dropoff_datetime", "NaT"},
		{"NaN total", `{"PULocationID": 74, "total_amount": NaN, "lpep_pickup_datetime": "2025-10-01 18:04:11"}`, Options{}, 0, "total_amount", "NaN"},
		{"NaN zone", `{"PULocationID": NaN, "total_amount": 1, "lpep_pickup_datetime": "2025-10-01 18:04:11"}`, Options{}, 0, "PULocationID", "NaN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, err := c.opt.Decode([]byte(c.in))
			if c.field != "" {
				var de *DecodeError
				if !errors.As(err, &de) || de.Field != c.field || !strings.Contains(de.Reason, c.reason) {
					t.Fatalf("got %v (%+v), want field %s rejected with %q", err, rec, c.field, c.reason)
				}
				return
			}
			if err != nil || rec.EventMs != c.event {
				t.Fatalf("got %v at %s, want %s", err, time.UnixMilli(rec.EventMs).UTC(), time.UnixMilli(c.event).UTC())
			}
		})
	}
}

// TestDecodeMissingAsPythonWritesIt: the course's green-trips row, with the
// NaN literals json.dumps writes for gaps in float columns: the ride is
// kept, and those fields are absent.
func TestDecodeMissingAsPythonWritesIt(t *testing.T) {
	in := `{"lpep_pickup_datetime": "2025-10-01 00:05:06", "lpep_dropoff_datetime": "NaT", "PULocationID": 74, "DOLocationID": 42, ` +
		`"passenger_count": NaN, "trip_distance": 1.5, "tip_amount": Infinity, "total_amount": 12.3, "congestion_surcharge": -Infinity}`
	for _, b := range []string{in, strings.Replace(in, `"trip_distance"`, `"trip\u005fdistance"`, 1)} { // fast path, then the fallback
		rec, err := Decode([]byte(b))
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		r := rec.Ride
		if r.Has&(Bit(PassengerCount)|Bit(TipAmount)|HasDropoff) != 0 || r.Has&Bit(TripDistance) == 0 || r.Vals[TripDistance] != 150 ||
			r.Vals[TotalAmount] != 1230 || r.Vals[DOLocationID] != 42 {
			t.Fatalf("%s: %+v", b, r)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	msg := []byte(`{"VendorID":2,"PULocationID":132,"DOLocationID":7,"passenger_count":1,"trip_distance":3.05,"fare_amount":12.50,"tip_amount":0,"total_amount":16.3,"tpep_pickup_datetime":1730419200000,"tpep_dropoff_datetime":1730419800000}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}
