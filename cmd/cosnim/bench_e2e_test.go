package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/wire"
)

// startLocalRelay runs `cosnim start relay local` with the default
// limits, on a free port, and returns its configuration file and process.
func startLocalRelay(t *testing.T) (cfg string, p *relayProc) {
	t.Helper()
	port := testutil.FreePort(t)
	cfg = kitWrite(t, t.TempDir(), "cosnim.yaml", strings.ReplaceAll(plainRelayYAML(port, 0, ""), "  r:\n", "  local:\n"))
	p = startKitRelay(t, "local", "--config", cfg)
	p.waitLog(t, `msg="relay listening"`)
	return cfg, p
}

// benchExample is the help's example against the relay "local", as
// arguments after "cosnim".
func benchExample(t *testing.T) []string {
	t.Helper()
	for _, line := range strings.Split(newBenchCmd().Example, "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[3] == "local" {
			return f[1:]
		}
	}
	t.Fatal("no example against local in relay bench --help")
	return nil
}

// TestBenchKeepsWithinRelayLimits: against `start relay local` with the
// default limits, a fanout that publishes well past one second of the
// relay's byte rate completes (the publisher keeps within the advertised
// rate) and exits 0; the help's example, shortened, does too.
func TestBenchKeepsWithinRelayLimits(t *testing.T) {
	cfg, p := startLocalRelay(t)
	msgs := 2 * wire.DefaultByteRate / 128 // two seconds of the byte rate
	code, stdout, stderr := kitRun(t, "relay", "bench", "local", "--config", cfg, "--pub", "1", "--sub", "4", "--msgs", fmt.Sprint(msgs))
	want := fmt.Sprintf("  delivered  %d entries in ", 4*msgs)
	if code != 0 || !strings.HasPrefix(stdout, "scenario fanout, server external") || !strings.Contains(stdout, want) || strings.Contains(stdout, "errors") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%.2000s\nwant exit 0, every entry delivered, no errors", code, stdout, stderr)
	}

	args := benchExample(t)
	for i, a := range args {
		switch a {
		case "$(pgrep": // $(pgrep -n cosnim)
			args[i], args[i+1], args[i+2] = fmt.Sprint(p.cmd.Process.Pid), "", ""
		case "--msgs":
			args[i+1] = "2000" // short: --sub 100 of them
		}
	}
	args = append(strings.Fields(strings.Join(args, " ")), "--config", cfg)
	code, stdout, stderr = kitRun(t, args...)
	if code != 0 || !strings.HasPrefix(stdout, "scenario fanout, server external") || !strings.Contains(stdout, "relay: CPU") {
		t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%.2000s\nwant exit 0 and the relay's usage", args, code, stdout, stderr)
	}
}

// TestBenchReportsAnIncompleteRun: a run that does not deliver what it
// was asked (here --ignore-limits past the relay's byte rate) says so on
// its first line, names the limit to raise, and exits 4, at once.
func TestBenchReportsAnIncompleteRun(t *testing.T) {
	cfg, _ := startLocalRelay(t)
	msgs := 4 * wire.DefaultByteRate / 128
	code, stdout, stderr := kitRun(t, "relay", "bench", "local", "--config", cfg, "--sub", "2", "--msgs", fmt.Sprint(msgs), "--ignore-limits")
	first, _, _ := strings.Cut(stdout, "\n")
	if code != exitIncomplete || !strings.HasPrefix(first, "INCOMPLETE: delivered ") || !strings.Contains(first, "rate limited") ||
		!strings.Contains(first, "raise the relay's byte_rate (now 8MiB) or frame_rate (now 10000)") {
		t.Fatalf("exit %d, first line %q\nstderr:\n%.2000s\nwant exit %d and INCOMPLETE naming byte_rate", code, first, stderr, exitIncomplete)
	}
	if !strings.Contains(stderr, "cosnim: bench run incomplete: delivered ") {
		t.Fatalf("stderr lacks the error:\n%.2000s", stderr)
	}
}
