package tcp

import (
	"crypto/tls"
	"testing"

	"github.com/cosnim/relays/internal/testpki"
)

// clientConfig trusts p's CA and presents certFile and keyFile, if given.
func clientConfig(t testing.TB, p *testpki.PKI, certFile, keyFile string) *tls.Config {
	t.Helper()
	cfg, err := ClientTLSConfig(p.CA.File, certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
