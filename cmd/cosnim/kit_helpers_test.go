package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests of this file's kin run the real binary, built once for the
// package by kitBinary and removed by TestMain.

// kitTimeout bounds every wait of these tests.
const kitTimeout = 60 * time.Second

var kitBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if kitBuild.dir != "" {
		os.RemoveAll(kitBuild.dir)
	}
	os.Exit(code)
}

// kitBinary builds cmd/cosnim once per test binary and returns its path.
func kitBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	kitBuild.once.Do(func() {
		kitBuild.dir, kitBuild.err = os.MkdirTemp("", "cosnim-bin-")
		if kitBuild.err != nil {
			return
		}
		kitBuild.bin = filepath.Join(kitBuild.dir, "cosnim")
		kitBuild.out, kitBuild.err = exec.Command("go", "build", "-o", kitBuild.bin, ".").CombinedOutput()
	})
	if kitBuild.err != nil {
		t.Fatalf("go build: %v\n%s", kitBuild.err, kitBuild.out)
	}
	return kitBuild.bin
}

// kitPort returns a loopback port that was free a moment ago.
func kitPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// kitWrite writes text to dir/name and returns the path.
func kitWrite(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// kitEnv is the environment of every run: no configuration from the
// caller's environment, a continuum secret.
func kitEnv(extra ...string) []string {
	return append(append(os.Environ(), "COSNIM_CONFIG=", "COSNIM_CONTINUUM_KEY=kit test secret"), extra...)
}

// kitRun runs the binary to completion within kitTimeout.
func kitRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kitBinary(t), args...)
	cmd.Env = kitEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%v: still running after %v\nstdout: %.2000s\nstderr: %.2000s", args, kitTimeout, out.String(), errb.String())
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// kitLog collects a subprocess's stderr for concurrent reading.
type kitLog struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *kitLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *kitLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// kitRelay is a `cosnim start relay` subprocess, killed at cleanup.
type kitRelay struct {
	log  *kitLog
	done chan error
}

func startKitRelay(t *testing.T, args ...string) *kitRelay {
	t.Helper()
	cmd := exec.Command(kitBinary(t), append([]string{"start", "relay"}, args...)...)
	cmd.Env = kitEnv()
	r := &kitRelay{log: &kitLog{}, done: make(chan error, 1)}
	cmd.Stderr = r.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-r.done
	})
	return r
}

// waitFor waits until the relay's log holds s; it fails if the relay exits.
func (r *kitRelay) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(kitTimeout)
	for !strings.Contains(r.log.String(), s) {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("relay exited (%v) before logging %q:\n%s", err, s, r.log.String())
		case <-deadline:
			t.Fatalf("relay did not log %q:\n%s", s, r.log.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// plainRelayYAML is a configuration with one plaintext relay "r" on port,
// its operations listener on metricsPort (0: off), and extra appended.
func plainRelayYAML(port, metricsPort int, extra string) string {
	metrics := ""
	if metricsPort != 0 {
		metrics = fmt.Sprintf("      metrics_url: http://127.0.0.1:%d\n", metricsPort)
	}
	return "relays:\n  r:\n    client:\n      url: tcp://127.0.0.1:" + strconv.Itoa(port) +
		"\n    server:\n      url: tcp://127.0.0.1:" + strconv.Itoa(port) + "\n" + metrics + extra
}
