package views

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/pipeline"
	"github.com/ridestream/ridestream/internal/ride"
)

//go:embed page.html
var page []byte

// WindowJSON is one window of an aggregation in the API: open
// (provisional sums that can still grow) or final (what its table holds).
// Trips and Revenue are the aggregation's first count and its sum of
// total_amount, when it has them (hourly_revenue's num_trips and
// total_revenue); Zones its groups with every measure, by column. With the
// pipeline's database, the window's status: its on-time and late rides so
// far, the late rides' revenue, and for an open window the input
// partitions it waits for and the lowest of their stream times.
type WindowJSON struct {
	Aggregation      string           `json:"aggregation"`
	Start            time.Time        `json:"window_start"`
	End              time.Time        `json:"window_end"`
	Final            bool             `json:"final"`
	State            string           `json:"state"`
	Trips            int64            `json:"num_trips"`
	Revenue          string           `json:"total_revenue"`
	RevenueCents     int64            `json:"total_revenue_cents"`
	Rides            int64            `json:"rides"`
	LateRides        int64            `json:"late_rides"`
	LateRevenue      string           `json:"late_revenue"`
	LateRevenueCents int64            `json:"late_revenue_cents"`
	FinalizedAt      *time.Time       `json:"finalized_at,omitempty"`
	Waiting          []int32          `json:"waiting_partitions,omitempty"`
	LowestStreamTime *time.Time       `json:"lowest_stream_time,omitempty"`
	Zones            []map[string]any `json:"zones,omitempty"`
}

// defaultWindows is how many of the latest windows /api/windows lists
// without ?from= and ?to=.
const defaultWindows = 48

