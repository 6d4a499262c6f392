package sink

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics is the registry of the sink' metric families: the process serving
// them exports these and the Go runtime's, not another component's.
var Metrics = prometheus.NewRegistry()

// metrics registers on Metrics.
var metrics = promauto.With(Metrics)

var (
	metricRows = metrics.NewCounterVec(prometheus.CounterOpts{
		Name: "ridestream_sink_rows_total",
		Help: "Rows the sink committed (duplicates ignored by the database included), by table.",
	}, []string{"table"})
	metricBatchSeconds = metrics.NewHistogram(prometheus.HistogramOpts{
		Name:    "ridestream_sink_batch_seconds",
		Help:    "Time to commit one batch transaction, retries included.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
	metricBatchRows = metrics.NewHistogram(prometheus.HistogramOpts{
		Name:    "ridestream_sink_batch_records",
		Help:    "Input records per committed batch.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 10),
	})
	metricStagingFallbacks = metrics.NewCounter(prometheus.CounterOpts{
		Name: "ridestream_sink_staging_fallbacks_total",
		Help: "Batches whose rides were partly in the table already (a rebalance overlap), written through staging with ON CONFLICT DO NOTHING.",
	})
	metricRetrying = metrics.NewGauge(prometheus.GaugeOpts{
		Name: "ridestream_sink_retrying",
		Help: "1 while the sink retries a failing operation (PostgreSQL, or connecting to Kafka).",
	})
	metricLag = metrics.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ridestream_sink_consumer_lag",
		Help: "Records behind the partition's high-water mark, per topic and partition.",
	}, []string{"topic", "partition"})
	metricStreamTime = metrics.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ridestream_partition_stream_time_seconds",
		Help: "Stream time ST(p) of each input partition as committed by the sink (unix seconds).",
	}, []string{"partition"})
)
