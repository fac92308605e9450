package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/internal/secret"
	"github.com/cosnim/relays/internal/testnats"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/roster"
)

// TestPoolCLI runs three relay binaries on one NATS server as a pool of
// homes: 1 and drives them through the CLI as a user would: `relay homes`
// names the hub's first relay by rendezvous order, `watch --hub` reads the
// hub from the last relay, the first is killed with SIGKILL, and
// `announce --hub` still gets every ID acknowledged (by the next relay)
// and the watcher sees them all over the backbone; `ping --hub` and
// `top --hub` then show each relay, the dead one as failed, exiting 1.
func TestPoolCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns 3 relays and a NATS server")
	}
	bin := buildCosnim(t)
	nats := testnats.Start(t, testnats.Options(t))
	names := []string{"p-1", "p-2", "p-3"}
	var cfg strings.Builder
	cfg.WriteString("relays:\n")
	for _, n := range names {
		port, ops := testutil.FreePort(t), testutil.FreePort(t)
		fmt.Fprintf(&cfg, "  %s:\n    client: {url: tcp://127.0.0.1:%d, backoff_min: 20ms, backoff_max: 200ms}\n"+
			"    server:\n      url: tcp://127.0.0.1:%d\n      metrics_url: http://127.0.0.1:%d\n      backbone: {url: %s}\n", n, port, port, ops, nats.URL())
	}
	cfg.WriteString("continuum:\n  relay: {pool: [p-1, p-2, p-3], homes: 1}\n")
	file := kitWrite(t, t.TempDir(), "cosnim.yaml", cfg.String())
	procs := map[string]*relayProc{}
	for _, n := range names {
		procs[n] = startRelayProc(t, bin, "", nil, "start", "relay", n, "--config", file)
	}
	for _, p := range procs {
		p.waitLog(t, `msg="relay listening"`)
		p.waitLog(t, "backbone connected")
	}
	const hub = "hub-a"
	order := hubOrder(t, kitEnvVars, hub, names)

	// homes: the first of the order is the one home, joined.
	code, out, stderr := kitRun(t, "relay", "homes", "--hub", hub, "--config", file, "--json")
	var hr homesResult
	if err := json.Unmarshal([]byte(out), &hr); code != 0 || err != nil {
		t.Fatalf("homes: exit %d, %v\n%s\n%s", code, err, out, stderr)
	}
	if len(hr.Relays) != 3 || hr.Relays[0].Name != order[0] || !hr.Relays[0].Home || !hr.Relays[0].Joined || hr.Relays[1].Home || hr.Homes != 1 {
		t.Fatalf("homes %+v, want order %v with %s the one joined home", hr, order, order[0])
	}

	// A watcher on the last relay of the order.
	const n = 300
	watch := exec.Command(bin, "relay", "watch", order[2], "--hub", hub, "--count", fmt.Sprint(n), "--config", file)
	watch.Env = kitEnv()
	wout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Process.Kill(); watch.Wait() })
	seen := make(chan string, n)
	go func() {
		sc := bufio.NewScanner(wout)
		for sc.Scan() {
			var l watchLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				seen <- l.Ref
			}
		}
		close(seen)
	}()

	procs[order[0]].cmd.Process.Kill()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("capsule-%03d", i)
	}
	code, out, stderr = kitRun(t, append([]string{"relay", "announce", "--hub", hub, "--config", file, "--timeout", "60s", "--json"}, ids...)...)
	var ar announceResult
	if err := json.Unmarshal([]byte(out), &ar); code != 0 || err != nil || ar.Acked != n {
		t.Fatalf("announce --hub after SIGKILL of %s: exit %d, %+v (%v)\n%s", order[0], code, ar, err, stderr)
	}
	got := map[string]bool{}
	deadline := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case ref, ok := <-seen:
			if !ok {
				t.Fatalf("watch ended after %d of %d entries", len(got), n)
			}
			got[ref] = true
		case <-deadline:
			t.Fatalf("watch on %s saw %d of %d entries announced through the pool", order[2], len(got), n)
		}
	}

	// ping and top show each relay; the killed one fails the command.
	code, out, _ = kitRun(t, "relay", "ping", "--hub", hub, "--config", file, "--json")
	var pr []pingResult
	if err := json.Unmarshal([]byte(out), &pr); code != 1 || err != nil || len(pr) != 3 {
		t.Fatalf("ping --hub: exit %d (want 1), %v\n%s", code, err, out)
	}
	for _, r := range pr {
		if dead := r.Relay == order[0]; dead != (r.Error != "") || (!dead && r.Epoch == "") {
			t.Errorf("ping %s: %+v; want only %s failed", r.Relay, r, order[0])
		}
	}
	code, out, stderr = kitRun(t, "relay", "top", "--hub", hub, "--config", file, "--once", "--json")
	if views := strings.Count(out, `"relay":`); code != 1 || views != 2 || !strings.Contains(stderr, order[0]) {
		t.Errorf("top --hub --once: exit %d, %d views, stderr %q; want 1, the 2 live relays, and %s named", code, views, stderr, order[0])
	}
}

// hubOrder is hub's rendezvous order of names, for the secret in env.
func hubOrder(t *testing.T, env []string, hub string, names []string) []string {
	t.Helper()
	var pass string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, EnvContinuumKey+"="); ok {
			pass = v
		}
	}
	stretched, err := secret.Stretch([]byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := roster.DeriveKeys(stretched, hub)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, i := range client.RendezvousOrder(keys.ID(), names) {
		order = append(order, names[i])
	}
	return order
}
