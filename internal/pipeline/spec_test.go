package pipeline

import (
	"encoding/json"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	s := DefaultSpec()
	s.Prefix, s.Input, s.InputPartitions, s.Shards, s.WindowPartitions = "p", "green-trips", 3, 8, 6
	s.Window.Size, s.Window.Lateness, s.Window.MaxFutureSkew, s.Window.Location = 24*time.Hour, 10*time.Minute, 48*time.Hour, ny
	got, err := ParseRecord("p", s.Record())
	if err != nil {
		t.Fatal(err)
	}
	if got.Summary() != s.Summary() || got.Window.Location.String() != "America/New_York" || got.InputPartitions != 3 {
		t.Fatalf("round trip: %s\nwant %s", got.Summary(), s.Summary())
	}
}

func TestParseRecordRefusesWhatItCannotRead(t *testing.T) {
	for _, c := range []struct{ record, want string }{
		{`{"format":1,"wire":4,"input_partitions":2,"settings":{"topic":"rides","colour":"blue"}}`, `setting "colour", unknown`},
		{`{"format":1,"wire":3,"input_partitions":2,"settings":{"topic":"rides"}}`, "wire version 3"},
		{`{"format":2,"wire":4,"input_partitions":2,"settings":{}}`, "record format 2"},
		{`{"format":1,"wire":4,"input_partitions":2,"settings":{"window":"forever"}}`, `recorded --window "forever"`},
		{`not json`, "unreadable record"},
	} {
		if _, err := ParseRecord("p", []byte(c.record)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.record, err, c.want)
		}
	}
	// A setting an older release did not record takes today's default.
	s, err := ParseRecord("p", []byte(`{"format":1,"wire":4,"input_partitions":2,"settings":{"topic":"rides","window":"30m0s"}}`))
	if err != nil || s.Window.Size != 30*time.Minute || s.Shards != 8 {
		t.Fatalf("older record: %+v, %v", s, err)
	}
}

// TestFlagsAndDrift: only flags that were set count, whether from the
// command line or from their environment twins (set through fs.Set), and
// each differing one is named with both values.
func TestFlagsAndDrift(t *testing.T) {
	recorded := DefaultSpec().Resolved()
	recorded.Prefix, recorded.InputPartitions = "p", 4
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	given := Flags(fs, DefaultSpec())
	if err := fs.Set("shards", "8"); err != nil { // as envflag does for $RIDESTREAM_SHARDS
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--window", "30m", "--allowed-lateness", "5m"}); err != nil {
		t.Fatal(err)
	}
	spec, set := given()
	slices.Sort(set)
	if !slices.Equal(set, []string{"allowed-lateness", "shards", "window"}) {
		t.Fatalf("set %v", set)
	}
	spec.Prefix = "p"
	_, err := Adopt(recorded, spec, set, 6)
	var d *DriftError
	if err == nil || !strings.Contains(err.Error(), "--window is 30m0s here but 1h0m0s in the record") ||
		!strings.Contains(err.Error(), "--shards is 8 here but 16 in the record") ||
		!strings.Contains(err.Error(), "partitions of input topic rides is 6 here but 4 in the record") ||
		strings.Contains(err.Error(), "--allowed-lateness") {
		t.Fatalf("drift: %v", err)
	}
	if !errors.As(err, &d) || len(d.Diffs) != 3 {
		t.Fatalf("drift error %T %v", err, err)
	}
	if got, err := Adopt(recorded, recorded, SettingFlags(), 4); err != nil || got.Summary() != recorded.Summary() {
		t.Fatalf("the same values given explicitly: %v", err)
	}
	// "Automatic" values given explicitly resolve in the recorded pipeline:
	// --shards 0 on a 5-minute pipeline (1 shard), --window-partitions equal
	// to the input's count (recorded as 0).
	five := DefaultSpec()
	five.Prefix, five.InputPartitions, five.Window.Size = "p", 4, 5*time.Minute
	five = five.Resolved()
	same := DefaultSpec()
	same.Prefix, same.WindowPartitions = "p", 4
	if _, err := Adopt(five, same, []string{"shards", "window-partitions"}, 4); err != nil {
		t.Fatalf("--shards 0 --window-partitions 4 on a 5-minute pipeline of 4 partitions: %v", err)
	}
	same.Window.Size = time.Hour
	if _, err := Adopt(five, same, []string{"shards", "window"}, 4); err == nil ||
		!strings.Contains(err.Error(), "--window is 1h0m0s here but 5m0s") || !strings.Contains(err.Error(), "--shards is 16 here but 1 in the record") {
		t.Fatalf("--window 1h --shards 0 on a 5-minute pipeline: %v", err)
	}
}

