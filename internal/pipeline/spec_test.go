package pipeline

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/ride"
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
	w := strconv.Itoa(WireVersion)
	for _, c := range []struct{ record, want string }{
		{`{"format":1,"wire":` + w + `,"input_partitions":2,"settings":{"topic":"rides","colour":"blue"}}`, `setting "colour", unknown`},
		{`{"format":1,"wire":3,"input_partitions":2,"settings":{"topic":"rides"}}`, "wire version 3"},
		{`{"format":2,"wire":` + w + `,"input_partitions":2,"settings":{}}`, "record format 2"},
		{`{"format":1,"wire":` + w + `,"input_partitions":2,"settings":{"window":"forever"}}`, `recorded --window "forever"`},
		{`{"format":1,"wire":` + w + `,"input_partitions":2,"settings":{"aggregations":"[{\"name\":\"x\"}]"}}`, `recorded --aggregations`},
		{`not json`, "unreadable record"},
	} {
		if _, err := ParseRecord("p", []byte(c.record)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.record, err, c.want)
		}
	}
	// A setting an older release did not record takes today's default.
	s, err := ParseRecord("p", []byte(`{"format":1,"wire":`+w+`,"input_partitions":2,"settings":{"topic":"rides","window":"30m0s"}}`))
	if err != nil || s.Window.Size != 30*time.Minute || s.Shards != 1 || len(s.Aggregations) != 0 {
		t.Fatalf("older record: %+v, %v", s, err)
	}
}

