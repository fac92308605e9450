package tcp

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"

	"github.com/cosnim/relays/internal/testpki"
)

func TestAllowed(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir, "ca")
	_, _, cert := ca.Issue(t, dir, "c", testpki.Leaf{CN: "instance-1"})
	fp := Fingerprint(cert)
	colons := "SHA256:" + strings.ToUpper(strings.Join(splitPairs(strings.TrimPrefix(fp, "sha256:")), ":"))
	tests := []struct {
		name    string
		allowed []string
		want    bool
	}{
		{"bare common name", []string{"instance-1"}, true},
		{"CN= common name", []string{"CN=instance-1"}, true},
		{"full subject", []string{cert.Subject.String()}, true},
		{"fingerprint", []string{fp}, true},
		{"fingerprint with colons and capitals", []string{colons}, true},
		{"other name", []string{"CN=instance-2", "instance-2"}, false},
		{"partial subject", []string{"CN=instance-1,O=elsewhere"}, false},
		{"other fingerprint", []string{"sha256:00"}, false},
		{"empty list", nil, false},
	}
	for _, tt := range tests {
		if got := Allowed(cert, tt.allowed); got != tt.want {
			t.Errorf("%s: Allowed(%q) = %v, want %v", tt.name, tt.allowed, got, tt.want)
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