// Handler serves GET / (a page with a live revenue chart), GET /api/windows
// and GET /api/partitions.
//
// /api/windows lists the windows of a tumbling aggregation (?aggregation=,
// default the first): the open ones the window stage holds, and with the
// pipeline's database the final ones and every window's status; filtered by
// ?from= and ?to= (RFC 3339, on window_start; default the latest 48
// windows), ?zone= (one pickup zone) and ?zones=1 (include per-group rows).
// /api/partitions lists each input partition's stream time, last heartbeat
// and lag (with the database). The API answers 503 until the view has
// recovered, so a reader never sees a half-loaded table.
func (w *Windows) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = rw.Write(page)
	})
	mux.HandleFunc("GET /api/pipeline", func(rw http.ResponseWriter, _ *http.Request) {
		var aggs []string
		for _, a := range w.top.Aggs {
			if a.Kind == aggregate.Tumbling {
				aggs = append(aggs, a.Name)
			}
		}
		zone := "UTC"
		if l := w.top.Spec.Window.Location; l != nil {
			zone = l.String()
		}
		writeJSON(rw, map[string]any{"prefix": w.top.Prefix, "input": w.top.Input, "partitions": w.top.Sources, "time_zone": zone,
			"aggregations": aggs, "database": w.db != nil})
	})
	mux.HandleFunc("GET /api/partitions", func(rw http.ResponseWriter, r *http.Request) {
		if w.db == nil {
			http.Error(rw, "partitions: the views run without the pipeline's database (--database-url)", http.StatusNotFound)
			return
		}
		out, err := w.Partitions(r.Context(), r.URL.Query().Get("aggregation"))
		if err != nil {
			http.Error(rw, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(rw, out)
	})
	mux.HandleFunc("GET /api/windows", func(rw http.ResponseWriter, r *http.Request) {
		if !w.Recovered() {
			http.Error(rw, "view is still recovering", http.StatusServiceUnavailable)
			return
		}
		q := r.URL.Query()
		agg, a, ok := w.Aggregation(q.Get("aggregation"))
		if !ok {
			http.Error(rw, "aggregation: the pipeline has no tumbling aggregation "+q.Get("aggregation"), http.StatusNotFound)
			return
		}
		from, to, err := timeRange(q.Get("from"), q.Get("to"))
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		zone, byZone := int64(0), false
		if z := q.Get("zone"); z != "" {
			if zone, err = strconv.ParseInt(z, 10, 32); err != nil {
				http.Error(rw, "zone: want an integer PULocationID", http.StatusBadRequest)
				return
			}
			byZone = true
		}
		out, err := w.windows(r.Context(), agg, a, from, to, q.Get("from") == "" && q.Get("to") == "")
		if err != nil {
			http.Error(rw, err.Error(), http.StatusServiceUnavailable)
			return
		}
		zoneAt := slices.Index(a.GroupBy, ride.PULocationID)
		trips := slices.IndexFunc(a.Measures, func(m aggregate.Measure) bool { return m.Fn == aggregate.Count })
		revenue := slices.IndexFunc(a.Measures, func(m aggregate.Measure) bool { return m.Fn == aggregate.Sum && m.Field == ride.TotalAmount })
		list := []WindowJSON{}
		for _, ws := range out {
			win, st := ws.win, ws.status
			wj := WindowJSON{Aggregation: a.Name, Start: time.UnixMilli(win.Start).UTC(), End: time.UnixMilli(win.End).UTC(), Final: win.Final}
			for _, g := range win.Groups {
				if byZone && (zoneAt < 0 || g.Group.Null&(1<<zoneAt) != 0 || g.Group.V[zoneAt] != zone) {
					continue
				}
				if trips >= 0 {
					wj.Trips += g.Acc.Vals[trips]
				}
				if revenue >= 0 {
					wj.RevenueCents += g.Acc.Vals[revenue]
				}
				if q.Get("zones") == "1" || byZone {
					wj.Zones = append(wj.Zones, groupJSON(a, g))
				}
			}
			if byZone && len(wj.Zones) == 0 {
				continue
			}
			if st != nil {
				wj.Rides, wj.LateRides, wj.LateRevenueCents, wj.FinalizedAt = st.Rides, st.Late, st.LateCents, utc(st.FinalizedAt)
				if !wj.Final {
					wj.Waiting, wj.LowestStreamTime = st.Waiting, utc(st.Lowest)
				}
				if len(win.Groups) == 0 && trips >= 0 { // open, not yet at the window stage: what the sink counted
					wj.Trips = st.Rides
				}
			}
			wj.State = "open"
			if wj.Final {
				wj.State = "final"
			}
			wj.Revenue, wj.LateRevenue = pipeline.Cents(wj.RevenueCents), pipeline.Cents(wj.LateRevenueCents)
			list = append(list, wj)
		}
		writeJSON(rw, list)
	})
	return counted(mux)
}

func writeJSON(rw http.ResponseWriter, v any) {
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(v)
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// windowWithStatus is one window as the API merges it.
type windowWithStatus struct {
	win    Window
	status *StatusRow
}

// windows merges, for aggregation agg in [from, to), the window stage's
// windows with, when the views have the database, the final rows and
// window_status; latest keeps only the latest defaultWindows.
func (w *Windows) windows(ctx context.Context, agg int, a aggregate.Aggregation, from, to int64, latest bool) ([]windowWithStatus, error) {
	live, err := w.All(agg)
	if err != nil {
		return nil, err
	}
	byStart := map[int64]*windowWithStatus{}
	for _, win := range live {
		if win.Start >= from && win.Start < to && len(win.Groups) > 0 {
			byStart[win.Start] = &windowWithStatus{win: win}
		}
	}
	if w.db != nil {
		status, err := w.status(ctx, a, from, to)
		if err != nil {
			return nil, err
		}
		finals, err := w.finals(ctx, a, from, to)
		if err != nil {
			return nil, err
		}
		for start, st := range status {
			ws := byStart[start]
			if f := finals[start]; f != nil {
				ws = &windowWithStatus{win: *f}
				byStart[start] = ws
			}
			if ws == nil {
				ws = &windowWithStatus{win: Window{Start: start, End: st.End.UnixMilli(), Final: st.Final}}
				byStart[start] = ws
			}
			ws.status = st
		}
	}
	out := make([]windowWithStatus, 0, len(byStart))
	for _, ws := range byStart {
		slices.SortFunc(ws.win.Groups, func(x, y pipeline.GroupAcc) int { return aggregate.CompareGroups(x.Group, y.Group) })
		out = append(out, *ws)
	}
	slices.SortFunc(out, func(x, y windowWithStatus) int { return cmp.Compare(x.win.Start, y.win.Start) })
	if latest && len(out) > defaultWindows {
		out = out[len(out)-defaultWindows:]
	}
	return out, nil
}

// groupJSON is a group's values (by their fields' JSON names) and measures
// (by column; money and miles as exact decimals).
func groupJSON(a aggregate.Aggregation, g pipeline.GroupAcc) map[string]any {
	out := map[string]any{}
	for i, f := range a.GroupBy {
		if g.Group.Null&(1<<i) != 0 {
			out[ride.Fields[f].Name] = nil
		} else {
			out[ride.Fields[f].Name] = g.Group.V[i]
		}
	}
	for i, m := range a.Measures {
		v, ok := a.Value(g.Acc, i)
		switch {
		case !ok:
			out[m.Column] = nil
		case m.Scale() == ride.Hundredths:
			out[m.Column] = pipeline.Cents(v)
		default:
			out[m.Column] = v
		}
	}
	return out
}

func timeRange(from, to string) (int64, int64, error) {
	// Bounds PostgreSQL's timestamptz holds (pgx would overflow on ±2^62 ms).
	lo, hi := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).UnixMilli()
	if from != "" {
		t, err := time.Parse(time.RFC3339, from)
		if err != nil {
			return 0, 0, fmt.Errorf("from: want RFC 3339: %w", err)
		}
		lo = t.UnixMilli()
	}
	if to != "" {
		t, err := time.Parse(time.RFC3339, to)
		if err != nil {
			return 0, 0, fmt.Errorf("to: want RFC 3339: %w", err)
		}
		hi = t.UnixMilli()
	}
	return lo, hi, nil
}

// counted counts each request by path and status code.
func counted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := &statusWriter{ResponseWriter: rw, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		path := r.URL.Path
		if !strings.HasPrefix(path, "/api/") {
			path = "/" // the page, or what is not found: one label, not one per URL
		}
		metricRequests.WithLabelValues(path, strconv.Itoa(rec.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}
