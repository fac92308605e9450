package tcp

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/cosnim/relays/internal/testpki"
)

// pki is the set of certificates the TLS tests use.
type pki struct {
	dir                   string
	ca, otherCA           *testpki.CA
	serverCert, serverKey string
	server                *x509.Certificate
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{dir: dir}
	p.ca = testpki.NewCA(t, dir, "ca")
	p.otherCA = testpki.NewCA(t, dir, "other")
	p.serverCert, p.serverKey, p.server = p.ca.Issue(t, dir, "server", testpki.Leaf{CN: "relay", Server: true})
	return p
}

func (p *pki) clientConfig(t testing.TB, certFile, keyFile string) *tls.Config {
	t.Helper()
	cfg, err := ClientTLSConfig(p.ca.File, certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
