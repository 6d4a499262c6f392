package generate

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/ridestream/ridestream/internal/kafka"
)

// ProduceOptions configures Produce.
type ProduceOptions struct {
	Kafka kafka.Conn
	Topic string
	// Rate limits messages per second; 0 is unlimited.
	Rate float64
	// Total is the expected message count, for progress; 0 if unknown.
	Total int
	// Logger receives progress lines every ProgressEvery (default 2s).
	Logger        *slog.Logger
	ProgressEvery time.Duration
}

// InputTopic is an input topic for generated rides: every message kept, and
// room for the malformed mix's largest (a value over the decoder's 1 MiB
// limit, which the pipeline must receive to reject it). Replication 0 is
// the cluster's default.
func InputTopic(name string, partitions int32, replication int16) kafka.Topic {
	return kafka.Topic{Name: name, Partitions: partitions, Replication: replication, CleanupPolicy: "delete", RetentionMs: -1,
		Configs: map[string]string{"max.message.bytes": strconv.Itoa(MaxMessageBytes)}}
}

// Produce sends msgs to their partitions with the idempotent producer and
// waits until every one is acknowledged. It returns how many were acked.
func Produce(ctx context.Context, opt ProduceOptions, msgs iter.Seq[Message]) (int, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.ProgressEvery <= 0 {
		opt.ProgressEvery = 2 * time.Second
	}
	cfg := opt.Kafka.Config("ridestream-generate")
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	// Room for the malformed mix's largest, as InputTopic's topics have.
	cfg.Producer.MaxMessageBytes = MaxMessageBytes
	// The manual partitioner sends to msg.Partition; a nil key is what the
	// tutorial's producer sends too.
	p, err := sarama.NewAsyncProducer(opt.Kafka.Brokers, cfg)
	if err != nil {
		return 0, fmt.Errorf("connect producer to %v: %w", opt.Kafka.Brokers, err)
	}
	var (
		mu      sync.Mutex
		acked   int
		errored int
		firstEr error
		wg      sync.WaitGroup
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range p.Successes() {
			mu.Lock()
			acked++
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for e := range p.Errors() {
			mu.Lock()
			errored++
			if firstEr == nil {
				firstEr = e.Err
			}
			mu.Unlock()
		}
	}()
	progress := NewProgress(opt.Logger, "produce", opt.Total, opt.ProgressEvery)
	start := time.Now()
	sent := 0
	var sendErr error
	for m := range msgs {
		if opt.Rate > 0 {
			due := start.Add(time.Duration(float64(sent) / opt.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		}
		pm := &sarama.ProducerMessage{Topic: opt.Topic, Partition: m.Partition}
		if m.Value != nil {
			pm.Value = sarama.ByteEncoder(m.Value)
		}
		select {
		case p.Input() <- pm:
			sent++
		case <-ctx.Done():
			sendErr = ctx.Err()
		}
		if sendErr != nil {
			break
		}
		mu.Lock()
		failed := firstEr
		done := acked
		mu.Unlock()
		if failed != nil {
			break
		}
		progress.Update(done)
	}
	// Wait for every message sent to be acknowledged or failed before
	// closing: sarama fails a message it is still retrying (a new topic's
	// leader not known yet) once the producer is closing.
	for {
		mu.Lock()
		settled := acked+errored >= sent
		mu.Unlock()
		if settled || ctx.Err() != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.AsyncClose() // Successes and Errors close once every ack is in
	wg.Wait()
	progress.Done(acked)
	if firstEr != nil {
		return acked, fmt.Errorf("produce to %s: %w", opt.Topic, firstEr)
	}
	return acked, sendErr
}

// JSONL yields one message per non-empty line of r, spread over partitions
// round-robin. A read error ends the sequence and is stored in *err.
func JSONL(r io.Reader, partitions int32, err *error) iter.Seq[Message] {
	return func(yield func(Message) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 2<<20)
		var p int32
		for sc.Scan() {
			line := sc.Bytes()
			if len(line) == 0 {
				continue
			}
			if !yield(Message{Partition: p, Value: append([]byte(nil), line...)}) {
				return
			}
			p = (p + 1) % partitions
		}
		*err = sc.Err()
	}
}

// Progress logs done/total, rate and ETA at most once per interval.
type Progress struct {
	log      *slog.Logger
	what     string
	total    int
	every    time.Duration
	start    time.Time
	last     time.Time
	lastDone int
}

// NewProgress starts a progress reporter; total 0 means unknown.
func NewProgress(log *slog.Logger, what string, total int, every time.Duration) *Progress {
	now := time.Now()
	return &Progress{log: log, what: what, total: total, every: every, start: now, last: now}
}

// Update reports done so far, when the interval has passed.
func (p *Progress) Update(done int) {
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	rate := float64(done-p.lastDone) / now.Sub(p.last).Seconds()
	attrs := []any{"done", done, "rate_per_s", int(rate)}
	if p.total > 0 {
		attrs = append(attrs, "total", p.total, "pct", fmt.Sprintf("%.1f", 100*float64(done)/float64(p.total)))
		if rate > 0 {
			attrs = append(attrs, "eta", (time.Duration(float64(p.total-done)/rate) * time.Second).Round(time.Second))
		}
	}
	p.log.Info(p.what+" progress", attrs...)
	p.last, p.lastDone = now, done
}

// Done logs the final count and average rate.
func (p *Progress) Done(done int) {
	el := time.Since(p.start)
	p.log.Info(p.what+" done", "done", done, "elapsed", el.Round(time.Millisecond),
		"rate_per_s", int(float64(done)/max(el.Seconds(), 1e-9)))
}
