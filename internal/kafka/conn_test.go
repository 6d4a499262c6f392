package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// listen serves every connection accepted on a new loopback listener with
// serve, until the test ends.
func listen(t *testing.T, serve func(net.Conn)) string { return listenAt(t, "127.0.0.1:0", serve) }

// listenAt is listen at addr.
func listenAt(t *testing.T, addr string, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

func closeAtOnce(c net.Conn) { c.Close() }

func fakeBroker(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// An address that accepts and closes (a broker shutting down, a load
// balancer without backends) does not fail the check while another answers.
func TestCheckTriesEveryBroker(t *testing.T) {
	closer, good := listen(t, closeAtOnce), fakeBroker(t)
	for _, brokers := range [][]string{{closer, good}, {good, closer}} {
		if err := (Conn{Brokers: brokers}).Check(context.Background()); err != nil {
			t.Errorf("%v: %v", brokers, err)
		}
	}
}

// An address that only ever closes the connection is a wrong setting
// (plaintext against TLS, most likely), named once it did so three times.
func TestCheckNamesAListenerThatOnlyCloses(t *testing.T) {
	err := Conn{Brokers: []string{listen(t, closeAtOnce)}}.Check(context.Background())
	var ce *ConnError
	if !errors.As(err, &ce) || !slices.Contains(ce.Flags, "--kafka-tls") {
		t.Fatalf("got %v, want a *ConnError naming --kafka-tls", err)
	}
}

// A broker that accepts connections and never answers bounds the check by
// CheckTimeout, as a broker that is down (worth retrying).
func TestCheckSilentBroker(t *testing.T) {
	silent := listen(t, func(c net.Conn) {
		io.Copy(io.Discard, c) // until the client gives up
		c.Close()
	})
	start := time.Now()
	err := Conn{Brokers: []string{silent, silent}}.Check(context.Background())
	var ce *ConnError
	if err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), "--brokers") {
		t.Fatalf("got %v, want an error naming --brokers that is not a *ConnError", err)
	}
	if took := time.Since(start); took > CheckTimeout+2*time.Second {
		t.Fatalf("the check took %v, more than CheckTimeout %v", took, CheckTimeout)
	}
}

// An expired server certificate is a wrong setting naming the CA flag, and
// Await, started while nothing listens, returns it once the broker is up.
func TestExpiredCertificateOnceTheBrokerAnswers(t *testing.T) {
	ca, cert := expiredChain(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down for now
	conn := Conn{Brokers: []string{addr}, TLS: &tls.Config{RootCAs: ca}}
	var reports []error
	done := make(chan error, 1)
	go func() {
		done <- conn.Await(context.Background(), 200*time.Millisecond, func(err error) { reports = append(reports, err) })
	}()
	time.Sleep(time.Second)
	listenAt(t, addr, func(c net.Conn) {
		s := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		s.Handshake()
		s.Close()
	})
	select {
	case err = <-done:
	case <-time.After(CheckTimeout + 5*time.Second):
		t.Fatal("Await did not return once the broker answered")
	}
	var ce *ConnError
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &ce) || !slices.Contains(ce.Flags, "--kafka-tls-ca-file") || !errors.As(err, &invalid) {
		t.Fatalf("got %v, want a *ConnError naming --kafka-tls-ca-file for the expired certificate", err)
	}
	if len(reports) < 2 || reports[0] == nil || errors.As(reports[0], &ce) {
		t.Fatalf("reports %v: want 'no broker answered' first", reports)
	}
}

// expiredChain is a CA and a server certificate for 127.0.0.1 that it
// signed, which expired yesterday.
func expiredChain(t *testing.T) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, srvKey := key(), key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
}
