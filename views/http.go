package views

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ridestream/ridestream/internal/pipeline"
)

//go:embed page.html
var page []byte

// ZoneJSON is one pickup zone's sums in a window, in the API.
type ZoneJSON struct {
	Zone         int32  `json:"PULocationID"`
	Trips        int64  `json:"num_trips"`
	Revenue      string `json:"total_revenue"`
	RevenueCents int64  `json:"total_revenue_cents"`
}

// WindowJSON is one window in the API: open (provisional sums that can
// still grow) or final (what hourly_revenue holds).
type WindowJSON struct {
	Start        time.Time  `json:"window_start"`
	End          time.Time  `json:"window_end"`
	Final        bool       `json:"final"`
	Trips        int64      `json:"num_trips"`
	Revenue      string     `json:"total_revenue"`
	RevenueCents int64      `json:"total_revenue_cents"`
	Zones        []ZoneJSON `json:"zones,omitempty"`
}

// Handler serves GET / (a page with a live hourly revenue chart) and
// GET /api/windows: every window with rides and its totals, filtered by
// ?from= and ?to= (RFC 3339, on window_start), ?zone= (one pickup zone),
// ?zones=1 (include per-zone rows) and ?empty=1 (include windows without
// rides, such as those a partition's first record closes). The API answers
// 503 until the view has recovered, so a reader never sees a half-loaded table.
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
		from, to, err := timeRange(q.Get("from"), q.Get("to"))
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		zone := int64(-1 << 40)
		if z := q.Get("zone"); z != "" {
			if zone, err = strconv.ParseInt(z, 10, 32); err != nil {
				http.Error(rw, "zone: want an integer PULocationID", http.StatusBadRequest)
				return
			}
		}
		all, err := w.All()
		if err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		out := []WindowJSON{}
		for _, win := range all {
			if win.Start < from || win.Start >= to || (len(win.Zones) == 0 && q.Get("empty") != "1") {
				continue
			}
			wj := WindowJSON{Start: time.UnixMilli(win.Start).UTC(), End: time.UnixMilli(win.End).UTC(), Final: win.Final}
			for _, z := range win.Zones {
				if zone != -1<<40 && int64(z.Zone) != zone {
					continue
				}
				wj.Trips += z.Trips
				wj.RevenueCents += z.Cents
				if q.Get("zones") == "1" || zone != -1<<40 {
					wj.Zones = append(wj.Zones, ZoneJSON{Zone: z.Zone, Trips: z.Trips, Revenue: pipeline.Cents(z.Cents), RevenueCents: z.Cents})
				}
			}
			wj.Revenue = pipeline.Cents(wj.RevenueCents)
			out = append(out, wj)
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(out)
	})
	return mux
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