func TestFinalRoundTrip(t *testing.T) {
	f := Final{WindowStart: time.UnixMilli(1730419200000).UTC(), WindowEnd: time.UnixMilli(1730422800000).UTC(), Zone: -3,
		Trips: 7, RevenueCents: -1205, DistanceCenti: 99, TipCents: 1, TotalPassengers: 9}
	b := f.Encode()
	if !strings.Contains(string(b), `"total_revenue":"-12.05"`) {
		t.Fatalf("encoded %s", b)
	}
	got, err := DecodeFinal(b)
	f.TotalRevenue = "-12.05"
	if err != nil || got != f {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, f)
	}
	if _, err := DecodeFinal([]byte(`{"num_trips":1}`)); err == nil {
		t.Fatal("a finals record without window or zone decoded")
	}
}

func TestWireRoundTrip(t *testing.T) {
	st := &ClockState{Src: 3, LastOffset: 99, Seq: 7, ST: 1730419200000, Valid: true, Pending: []int64{1730419200000, 1730422800000},
		Recent: []int64{1730415600000}, Outs: []ClockOut{{Offset: 98, Out: OutOnTime, EventMs: 1730419199000, Ride: Amounts{Zone: 4, Cents: -5},
			WindowStart: 1730415600000, STBefore: 1730419100000, Closes: []int64{1730412000000}}, {Offset: 99, Out: OutClose}}}
	b, _ := ClockStateCodec{}.Encode(st)
	got, err := ClockStateCodec{}.Decode(b)
	if err != nil || !equalJSON(got, st) {
		t.Fatalf("clock state: %+v, %v", got, err)
	}
	ws := &WindowState{WindowStart: 1, WindowEnd: 2, Zones: []ZoneAgg{{Zone: 1, Trips: 2, Cents: 3}}, LastSeen: []int64{-1, 5},
		Closed: []bool{false, true}, CreatedSrc: 1, CreatedOffset: 5}
	b, _ = WindowStateCodec{}.Encode(ws)
	if got, err := (WindowStateCodec{}).Decode(b); err != nil || !equalJSON(got, ws) {
		t.Fatalf("window state: %+v, %v", got, err)
	}
	for _, m := range []any{ClockBatch{Prev: NoPrev, Items: []ClockIn{{Offset: 1, Heartbeat: true, EventMs: 5}}}, Subscribe{WindowStart: 42}} {
		b, err := ClockMsgCodec{}.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := (ClockMsgCodec{}).Decode(b); err != nil || !equalJSON(got, m) {
			t.Fatalf("clock message %T: %+v, %v", m, got, err)
		}
	}
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestDefaultShards(t *testing.T) {
	for size, want := range map[time.Duration]int{time.Minute: 1, 5 * time.Minute: 1, 15 * time.Minute: 4, 30 * time.Minute: 8,
		time.Hour: 16, 2 * time.Hour: 16, 24 * time.Hour: 16} {
		if got := DefaultShards(size); got != want {
			t.Errorf("DefaultShards(%v) = %d, want %d", size, got, want)
		}
	}
}
