package processors

import (
	"slices"
	"testing"
	"time"

	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/window"
)

// TestClockStepHeartbeats: heartbeats are control records, not subject to
// --max-future-skew (a heartbeat a month ahead moves the stream time and
// closes every pending window it passes), and one behind the stream time
// changes nothing; a ride as far ahead is rejected and moves nothing
// (docs/contract.md, "Stream time and lateness", "Heartbeats").
func TestClockStepHeartbeats(t *testing.T) {
	spec := window.Spec{Size: time.Hour, Lateness: 5 * time.Minute, MaxFutureSkew: 24 * time.Hour}
	at := func(s string) int64 {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UnixMilli()
	}
	pending := []int64{at("2025-01-01T00:00:00Z"), at("2025-01-03T00:00:00Z"), at("2025-03-01T00:00:00Z")}
	st := &pipeline.ClockState{ST: at("2025-01-01T00:30:00Z"), Valid: true, Pending: slices.Clone(pending)}

	ahead := at("2025-02-01T00:00:00Z")
	if o := clockStep(spec, st, pipeline.ClockIn{Offset: 1, EventMs: ahead, Ride: pipeline.Amounts{Zone: 1, Cents: 100}}); o.Out != pipeline.OutRejected || st.ST != at("2025-01-01T00:30:00Z") || len(o.Closes) != 0 {
		t.Fatalf("a ride a month ahead: %+v, stream time %d", o, st.ST)
	}
	o := clockStep(spec, st, pipeline.ClockIn{Offset: 2, Heartbeat: true, EventMs: ahead})
	if o.Out != pipeline.OutHeartbeat || st.ST != ahead || !slices.Equal(o.Closes, pending[:2]) || !slices.Equal(st.Pending, pending[2:]) {
		t.Fatalf("a heartbeat a month ahead: %+v, stream time %d, pending %v", o, st.ST, st.Pending)
	}
	o = clockStep(spec, st, pipeline.ClockIn{Offset: 3, Heartbeat: true, EventMs: at("2025-01-02T00:00:00Z")})
	if o.Out != pipeline.OutHeartbeat || st.ST != ahead || len(o.Closes) != 0 || !slices.Equal(st.Pending, pending[2:]) {
		t.Fatalf("a heartbeat behind the stream time: %+v, stream time %d, pending %v", o, st.ST, st.Pending)
	}
	// A partition's first record may be a heartbeat, however far from
	// anything: it sets the stream time and closes what it passes.
	first := &pipeline.ClockState{Pending: slices.Clone(pending)}
	o = clockStep(spec, first, pipeline.ClockIn{Offset: 0, Heartbeat: true, EventMs: at("2025-06-01T00:00:00Z")})
	if !first.Valid || first.ST != at("2025-06-01T00:00:00Z") || !slices.Equal(o.Closes, pending) || len(first.Pending) != 0 {
		t.Fatalf("a first record that is a heartbeat: %+v, state %+v", o, first)
	}
}
