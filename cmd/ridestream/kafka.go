package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"strings"

	"github.com/ridestream/ridestream/internal/envflag"
	"github.com/ridestream/ridestream/internal/kafka"
)

// kafkaFlags adds the one flag set of the Kafka connection (brokers, TLS,
// SASL) to fs and returns the function that builds the connection after
// parsing; args are the command line, on which a password is refused.
func kafkaFlags(fs *flag.FlagSet) func(args []string) (kafka.Conn, error) {
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap addresses (required)")
	var t kafka.TLSFiles
	fs.BoolVar(&t.Enabled, "kafka-tls", false, "connect to Kafka over TLS (implied by any --kafka-tls-* file flag)")
	fs.StringVar(&t.CAFile, "kafka-tls-ca-file", "", "PEM file of the CA(s) that sign the brokers' certificates (default: the system's)")
	fs.StringVar(&t.CertFile, "kafka-tls-cert-file", "", "PEM client certificate, for brokers that require mutual TLS")
	fs.StringVar(&t.KeyFile, "kafka-tls-key-file", "", "PEM private key of --kafka-tls-cert-file")
	fs.StringVar(&t.ServerName, "kafka-tls-server-name", "", "name to verify the brokers' certificates against (default: the host of each address)")
	fs.BoolVar(&t.InsecureSkipVerify, "kafka-tls-insecure-skip-verify", false, "do not verify the brokers' certificates (testing only; logged as a warning)")
	mechanism := fs.String("kafka-sasl-mechanism", "", "SASL mechanism: "+strings.Join(kafka.Mechanisms, ", ")+" (empty: no SASL)")
	user := fs.String("kafka-sasl-username", "", "SASL user name (an API key on Confluent Cloud)")
	password := fs.String("kafka-sasl-password", "", "SASL password: only through $RIDESTREAM_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file, never on the command line")
	passwordFile := fs.String("kafka-sasl-password-file", "", "file holding the SASL password (an API secret on Confluent Cloud)")
	return func(args []string) (kafka.Conn, error) {
		conn := kafka.Conn{Brokers: splitBrokers(*brokers)}
		if envflag.OnCommandLine(args, "kafka-sasl-password") {
			return conn, errors.New("--kafka-sasl-password: refused on the command line (other users see it in ps); pass it through $RIDESTREAM_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file")
		}
		conn.SASL = kafka.SASL{Mechanism: strings.ToUpper(*mechanism), Username: *user, Password: kafka.Secret(*password)}
		if *passwordFile != "" {
			b, err := os.ReadFile(*passwordFile)
			if err != nil {
				return conn, errors.New("--kafka-sasl-password-file: " + err.Error())
			}
			conn.SASL.Password = kafka.Secret(strings.TrimRight(string(b), "\r\n"))
		}
		var err error
		if conn.TLS, err = t.Config(); err != nil {
			return conn, err
		}
		return conn, conn.Validate()
	}
}

// checkKafka reports conn to the log and checks that its brokers answer
// with its TLS and SASL: a wrong setting ends the command with an error
// naming the flags (within kafka.CheckTimeout); a broker that is down is
// an error too unless retried is set, when the caller retries on its own.
func checkKafka(ctx context.Context, log *slog.Logger, conn kafka.Conn, retried bool) error {
	if conn.TLS != nil && conn.TLS.InsecureSkipVerify {
		log.Warn("--kafka-tls-insecure-skip-verify is on: the brokers' certificates are NOT verified; anyone on the path can read and change the data")
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
