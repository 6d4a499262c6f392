package views

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics is the registry of the views' metric families: `ridestream views`
// exports these and the Go runtime's.
var Metrics = prometheus.NewRegistry()

var metrics = promauto.With(Metrics)

var (
	metricRequests = metrics.NewCounterVec(prometheus.CounterOpts{
		Name: "ridestream_views_requests_total",
		Help: "HTTP requests the views answered, by path and status code.",
	}, []string{"path", "code"})
	metricRecovered = metrics.NewGauge(prometheus.GaugeOpts{
		Name: "ridestream_views_recovered",
		Help: "1 once the views have caught up with the window and watermark tables, 0 before.",
	})
)
