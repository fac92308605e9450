package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestSimSeedJSONIsDeterministic(t *testing.T) {
	decode := func() map[string]any {
		out, err := runRoot(t, "sim", "--seed", "11", "--json")
		if err != nil {
			t.Fatalf("sim --seed 11: %v\n%s", err, out)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("output is not one JSON object: %v\n%s", err, out)
		}
		for _, k := range []string{"seed", "converged", "violations", "events", "virtual_seconds", "trace_sha256"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("JSON lacks %q: %s", k, out)
			}
		}
		delete(m, "wall_seconds")
		delete(m, "events_per_wall_second")
		return m
	}
	a, b := decode(), decode()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Fatalf("two runs of seed 11 differ:\n%s\n%s", ja, jb)
	}
}

func TestSimSeedsReportsFailingSeedWithReplay(t *testing.T) {
	out, err := runRoot(t, "sim", "--seeds", "3", "--failpoint", "relay/empty-sync-reply")
	if !errors.Is(err, errViolations) {
		t.Fatalf("got error %v, want invariant violations", err)
	}
	if !strings.Contains(out, "replay: cosnim sim --seed ") || !strings.Contains(out, "--failpoint relay/empty-sync-reply") {
		t.Fatalf("output lacks a replay command:\n%s", out)
	}
	out, err = runRoot(t, "sim", "--seeds", "3")
	if err != nil {
		t.Fatalf("healthy seeds failed: %v\n%s", err, out)
	}
	if !strings.Contains(out, "convergence after heal") {
		t.Fatalf("summary lacks the convergence line:\n%s", out)
	}
}

func TestSimScenario(t *testing.T) {
	out, err := runRoot(t, "sim", "--scenario", "../../testdata/scenarios/partition.txt")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
