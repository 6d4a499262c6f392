package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	fsasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Conn is how every ridestream client reaches Kafka: the bootstrap brokers,
// TLS and SASL. goka's processors, views and emitters and the sink's sarama
// clients are all built from one Conn (Conn.Config), and the command-line
// flags build one Conn (see cmd/ridestream). Its password is never printed.
type Conn struct {
	Brokers []string
	// TLS, when set, is the TLS configuration (a CA, a client certificate
	// for mutual TLS, a server name); nil is plaintext.
	TLS *tls.Config
	// SASL, when Mechanism is set, authenticates every connection.
	SASL SASL
}

// SASL mechanisms ridestream speaks.
const (
	MechanismPlain  = "PLAIN"
	MechanismSHA256 = "SCRAM-SHA-256"
	MechanismSHA512 = "SCRAM-SHA-512"
)

// Mechanisms are the SASL mechanisms ridestream speaks.
var Mechanisms = []string{MechanismPlain, MechanismSHA256, MechanismSHA512}

// SASL is the authentication of a Conn.
type SASL struct {
	Mechanism string
	Username  string
	Password  Secret
}

// Secret holds a password; it prints as "[redacted]" in every format and log.
type Secret string

func (Secret) String() string               { return "[redacted]" }
func (Secret) GoString() string             { return "[redacted]" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// LogValue describes c for logs without its password.
func (c Conn) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("brokers", strings.Join(c.Brokers, ",")), slog.Bool("tls", c.TLS != nil)}
	if c.SASL.Mechanism != "" {
		attrs = append(attrs, slog.String("sasl", c.SASL.Mechanism), slog.String("user", c.SASL.Username))
	}
	return slog.GroupValue(attrs...)
}

// Validate reports a configuration error naming the flag.
func (c Conn) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("--brokers: at least one broker address is required")
	}
	if m := c.SASL.Mechanism; m != "" {
		switch {
		case !slices.Contains(Mechanisms, m):
			return fmt.Errorf("--kafka-sasl-mechanism %q: want one of %s", m, strings.Join(Mechanisms, ", "))
		case c.SASL.Username == "":
			return fmt.Errorf("--kafka-sasl-username: required with --kafka-sasl-mechanism %s", m)
		case c.SASL.Password == "":
			return fmt.Errorf("--kafka-sasl-password-file or $RIDESTREAM_KAFKA_SASL_PASSWORD: required with --kafka-sasl-mechanism %s", m)
		}
	} else if c.SASL.Username != "" {
		return errors.New("--kafka-sasl-username: given without --kafka-sasl-mechanism")
	} else if c.SASL.Password != "" {
		return errors.New("--kafka-sasl-password-file or $RIDESTREAM_KAFKA_SASL_PASSWORD: given without --kafka-sasl-mechanism")
	}
	return nil
}

// TLSFiles are the TLS settings as files, the way the flags give them.
type TLSFiles struct {
	Enabled            bool
	CAFile             string
	CertFile, KeyFile  string
	ServerName         string
	InsecureSkipVerify bool
}

// Config reads the files and returns the TLS configuration, nil when TLS is
// off; errors name the flag. Any file flag turns TLS on.
func (f TLSFiles) Config() (*tls.Config, error) {
	if !f.Enabled && f.CAFile == "" && f.CertFile == "" && f.KeyFile == "" && f.ServerName == "" && !f.InsecureSkipVerify {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName, InsecureSkipVerify: f.InsecureSkipVerify}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--kafka-tls-ca-file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--kafka-tls-ca-file %s: no PEM certificate in it", f.CAFile)
		}
	}
	switch {
	case f.CertFile != "" && f.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--kafka-tls-cert-file/--kafka-tls-key-file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	case f.CertFile != "":
		return nil, errors.New("--kafka-tls-key-file: required with --kafka-tls-cert-file")
	case f.KeyFile != "":
		return nil, errors.New("--kafka-tls-cert-file: required with --kafka-tls-key-file")
	}
	return c, nil
}

// Config returns the shared client configuration (NewConfig) with c's TLS
// and SASL, for the client named clientID.
func (c Conn) Config(clientID string) *sarama.Config {
	cfg := newConfig(clientID)
	if c.TLS != nil {
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = c.TLS.Clone()
	}
	if m := c.SASL.Mechanism; m != "" {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Handshake = true
		cfg.Net.SASL.User = c.SASL.Username
		cfg.Net.SASL.Password = string(c.SASL.Password)
		switch m {
		case MechanismPlain:
			cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case MechanismSHA256:
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{sha512: false} }
		case MechanismSHA512:
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{sha512: true} }
		}
	}
	return cfg
}

