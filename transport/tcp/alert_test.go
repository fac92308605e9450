package tcp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"

	"github.com/cosnim/relays/internal/testpki"
)

// TestReceivedAlert: a server whose certificate the client refuses sees
// the client's bad_certificate alert.
func TestReceivedAlert(t *testing.T) {
	p := testpki.NewPKI(t)
	scfg, _, err := ServerTLSConfig(p.ServerCert, p.ServerKey, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.OtherCA.Cert)
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	go tls.Client(cc, &tls.Config{RootCAs: roots, ServerName: "localhost"}).Handshake()
	err = tls.Server(sc, scfg).Handshake()
	a, ok := ReceivedAlert(err)
	if !ok || a != AlertBadCertificate {
		t.Fatalf("ReceivedAlert(%v) = %v, %v; want bad certificate", err, a, ok)
	}
	if _, ok := ReceivedAlert(errors.New("tls: bad certificate")); ok {
		t.Error("a plain error counted as an alert")
	}
}
