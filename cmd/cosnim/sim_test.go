package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cosnim/relays/sim/value"
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

// runRootJSON runs the root command with args; its output must be one JSON
// object, which it returns with the raw output.
func runRootJSON(t *testing.T, args ...string) (map[string]any, string) {
	t.Helper()
	out, err := runRoot(t, args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	return m, out
}

// wantSameTwice calls run twice and fails if the results differ as JSON.
func wantSameTwice(t *testing.T, what string, run func() map[string]any) {
	t.Helper()
	ja, _ := json.Marshal(run())
	jb, _ := json.Marshal(run())
	if !bytes.Equal(ja, jb) {
		t.Fatalf("two runs of %s differ:\n%s\n%s", what, ja, jb)
	}
}

func TestSimSeedJSONIsDeterministic(t *testing.T) {
	wantSameTwice(t, "seed 11", func() map[string]any {
		m, out := runRootJSON(t, "sim", "--seed", "11", "--json")
		for _, k := range []string{"seed", "converged", "violations", "events", "virtual_seconds", "trace_sha256"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("JSON lacks %q: %s", k, out)
			}
		}
		delete(m, "wall_seconds")
		delete(m, "events_per_wall_second")
		return m
	})
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

func TestSimCompareJSON(t *testing.T) {
	dir := t.TempDir()
	args := []string{"sim", "--compare", "--json", "--instances", "6", "--hubs", "2", "--duration", "11m", "--plots", dir}
	wantSameTwice(t, "sim --compare", func() map[string]any {
		m, out := runRootJSON(t, args...)
		for _, variant := range value.Variants {
			v := string(variant)
			blk, ok := m[v].(map[string]any)
			if !ok {
				t.Fatalf("JSON lacks %q: %s", v, out)
			}
			for _, k := range []string{"awareness_p50_seconds", "awareness_p99_seconds", "list_queries_per_instance_hour", "catch_up_seconds", "missed_capsules"} {
				if _, ok := blk[k]; !ok {
					t.Fatalf("%s lacks %q: %s", v, k, out)
				}
			}
			if blk["missed_capsules"] != 0.0 {
				t.Errorf("%s: missed_capsules %v, want 0", v, blk["missed_capsules"])
			}
			delete(blk, "wall_seconds")
		}
		delete(m, "wall_seconds")
		return m
	})
	out, err := runRoot(t, "sim", "--compare", "--instances", "6", "--hubs", "2", "--duration", "11m")
	if err != nil || !strings.Contains(out, "awareness p99") {
		t.Fatalf("table run: %v\n%s", err, out)
	}
}

// TestSimSVGWindow draws a zoomed timeline through the built binary, and
// refuses a window without a picture or an empty one.
func TestSimSVGWindow(t *testing.T) {
	pic := t.TempDir() + "/run.svg"
	code, out, stderr := kitRun(t, "sim", "--seed", "5", "--svg", pic, "--from", "1s", "--to", "2500ms")
	if code != 0 || !strings.Contains(out, "trace sha256") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	b, err := os.ReadFile(pic)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "<svg ") || !strings.Contains(string(b), "timeline 1s – 2.5s") {
		t.Errorf("picture starts %.300q, want an svg titled with its window", b)
	}
	for _, args := range [][]string{
		{"sim", "--seed", "5", "--from", "1s"},
		{"sim", "--seed", "5", "--svg", pic, "--from", "3s", "--to", "2s"},
	} {
		code, _, stderr := kitRun(t, args...)
		if first, _, _ := strings.Cut(stderr, "\n"); code == 0 || !strings.Contains(first, "--from") {
			t.Errorf("%q: exit %d, first line %q; want a failure naming --from", args, code, first)
		}
	}
}
