package main

import (
	"strings"
	"testing"
)

// TestConfigSyntaxErrorLine: a key misindented on line 5 is reported at
// line 5, once, not at the line where its block began (yaml.v3 says line 2).
func TestConfigSyntaxErrorLine(t *testing.T) {
	cfg := kitWrite(t, t.TempDir(), "x.yaml", `relays:
  local:
    client:
      url: tcp://127.0.0.1:7420
     server:
      url: tcp://127.0.0.1:7420
`)
	code, _, stderr := kitRun(t, "config", "check", "--config", cfg)
	want := "cosnim: " + cfg + ":5: did not find expected key\n"
	if code == 0 || stderr != want {
		t.Fatalf("config check: code %d, stderr %q; want non-zero and %q", code, stderr, want)
	}
	if strings.Contains(stderr, "line ") {
		t.Errorf("stderr %q names a line twice", stderr)
	}
}
