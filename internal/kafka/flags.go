package kafka

import (
	"errors"
	"flag"
	"os"
	"strings"

	"github.com/ridestream/ridestream/internal/envflag"
)

// Flags adds the one flag set of the Kafka connection (brokers, TLS,
// SASL) to fs and returns the function that builds the connection after
// parsing; args are the command line, on which a password is refused.
func Flags(fs *flag.FlagSet) func(args []string) (Conn, error) {
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap addresses (required)")
	var t TLSFiles
	fs.BoolVar(&t.Enabled, "kafka-tls", false, "connect to Kafka over TLS (implied by any --kafka-tls-* file flag)")
	fs.StringVar(&t.CAFile, "kafka-tls-ca-file", "", "PEM file of the CA(s) that sign the brokers' certificates (default: the system's)")
	fs.StringVar(&t.CertFile, "kafka-tls-cert-file", "", "PEM client certificate, for brokers that require mutual TLS")
	fs.StringVar(&t.KeyFile, "kafka-tls-key-file", "", "PEM private key of --kafka-tls-cert-file")
	fs.StringVar(&t.ServerName, "kafka-tls-server-name", "", "name to verify the brokers' certificates against (default: the host of each address)")
	fs.BoolVar(&t.InsecureSkipVerify, "kafka-tls-insecure-skip-verify", false, "do not verify the brokers' certificates (testing only; logged as a warning)")
	mechanism := fs.String("kafka-sasl-mechanism", "", "SASL mechanism: "+strings.Join(Mechanisms, ", ")+" (empty: no SASL)")
	user := fs.String("kafka-sasl-username", "", "SASL user name (an API key on Confluent Cloud)")
	password := fs.String("kafka-sasl-password", "", "SASL password: only through $RIDESTREAM_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file, never on the command line")
	passwordFile := fs.String("kafka-sasl-password-file", "", "file holding the SASL password (an API secret on Confluent Cloud)")
	return func(args []string) (Conn, error) {
		conn := Conn{Brokers: splitList(*brokers)}
		if envflag.OnCommandLine(args, "kafka-sasl-password") {
			return conn, errors.New("--kafka-sasl-password: refused on the command line (other users see it in ps); pass it through $RIDESTREAM_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file")
		}
		conn.SASL = SASL{Mechanism: strings.ToUpper(*mechanism), Username: *user, Password: Secret(*password)}
		if *passwordFile != "" {
			b, err := os.ReadFile(*passwordFile)
			if err != nil {
				return conn, errors.New("--kafka-sasl-password-file: " + err.Error())
			}
			conn.SASL.Password = Secret(strings.TrimRight(string(b), "\r\n"))
			if conn.SASL.Password == "" {
				return conn, errors.New("--kafka-sasl-password-file " + *passwordFile + ": the file is empty")
			}
		}
		var err error
		if conn.TLS, err = t.Config(); err != nil {
			return conn, err
		}
		return conn, conn.Validate()
	}
}

// ConnFromArgs is the connection that the flags in args give, with the
// password as if from $RIDESTREAM_KAFKA_SASL_PASSWORD: the test harness
// connects exactly as the processes it starts with args do.
func ConnFromArgs(args []string, password string) (Conn, error) {
	fs := flag.NewFlagSet("kafka", flag.ContinueOnError)
	conn := Flags(fs)
	if password != "" {
		if err := fs.Set("kafka-sasl-password", password); err != nil {
			return Conn{}, err
		}
	}
	if err := fs.Parse(args); err != nil {
		return Conn{}, err
	}
	return conn(args)
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}