// NewClient connects a client named clientID.
func (c Conn) NewClient(clientID string) (sarama.Client, error) {
	client, err := sarama.NewClient(c.Brokers, c.Config(clientID))
	if err != nil {
		return nil, fmt.Errorf("connect to Kafka %v: %w", c.Brokers, err)
	}
	return client, nil
}

// NewAdmin connects a cluster admin named clientID.
func (c Conn) NewAdmin(clientID string) (sarama.ClusterAdmin, error) {
	admin, err := sarama.NewClusterAdmin(c.Brokers, c.Config(clientID))
	if err != nil {
		return nil, fmt.Errorf("connect to Kafka %v: %w", c.Brokers, err)
	}
	return admin, nil
}

// WithCluster runs fn with a client and an admin named clientID.
func (c Conn) WithCluster(clientID string, fn func(sarama.Client, sarama.ClusterAdmin) error) error {
	client, err := c.NewClient(clientID)
	if err != nil {
		return err
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return fmt.Errorf("connect to Kafka %v: %w", c.Brokers, err)
	}
	return fn(client, admin)
}

// scramClient runs franz-go's SCRAM implementation behind sarama's
// SCRAMClient interface.
type scramClient struct {
	sha512 bool
	sess   fsasl.Session
	first  []byte
	done   bool
}

func (s *scramClient) Begin(user, password, _ string) error {
	auth := scram.Auth{User: user, Pass: password}
	mech := auth.AsSha256Mechanism()
	if s.sha512 {
		mech = auth.AsSha512Mechanism()
	}
	sess, first, err := mech.Authenticate(context.Background(), "")
	s.sess, s.first = sess, first
	return err
}

func (s *scramClient) Step(challenge string) (string, error) {
	if s.first != nil {
		first := s.first
		s.first = nil
		return string(first), nil
	}
	done, resp, err := s.sess.Challenge([]byte(challenge))
	s.done = done
	return string(resp), err
}

func (s *scramClient) Done() bool { return s.done }

// ConnError is a failure to reach Kafka that more tries cannot fix: a
// setting is wrong. Flags names the settings involved.
type ConnError struct {
	Broker string
	Flags  []string
	Reason string
	Err    error
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("%s: %s (broker %s: %v)", strings.Join(e.Flags, ", "), e.Reason, e.Broker, e.Err)
}

func (e *ConnError) Unwrap() error { return e.Err }

// CheckTimeout bounds Check, whatever the brokers do (one that accepts
// connections and never answers included).
const CheckTimeout = 15 * time.Second

// ReadyBrokers is the /readyz condition, in every command that serves one,
// that a broker answers with the connection's settings (Check, watched by
// ops.Readiness.Watch).
const ReadyBrokers = "brokers"

// Check connects to every bootstrap broker at once with c's TLS and SASL
// and asks it for metadata. It returns nil as soon as one answers. When none
// does, it returns a *ConnError if one of them failed for a reason that is a
// wrong setting (bad credentials, an unknown CA or an invalid certificate,
// a missing client certificate, plaintext against TLS or the reverse, a
// mechanism the broker lacks), else an error naming --brokers (the brokers
// are down: worth retrying). A broker that only closed the connection counts
// as a wrong setting once it has done so on three connections in a row: one
// that is shutting down does that once, then refuses connections.
func (c Conn) Check(ctx context.Context) error {
	cfg := c.Config("ridestream-check")
	cfg.Net.DialTimeout, cfg.Net.ReadTimeout, cfg.Net.WriteTimeout = 5*time.Second, 5*time.Second, 5*time.Second
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	results := make(chan error, len(c.Brokers))
	for _, addr := range c.Brokers {
		go func() { results <- c.checkBroker(ctx, addr, cfg) }()
	}
	var wrong *ConnError
	var last error
	for range c.Brokers {
		select {
		case err := <-results:
			var ce *ConnError
			switch {
			case err == nil:
				return nil
			case errors.As(err, &ce):
				if wrong == nil {
					wrong = ce
				}
			default:
				last = err
			}
			continue
		case <-ctx.Done():
			last = fmt.Errorf("no answer within %s: %w", CheckTimeout, ctx.Err())
		}
		break
	}
	if wrong != nil {
		return wrong
	}
	return fmt.Errorf("--brokers %s: no broker answered: %w", strings.Join(c.Brokers, ","), last)
}

