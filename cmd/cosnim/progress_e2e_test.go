package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSimProgressInLogs: with stderr in a pipe (a log), sim --seeds writes
// plain progress lines, no carriage returns, and --json stdout holds the
// JSON summary alone.
func TestSimProgressInLogs(t *testing.T) {
	code, stdout, stderr := kitRun(t, "sim", "--seeds", "20", "--json")
	if code != 0 {
		t.Fatalf("sim: code %d, stderr %s", code, stderr)
	}
	if strings.Contains(stderr, "\r") || !strings.Contains(stderr, "sim: 2/20 seeds\n") || !strings.Contains(stderr, "sim: 20/20 seeds\n") {
		t.Errorf("sim progress in a log: %q; want plain lines per tenth, no \\r", stderr)
	}
	var s summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil || s.Runs != 20 {
		t.Errorf("--json stdout is not the summary alone (%v): %q", err, stdout)
	}
}

// TestBenchProgressInLogs: relay bench's progress bar becomes plain lines
// in a log.
func TestBenchProgressInLogs(t *testing.T) {
	code, stdout, stderr := kitRun(t, "relay", "bench", "--in-process", "--scenario", "idle", "--idle", "20", "--json")
	if code != 0 {
		t.Fatalf("bench: code %d, stderr %s", code, stderr)
	}
	if strings.Contains(stderr, "\r") || !strings.Contains(stderr, "idle 100.0% 20/20\n") {
		t.Errorf("bench progress in a log: %q; want plain lines, no \\r", stderr)
	}
	if !json.Valid([]byte(stdout)) {
		t.Errorf("--json stdout is not JSON: %q", stdout)
	}
}
