package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/ridestream/ridestream/internal/kafka"
)

// kafkaFlags adds the Kafka connection's flags (kafka.Flags).
var kafkaFlags = kafka.Flags

// checkKafka reports conn to the log and checks that its brokers answer
// with its TLS and SASL: a wrong setting ends the command with an error
// naming the flags (within kafka.CheckTimeout); a broker that is down is
// an error too unless retried is set, when the caller retries on its own.
func checkKafka(ctx context.Context, log *slog.Logger, conn kafka.Conn, retried bool) error {
	if conn.TLS != nil && conn.TLS.InsecureSkipVerify {
		// Logged as an error, so no --log-level hides it.
		log.Error("--kafka-tls-insecure-skip-verify is on: the brokers' certificates are NOT verified; anyone on the path can read and change the data")
	}
	err := conn.Check(ctx)
	var wrong *kafka.ConnError
	if err == nil || (retried && !errors.As(err, &wrong)) {
		if err != nil {
			log.Warn("Kafka not reachable yet; retrying", "kafka", conn, "err", err)
		}
		return nil
	}
	return err
}
