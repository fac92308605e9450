package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/secret"
	"github.com/cosnim/relays/internal/testnats"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/roster"
)

// poolRelay is one relay binary of the pool test.
type poolRelay struct {
	name string
	port int
	proc *relayProc
}

// TestPoolOverNATSCluster runs the built binary as 3 relays on a 3-node
// NATS cluster. Three instances hold the one hub on three different
// relays (their pools differ), so each announce crosses the backbone;
// then one relay is killed with SIGKILL and one NATS node stops: the
// killed relay's instance moves to the next relay of its pool, and every
// instance ends with every announce.
func TestPoolOverNATSCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns 3 relays and a NATS cluster")
	}
	bin := buildCosnim(t)
	nats := testnats.Cluster(t, 3)
	var natsURLs []string
	for _, s := range nats {
		natsURLs = append(natsURLs, s.URL())
	}
	relays := make([]*poolRelay, 3)
	var cfg strings.Builder
	cfg.WriteString("relays:\n")
	for i := range relays {
		r := &poolRelay{name: fmt.Sprintf("east-%d", i+1), port: testutil.FreePort(t)}
		relays[i] = r
		fmt.Fprintf(&cfg, "  %s:\n    client:\n      url: tcp://127.0.0.1:%d\n    server:\n      url: tcp://127.0.0.1:%d\n"+
			"      backbone:\n        urls: [%s]\n", r.name, r.port, r.port, strings.Join(natsURLs, ", "))
	}
	file := kitWrite(t, t.TempDir(), "cosnim.yaml", cfg.String())
	for _, r := range relays {
		r.proc = startRelayProc(t, bin, "", nil, "start", "relay", r.name, "--config", file)
	}
	for _, r := range relays {
		r.proc.waitLog(t, `msg="relay listening"`)
		r.proc.waitLog(t, "backbone connected")
	}

	const hub = "hub"
	pass := []byte("pool end-to-end continuum secret")
	stretched, err := secret.Stretch(pass)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := roster.DeriveKeys(stretched, hub)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{relays[0].name, relays[1].name, relays[2].name}
	order := client.RendezvousOrder(keys.ID(), names) // the hub's preference
	byName := map[string]*poolRelay{}
	for _, r := range relays {
		byName[r.name] = r
	}
	// Instance k's pool is the order from its k-th relay on: each prefers
	// a different relay, and the first two can fail over.
	agents := make([]*agent.Agent, 3)
	for k := range agents {
		var pool []agent.Relay
		for _, i := range order[k:] {
			r := relays[i]
			pool = append(pool, agent.Relay{Name: r.name, Addrs: []string{fmt.Sprintf("127.0.0.1:%d", r.port)}})
		}
		a, err := agent.New(agent.Options{Pool: pool, Homes: 1, Secret: pass, Agent: fmt.Sprintf("instance-%d", k),
			BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, EntriesBuffer: 1 << 14})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		if err := a.Join(hub); err != nil {
			t.Fatal(err)
		}
		agents[k] = a
	}
	for k, a := range agents {
		waitCaught(t, a, hub)
		if got, want := homeOf(a), names[order[k]]; got != want {
			t.Fatalf("instance %d is homed on %q, want %q (its pool's first)", k, got, want)
		}
	}

	// 1,000 entries a second from instance 0, received by instance 1 on
	// another relay: publish → receive through the NATS cluster.
	var want [][]byte
	sent := map[string]time.Time{}
	tick := time.NewTicker(time.Millisecond)
	for i := range 1000 {
		<-tick.C
		ref := fmt.Appendf(nil, "a-%04d", i)
		sent[string(ref)] = time.Now()
		if err := agents[0].Announce(hub, ref); err != nil {
			t.Fatal(err)
		}
		want = append(want, ref)
	}
	tick.Stop()
	lat := receiveLatencies(t, agents[1], sent)
	t.Logf("publish→receive across relays through a 3-node NATS cluster, 1000 entries at 1000/s: p50 %v p99 %v max %v",
		durPct(lat, 50), durPct(lat, 99), lat[len(lat)-1])
	waitKnown(t, hub, want, agents...)

	// SIGKILL instance 0's relay, and stop a NATS node that a surviving
	// relay is connected to.
	killed := byName[names[order[0]]]
	start := time.Now()
	killed.proc.cmd.Process.Kill()
	clients := func(nodes []*testnats.Server) (n int) {
		for _, s := range nodes {
			n += s.NumClients()
		}
		return n
	}
	testutil.WaitFor(t, 10*time.Second, "NATS to see the killed relay go", func() bool { return clients(nats) == 2 })
	stop := slices.IndexFunc(nats, func(s *testnats.Server) bool { return s.NumClients() > 0 })
	nats[stop].Stop()
	rest := slices.Delete(slices.Clone(nats), stop, stop+1)
	testutil.WaitFor(t, 10*time.Second, "instance 0 to move to another relay and catch up", func() bool {
		h := homeOf(agents[0])
		return h != "" && h != killed.name && caughtUp(agents[0], hub)
	})
	t.Logf("instance 0 homed on %s and caught up %v after its relay was killed", homeOf(agents[0]), time.Since(start).Round(time.Millisecond))
	testutil.WaitFor(t, 10*time.Second, "the relays on the stopped NATS node to reconnect to the others", func() bool { return clients(rest) == 2 })
	for k, a := range agents {
		for i := range 20 {
			ref := fmt.Appendf(nil, "after-%d-%02d", k, i)
			if err := a.Announce(hub, ref); err != nil {
				t.Fatal(err)
			}
			want = append(want, ref)
		}
	}
	waitKnown(t, hub, want, agents...)
}

