package views

import (
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
// total_revenue); Groups its groups with every measure, by column.
type WindowJSON struct {
	Aggregation  string           `json:"aggregation"`
	Start        time.Time        `json:"window_start"`
	End          time.Time        `json:"window_end"`
	Final        bool             `json:"final"`
	Trips        int64            `json:"num_trips"`
	Revenue      string           `json:"total_revenue"`
	RevenueCents int64            `json:"total_revenue_cents"`
	Zones        []map[string]any `json:"zones,omitempty"`
}

// Handler serves GET / (a page with a live revenue chart) and GET
// /api/windows: every window with rides of a tumbling aggregation
// (?aggregation=, default the first) that the window stage holds, with its
// totals, filtered by ?from= and ?to= (RFC 3339, on window_start), ?zone=
// (one pickup zone) and ?zones=1 (include per-group rows). The API answers
// 503 until the view has recovered, so a reader never sees a half-loaded
// table.
func (w *Windows) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = rw.Write(page)
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
		zoneAt := slices.Index(a.GroupBy, ride.PULocationID)
		trips := slices.IndexFunc(a.Measures, func(m aggregate.Measure) bool { return m.Fn == aggregate.Count })
		revenue := slices.IndexFunc(a.Measures, func(m aggregate.Measure) bool { return m.Fn == aggregate.Sum && m.Field == ride.TotalAmount })
		all, err := w.All(agg)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		out := []WindowJSON{}
		for _, win := range all {
			if win.Start < from || win.Start >= to || len(win.Groups) == 0 {
				continue
			}
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
			wj.Revenue = pipeline.Cents(wj.RevenueCents)
			out = append(out, wj)
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(out)
	})
	return counted(mux)
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
	lo, hi := int64(-1<<62), int64(1<<62)
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
