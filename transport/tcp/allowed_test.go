package tcp

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"strings"
	"testing"

	"github.com/cosnim/relays/internal/testpki"
)

// Each case fails if the rule it names is removed from Allowed.
func TestAllowed(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir, "ca")
	_, _, plain := ca.Issue(t, dir, "c", testpki.Leaf{CN: "instance-1"})
	withOrg := testpki.SelfSigned(t, pkix.Name{CommonName: "instance-1", Organization: []string{"Example"}})
	noSubject := testpki.SelfSigned(t, pkix.Name{})
	_, _, twoCN := ca.Issue(t, dir, "two-cn", testpki.Leaf{CN: "instance-1", ExtraCNs: []string{"attacker"}})
	fp := Fingerprint(plain)
	colons := "SHA256:" + strings.ToUpper(strings.Join(splitPairs(strings.TrimPrefix(fp, "sha256:")), ":"))
	if got := withOrg.Subject.String(); got != "CN=instance-1,O=Example" {
		t.Fatalf("subject %q, want CN=instance-1,O=Example", got)
	}
	tests := []struct {
		name    string
		cert    *x509.Certificate
		allowed []string
		want    bool
	}{
		// CN=NAME is the common name alone, whatever else the subject holds.
		{"CN= common name", withOrg, []string{"CN=instance-1"}, true},
		{"cn= in lower case", withOrg, []string{"cn=instance-1"}, true},
		{"CN= other name", withOrg, []string{"CN=instance-2"}, false},
		// Without CN=, an entry is a whole subject.
		{"bare name is not a common name", withOrg, []string{"instance-1"}, false},
		{"bare name, subject of CN only", plain, []string{"instance-1"}, false},
		{"full subject", withOrg, []string{"CN=instance-1,O=Example"}, true},
		{"full subject, CN only", plain, []string{plain.Subject.String()}, true},
		{"partial subject", withOrg, []string{"CN=instance-1,O=elsewhere"}, false},
		{"subject without CN part", withOrg, []string{"O=Example"}, false},
		// Fingerprints.
		{"fingerprint", plain, []string{fp}, true},
		{"fingerprint with colons and capitals", plain, []string{colons}, true},
		{"other fingerprint", plain, []string{"sha256:00"}, false},
		{"fingerprint of another certificate", withOrg, []string{fp}, false},
		// Empty entries match nothing, even a certificate with an empty
		// subject and common name.
		{"empty entry", noSubject, []string{""}, false},
		{"blank entry", noSubject, []string{" \t "}, false},
		{"CN= without a name", noSubject, []string{"CN="}, false},
		{"CN= with a blank name", noSubject, []string{"CN=  "}, false},
		{"empty entry before a match", withOrg, []string{"", "CN=instance-1"}, true},
		{"empty list", plain, nil, false},
		// crypto/x509 keeps the last of several common names.
		{"several CNs, the last asked for", twoCN, []string{"CN=instance-1"}, false},
		{"several CNs, the subject x509 prints", twoCN, []string{twoCN.Subject.String()}, false},
		{"several CNs, by fingerprint", twoCN, []string{Fingerprint(twoCN)}, true},
	}
	for _, tt := range tests {
		if got := Allowed(tt.cert, tt.allowed); got != tt.want {
			t.Errorf("%s: Allowed(%s, %q) = %v, want %v", tt.name, tt.cert.Subject, tt.allowed, got, tt.want)
		}
	}
}

func splitPairs(s string) []string {
	var out []string
	for i := 0; i+2 <= len(s); i += 2 {
		out = append(out, s[i:i+2])
	}
	return out
}

// A relay's handshakes use X25519 unless configured otherwise: a client
// offering the hybrid post-quantum exchange first still gets X25519.
func TestServerPrefersClassicalKeyExchange(t *testing.T) {
	p := testpki.NewPKI(t)
	srv, _, err := ServerTLSConfig(p.ServerCert, p.ServerKey, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	cli := clientConfig(t, p, "", "")
	cli.ServerName = "localhost"
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() { done <- tls.Server(a, srv).Handshake() }()
	c := tls.Client(b, cli)
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := c.ConnectionState().CurveID; got != tls.X25519 {
		t.Fatalf("key exchange %v, want X25519", got)
	}
}
