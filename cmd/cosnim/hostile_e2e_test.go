package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testutil"
)

const hostileDir = "../../testdata/config/hostile/"

// TestHostileYAML: the attack shapes of testdata/config/hostile get their
// answer at once from config check, start relay and relay ping (the
// decoder's node counts are asserted in cmd/cosnim/internal/config).
func TestHostileYAML(t *testing.T) {
	bomb, fanout := hostileDir+"merge_bomb.yaml", hostileDir+"alias_fanout.yaml"
	// The merge bomb decodes as what it spells: ten relays, each without
	// a server url (the first problem is that of l0, on line 3).
	code, _, stderr := kitRun(t, "config", "check", "--config", bomb)
	if first := strings.SplitN(stderr, "\n", 2)[0]; code == 0 || first != "cosnim: "+bomb+":3: relays.l0.server.url: url is required (tcp://HOST:PORT or tcps://HOST:PORT)" {
		t.Errorf("config check of the merge bomb: code %d, stderr %q", code, stderr)
	}
	// The alias fanout stops at the alias that crosses the cap.
	want := "cosnim: " + fanout + ":133: the file expands to more than 131072 YAML nodes"
	for _, args := range [][]string{
		{"config", "check", "--config", fanout},
		{"start", "relay", "r0", "--config", fanout},
		{"relay", "ping", "r0", "--config", fanout},
	} {
		code, _, stderr := kitRun(t, args...)
		if code == 0 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, want) {
			t.Errorf("%v: code %d, stderr %q; want non-zero and one line %q…", args, code, stderr, want)
		}
	}
}

// TestUnusableFiles: /dev/zero as a certificate, or as the configuration,
// is refused before a byte is read.
func TestUnusableFiles(t *testing.T) {
	p := testpki.NewPKI(t)
	cfg := kitWrite(t, t.TempDir(), "zero.yaml", tlsRelayYAML(testutil.FreePort(t), p.CA.File, "/dev/zero", p.ServerKey))
	want := cfg + ":9: relays.r.server.ssl_cert_file: /dev/zero is a device: not a regular file"
	for _, args := range [][]string{{"config", "check", "--config", cfg}, {"start", "relay", "r", "--config", cfg}} {
		code, _, stderr := kitRun(t, args...)
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("%v: code %d, stderr %q; want non-zero and %q", args, code, stderr, want)
		}
	}
	code, _, stderr := kitRun(t, "config", "check", "--config", "/dev/zero")
	if code == 0 || !strings.Contains(stderr, "/dev/zero is a device: not a regular file") {
		t.Errorf("config check --config /dev/zero: code %d, stderr %q", code, stderr)
	}
}

