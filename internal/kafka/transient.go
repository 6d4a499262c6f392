package kafka

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/IBM/sarama"
)

// Transient reports whether err is one that a cluster's passing state
// explains and that goes away with fresh metadata and time: no broker
// answers (all down or restarting), a partition has no leader during an
// election or its leader moved, a request timed out, a coordinator is
// loading. Wrong settings (*ConnError), drift and anything else are not
// transient: a command ends on them, naming the flag.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var wrong *ConnError
	if errors.As(err, &wrong) {
		return false
	}
	var missing *BrokersMissingError
	if errors.As(err, &missing) {
		return true
	}
	var ke sarama.KError
	if errors.As(err, &ke) {
		switch ke {
		case sarama.ErrLeaderNotAvailable, sarama.ErrNotLeaderForPartition, sarama.ErrRequestTimedOut,
			sarama.ErrBrokerNotAvailable, sarama.ErrReplicaNotAvailable, sarama.ErrNetworkException,
			sarama.ErrNotEnoughReplicas, sarama.ErrNotEnoughReplicasAfterAppend, sarama.ErrNotController,
			sarama.ErrOffsetsLoadInProgress, sarama.ErrConsumerCoordinatorNotAvailable, sarama.ErrNotCoordinatorForConsumer,
			sarama.ErrRebalanceInProgress, sarama.ErrKafkaStorageError, sarama.ErrFencedLeaderEpoch,
			sarama.ErrUnknownLeaderEpoch, sarama.ErrOffsetNotAvailable:
			return true
		}
		return false
	}
	var ne net.Error
	return errors.Is(err, sarama.ErrOutOfBrokers) || errors.Is(err, sarama.ErrNotConnected) ||
		errors.Is(err, sarama.ErrBrokerNotFound) || errors.Is(err, sarama.ErrControllerNotAvailable) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || (errors.As(err, &ne) && ne.Timeout())
}

// RetryTransient calls fn until it returns nil or an error that is not
// Transient, or ctx ends. Between tries it waits (1 s growing to 10 s) and
// says what it waits for: waiting is called with the transient error
// each time (log it, set a /readyz condition).
func RetryTransient(ctx context.Context, waiting func(error), fn func() error) error {
	backoff := time.Second
	for {
		err := fn()
		if !Transient(err) {
			return err
		}
		waiting(err)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// LogWaiting is RetryTransient's waiting for a command without /readyz:
// it logs what the command waits for.
func LogWaiting(log *slog.Logger) func(error) {
	return func(err error) {
		log.Info("waiting for the cluster (a leader election, a broker restarting)", "err", err)
	}
}
