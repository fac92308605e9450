package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testutil"
)

const certDay = "2006-01-02 15:04 MST"

// tlsRelayYAML is one tcps:// relay "r" on port with the given files.
func tlsRelayYAML(port int, ca, cert, key string) string {
	return fmt.Sprintf(`relays:
  r:
    client:
      url: tcps://127.0.0.1:%d
      ca_cert_file: %s
      server_name: localhost
    server:
      url: tcps://127.0.0.1:%d
      ssl_cert_file: %s
      private_key_file: %s
`, port, ca, port, cert, key)
}

// TestConfigCheckCertificateDates: config check warns about a certificate
// that expires within 30 days and refuses an expired one, naming the file
// and the date; start relay refuses the expired one too.
func TestConfigCheckCertificateDates(t *testing.T) {
	p := testpki.NewPKI(t)
	dir := t.TempDir()
	soon := kitWrite(t, dir, "soon.yaml", tlsRelayYAML(testutil.FreePort(t), p.CA.File, p.ServerCert, p.ServerKey))
	code, stdout, stderr := kitRun(t, "config", "check", "--config", soon)
	want := fmt.Sprintf("%s in %s expires on %s", `"CN=relay,O=cosnim test"`, p.ServerCert, p.Server.NotAfter.UTC().Format(certDay))
	if code != 0 || stdout != "ok: 1 relays (r)\n" || !strings.Contains(stderr, "warning: "+soon) || !strings.Contains(stderr, want) {
		t.Errorf("config check of a certificate expiring tomorrow: code %d, stdout %q, stderr %q; want 0, ok and a warning with %q", code, stdout, stderr, want)
	}
	code, stdout, _ = kitRun(t, "config", "check", "--config", soon, "--json")
	var res checkResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 0 || !res.OK || len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, "\n"), want) {
		t.Errorf("config check --json: code %d, %q (%v); want ok with a warning %q", code, stdout, err, want)
	}

	cert, key, leaf := p.CA.Issue(t, p.Dir, "expired", testpki.Leaf{CN: "relay", Server: true, Expired: true})
	expired := kitWrite(t, dir, "expired.yaml", tlsRelayYAML(testutil.FreePort(t), p.CA.File, cert, key))
	want = fmt.Sprintf("relays.r.server.ssl_cert_file: certificate %q in %s expired on %s", "CN=relay,O=cosnim test", cert, leaf.NotAfter.UTC().Format(certDay))
	code, _, stderr = kitRun(t, "config", "check", "--config", expired)
	if code == 0 || !strings.Contains(stderr, want) {
		t.Errorf("config check of an expired certificate: code %d, stderr %q; want non-zero and %q", code, stderr, want)
	}
	code, _, stderr = kitRun(t, "start", "relay", "r", "--config", expired)
	if code == 0 || !strings.Contains(stderr, want) {
		t.Errorf("start relay with an expired certificate: code %d, stderr %q; want non-zero and %q", code, stderr, want)
	}

	// A client certificate (cert_file) is checked as well.
	ccert, ckey, _ := p.CA.Issue(t, p.Dir, "client-expired", testpki.Leaf{CN: "instance", Expired: true})
	text := strings.Replace(tlsRelayYAML(testutil.FreePort(t), p.CA.File, p.ServerCert, p.ServerKey), "      server_name: localhost\n",
		"      server_name: localhost\n      cert_file: "+ccert+"\n      key_file: "+ckey+"\n", 1)
	code, _, stderr = kitRun(t, "config", "check", "--config", kitWrite(t, dir, "client.yaml", text))
	if code == 0 || !strings.Contains(stderr, "relays.r.client.cert_file: certificate") || !strings.Contains(stderr, ccert+" expired on") {
		t.Errorf("config check of an expired client certificate: code %d, stderr %q", code, stderr)
	}
}

