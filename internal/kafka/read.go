package kafka

import (
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// ReadTopic calls fn with every message of every partition of topic, in
// offset order per partition, up to the partitions' ends when it was called.
// It stops at fn's first error.
func ReadTopic(client sarama.Client, topic string, fn func(*sarama.ConsumerMessage) error) error {
	parts, err := client.Partitions(topic)
	if err != nil {
		return fmt.Errorf("topic %s: %w", topic, err)
	}
	for _, p := range parts {
		if err := ReadPartition(client, topic, p, fn); err != nil {
			return err
		}
	}
	return nil
}

// ReadPartition calls fn with every message of one partition of topic, in
// offset order, up to its end when it was called, and stops at fn's first
// error.
//
// It reads with plain fetch requests rather than a consumer: a transactional
// producer (Flink's or Kafka Streams' exactly-once sinks, say) leaves commit
// markers in the log, offsets that no consumer is ever given, so a reader
// that waits for the message just before the end can wait for ever. Each
// record batch of a fetch says which offsets it covers, markers included.
// Like ridestream's consumers it reads uncommitted: records of aborted
// transactions are read too.
func ReadPartition(client sarama.Client, topic string, p int32, fn func(*sarama.ConsumerMessage) error) error {
	first, err := client.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return fmt.Errorf("topic %s partition %d: %w", topic, p, err)
	}
	end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return fmt.Errorf("topic %s partition %d: %w", topic, p, err)
	}
	return readRange(client, topic, p, first, end, fn)
}

// ErrGone says that records asked for are no longer in the log (retention
// or compaction removed them).
var ErrGone = errors.New("no longer in the log")

// ReadRange calls fn with every message of one partition of topic with an
// offset in [first, end), in offset order, as ReadPartition reads. When the
// log starts after first, it fails with ErrGone.
func ReadRange(client sarama.Client, topic string, p int32, first, end int64, fn func(*sarama.ConsumerMessage) error) error {
	oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return fmt.Errorf("topic %s partition %d: %w", topic, p, err)
	}
	if oldest > first {
		return fmt.Errorf("topic %s partition %d: offsets %d..%d: the log starts at %d: %w", topic, p, first, end-1, oldest, ErrGone)
	}
	return readRange(client, topic, p, first, end, fn)
}

func readRange(client sarama.Client, topic string, p int32, first, end int64, fn func(*sarama.ConsumerMessage) error) error {
	failures := 0
	fail := func(off int64, err error) error {
		if failures++; failures > 20 {
			return fmt.Errorf("read topic %s partition %d at offset %d: %w", topic, p, off, err)
		}
		_ = client.RefreshMetadata(topic) // the leader may have moved
		time.Sleep(time.Duration(failures) * 250 * time.Millisecond)
		return nil
	}
	for off := first; off < end; {
		next, hwm, err := fetchOnce(client, topic, p, off, end, fn)
		var stop *stopError
		switch {
		case errors.As(err, &stop):
			return stop.err
		case errors.Is(err, sarama.ErrOffsetOutOfRange):
			// Retention removed the start of the log, or an unclean leader
			// election its end: read on from what is there, never back.
			oldest, err1 := client.GetOffset(topic, p, sarama.OffsetOldest)
			newest, err2 := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err := errors.Join(err1, err2); err != nil {
				if err := fail(off, err); err != nil {
					return err
				}
				continue
			}
			off, end = max(off, oldest), min(end, newest)
		case err != nil:
			if err := fail(off, err); err != nil {
				return err
			}
		case next > off:
			failures, off = 0, next
		case hwm <= off:
			return nil // the log ends here now (truncated below where it ended)
		default:
			// Nothing whole came back (sarama drops the empty batches that
			// compaction leaves of idempotent producers): try again, and
			// give up rather than spin.
			if err := fail(off, errors.New("no record batch at this offset")); err != nil {
				return err
			}
		}
	}
	return nil
}

// stopError carries fn's error out of fetchOnce.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

// fetchOnce fetches from offset off of one partition, calls fn with each
// message below end, and returns the offset after the last whole record
// batch it read and the partition's high-water mark.
func fetchOnce(client sarama.Client, topic string, p int32, off, end int64, fn func(*sarama.ConsumerMessage) error) (next, hwm int64, err error) {
	leader, err := client.Leader(topic, p)
	if err != nil {
		return off, 0, err
	}
	req := &sarama.FetchRequest{Version: 4, MaxWaitTime: 500, MinBytes: 1, MaxBytes: 16 << 20, Isolation: sarama.ReadUncommitted}
	req.AddBlock(topic, p, off, 8<<20, -1)
	resp, err := leader.Fetch(req)
	if err != nil {
		return off, 0, err
	}
	block := resp.GetBlock(topic, p)
	if block == nil {
		return off, 0, errors.New("the fetch response has no block for the partition")
	}
	if block.Err != sarama.ErrNoError {
		return off, 0, block.Err
	}
	next = off
	for _, records := range block.RecordsSet {
		batch := records.RecordBatch
		if batch == nil {
			return off, 0, errors.New("a message set of the pre-0.11 format")
		}
		if batch.PartialTrailingRecord {
			break // the rest comes with the next fetch
		}
		if !batch.Control {
			for _, r := range batch.Records {
				o := batch.FirstOffset + r.OffsetDelta
				if o < next || o >= end {
					continue
				}
				ts := batch.FirstTimestamp.Add(r.TimestampDelta)
				if batch.LogAppendTime {
					ts = batch.MaxTimestamp
				}
				m := &sarama.ConsumerMessage{Topic: topic, Partition: p, Offset: o, Key: r.Key, Value: r.Value,
					Timestamp: ts, BlockTimestamp: batch.MaxTimestamp, Headers: r.Headers}
				if err := fn(m); err != nil {
					return off, 0, &stopError{err}
				}
			}
		}
		next = max(next, batch.LastOffset()+1)
	}
	return next, block.HighWaterMarkOffset, nil
}
