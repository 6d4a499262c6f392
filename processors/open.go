package processors

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ridestream/ridestream/internal/aggregate"
	"github.com/ridestream/ridestream/internal/pipeline"
)

var (
	metricOpenWindows = metrics.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ridestream_open_windows",
		Help: "Windows (sessions) with rides that are not final yet, per aggregation, as the watermark stage last wrote them.",
	}, []string{"aggregation"})
	metricOldestOpen = metrics.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ridestream_oldest_open_window_age_seconds",
		Help: "Age of the oldest open window (session) per aggregation: time=\"event\" is how far the highest partition stream time is past its end " +
			"(its last ride + gap for a session); time=\"wall\" how long ago this process first saw it open. 0 when none is open.",
	}, []string{"aggregation", "time"})
)

// maxCounted bounds the windows counted per aggregation on each watermark
// write (a partition far behind keeps many open).
const maxCounted = 100_000

// openWindows follows the oldest open window of each aggregation in wall
// time: when this process first saw it open.
type openWindows struct {
	mu    sync.Mutex
	since map[openKey]time.Time
}

type openKey struct {
	agg   int
	start int64
}

// observe exports the open windows of the watermark state st.
func (o *openWindows) observe(t *Topology, st *pipeline.WatermarkState, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since == nil {
		o.since = map[openKey]time.Time{}
	}
	var highest int64
	for _, src := range st.Sources {
		if src.Valid {
			highest = max(highest, src.ST)
		}
	}
	seen := map[openKey]bool{}
	for i, a := range t.Aggs {
		name := a.Name
		ap := st.Aggs[i]
		n, oldest, end := 0, int64(0), int64(0)
		switch a.Kind {
		case aggregate.Tumbling:
			spec := t.Stages.Windows[i]
			for _, r := range ap.Open {
				for w := r.From; w <= r.To && n < maxCounted; w = spec.End(w) {
					n++
				}
			}
			if len(ap.Open) > 0 {
				oldest, end = ap.Open[0].From, spec.End(ap.Open[0].From)
			}
		case aggregate.Session:
			first := true
			for _, g := range ap.Groups {
				n += len(g.Spans)
				for _, sp := range g.Spans {
					if first || sp.First < oldest {
						oldest, end, first = sp.First, sp.Last+a.Gap.Milliseconds(), false
					}
				}
			}
		}
		metricOpenWindows.WithLabelValues(name).Set(float64(n))
		if n == 0 {
			metricOldestOpen.WithLabelValues(name, "event").Set(0)
			metricOldestOpen.WithLabelValues(name, "wall").Set(0)
			continue
		}
		k := openKey{i, oldest}
		seen[k] = true
		if _, ok := o.since[k]; !ok {
			o.since[k] = now
		}
		metricOldestOpen.WithLabelValues(name, "event").Set(float64(max(highest-end, 0)) / 1000)
		metricOldestOpen.WithLabelValues(name, "wall").Set(now.Sub(o.since[k]).Seconds())
	}
	for k := range o.since {
		if !seen[k] {
			delete(o.since, k)
		}
	}
}
