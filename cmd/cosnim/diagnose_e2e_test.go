package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/wire"
)

// quick bounds how long naming a mistake may take (announce and watch
// stretch the secret first); the mistakes are seen in the first bytes the
// port sends back. The --timeout they used to wait out is 30 s.
const quick = 10 * time.Second

// quickPing bounds a ping's: no stretching, and an HTTP port answers its
// Hello at once (the relay's operations port would wait 5 s otherwise).
const quickPing = 3 * time.Second

// mistakesYAML is a TLS relay "r" that wants client certificates, with its
// operations port, and clients that reach it wrongly: "plain" dials its
// TLS port without TLS, "ops" dials its operations (HTTP) port, "nocert"
// dials TLS without a client certificate.
func mistakesYAML(p *testpki.PKI, port, opsPort, unused int) string {
	return fmt.Sprintf(`relays:
  r:
    server:
      url: tcps://127.0.0.1:%[1]d
      ssl_cert_file: %[3]s
      private_key_file: %[4]s
      client_ca_file: %[5]s
      metrics_url: http://127.0.0.1:%[2]d
    client:
      url: tcps://127.0.0.1:%[1]d
      ca_cert_file: %[5]s
      server_name: localhost
  plain:
    server:
      url: tcp://127.0.0.1:%[6]d
    client:
      url: tcp://127.0.0.1:%[1]d
  ops:
    server:
      url: tcp://127.0.0.1:%[6]d
    client:
      url: tcp://127.0.0.1:%[2]d
  nocert:
    server:
      url: tcp://127.0.0.1:%[6]d
    client:
      url: tcps://127.0.0.1:%[1]d
      ca_cert_file: %[5]s
      server_name: localhost
`, port, opsPort, p.ServerCert, p.ServerKey, p.CA.File, unused)
}

// timedRun runs the binary and reports how long it took.
func timedRun(t *testing.T, args ...string) (code int, stdout, stderr string, took time.Duration) {
	t.Helper()
	start := time.Now()
	code, stdout, stderr = kitRun(t, args...)
	return code, stdout, stderr, time.Since(start)
}

// lastLine is the last non-empty line of s (the error, after any logs).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestMistakesNamedAtOnce: ping, announce, watch and bench pointed at a TLS port
// without TLS, at an HTTP port, or without the client certificate the
// relay wants, each say so in one line, quickly, and exit 3 (permanent),
// without retrying into --timeout.
func TestMistakesNamedAtOnce(t *testing.T) {
	p := testpki.NewPKI(t)
	port, opsPort := testutil.FreePort(t), testutil.FreePort(t)
	cfg := kitWrite(t, t.TempDir(), "cosnim.yaml", mistakesYAML(p, port, opsPort, testutil.FreePort(t)))
	startKitRelay(t, "r", "--config", cfg).waitLog(t, `msg="relay listening"`)

	cases := []struct{ relay, want string }{
		{"plain", "relay plain at 127.0.0.1:%d: this port expects TLS: the relay's client url must be tcps://"},
		{"ops", "relay ops at 127.0.0.1:%d: this is an HTTP server (a relay's operations port, its metrics_url?), not a relay's client port; it answered \"HTTP/1.1 400 Bad Request\""},
		{"nocert", "relay nocert at 127.0.0.1:%d: the relay refused this client's TLS certificate"},
	}
	ports := map[string]int{"plain": port, "ops": opsPort, "nocert": port}
	commands := [][]string{
		{"relay", "ping", "RELAY"},
		{"relay", "announce", "RELAY", "--hub", "h", "ref-1"}, // --timeout 30s
		{"relay", "watch", "RELAY", "--hub", "h"},             // no timeout at all
	}
	for _, c := range cases[:2] { // bench: --tls must match the url, so not nocert
		t.Run(c.relay+" bench", func(t *testing.T) {
			code, _, stderr, took := timedRun(t, "relay", "bench", c.relay, "--msgs", "10", "--config", cfg)
			want := "cosnim: " + fmt.Sprintf(c.want, ports[c.relay])
			if code != exitPermanent || !strings.HasPrefix(lastLine(stderr), want) || took > quick {
				t.Fatalf("bench: exit %d after %v, stderr:\n%s\nwant exit %d within %v, last line starting %q", code, took, stderr, exitPermanent, quick, want)
			}
		})
	}
	for _, c := range cases {
		for _, command := range commands {
			args := append([]string(nil), command...)
			args[2] = c.relay
			t.Run(c.relay+" "+args[1], func(t *testing.T) {
				code, stdout, stderr, took := timedRun(t, append(args, "--config", cfg)...)
				want := "cosnim: " + fmt.Sprintf(c.want, ports[c.relay])
				bound := quick
				if args[1] == "ping" {
					bound = quickPing
				}
				if code != exitPermanent || !strings.HasPrefix(lastLine(stderr), want) || took > bound {
					t.Fatalf("%v: exit %d after %v, stderr:\n%s\nwant exit %d within %v, last line starting %q", args, code, took, stderr, exitPermanent, bound, want)
				}
				if stdout != "" || strings.Contains(stderr, "relay connection lost") {
					t.Fatalf("%v: stdout %q, stderr:\n%s\nwant nothing on stdout and no connection said lost (none was made)", args, stdout, stderr)
				}
			})
		}
	}
}

