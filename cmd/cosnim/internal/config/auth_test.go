package config

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"

	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/transport/tcp"
)

// TestAuthorizedEntries: an entry the checker accepts matches the
// certificate it names (by tcp.Allowed, as the relay applies it); one it
// refuses matches not even the certificate its author meant.
func TestAuthorizedEntries(t *testing.T) {
	one := testpki.SelfSigned(t, pkix.Name{CommonName: "instance-1"})
	withOrg := testpki.SelfSigned(t, pkix.Name{CommonName: "instance-1", Organization: []string{"Example"}})
	twoOU := testpki.SelfSigned(t, pkix.Name{CommonName: "instance-1", OrganizationalUnit: []string{"a", "b"}})
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