// checkBroker checks one broker: nil, a *ConnError, or why it is down.
func (c Conn) checkBroker(ctx context.Context, addr string, cfg *sarama.Config) error {
	for attempt := 1; ; attempt++ {
		err := dialBroker(addr, cfg)
		if err == nil {
			return nil
		}
		ce := c.classify(addr, err)
		if ce == nil {
			return fmt.Errorf("broker %s: %w", addr, err)
		}
		if !closed(err) || attempt == 3 {
			return ce
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker %s: %w", addr, err)
		case <-time.After(time.Second):
		}
	}
}

func dialBroker(addr string, cfg *sarama.Config) error {
	if cfg.Net.TLS.Enable {
		// The TLS handshake alone first: a listener that does not speak TLS
		// closes the connection, which sarama reports as a bare EOF.
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: cfg.Net.DialTimeout}, "tcp", addr, cfg.Net.TLS.Config)
		if err != nil {
			return &tlsHandshakeError{err}
		}
		conn.Close()
	}
	b := sarama.NewBroker(addr)
	if err := b.Open(cfg); err != nil {
		return err
	}
	defer b.Close()
	if _, err := b.Connected(); err != nil {
		return err
	}
	_, err := b.GetMetadata(&sarama.MetadataRequest{Version: 4})
	return err
}

// tlsHandshakeError is a failure of the TLS handshake itself.
type tlsHandshakeError struct{ err error }

func (e *tlsHandshakeError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *tlsHandshakeError) Unwrap() error { return e.err }

// closed reports a connection the other side closed.
func closed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		strings.Contains(err.Error(), "connection reset")
}

// classify names the settings behind err, or returns nil for a failure
// that is worth retrying (the broker is down or unreachable).
func (c Conn) classify(addr string, err error) *ConnError {
	e := func(reason string, flags ...string) *ConnError {
		return &ConnError{Broker: addr, Flags: flags, Reason: reason, Err: err}
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var recordHeader tls.RecordHeaderError
	var handshake *tlsHandshakeError
	msg := err.Error()
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed) || strings.Contains(msg, "SASL Authentication failed"):
		return e("the broker refused these SASL credentials", "--kafka-sasl-username", "--kafka-sasl-password-file/$RIDESTREAM_KAFKA_SASL_PASSWORD")
	case errors.Is(err, sarama.ErrUnsupportedSASLMechanism):
		return e("the broker does not offer this SASL mechanism on this listener", "--kafka-sasl-mechanism")
	case errors.Is(err, sarama.ErrIllegalSASLState):
		return e("the listener does not expect SASL", "--kafka-sasl-mechanism")
	case errors.As(err, &unknownCA) || strings.Contains(msg, "certificate signed by unknown authority"):
		return e("the broker's certificate is not signed by a trusted CA", "--kafka-tls-ca-file")
	case errors.As(err, &invalid):
		return e("the broker's certificate is not valid (expired, not yet valid, or not for a server)", "--kafka-tls-ca-file")
	case errors.As(err, &hostname):
		return e("the broker's certificate is not valid for this address", "--kafka-tls-server-name", "--brokers")
	case errors.As(err, &recordHeader) || strings.Contains(msg, "first record does not look like a TLS handshake") ||
		(errors.As(err, &handshake) && closed(err)):
		return e("the listener does not speak TLS", "--kafka-tls")
	case strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate") || strings.Contains(msg, "unknown certificate"):
		if c.TLS != nil && len(c.TLS.Certificates) == 0 {
			return e("the broker requires a client certificate (mutual TLS)", "--kafka-tls-cert-file", "--kafka-tls-key-file")
		}
		return e("the broker refused the client certificate", "--kafka-tls-cert-file", "--kafka-tls-key-file")
	case closed(err) && c.TLS == nil:
		return e("the broker closed the connection before answering: it probably expects TLS (or SASL)", "--kafka-tls", "--kafka-sasl-mechanism")
	case closed(err) && c.SASL.Mechanism == "":
		return e("the broker closed the connection before answering: it probably expects SASL", "--kafka-sasl-mechanism")
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return e("the broker refused the TLS handshake", "--kafka-tls-cert-file", "--kafka-tls-key-file", "--kafka-tls-ca-file")
	}
	return nil
}

// Await checks (Check) every interval until a broker answers (nil), a
// setting turns out wrong (the *ConnError) or ctx ends, and reports each
// result: a command that starts while the brokers are down waits for them,
// and still ends, naming the flags, if its settings are wrong.
func (c Conn) Await(ctx context.Context, every time.Duration, report func(error)) error {
	for {
		err := c.Check(ctx)
		report(err)
		var wrong *ConnError
		if err == nil || errors.As(err, &wrong) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}
