package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/transport/tcp"
)

func certWith(t *testing.T, subject pkix.Name) *x509.Certificate {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: subject, NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAuthorizedEntries: an entry the checker accepts matches the
// certificate it names (by tcp.Allowed, as the relay applies it); one it
// refuses matches not even the certificate its author meant.
func TestAuthorizedEntries(t *testing.T) {
	one := certWith(t, pkix.Name{CommonName: "instance-1"})
	withOrg := certWith(t, pkix.Name{CommonName: "instance-1", Organization: []string{"Example"}})
	twoOU := certWith(t, pkix.Name{CommonName: "instance-1", OrganizationalUnit: []string{"a", "b"}})
	for _, tc := range []struct {
		entry string
		cert  *x509.Certificate
		ok    bool
	}{
		{"CN=instance-1", one, true},
		{"cn = instance-1", one, true},
		{"CN = instance-1", withOrg, true},
		{"CN=instance-1,O=Example", withOrg, true},
		{" cn=instance-1 , o=Example ", withOrg, true},
		{"CN=*", one, false},
		{"CN=instance-*", one, false},
		{"CN=*,O=Example", withOrg, false},
		{"O=Example,CN=instance-1", withOrg, false},
		{"CN=instance-1,OU=a,OU=b", twoOU, false},
		{"CN=other,CN=instance-1", one, false},
		{"EMAIL=instance-1@example.com,CN=instance-1", one, false},
		{"COMMONNAME=instance-1,O=Example", withOrg, false},
	} {
		t.Run(tc.entry, func(t *testing.T) {
			n, err := normalizeAuthorized(tc.entry)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !tcp.Allowed(tc.cert, []string{n}) {
					t.Fatalf("accepted as %q, which does not match %q", n, tc.cert.Subject)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "can never match") {
				t.Fatalf("got %q, %v; want ErrInvalid saying it can never match", n, err)
			}
			if tcp.Allowed(tc.cert, []string{tc.entry}) || tcp.Allowed(tc.cert, []string{strings.ReplaceAll(tc.entry, " ", "")}) {
				t.Fatalf("%q does match %q: it must be accepted", tc.entry, tc.cert.Subject)
			}
		})
	}
}
