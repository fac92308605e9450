package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cosnim/relays/cmd/cosnim/internal/config"
)

const testdata = "../../testdata/config"

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestConfigCheck(t *testing.T) {
	// A copy whose private key has mode 0600, as a checkout cannot give
	// it: config check would rightly warn about 0644.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "certs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"full.yaml", "certs/ca.pem", "certs/server.pem", "certs/server.key"} {
		b, err := os.ReadFile(filepath.Join(testdata, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, f), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := runCLI(t, "config", "check", "--config", filepath.Join(dir, "full.yaml"))
	if code != 0 || out != "ok: 2 relays (main, plain)\n" || errs != "" {
		t.Errorf("got code %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestConfigCheckError(t *testing.T) {
	code, out, errs := runCLI(t, "config", "check", "--config", filepath.Join(testdata, "unknown_key.yaml"))
	if code == 0 {
		t.Errorf("code = 0, want non-zero")
	}
	if out != "" {
		t.Errorf("stdout = %q, want empty", out)
	}
	if strings.Count(errs, "cosnim: ") != 1 || !strings.Contains(errs, "unknown_key.yaml:7: relays.main.server.ssl_cert_fle:") {
		t.Errorf("stderr = %q, want the error once with file:line: path", errs)
	}
}

func TestConfigCheckJSON(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		wantOK bool
		relays []string
	}{
		{"ok", "full.yaml", true, []string{"main", "plain"}},
		{"error", "undefined_relay.yaml", false, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(testdata, tt.file)
			code, out, errs := runCLI(t, "config", "check", "--json", "--config", path)
			var res struct {
				OK     bool     `json:"ok"`
				File   string   `json:"file"`
				Relays []string `json:"relays"`
				Error  string   `json:"error"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("stdout %q: %v", out, err)
			}
			if res.OK != tt.wantOK || res.File != path || strings.Join(res.Relays, ",") != strings.Join(tt.relays, ",") {
				t.Errorf("got %+v", res)
			}
			if (code == 0) != tt.wantOK || (res.Error == "") != tt.wantOK {
				t.Errorf("code %d, error %q; want ok=%v", code, res.Error, tt.wantOK)
			}
			if errs != "" {
				t.Errorf("stderr = %q, want nothing (the JSON carries the error)", errs)
			}
		})
	}
}

func TestStartRelay(t *testing.T) {
	var gotName string
	var gotRelay *config.Relay
	var gotCtx context.Context
	serve = func(ctx context.Context, name string, rc *config.Relay, log *slog.Logger) error {
		gotCtx, gotName, gotRelay = ctx, name, rc
		log.Debug("fake serve")
		return nil
	}
	t.Cleanup(func() { serve = serveRelay })

	code, _, errs := runCLI(t, "start", "relay", "plain", "--config", filepath.Join(testdata, "full.yaml"), "--log-format", "json", "--log-level", "debug")
	if code != 0 {
		t.Fatalf("code %d, stderr %q", code, errs)
	}
	if gotName != "plain" || gotRelay == nil || gotRelay.Server.Address != "127.0.0.1:7430" {
		t.Errorf("serve got %q, %+v", gotName, gotRelay)
	}
	if gotCtx.Err() == nil {
		t.Errorf("context still live after start returned; want it released")
	}
	if !strings.Contains(errs, `"msg":"fake serve"`) || !strings.Contains(errs, `"relay":"plain"`) {
		t.Errorf("stderr %q: want JSON debug logs tagged with the relay", errs)
	}
}

func TestStartRelayErrors(t *testing.T) {
	serve = func(context.Context, string, *config.Relay, *slog.Logger) error {
		t.Error("serve called")
		return nil
	}
	t.Cleanup(func() { serve = serveRelay })
	full := filepath.Join(testdata, "full.yaml")
	tests := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"undefined relay lists names", []string{"start", "relay", "nope", "--config", full}, "defined: main, plain", exitFailure},
		{"bad log format", []string{"start", "relay", "main", "--config", full, "--log-format", "xml"}, "--log-format", exitUsage},
		{"bad log level", []string{"start", "relay", "main", "--config", full, "--log-level", "loud"}, "--log-level", exitUsage},
		{"relay name required", []string{"start", "relay"}, "arg", exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.want) || strings.Count(errs, "cosnim: ") != 1 {
				t.Errorf("code %d, stderr %q; want %d and %q once", code, errs, tt.code, tt.want)
			}
		})
	}
}

func TestServeRelayRefusesEmptyConfig(t *testing.T) {
	if err := serveRelay(context.Background(), "x", &config.Relay{}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("serveRelay started a relay with no listen address")
	}
}

// TestCommandTree checks that newRootCmd builds every command, each with
// its help text, and the persistent flags.
func TestCommandTree(t *testing.T) {
	root := newRootCmd()
	for _, path := range [][]string{
		{"start", "relay"}, {"config", "check"}, {"sim"}, {"version"},
		{"relay", "ping"}, {"relay", "watch"}, {"relay", "announce"}, {"relay", "bench"},
	} {
		c, _, err := root.Find(path)
		if err != nil || c.Name() != path[len(path)-1] {
			t.Errorf("command %v not found (got %v, %v)", path, c, err)
			continue
		}
		if c.Short == "" {
			t.Errorf("command %v has no help text", path)
		}
	}
	for _, flag := range []string{"config", "log-format", "log-level"} {
		if root.PersistentFlags().Lookup(flag) == nil {
			t.Errorf("persistent flag --%s missing", flag)
		}
	}
}

func TestNotifyShutdown(t *testing.T) {
	exited := make(chan struct{})
	ctx, stop := notifyShutdown(context.Background(), func() { close(exited) }, func(os.Signal) {})
	defer stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("first SIGINT did not cancel the context")
	}
	select {
	case <-exited:
		t.Fatal("exit after one signal")
	case <-time.After(50 * time.Millisecond):
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("second signal did not exit")
	}
}
