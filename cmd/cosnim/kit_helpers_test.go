package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testutil"
)

// The tests of this file's kin run the real binary, built once for the
// package by kitBinary and removed by TestMain.

// kitTimeout bounds every wait of these tests.
const kitTimeout = 60 * time.Second

func TestMain(m *testing.M) { testutil.Main(m) }

// kitBinary builds cmd/cosnim once per test binary and returns its path.
func kitBinary(t *testing.T) string { return testutil.Build(t, ".") }

// kitWrite writes text to dir/name and returns the path.
func kitWrite(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	testutil.WriteFile(t, p, text)
	return p
}

// kitEnv is the environment of every run: no configuration from the
// caller's environment, a continuum secret.
func kitEnv(extra ...string) []string {
	return append(append(os.Environ(), kitEnvVars...), extra...)
}

// kitSecret is the continuum secret of these tests: a strong one, so that
// the binary does not warn (see TestWeakSecretWarned).
const kitSecret = "kit-Hq3Vx9Lr2Tn7Kw5Pz8Bm4Jc6Ds1Fy0G"

// kitEnvVars are what kitEnv adds to the caller's environment.
var kitEnvVars = []string{"COSNIM_CONFIG=", "COSNIM_CONTINUUM_KEY=" + kitSecret}

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

// startKitRelay runs `cosnim start relay ARGS` from the package's binary
// with kitEnv, killed at cleanup.
func startKitRelay(t *testing.T, args ...string) *relayProc {
	t.Helper()
	return startRelayProc(t, kitBinary(t), "", kitEnvVars, append([]string{"start", "relay"}, args...)...)
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

// startOpsRelay runs a plaintext relay "r" with its operations listener
// and waits until it listens; it returns both ports and the config file.
func startOpsRelay(t *testing.T) (port, metricsPort int, cfg string) {
	t.Helper()
	port, metricsPort = testutil.FreePort(t), testutil.FreePort(t)
	cfg = kitWrite(t, t.TempDir(), "cosnim.yaml", plainRelayYAML(port, metricsPort, ""))
	startKitRelay(t, "r", "--config", cfg).waitLog(t, `msg="relay listening"`)
	return port, metricsPort, cfg
}