// TestTransientFailureRetriesSayingWhyOnce: a relay that is not there (a
// refused dial: it may be restarting) is retried until --timeout, which
// exits 4, and the reason is logged once however many attempts failed.
func TestTransientFailureRetriesSayingWhyOnce(t *testing.T) {
	port := testutil.FreePort(t) // nothing listens
	cfg := kitWrite(t, t.TempDir(), "cosnim.yaml", plainRelayYAML(port, 0, ""))
	code, _, stderr, took := timedRun(t, "relay", "announce", "r", "--config", cfg, "--hub", "h", "--timeout", "3s", "ref-1")
	if code != exitIncomplete || took < 3*time.Second || !strings.Contains(lastLine(stderr), "could not reach the relay") {
		t.Fatalf("exit %d after %v, stderr:\n%s\nwant exit %d after the 3s timeout, saying it could not reach the relay", code, took, stderr, exitIncomplete)
	}
	if n := strings.Count(stderr, "could not connect to the relay"); n != 1 {
		t.Fatalf("the reason was logged %d times, want once:\n%s", n, stderr)
	}
}

// TestAnnounceBatches: 20,000 references from one `relay announce` are
// acknowledged in a few seconds (one round trip per reference took 28 s),
// and a watcher sees every one.
func TestAnnounceBatches(t *testing.T) {
	_, metricsPort, cfg := startOpsRelay(t)
	const n = 20000
	args := []string{"relay", "announce", "r", "--config", cfg, "--hub", "h", "--json"}
	for i := range n {
		args = append(args, fmt.Sprintf("capsule-%05d", i))
	}
	code, stdout, stderr, took := timedRun(t, args...)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf(`"acked": %d`, n)) || took > 10*time.Second {
		t.Fatalf("exit %d after %v\nstdout %s\nstderr %s\nwant %d acked within 10s", code, took, stdout, stderr, n)
	}
	if st := kitStatus(t, metricsPort); st.EntriesIn != n {
		t.Fatalf("the relay holds %d entries, want %d", st.EntriesIn, n)
	}
	code, stdout, stderr = kitRun(t, "relay", "watch", "r", "--config", cfg, "--hub", "h", "--count", fmt.Sprint(n))
	if code != 0 || strings.Count(stdout, "\n") != n {
		t.Fatalf("watch: exit %d, %d lines, stderr %s", code, strings.Count(stdout, "\n"), stderr)
	}
}

// The CLI's Hello holds a '\n' (see cliAgent): an HTTP server answers it
// at once.
func TestCLIHelloEndsALine(t *testing.T) {
	hello := wire.Append(nil, wirepeer.HelloFrame(cliAgent))
	if !bytes.Contains(hello, []byte("\n")) {
		t.Fatalf("Hello %q holds no newline: an HTTP port would answer only after its header timeout", hello)
	}
}

// TestTyposSuggested: mistyped subcommands and flags below the root get a
// suggestion and exit 2; so does a watch that names no hub where none is
// configured.
func TestTyposSuggested(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"relay", "pign", "local"}, `cosnim: unknown command "pign" for "cosnim relay"; did you mean ping?`},
		{[]string{"relay", "watch", "local", "--hbu", "h"}, "cosnim: unknown flag: --hbu; did you mean --hub?"},
		{[]string{"config", "chek"}, `cosnim: unknown command "chek" for "cosnim config"; did you mean check?`},
		{[]string{"strat", "relay", "local"}, `cosnim: unknown command "strat" for "cosnim"; did you mean start?`},
		{[]string{"relay", "ping", "local", "--timeout", "soon"}, `cosnim: invalid argument "soon" for "--timeout" flag`},
		{[]string{"relay", "ping"}, "cosnim: cosnim relay ping: name one or more relays, or give --hub HUB for its relay or pool (see cosnim relay ping --help)"},
		// The built-in configuration names no capsule hubs: say to pass one.
		{[]string{"relay", "watch", "local"}, "cosnim: --hub is required: the built-in configuration names no capsule hubs for relay local; pass --hub HUB"},
	} {
		code, stdout, stderr := kitRun(t, tc.args...)
		if code != exitUsage || stdout != "" || !strings.HasPrefix(stderr, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, code, stdout, stderr, exitUsage, tc.want)
		}
	}
}

// TestExitCodesDocumented: README's table of exit codes has a row for each
// code of the root help, with the same word first.
func TestExitCodesDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, line := range strings.Split(exitCodesHelp, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || len(f[0]) != 1 || f[0][0] < '0' || f[0][0] > '9' {
			continue
		}
		rows++
		word := strings.TrimSuffix(f[1], ":")
		if want := fmt.Sprintf("| %s | %s", f[0], word); !strings.Contains(string(readme), want) {
			t.Errorf("README lacks the row %q", want)
		}
	}
	if rows != exitIncomplete+1 {
		t.Fatalf("the root help lists %d exit codes, want %d", rows, exitIncomplete+1)
	}
	code, stdout, _ := kitRun(t, "--help")
	if code != 0 || !strings.Contains(stdout, exitCodesHelp) {
		t.Fatalf("cosnim --help (exit %d) lacks the exit codes:\n%s", code, stdout)
	}
}
