package nats

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/cosnim/relays/internal/testpki"
)

// pki is a CA, a server certificate for 127.0.0.1 and a client one.
type pki struct {
	ca                    string
	serverCert, serverKey string
	cert, key             string
	caCert                *x509.Certificate
}

func newPKI(t *testing.T, dir string) *pki {
	ca := testpki.NewCA(t, dir, "nats")
	p := &pki{ca: ca.File, caCert: ca.Cert}
	p.serverCert, p.serverKey, _ = ca.Issue(t, dir, "server", testpki.Leaf{CN: "nats", Server: true})
	p.cert, p.key, _ = ca.Issue(t, dir, "relay", testpki.Leaf{CN: "relay-1"})
	return p
}

// serverTLS requires client certificates from the CA.
func (p *pki) serverTLS(t *testing.T) *tls.Config {
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}