// TestLooseKeyWarned: a private key that others can read is a warning in
// config check and in start relay's log.
func TestLooseKeyWarned(t *testing.T) {
	p := testpki.NewPKI(t)
	if err := os.Chmod(p.ServerKey, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := kitWrite(t, t.TempDir(), "c.yaml", tlsRelayYAML(testutil.FreePort(t), p.CA.File, p.ServerCert, p.ServerKey))
	want := cfg + ":10: relays.r.server.private_key_file: " + p.ServerKey + " has mode 0644: its group or other users can read it"
	code, stdout, stderr := kitRun(t, "config", "check", "--config", cfg)
	if code != 0 || stdout != "ok: 1 relays (r)\n" || !strings.Contains(stderr, "warning: "+want) {
		t.Errorf("config check: code %d, stdout %q, stderr %q; want ok and the warning %q", code, stdout, stderr, want)
	}
	r := startKitRelay(t, "r", "--config", cfg)
	r.waitLog(t, `msg="relay listening"`)
	if !strings.Contains(r.stderr.String(), `msg="private key open to other users"`) || !strings.Contains(r.stderr.String(), p.ServerKey+" has mode 0644") {
		t.Errorf("start relay did not warn about the key:\n%s", r.stderr.String())
	}
	if err := os.Chmod(p.ServerKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, stderr := kitRun(t, "config", "check", "--config", cfg); strings.Contains(stderr, "has mode") {
		t.Errorf("a key of mode 0600 warned about: %q", stderr)
	}
}

// TestNeverMatchingEntries: config check refuses authorized_clients
// entries that no certificate can match, at their line.
func TestNeverMatchingEntries(t *testing.T) {
	p := testpki.NewPKI(t)
	base := tlsRelayYAML(testutil.FreePort(t), p.CA.File, p.ServerCert, p.ServerKey) +
		"      client_ca_file: " + p.CA.File + "\n      authorized_clients:\n"
	for _, entry := range []string{"CN=*", "O=cosnim test,CN=instance-1", "CN=a,CN=b", "EMAIL=a@example.com"} {
		cfg := kitWrite(t, t.TempDir(), "c.yaml", base+fmt.Sprintf("        - %q\n", entry))
		code, _, stderr := kitRun(t, "config", "check", "--config", cfg)
		want := fmt.Sprintf("%s:13: relays.r.server.authorized_clients.0: %q can never match", cfg, entry)
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("%s: code %d, stderr %q; want non-zero and %q", entry, code, stderr, want)
		}
	}
}

// TestTLSRefusalReasons: a relay asking for client certificates logs and
// counts each refusal by its real reason, for real handshakes of relay
// ping: a certificate from another CA is unknown_authority (the client
// sends it), one before its NotBefore not_yet_valid, one with two common
// names several_cn. "CN = instance-1" in the list (spaces and all) admits
// instance-1.
func TestTLSRefusalReasons(t *testing.T) {
	p := testpki.NewPKI(t)
	dir := t.TempDir()
	port, metrics := testutil.FreePort(t), testutil.FreePort(t)
	server := tlsRelayYAML(port, p.CA.File, p.ServerCert, p.ServerKey) + fmt.Sprintf(
		"      client_ca_file: %s\n      metrics_url: http://127.0.0.1:%d\n      authorized_clients: [\"CN = instance-1\"]\n", p.CA.File, metrics)
	relay := startKitRelay(t, "r", "--config", kitWrite(t, dir, "server.yaml", server))
	relay.waitLog(t, `msg="relay listening"`)

	client := func(name string, ca *testpki.CA, leaf testpki.Leaf) string {
		cert, key, _ := ca.Issue(t, dir, name, leaf)
		return kitWrite(t, dir, name+".yaml", strings.Replace(tlsRelayYAML(port, p.CA.File, p.ServerCert, p.ServerKey),
			"      server_name: localhost\n", "      server_name: localhost\n      cert_file: "+cert+"\n      key_file: "+key+"\n", 1))
	}
	if code, _, stderr := kitRun(t, "relay", "ping", "r", "--config", client("good", p.CA, testpki.Leaf{CN: "instance-1"})); code != 0 {
		t.Fatalf("ping as instance-1: code %d, stderr %q", code, stderr)
	}
	for _, tc := range []struct {
		name   string
		ca     *testpki.CA
		leaf   testpki.Leaf
		reason string
	}{
		{"foreign", p.OtherCA, testpki.Leaf{CN: "instance-1"}, "unknown_authority"},
		{"soon", p.CA, testpki.Leaf{CN: "instance-1", NotBefore: time.Now().Add(time.Hour)}, "not_yet_valid"},
		{"expired", p.CA, testpki.Leaf{CN: "instance-1", Expired: true}, "expired"},
		{"two-cn", p.CA, testpki.Leaf{CN: "instance-1", ExtraCNs: []string{"attacker"}}, "several_cn"},
		{"stranger", p.CA, testpki.Leaf{CN: "stranger"}, "not_authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Count(relay.stderr.String(), "reason="+tc.reason+" ")
			if code, _, stderr := kitRun(t, "relay", "ping", "r", "--config", client(tc.name, tc.ca, tc.leaf)); code == 0 {
				t.Fatalf("ping admitted, stderr %q", stderr)
			}
			testutil.WaitFor(t, e2eTimeout, "the relay to log reason="+tc.reason, func() bool {
				return strings.Count(relay.stderr.String(), "reason="+tc.reason+" ") == before+1
			})
		})
	}
	if log := relay.stderr.String(); strings.Contains(log, "reason=no_certificate") {
		t.Errorf("relay log names a refusal no_certificate though every client sent one:\n%s", log)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, r := range []string{"unknown_authority", "not_yet_valid", "expired", "several_cn", "not_authorized"} {
		if want := `cosnim_relay_handshake_failures_total{reason="tls_` + r + `"} 1`; !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