// TestClientSeesRelayCertificateDates: a relay whose certificate is
// renewed wrongly while it runs (to an expired one, to one not yet valid)
// keeps serving the old one and says why; one whose certificate expires
// while it runs is refused by clients, ping and announce say so plainly,
// without sending the user to ca_cert_file, and the relay logs the
// client's refusal and what is wrong with its own certificate.
func TestClientSeesRelayCertificateDates(t *testing.T) {
	p := testpki.NewPKI(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "relay.crt"), filepath.Join(dir, "relay.key")
	install := func(o testpki.Leaf) time.Time {
		c, k, leaf := p.CA.Issue(t, p.Dir, fmt.Sprintf("relay-%d", time.Now().UnixNano()), o)
		for src, dst := range map[string]string{c: cert, k: key} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst+".tmp", b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dst+".tmp", dst); err != nil {
				t.Fatal(err)
			}
		}
		return leaf.NotAfter
	}
	notAfter := install(testpki.Leaf{CN: "relay", Server: true})
	cfg := kitWrite(t, dir, "cosnim.yaml", tlsRelayYAML(testutil.FreePort(t), p.CA.File, cert, key))
	r := startKitRelay(t, "r", "--config", cfg)
	r.waitLog(t, `msg="relay listening"`)
	if !strings.Contains(r.stderr.String(), "certificate expires soon") || !strings.Contains(r.stderr.String(), notAfter.UTC().Format(certDay)) {
		t.Errorf("relay log lacks the warning about its certificate ending %s:\n%s", notAfter, r.stderr.String())
	}
	ping := func() (int, string) {
		code, _, stderr := kitRun(t, "relay", "ping", "r", "--config", cfg)
		return code, stderr
	}
	if code, stderr := ping(); code != 0 {
		t.Fatalf("ping of a valid relay: code %d, stderr %s", code, stderr)
	}

	for _, tc := range []struct {
		name string
		leaf testpki.Leaf
	}{
		{"expired", testpki.Leaf{CN: "relay", Server: true, Expired: true}},
		{"not yet valid", testpki.Leaf{CN: "relay", Server: true, NotBefore: time.Now().Add(48 * time.Hour), NotAfter: time.Now().Add(72 * time.Hour)}},
	} {
		t.Run("renewed "+tc.name, func(t *testing.T) {
			refusals := strings.Count(r.stderr.String(), "keeping the old one")
			install(tc.leaf)
			time.Sleep(1100 * time.Millisecond) // the relay looks at its files at most once a second
			if code, stderr := ping(); code != 0 {
				t.Errorf("ping after a wrong renewal: code %d, stderr %s; want the old certificate still served", code, stderr)
			}
			testutil.WaitFor(t, e2eTimeout, "the relay to log that it refused the new certificate", func() bool {
				return strings.Count(r.stderr.String(), "keeping the old one") > refusals
			})
		})
	}

	t.Run("expired while serving", func(t *testing.T) {
		end := install(testpki.Leaf{CN: "relay", Server: true, NotAfter: time.Now().Add(3 * time.Second)})
		time.Sleep(1100 * time.Millisecond)
		if code, stderr := ping(); code != 0 {
			t.Fatalf("ping before the new certificate ends: code %d, stderr %s", code, stderr)
		}
		r.waitLog(t, "reloaded TLS certificate expires soon")
		time.Sleep(time.Until(end) + 500*time.Millisecond)
		want := "the relay's certificate \"CN=relay,O=cosnim test\" expired on"
		code, stderr := ping()
		if code == 0 || !strings.Contains(stderr, want) || strings.Contains(stderr, "ca_cert_file") {
			t.Errorf("ping: code %d, stderr %q; want non-zero, %q and no mention of ca_cert_file", code, stderr, want)
		}
		if !strings.Contains(stderr, end.UTC().Format(certDay)) {
			t.Errorf("ping: stderr %q lacks the end date %s", stderr, end.UTC().Format(certDay))
		}
		// Through the Agent too: announce says why it could not reach the relay.
		code, _, stderr = kitRun(t, "relay", "announce", "r", "--config", cfg, "--hub", "h", "--timeout", "2s", "x")
		if code == 0 || !strings.Contains(stderr, want) || strings.Contains(stderr, "ca_cert_file") {
			t.Errorf("announce: code %d, stderr %q; want non-zero, %q and no mention of ca_cert_file", code, stderr, want)
		}
		r.waitLog(t, `relay_certificate="expired on`)
		for _, s := range []string{"reason=client_bad_certificate", `client_alert="tls: bad certificate"`} {
			if !strings.Contains(r.stderr.String(), s) {
				t.Errorf("relay log lacks %s:\n%s", s, r.stderr.String())
			}
		}
	})

	// A server whose certificate is not valid yet (a relay no longer
	// serves one; a skewed clock can still show one): ping says so.
	t.Run("not yet valid", func(t *testing.T) {
		c, k, _ := p.CA.Issue(t, p.Dir, "early", testpki.Leaf{CN: "relay", Server: true,
			NotBefore: time.Now().Add(48 * time.Hour), NotAfter: time.Now().Add(72 * time.Hour)})
		pair, err := tls.LoadX509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { nc.(*tls.Conn).Handshake(); nc.Close() }()
			}
		}()
		early := kitWrite(t, t.TempDir(), "cosnim.yaml", tlsRelayYAML(ln.Addr().(*net.TCPAddr).Port, p.CA.File, cert, key))
		_, _, stderr := kitRun(t, "relay", "ping", "r", "--config", early)
		want := "the relay's certificate \"CN=relay,O=cosnim test\" is not valid until"
		if !strings.Contains(stderr, want) || strings.Contains(stderr, "ca_cert_file") {
			t.Errorf("ping: stderr %q; want %q and no mention of ca_cert_file", stderr, want)
		}
	})
}