// TestAggregationsSetting: --aggregations reads a YAML file; the record
// keeps the declaration itself (canonical JSON), reads it back, and a
// different declaration given later is drift, named.
func TestAggregationsSetting(t *testing.T) {
	file := t.TempDir() + "/aggs.yaml"
	decl := "aggregations:\n  - name: zones_5m\n    window: 5m\n    group_by: [PULocationID]\n    measures: {num_trips: count}\n"
	if err := os.WriteFile(file, []byte(decl), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	given := Flags(fs, DefaultSpec())
	if err := fs.Parse([]string{"--aggregations", file}); err != nil {
		t.Fatal(err)
	}
	spec, set := given()
	spec.Prefix, spec.InputPartitions, spec.Wire = "p", 2, WireVersion
	if len(spec.Aggs()) != 1 || spec.Aggs()[0].Name != "zones_5m" || spec.Aggs()[0].Lateness != spec.Window.Lateness {
		t.Fatalf("aggregations %+v", spec.Aggs())
	}
	recorded, err := ParseRecord("p", spec.Record())
	if err != nil || recorded.Summary() != spec.Resolved().Summary() {
		t.Fatalf("round trip: %v\n%s\n%s", err, recorded.Summary(), spec.Resolved().Summary())
	}
	if _, err := Adopt(recorded, spec, set, 2); err != nil {
		t.Fatalf("the same declaration again: %v", err)
	}
	other := strings.Replace(decl, "5m", "10m", 1)
	if err := os.WriteFile(file, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	given = Flags(fs, DefaultSpec())
	if err := fs.Parse([]string{"--aggregations", file}); err != nil {
		t.Fatal(err)
	}
	changed, set := given()
	changed.Prefix = "p"
	if _, err := Adopt(recorded, changed, set, 2); err == nil || !strings.Contains(err.Error(), "--aggregations is") {
		t.Fatalf("a changed declaration: %v", err)
	}
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	Flags(fs, DefaultSpec())
	if err := fs.Parse([]string{"--aggregations", t.TempDir() + "/missing.yaml"}); err == nil || !strings.Contains(err.Error(), "aggregations") {
		t.Fatalf("a missing file: %v", err)
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
		!strings.Contains(err.Error(), "--shards is 8 here but 1 in the record") ||
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
		!strings.Contains(err.Error(), "--window is 1h0m0s here but 5m0s") || strings.Contains(err.Error(), "--shards") {
		t.Fatalf("--window 1h --shards 0 on a 5-minute pipeline: %v", err)
	}
}

func TestFinalRoundTrip(t *testing.T) {
	aggs, err := aggregate.Parse([]byte(`aggregations: [{name: a, window: 1h, group_by: [PULocationID, DOLocationID],
  measures: {n: count, revenue: sum(total_amount), low: min(tip_amount)}}, {name: s, session_gap: 5m, measures: {n: count}}]`))
	if err != nil {
		t.Fatal(err)
	}
	f := Final{Aggregation: "a", Start: 1730419200000, End: 1730422800000, Group: []Value{{V: -3}, {Null: true}},
		Measures: []Value{{V: 7}, {V: -1205}, {Null: true}}}
	b := f.Encode(aggs[0])
	if !strings.Contains(string(b), `"revenue":"-12.05"`) || !strings.Contains(string(b), `"DOLocationID":null`) {
		t.Fatalf("encoded %s", b)
	}
	got, a, err := DecodeFinal(aggs, b)
	if err != nil || !equalJSON(got, f) || a.Name != "a" {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, f)
	}
	s := Final{Aggregation: "s", Start: 1730419200000, End: 1730419260000, Group: []Value{}, Measures: []Value{{V: 2}}}
	if got, _, err := DecodeFinal(aggs, s.Encode(aggs[1])); err != nil || !equalJSON(got, s) ||
		!strings.Contains(string(s.Encode(aggs[1])), `"session_start"`) {
		t.Fatalf("session: %+v, %v", got, err)
	}
	for _, bad := range []string{`{"num_trips":1}`, `{"aggregation":"zz","window_start":"2024-11-01T00:00:00Z"}`, `{"aggregation":"a"}`} {
		if _, _, err := DecodeFinal(aggs, []byte(bad)); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

func TestWireRoundTrip(t *testing.T) {
	aggs, err := aggregate.Parse([]byte(`aggregations: [{name: a, window: 1h, group_by: [PULocationID], measures: {n: count, tips: sum(tip_amount)}},
  {name: s, session_gap: 5m, group_by: [VendorID, DOLocationID], measures: {n: count, top: max(total_amount)}}]`))
	if err != nil {
		t.Fatal(err)
	}
	w := NewWire(aggs)
	var r ride.Ride
	r.Vals[ride.PULocationID], r.Vals[ride.TipAmount], r.Vals[ride.TotalAmount] = 7, 150, -99
	r.Has = ride.Bit(ride.PULocationID) | ride.Bit(ride.TipAmount) | ride.Bit(ride.TotalAmount)
	acc := aggregate.Acc{Vals: []int64{3, -5}, Has: 2}
	g := aggregate.Group{V: [aggregate.MaxGroupBy]int64{7}}
	partials := []Partials{{Windows: []WindowPartial{{Start: 1730419200000, Groups: []GroupAcc{{Group: g, Acc: acc}}}}},
		{Runs: []GroupRuns{{Group: aggregate.Group{V: [aggregate.MaxGroupBy]int64{2}, Null: 2}, Runs: []aggregate.Run{{First: 5, Last: 9, Acc: acc}}}}}}
	items := []ClockIn{{Offset: 1, Heartbeat: true, EventMs: 5}, {Offset: 2, EventMs: 6, Ride: r}}
	cs := &ClockState{Src: 3, LastOffset: 99, From: 90, Seq: 7, ST: 1730419200000, Valid: true, Pending: items, Partials: partials,
		Late: []LateOut{{Offset: 95, Agg: 1, EventMs: 4, STBefore: 8, Ride: r}}, Rejected: []RejectOut{{Offset: 96, EventMs: 3, Why: "outlier"}}}
	if got, err := w.DecodeClockState(w.EncodeClockState(cs)); err != nil || !equalJSON(got, cs) {
		t.Fatalf("clock state: %+v, %v", got, err)
	}
	cb := ClockBatch{Prev: NoPrev, Items: items}
	if got, err := w.DecodeClockBatch(w.EncodeClockBatch(cb)); err != nil || !equalJSON(got, cb) {
		t.Fatalf("clock batch: %+v, %v", got, err)
	}
	for _, m := range []any{Progress{Src: 1, Seq: 4, Prev: 3, From: 10, To: 20, ST: 9, Valid: true, Pending: items, Partials: partials}, Ack{Done: 12}} {
		b, err := WatermarkMsgCodec{w}.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := w.DecodeWatermarkMsg(b); err != nil || !equalJSON(got, m) {
			t.Fatalf("watermark message %T: %+v, %v", m, got, err)
		}
	}
	msg := WindowMsg{Seq: 9, Prev: 8, AfterForget: true, Groups: []GroupAcc{{Group: g, Acc: acc}}, Finalize: true}
	ws := &WatermarkState{Seq: 9, Sources: []SourceState{{Last: 5, ClockSeq: 2, ST: 3, Valid: true, Pending: items}},
		Aggs: []AggProgress{{Open: []WindowRange{{From: 1, To: 3}}, Final: []FinalRange{{Seq: 8, WindowRange: WindowRange{From: 0, To: 0}}}},
			{Groups: []GroupSpans{{Group: g, Spans: []Span{{First: 1, Last: 4}}}}, Forget: []GroupSeq{{Group: g, Seq: 9}}}},
		Outs: []Routed{{Key: WindowKey("a", 1, 0), Agg: 0, Msg: msg}, {Key: "s@g:2:null", Agg: 1, Msg: WindowMsg{Seq: 9, Prev: NoPrev, HasG: true, G: 77,
			Runs: []aggregate.Run{{First: 1, Last: 2, Acc: acc}}}}},
		Late: []SourcedLate{{Src: 1, LateOut: LateOut{Offset: 4, Agg: 0, WindowStart: 3}}}, Rejected: []SourcedReject{{Src: 0, RejectOut: RejectOut{Why: "x"}}}}
	if got, err := w.DecodeWatermarkState(w.EncodeWatermarkState(ws)); err != nil || !equalJSON(got, ws) {
		t.Fatalf("watermark state:\n%+v\n%+v, %v", got, ws, err)
	}
	for _, st := range []*WindowState{{Agg: 0, LastSeq: 3, SeenOffset: 11, Start: 10, End: 20, Groups: []GroupAcc{{Group: g, Acc: acc}}, Final: true, FinalOffset: 5, FinalSeq: 3},
		{Agg: 1, LastSeq: 4, SeenOffset: 12, Group: g, Clusters: []Cluster{{Run: aggregate.Run{First: 1, Last: 3, Acc: acc}, Final: true, FinalOffset: 2, FinalSeq: 4}}}} {
		if got, err := w.DecodeWindowState(w.EncodeWindowState(st)); err != nil || !equalJSON(got, st) {
			t.Fatalf("window state: %+v, %v", got, err)
		}
	}
	if agg, got, err := w.DecodeWindowMsg(w.EncodeWindowMsg(0, msg)); err != nil || agg != 0 || !equalJSON(got, msg) {
		t.Fatalf("window message: %+v, %v", got, err)
	}
	if agg, g2, ok := ParseSessionKey(SessionKey("s", 2, aggregate.Group{V: [aggregate.MaxGroupBy]int64{-4}, Null: 2}), 2); !ok || agg != "s" || g2.V[0] != -4 || g2.Null != 2 {
		t.Fatalf("session key: %v %+v", ok, g2)
	}
	if agg, start, shard, ok := ParseWindowKey(WindowKey("a_b", -7, 3)); !ok || agg != "a_b" || start != -7 || shard != 3 {
		t.Fatalf("window key")
	}
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
