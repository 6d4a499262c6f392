// Package broker runs the embedded Kafka-protocol broker of the laptop
// default: franz-go's kfake, listening on loopback, persisting to a directory.
//
// kfake is, in its authors' words, a fake cluster for testing: it speaks the
// Kafka protocol (produce, fetch, groups, idempotence, compaction) but it is
// not Apache Kafka. ridestream uses it for `make demo` and quick local runs;
// the test suite runs against a real Apache Kafka 4 broker.
package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is a running in-process broker.
type Embedded struct {
	cluster *kfake.Cluster
}

// Start runs a one-broker kfake cluster. dir persists topics, data and group
// offsets across restarts; empty keeps everything in memory. port 0 picks a
// free port.
func Start(dir string, port int) (*Embedded, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port)}
	if dir != "" {
		opts = append(opts, kfake.DataDir(dir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker (data dir %q): %w", dir, err)
	}
	return &Embedded{cluster: c}, nil
}

// Addrs returns the bootstrap addresses.
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// Close stops the broker, flushing persisted state.
func (e *Embedded) Close() { e.cluster.Close() }

// Compact runs log compaction on every compacted topic now. kfake compacts
// on the broker's log.cleaner.backoff.ms (an hour by default) and, unlike
// Kafka, without regard to min.compaction.lag.ms: tests that need a
// changelog compacted call this instead.
func (e *Embedded) Compact() { e.cluster.Compact() }
