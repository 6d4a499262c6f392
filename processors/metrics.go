package processors

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics is the registry of the processors' metric families: the process serving
// them exports these and the Go runtime's, not another component's.
var Metrics = prometheus.NewRegistry()

// metrics registers on Metrics.
var metrics = promauto.With(Metrics)

var (
	metricMessages = metrics.NewCounterVec(prometheus.CounterOpts{
		Name: "ridestream_processor_messages_total",
		Help: "Messages handled by each processor stage and input.",
	}, []string{"stage"})
	metricOutputs = metrics.NewCounterVec(prometheus.CounterOpts{
		Name: "ridestream_processor_outputs_total",
		Help: "Outputs by kind: late (a ride late for an aggregation), rejected (undecodable input and outliers), final_rows, final_reemits (rows emitted again after a redelivery), forget_retries.",
	}, []string{"kind"})
	metricStreamTime = metrics.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ridestream_processor_stream_time_seconds",
		Help: "Stream time ST(p) of each input partition owned by this instance's clock stage (unix seconds).",
	}, []string{"partition"})
	metricWatermark = metrics.NewGauge(prometheus.GaugeOpts{
		Name: "ridestream_processor_watermark_seconds",
		Help: "The pipeline's watermark, the lowest stream time of all input partitions, in the instance running the watermark stage (unix seconds).",
	})
	metricKeysCreated = metrics.NewCounter(prometheus.CounterOpts{
		Name: "ridestream_processor_window_keys_created_total",
		Help: "Window and session keys created in this instance.",
	})
	metricKeysDeleted = metrics.NewCounter(prometheus.CounterOpts{
		Name: "ridestream_processor_window_keys_deleted_total",
		Help: "Window and session keys deleted (final and forgotten) in this instance.",
	})
	metricOutOfChain = metrics.NewCounterVec(prometheus.CounterOpts{
		Name: "ridestream_processor_out_of_chain_total",
		Help: "Messages skipped because a write before them was lost (route sends them again after its restart).",
	}, []string{"stage"})
	metricRepairs = metrics.NewCounterVec(prometheus.CounterOpts{
		Name: "ridestream_processor_clock_repairs_total",
		Help: "Input records read again from the input topic because what carried them never arrived: at the clock stage, batches (a lost write, or the clock topic's retention); at the watermark stage, clock writes (lost, or compacted away while route was down).",
	}, []string{"stage"})
	metricWatermarkGaps = metrics.NewCounter(prometheus.CounterOpts{
		Name: "ridestream_processor_watermark_gaps_total",
		Help: "Lost writes route found in the watermark stage's changelog (route stops there; should stay 0).",
	})
	metricBatches = metrics.NewCounter(prometheus.CounterOpts{
		Name: "ridestream_processor_clock_batches_total",
		Help: "Batches route sent to the clock stage (records per batch: route_input messages / this).",
	})
	metricRideAfterFinal = metrics.NewCounter(prometheus.CounterOpts{
		Name: "ridestream_processor_rides_after_final_total",
		Help: "Messages with rides that reached a final window or session (a broken upstream order; should stay 0).",
	})
)

// Counters looked up once: a label lookup per ride showed in the profile.
var (
	countRouteInput     = metricMessages.WithLabelValues("route_input")
	countRouteClock     = metricMessages.WithLabelValues("route_clock")
	countRouteWatermark = metricMessages.WithLabelValues("route_watermark")
	countClock          = metricMessages.WithLabelValues("clock")
	countWatermark      = metricMessages.WithLabelValues("watermark")
	countWindows        = metricMessages.WithLabelValues("windows")
	countRejected       = metricOutputs.WithLabelValues("rejected")
	countOutliers       = countRejected
	countLate           = metricOutputs.WithLabelValues("late")
	countFinalRows      = metricOutputs.WithLabelValues("final_rows")
	countFinalReemits   = metricOutputs.WithLabelValues("final_reemits")
	countForgetRetries  = metricOutputs.WithLabelValues("forget_retries")
)

// partitionLabel is a partition as a metric label.
func partitionLabel(p int32) string { return strconv.Itoa(int(p)) }

// counted counts a stage's messages for the metric and the progress log.
func (t *Topology) counted(c prometheus.Counter) {
	c.Inc()
	t.processed.Add(1)
}

// logProgress logs the messages handled per second every interval until ctx
// ends, for people watching a long replay.
func (t *Topology) logProgress(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	last, at := t.processed.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n := t.processed.Load()
			if n != last {
				t.Logger.Info("processor progress", "messages", n, "rate_per_s", int(float64(n-last)/now.Sub(at).Seconds()))
			}
			last, at = n, now
		}
	}
}
