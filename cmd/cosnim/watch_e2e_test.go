package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/relay/relayserver"
)

// kitStatus reads the relay's /status.
func kitStatus(t *testing.T, metricsPort int) (st relayserver.Status) {
	t.Helper()
	testutil.GetJSON(t, fmt.Sprintf("http://127.0.0.1:%d/status", metricsPort), &st)
	return st
}

// announceMany announces n references to hub through an in-process Agent
// and waits until the relay has stored them all.
func announceMany(t *testing.T, port, metricsPort int, hub string, n int) {
	t.Helper()
	a, err := agent.New(agent.Options{Addrs: []string{fmt.Sprintf("127.0.0.1:%d", port)}, Secret: []byte(kitSecret)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Join(hub); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), kitTimeout)
	defer cancel()
	if err := a.WaitCaughtUp(ctx, hub); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := a.Announce(hub, fmt.Appendf(nil, "capsule-%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for kitStatus(t, metricsPort).EntriesIn < uint64(n) {
		if ctx.Err() != nil {
			t.Fatalf("the relay stored %d of %d entries", kitStatus(t, metricsPort).EntriesIn, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWatchPrintsEveryEntry: the relay holds 20,000 entries, and watch's
// stdout is not read until it has caught up, so the Agent's feed (1024)
// overflows. watch --count 20000 still prints 20,000 distinct entries,
// says on stderr that it read the rest from the roster, and exits 0.
func TestWatchPrintsEveryEntry(t *testing.T) {
	const n = 20000
	port, metricsPort, cfg := startOpsRelay(t)
	announceMany(t, port, metricsPort, "hub-a", n)

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), kitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kitBinary(t), "relay", "watch", "r", "--config", cfg, "--hub", "hub-a", "--count", fmt.Sprint(n))
	cmd.Env = kitEnv()
	stderr := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = pw, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	// Hold stdout until the Agent has everything: the pipe fills, the
	// printer blocks, and the feed overflows.
	for !strings.Contains(stderr.String(), `msg="caught up"`) {
		if ctx.Err() != nil {
			t.Fatalf("watch did not catch up:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	seen := map[string]bool{}
	lines := 0
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var wl watchLine
		if err := json.Unmarshal(sc.Bytes(), &wl); err != nil || wl.Hub != "hub-a" {
			t.Fatalf("watch line %q: %v", sc.Text(), err)
		}
		seen[wl.Ref] = true
		lines++
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("watch: %v\n%s", err, stderr.String())
	}
	if lines != n || len(seen) != n {
		t.Errorf("watch printed %d lines, %d distinct; want %d", lines, len(seen), n)
	}
	if !strings.Contains(stderr.String(), "reading the rest from the roster") {
		t.Errorf("watch did not report the overflow on stderr:\n%s", stderr.String())
	}
}

// TestHubDefaults: announce and watch use the relay's configured hubs when
// no --hub is given; with none configured, --hub is required, clearly.
func TestHubDefaults(t *testing.T) {
	dir := t.TempDir()
	port := testutil.FreePort(t)
	two := kitWrite(t, dir, "two.yaml", plainRelayYAML(port, 0, "capsule_hubs:\n  hub-a:\n    relay: r\n  hub-b:\n    relay: r\n  hub-x: {}\n"))
	one := kitWrite(t, dir, "one.yaml", plainRelayYAML(port, 0, "continuum:\n  relay: r\ncapsule_hubs:\n  hub-a: {}\n"))
	none := kitWrite(t, dir, "none.yaml", plainRelayYAML(port, 0, ""))
	r := startKitRelay(t, "r", "--config", none)
	r.waitLog(t, `msg="relay listening"`)

	// One hub for the relay: announce needs no --hub.
	if code, out, errs := kitRun(t, "relay", "announce", "r", "--config", one, "--json", "in-a"); code != 0 || !strings.Contains(out, `"hub": "hub-a"`) {
		t.Fatalf("announce with one configured hub: code %d, stdout %s, stderr %s", code, out, errs)
	}
	// Two: announce wants --hub and names them; watch watches both.
	code, _, errs := kitRun(t, "relay", "announce", "r", "--config", two, "in-b")
	if code == 0 || !strings.Contains(errs, "--hub is required") || !strings.Contains(errs, "(hub-a, hub-b)") {
		t.Errorf("announce with two configured hubs: code %d, stderr %q; want --hub required, naming hub-a and hub-b", code, errs)
	}
	if code, _, errs := kitRun(t, "relay", "announce", "r", "--config", two, "--hub", "hub-b", "in-b"); code != 0 {
		t.Fatalf("announce --hub hub-b: code %d, stderr %s", code, errs)
	}
	code, out, errs := kitRun(t, "relay", "watch", "r", "--config", two, "--count", "2")
	if code != 0 {
		t.Fatalf("watch of the configured hubs: code %d, stderr %s", code, errs)
	}
	got := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var wl watchLine
		if err := json.Unmarshal([]byte(line), &wl); err != nil {
			t.Fatalf("watch line %q: %v", line, err)
		}
		got[wl.Ref] = wl.Hub
	}
	if got["in-a"] != "hub-a" || got["in-b"] != "hub-b" {
		t.Errorf("watch without --hub printed %q; want in-a on hub-a and in-b on hub-b", out)
	}
	// None: --hub is required, for both.
	for _, args := range [][]string{{"announce", "r", "x"}, {"watch", "r"}} {
		code, _, errs := kitRun(t, append(append([]string{"relay"}, args...), "--config", none)...)
		want := "--hub is required: " + filepath.Join(dir, "none.yaml") + " names no capsule hubs for relay r; pass --hub HUB"
		if code == 0 || !strings.Contains(errs, want) {
			t.Errorf("%v without configured hubs: code %d, stderr %q; want %q", args, code, errs, want)
		}
	}
}
