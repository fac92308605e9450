package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/files"
)

// TestDocumentedTLSRelay follows docs/TLS.md: the documented openssl
// commands, its configuration, `cosnim start relay` with them, then
// `relay ping` with the authorized client certificate (accepted) and
// without one (refused, clearly, non-zero exit).
func TestDocumentedTLSRelay(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	bin := buildCosnim(t)
	dir := t.TempDir()
	if b, err := exec.Command("sh", certScript, dir).CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, b)
	}
	doc, err := os.ReadFile(tlsDoc)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	yaml := strings.ReplaceAll(docYAML(t, string(doc)), ":7420", ":"+port)
	cfg := filepath.Join(dir, "cosnim.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	// The same relay seen by a client without a certificate.
	noCert := strings.NewReplacer("      cert_file: client.crt\n", "", "      key_file: client.key\n", "").Replace(yaml)
	noCertCfg := filepath.Join(dir, "nocert.yaml")
	if err := os.WriteFile(noCertCfg, []byte(noCert), 0o644); err != nil {
		t.Fatal(err)
	}

	p := startRelayProc(t, bin, dir, []string{"COSNIM_CONFIG="}, "start", "relay", "main", "--config", cfg)
	p.waitLog(t, "msg=\"relay listening\"")

	code, out, errs := runBin(t, bin, nil, "relay", "ping", "main", "--config", cfg, "--json")
	if code != 0 {
		t.Fatalf("ping with the client certificate: code %d, stderr %s", code, errs)
	}
	var pr pingResult
	if err := json.Unmarshal([]byte(out), &pr); err != nil || !pr.TLS || pr.Epoch == "" {
		t.Fatalf("ping --json = %s (%v)", out, err)
	}

	code, _, errs = runBin(t, bin, nil, "relay", "ping", "main", "--config", noCertCfg)
	if code == 0 || !strings.Contains(errs, "refused this client's TLS certificate") {
		t.Errorf("ping without a certificate: code %d, stderr %q; want non-zero and the refusal explained", code, errs)
	}
	p.waitLog(t, "TLS handshake refused")
	if !strings.Contains(p.stderr.String(), "reason=no_certificate") {
		t.Errorf("relay log lacks the refusal reason:\n%s", p.stderr.String())
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

// TestContinuumSecret checks where watch and announce take the secret.
func TestContinuumSecret(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("Xk3v9QpL2wZ7rT5yB8nM4cF6hJ1dS0aGeU\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvContinuumKey, "from-env")
	cmd := newAnnounceCmd()
	if got, err := continuumSecret(cmd); err != nil || string(got) != "from-env" {
		t.Errorf("env: got %q, %v; want from-env", got, err)
	}
	cmd.Flags().Set("continuum-key-file", keyFile)
	if got, err := continuumSecret(cmd); err != nil || string(got) != "Xk3v9QpL2wZ7rT5yB8nM4cF6hJ1dS0aGeU" {
		t.Errorf("file: got %q, %v; want the file's secret (trailing newline trimmed)", got, err)
	}
	var stderr bytes.Buffer
	cmd.SetErr(&stderr)
	if _, err := continuumSecret(cmd); err != nil || stderr.Len() != 0 {
		t.Errorf("mode 0600: %v, stderr %q; want no warning", err, stderr.String())
	}
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := continuumSecret(cmd); err != nil || string(got) != "Xk3v9QpL2wZ7rT5yB8nM4cF6hJ1dS0aGeU" || !strings.Contains(stderr.String(), "warning: --continuum-key-file "+keyFile+" has mode 0644") {
		t.Errorf("mode 0644: got %q, %v, stderr %q; want the secret and a warning", got, err, stderr.String())
	}
	cmd.Flags().Set("continuum-key-file", "/dev/zero")
	if _, err := continuumSecret(cmd); !errors.Is(err, files.ErrNotRegular) {
		t.Errorf("/dev/zero: got %v, want files.ErrNotRegular", err)
	}
	t.Setenv(EnvContinuumKey, "")
	if _, err := continuumSecret(newWatchCmd()); err == nil {
		t.Error("no secret: got nil error")
	}
}

// TestAnnounceTimesOut checks that announce gives up, non-zero, when no
// relay answers.
func TestAnnounceTimesOut(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	yaml := "relays:\n  r:\n    server:\n      url: tcp://127.0.0.1:" + "1\n    client:\n      url: tcp://127.0.0.1:" + freePort(t) + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvContinuumKey, "k")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb strings.Builder
	code := run(ctx, []string{"relay", "announce", "r", "--config", cfg, "--hub", "h", "--timeout", "300ms", "--log-level", "error", "x"}, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "could not reach the relay") {
		t.Errorf("code %d, stderr %q; want non-zero and the reason", code, errb.String())
	}
}
