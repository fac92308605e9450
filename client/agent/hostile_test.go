package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/badrelay"
	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/relay/relayserver"
)

// hostileScale compresses the listing policy's time base: a second of the
// test is hostileScale seconds of an instance's life.
const hostileScale = 60

// hostileOptions are an Agent's options on the scaled time base, dialing
// addrs (or the pool, if given).
func hostileOptions(addrs []string, pool []agent.Relay) agent.Options {
	return agent.Options{
		Addrs: addrs, Pool: pool, Secret: []byte("hostile relay secret"),
		Listing:    testrelay.ScaledListing(hostileScale),
		BackoffMin: 100 * time.Millisecond / hostileScale, BackoffMax: 30 * time.Second / hostileScale,
	}
}

func newHostileAgent(t *testing.T, opts agent.Options) *agent.Agent {
	t.Helper()
	a, err := agent.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// A malicious relay cannot make a real Agent list storage more often than
// it would with no relay at all, and it is reported. Each attack runs at
// its real timing divided by hostileScale, as does the listing policy.
func TestAgentHostileRelayListings(t *testing.T) {
	d, took := 6*time.Second, 100*time.Millisecond/hostileScale
	if testing.Short() {
		d = 3 * time.Second
	}
	cfg := testrelay.ScaledListing(hostileScale)
	t.Run("no relay", func(t *testing.T) {
		t.Parallel()
		a := newHostileAgent(t, hostileOptions([]string{testutil.FreeAddr(t)}, nil))
		l := testrelay.MeasureListings(t, a, "hub", cfg, hostileScale, d, took)
		t.Logf("no relay: %v", l)
		if l.Count > l.Bound {
			t.Errorf("without a relay: %v", l)
		}
	})
	for _, real := range badrelay.Attacks {
		atk := real
		atk.Period /= hostileScale
		t.Run(string(atk.Behaviour), func(t *testing.T) {
			t.Parallel()
			addr, stats := testrelay.StartBad(t, atk)
			a := newHostileAgent(t, hostileOptions([]string{addr}, nil))
			l := testrelay.MeasureListings(t, a, "hub", cfg, hostileScale, d, took)
			t.Logf("%s every %v: %v; the relay asked %d times", atk.Behaviour, real.Period, l, stats().Asks)
			checkHostile(t, l, `hub "hub": the relay asks for urgent listings too often`)
		})
	}
	// One relay of a pool storms; the other is honest.
	t.Run("pool", func(t *testing.T) {
		t.Parallel()
		real := badrelay.Attacks[0]
		atk := real
		atk.Period /= hostileScale
		bad, _ := testrelay.StartBad(t, atk)
		good := testrelay.Start(t, relayserver.Config{})
		pool := []agent.Relay{{Name: "bad", Addrs: []string{bad}}, {Name: "good", Addrs: []string{good.Addr().String()}}}
		a := newHostileAgent(t, hostileOptions(nil, pool))
		l := testrelay.MeasureListings(t, a, "hub", cfg, hostileScale, d, took)
		t.Logf("pool, one relay's %s every %v: %v", atk.Behaviour, real.Period, l)
		checkHostile(t, l, "relay bad asks for urgent listings too often")
	})
}

func checkHostile(t *testing.T, l testrelay.Listings, problem string) {
	t.Helper()
	if l.Count > l.Bound {
		t.Errorf("got %v: more than without a relay", l)
	}
	if !strings.Contains(strings.Join(l.Problems, "\n"), problem) {
		t.Errorf("Problems() = %q, want one saying %q", l.Problems, problem)
	}
}
