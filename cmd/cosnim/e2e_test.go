package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/wire"
)

// e2eTimeout bounds every wait of the end-to-end tests; generous, since
// nothing here asserts timing.
const e2eTimeout = 30 * time.Second

// buildCosnim returns the real binary, built once for the package.
func buildCosnim(t *testing.T) string { return kitBinary(t) }

// freePort returns, as text, a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	return strconv.Itoa(testutil.FreePort(t))
}

// relayProc is a `cosnim start relay` subprocess.
type relayProc struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	done   chan error
}

func startRelayProc(t *testing.T, bin, dir string, env []string, args ...string) *relayProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	p := &relayProc{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitLog waits until the relay logged msg; it fails if the process exits.
func (p *relayProc) waitLog(t *testing.T, msg string) {
	t.Helper()
	deadline := time.After(e2eTimeout)
	for !strings.Contains(p.stderr.String(), msg) {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("relay exited (%v) before logging %q:\n%s", err, msg, p.stderr.String())
		case <-deadline:
			t.Fatalf("relay did not log %q:\n%s", msg, p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and returns the exit code.
func (p *relayProc) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		return exitCode(t, err)
	case <-time.After(e2eTimeout):
		t.Fatalf("relay did not exit after SIGTERM:\n%s", p.stderr.String())
	}
	return -1
}

// exitCode is the code a process that ended with err exited with.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// runBin runs the binary to completion.
func runBin(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

func TestEndToEnd(t *testing.T) {
	bin := buildCosnim(t)
	dir := t.TempDir()
	port, metricsPort, closedPort := freePort(t), freePort(t), freePort(t)
	tmpl, err := os.ReadFile("../../testdata/e2e/plain.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgText := strings.NewReplacer("METRICS_PORT", metricsPort, "CLOSED_PORT", closedPort, "PORT", port).Replace(string(tmpl))
	cfg := filepath.Join(dir, "cosnim.yaml")
	if err := os.WriteFile(cfg, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"COSNIM_CONTINUUM_KEY=end-to-end secret", "COSNIM_CONFIG="}

	p := startRelayProc(t, bin, dir, env, "start", "relay", "local", "--config", cfg, "--log-format", "json")
	p.waitLog(t, `"msg":"relay listening"`)

	// ping: the epoch it reports is the one the relay logged.
	code, out, errs := runBin(t, bin, env, "relay", "ping", "local", "--config", cfg, "--json")
	if code != 0 {
		t.Fatalf("ping: code %d, stderr %s", code, errs)
	}
	var pr pingResult
	if err := json.Unmarshal([]byte(out), &pr); err != nil {
		t.Fatalf("ping --json: %v: %s", err, out)
	}
	if !strings.Contains(p.stderr.String(), `"epoch":"`+pr.Epoch+`"`) || pr.Limits["max-frame-size"] != wire.DefaultMaxFrameSize {
		t.Errorf("ping reported epoch %s, limits %v; relay log:\n%s", pr.Epoch, pr.Limits, p.stderr.String())
	}

	// ping of a relay that is not there fails clearly.
	code, _, errs = runBin(t, bin, env, "relay", "ping", "nobody", "--config", cfg, "--timeout", "5s")
	if code == 0 || !strings.Contains(errs, "cosnim: relay nobody at 127.0.0.1:"+closedPort) {
		t.Errorf("ping of a closed port: code %d, stderr %q; want non-zero and the relay named", code, errs)
	}

	// announce, then watch sees the entries (from the relay's cache).
	code, out, errs = runBin(t, bin, env, "relay", "announce", "local", "--config", cfg, "--hub", "hub-a", "--json", "capsule-1", "capsule-2")
	if code != 0 || !strings.Contains(out, `"acked": 2`) {
		t.Fatalf("announce: code %d, stdout %s, stderr %s", code, out, errs)
	}
	code, out, errs = runBin(t, bin, env, "relay", "watch", "local", "--config", cfg, "--hub", "hub-a", "--count", "2")
	if code != 0 {
		t.Fatalf("watch: code %d, stderr %s", code, errs)
	}
	got := map[string]bool{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var wl watchLine
		if err := json.Unmarshal([]byte(line), &wl); err != nil || wl.Hub != "hub-a" || wl.Time == "" {
			t.Fatalf("watch line %q: %v", line, err)
		}
		got[wl.Ref] = true
	}
	if !got["capsule-1"] || !got["capsule-2"] {
		t.Errorf("watch printed %q, want capsule-1 and capsule-2", out)
	}

	// The operations listener reports what happened.
	resp, err := http.Get("http://127.0.0.1:" + metricsPort + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var mb bytes.Buffer
	mb.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(mb.String(), "cosnim_relay_entries_stored_total 2\n") {
		t.Errorf("/metrics lacks 2 stored entries:\n%s", mb.String())
	}

	// SIGTERM: a connected client gets a Drain, the relay exits 0.
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	wc, err := dialWire(ctx, "127.0.0.1:"+port, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if _, err := handshake(wc); err != nil {
		t.Fatal(err)
	}
	exited := make(chan int, 1)
	go func() { exited <- p.stop(t) }()
	var drain *wire.Drain
	for drain == nil {
		f, err := wc.NextFrame()
		if err != nil {
			t.Fatalf("waiting for Drain: %v", err)
		}
		drain, _ = f.(*wire.Drain)
	}
	if drain.AfterMillis == 0 || drain.JitterMillis == 0 {
		t.Errorf("Drain %+v: want a reconnect delay with jitter", drain)
	}
	wc.Close() // leave, as a client honouring Drain does
	if code := <-exited; code != 0 {
		t.Fatalf("relay exit code %d after SIGTERM, want 0:\n%s", code, p.stderr.String())
	}
	for _, msg := range []string{`"msg":"relay draining"`, `"msg":"relay stopped"`} {
		if !strings.Contains(p.stderr.String(), msg) {
			t.Errorf("relay log lacks %s", msg)
		}
	}
}

// TestQuickStart runs the README's first command on the embedded default
// configuration, from an empty directory.
func TestQuickStart(t *testing.T) {
	bin := buildCosnim(t)
	ln, err := net.Listen("tcp", "127.0.0.1:7420")
	if err != nil {
		t.Skipf("port 7420 is busy: %v", err)
	}
	ln.Close()
	p := startRelayProc(t, bin, t.TempDir(), []string{"COSNIM_CONFIG="}, "start", "relay", "local")
	p.waitLog(t, "msg=\"relay listening\"")
	if !strings.Contains(p.stderr.String(), "addr=127.0.0.1:7420") {
		t.Errorf("relay log: %s", p.stderr.String())
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, p.stderr.String())
	}
}
