package agent_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/secret"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/roster"
)

const poolSecret = "pool test secret"

// hubsPreferring finds two hubs of poolSecret whose rendezvous orders over
// names start with different relays.
func hubsPreferring(t *testing.T, names []string) (hubs [2]string, first [2]string) {
	t.Helper()
	stretched, err := secret.Stretch([]byte(poolSecret))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for i := range 1000 {
		hub := fmt.Sprintf("hub-%d", i)
		k, err := roster.DeriveKeys(stretched, hub)
		if err != nil {
			t.Fatal(err)
		}
		top := names[client.RendezvousOrder(k.ID(), names)[0]]
		if _, ok := seen[top]; ok {
			continue
		}
		seen[top] = hub
		if len(seen) == 2 {
			break
		}
	}
	i := 0
	for _, n := range names { // names' order: deterministic
		if h, ok := seen[n]; ok {
			hubs[i], first[i] = h, n
			i++
		}
	}
	if i != 2 {
		t.Fatal("no two hubs prefer different relays")
	}
	return hubs, first
}

func knows(a *agent.Agent, hub, ref string) bool {
	refs, err := a.Known(hub)
	return err == nil && slices.ContainsFunc(refs, func(r []byte) bool { return string(r) == ref })
}

// Two agents on a pool of 3 real relays, each hub on its own preferred
// relay (homes 1): both agents hold a connection to each of the two
// relays, see each other's announces on both hubs, and when the relay of
// one hub stops they fail over to the next and nothing is lost.
func TestAgentPoolFailsOverAcrossRealRelays(t *testing.T) {
	defer goleak.VerifyNone(t)
	names := []string{"east-1", "east-2", "east-3"}
	stops := map[string]func(){}
	var pool []agent.Relay
	for _, n := range names {
		addr := testutil.FreeAddr(t)
		stops[n] = startRelay(t, addr)
		defer stops[n]()
		pool = append(pool, agent.Relay{Name: n, Addrs: []string{addr}})
	}
	hubs, first := hubsPreferring(t, names)
	newPoolAgent := func() *agent.Agent {
		a, err := agent.New(agent.Options{
			Pool: pool, Homes: 1, Hysteresis: time.Hour,
			Secret: []byte(poolSecret), BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hubs {
			if err := a.Join(h); err != nil {
				t.Fatal(err)
			}
		}
		return a
	}
	a, b := newPoolAgent(), newPoolAgent()
	defer b.Close()
	defer a.Close()
	ctx := apiCtx(t)
	for _, ag := range []*agent.Agent{a, b} {
		for _, h := range hubs {
			if err := ag.WaitCaughtUp(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		var running []string
		for _, r := range ag.Relays() {
			if r.State == client.Connected {
				running = append(running, r.Name)
			}
		}
		if want := []string{first[0], first[1]}; !slices.Equal(slices.Sorted(slices.Values(running)), slices.Sorted(slices.Values(want))) {
			t.Fatalf("connected to %q, want exactly the hubs' preferred %q", running, want)
		}
	}
	for i, h := range hubs {
		if err := a.AnnounceAndWait(ctx, h, []byte("before-"+h)); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, apiTimeout, fmt.Sprintf("b to learn hub %d's announce", i), func() bool { return knows(b, h, "before-"+h) })
	}

	stops[first[0]]()
	testutil.WaitFor(t, apiTimeout, "hub 0 to fail over", func() bool {
		for _, r := range a.Relays() {
			if r.Name == first[0] && r.Failed {
				return true
			}
		}
		return false
	})
	for _, ag := range []*agent.Agent{a, b} {
		if err := ag.WaitCaughtUp(ctx, hubs[0]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Announce(hubs[0], []byte("after")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, apiTimeout, "a to learn the announce made after the failover", func() bool { return knows(a, hubs[0], "after") })
	for _, ag := range []*agent.Agent{a, b} {
		for _, h := range hubs {
			if !knows(ag, h, "before-"+h) {
				t.Fatalf("an agent lost before-%s in the failover", h)
			}
		}
	}
	testutil.WaitFor(t, apiTimeout, "the stopped relay to home nothing", func() bool {
		for _, r := range a.Relays() {
			if r.Name == first[0] {
				return len(r.Channels) == 0
			}
		}
		return false
	})
}
