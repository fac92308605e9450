package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	isecret "github.com/cosnim/relays/internal/secret"
)

// runWithSecret runs the binary with $COSNIM_CONTINUUM_KEY set to secret.
func runWithSecret(t *testing.T, secret string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(kitBinary(t), args...)
	cmd.Env = append(kitEnv(), "COSNIM_CONTINUUM_KEY="+secret)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String(), errb.String()
		}
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// TestWeakSecretWarned: announce and watch warn about a weak continuum
// secret (the first line of stderr) and still work; with --strict they
// refuse it, exit 1, before connecting. `secret new` makes one that
// passes, and README's examples use it.
func TestWeakSecretWarned(t *testing.T) {
	_, _, cfg := startOpsRelay(t)
	const warning = "cosnim: warning: the continuum secret is weak: about "
	for _, weak := range []string{"a", "password", "my continuum secret"} {
		code, _, stderr := runWithSecret(t, weak, "relay", "announce", "r", "--config", cfg, "--hub", "h", "ref")
		if code != 0 || !strings.HasPrefix(stderr, warning) || !strings.Contains(stderr, "cosnim secret new") {
			t.Errorf("announce with %q: exit %d, stderr %q; want exit 0 and first a warning", weak, code, stderr)
		}
		for _, args := range [][]string{{"relay", "announce", "r", "--hub", "h", "ref"}, {"relay", "watch", "r", "--hub", "h", "--count", "1"}} {
			code, _, stderr = runWithSecret(t, weak, append(args, "--config", cfg, "--strict")...)
			if code != exitFailure || !strings.HasPrefix(stderr, "cosnim: the continuum secret is weak") || !strings.Contains(stderr, "--strict refuses it") {
				t.Errorf("%v --strict with %q: exit %d, stderr %q; want exit 1 and the refusal", args, weak, code, stderr)
			}
		}
	}

	code, stdout, stderr := kitRun(t, "secret", "new")
	key := strings.TrimSuffix(stdout, "\n")
	if b, err := base64.RawURLEncoding.DecodeString(key); code != 0 || err != nil || len(b)*8 != isecret.NewBits || stderr != "" {
		t.Fatalf("secret new: exit %d, stdout %q (%v), stderr %q; want %d bits of base64url", code, stdout, err, stderr, isecret.NewBits)
	}
	if code2, stdout2, _ := kitRun(t, "secret", "new"); code2 != 0 || stdout2 == stdout {
		t.Fatalf("secret new twice printed %q both times", stdout)
	}
	keyFile := filepath.Join(t.TempDir(), "continuum.key")
	if err := os.WriteFile(keyFile, []byte(stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = kitRun(t, "relay", "announce", "r", "--config", cfg, "--hub", "h", "--strict", "--continuum-key-file", keyFile, "ref")
	if code != 0 || strings.Contains(stderr, "weak") {
		t.Fatalf("announce --strict with a new secret: exit %d, stderr %q", code, stderr)
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`export COSNIM_CONTINUUM_KEY="$(go run ./cmd/cosnim secret new)"`, fmt.Sprintf("under %d bits", isecret.MinBits)} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README lacks %q", want)
		}
	}
}