// homeOf names the relay an Agent of one hub is joined on, "" if none is
// connected.
func homeOf(a *agent.Agent) string {
	for _, r := range a.Relays() {
		if r.State == client.Connected && len(r.Channels) > 0 {
			return r.Name
		}
	}
	return ""
}

func caughtUp(a *agent.Agent, hub string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	return a.WaitCaughtUp(ctx, hub) == nil
}

func waitCaught(t *testing.T, a *agent.Agent, hub string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.WaitCaughtUp(ctx, hub); err != nil {
		t.Fatalf("not caught up: %v (last error %v)", err, a.LastError())
	}
}

// receiveLatencies reads a's Entries until every ref in sent arrived (or
// 10 s passed) and returns the delays, sorted.
func receiveLatencies(t *testing.T, a *agent.Agent, sent map[string]time.Time) []time.Duration {
	t.Helper()
	var lat []time.Duration
	deadline := time.After(10 * time.Second)
	for len(lat) < len(sent) {
		select {
		case l := <-a.Entries():
			if at, ok := sent[string(l.Ref)]; ok {
				lat = append(lat, l.Time.Sub(at))
			}
		case <-deadline:
			t.Fatalf("received %d of %d entries across relays", len(lat), len(sent))
		}
	}
	slices.Sort(lat)
	return lat
}

func durPct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

// waitKnown waits until every agent holds exactly want.
func waitKnown(t *testing.T, hub string, want [][]byte, agents ...*agent.Agent) {
	t.Helper()
	w := make([]string, len(want))
	for i, r := range want {
		w[i] = string(r)
	}
	sort.Strings(w)
	for k, a := range agents {
		var got []string
		testutil.WaitFor(t, 15*time.Second, fmt.Sprintf("instance %d to hold all %d entries", k, len(w)), func() bool {
			rs, err := a.Known(hub)
			if err != nil {
				t.Fatal(err)
			}
			got = got[:0]
			for _, r := range rs {
				got = append(got, string(r))
			}
			sort.Strings(got)
			return slices.Equal(got, w)
		})
	}
}
