package processors

import (
	"context"
	"time"

	"github.com/ridestream/ridestream/internal/pipeline"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricMessages = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "ridestream_processor_messages_total",
		Help: "Messages handled by each processor stage and input.",
	}, []string{"stage"})
	metricOutputs = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "ridestream_processor_outputs_total",
		Help: "Outputs by kind: on_time, late, rejected, heartbeat (clock decisions), close (subscriptions answered at once), subscriptions (windows pending at a clock), final_rows, final_reemits.",
	}, []string{"kind"})
	metricStreamTime = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ridestream_processor_stream_time_seconds",
		Help: "Stream time ST(p) of each input partition owned by this instance's clock stage (unix seconds).",
	}, []string{"partition"})
	metricPending = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ridestream_processor_pending_windows",
		Help: "Windows with state that each input partition owned by this instance's clock stage has not closed yet (what it holds back).",
	}, []string{"partition"})
	metricWindowsFinal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "ridestream_processor_window_shards_final_total",
		Help: "(window, shard) keys that became final in this instance.",
	})
	metricWindowsOpened = promauto.NewCounter(prometheus.CounterOpts{
		Name: "ridestream_processor_window_shards_opened_total",
		Help: "(window, shard) keys created in this instance; opened minus final approximates open windows.",
	})
	metricOutOfChain = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "ridestream_processor_out_of_chain_total",
		Help: "Messages skipped because a write before them was lost (route sends them again after its restart).",
	}, []string{"stage"})
	metricClockGaps = promauto.NewCounter(prometheus.CounterOpts{
		Name: "ridestream_processor_clock_gaps_total",
		Help: "Gaps route found in the clock's changelog (lost clock outputs; should stay 0).",
	})
	metricBatches = promauto.NewCounter(prometheus.CounterOpts{
		Name: "ridestream_processor_clock_batches_total",
		Help: "Batches route sent to the clock stage (records per batch: route_input messages / this).",
	})
	metricRideAfterFinal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "ridestream_processor_rides_after_final_total",
		Help: "Rides that reached a final window (a broken upstream order; should stay 0).",
	})
)

// Counters looked up once: a label lookup per ride showed in the profile.
var (
	countRouteInput    = metricMessages.WithLabelValues("route_input")
	countRouteClock    = metricMessages.WithLabelValues("route_clock")
	countClock         = metricMessages.WithLabelValues("clock")
	countWindows       = metricMessages.WithLabelValues("windows")
	countRejected      = metricOutputs.WithLabelValues("rejected")
	countFinalRows     = metricOutputs.WithLabelValues("final_rows")
	countFinalReemits  = metricOutputs.WithLabelValues("final_reemits")
	countSubscriptions = metricOutputs.WithLabelValues("subscriptions")
	countOuts          = map[uint8]prometheus.Counter{}
)

func init() {
	for out, kind := range outKinds {
		countOuts[out] = metricOutputs.WithLabelValues(kind)
	}
}

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

var outKinds = map[uint8]string{pipeline.OutOnTime: "on_time", pipeline.OutLate: "late", pipeline.OutRejected: "rejected", pipeline.OutHeartbeat: "heartbeat", pipeline.OutClose: "close"}
