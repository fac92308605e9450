package hostile

import (
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/badrelay"
	"github.com/cosnim/relays/internal/fault/registry"
	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/internal/testutil"
)

// relayScale is the time base of the malicious-relay attacks: the Agent's
// listing policy and every attack run relayScale times faster than in
// production, so -hostile.duration stands for that many times as long of
// an instance's life.
const relayScale = 60

// A malicious relay attacks a real Agent that embeds the default listing
// policy (on the scaled time base): each attack reports the instance's
// listings per hour next to the most it makes with no relay at all
// (client.ListingsWithoutRelay) and next to a real Agent with no relay, and
// must stay within the former and be reported by Problems. Each attack
// also runs with the rate limit lifted (client/no-urgent-limit), which
// must list several times more: the attack is real.
func TestMaliciousRelayListings(t *testing.T) {
	d := max(*duration, 3*time.Second)
	took := 100 * time.Millisecond / relayScale
	run := func(t *testing.T, addr string, unlimited bool) testrelay.Listings {
		cfg := testrelay.ScaledListing(relayScale)
		if unlimited {
			fp := registry.New()
			if err := fp.Enable(client.FailNoUrgentLimit, "return(true)"); err != nil {
				t.Fatal(err)
			}
			cfg.Faults = fp
		}
		a, err := agent.New(agent.Options{Addrs: []string{addr}, Secret: []byte("hostile relay"), Listing: cfg,
			BackoffMin: 100 * time.Millisecond / relayScale, BackoffMax: 30 * time.Second / relayScale})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		return testrelay.MeasureListings(t, a, "hub", cfg, relayScale, d, took)
	}
	t.Run("no relay", func(t *testing.T) {
		t.Parallel()
		l := run(t, testutil.FreeAddr(t), false)
		t.Logf("no relay: %v", l)
		if l.Count > l.Bound {
			t.Errorf("no relay: %v", l)
		}
	})
	for _, atk := range badrelay.Attacks {
		scaled := atk
		scaled.Period /= relayScale
		t.Run(string(atk.Behaviour)+" unlimited", func(t *testing.T) {
			t.Parallel()
			addr, _ := testrelay.StartBad(t, scaled)
			l := run(t, addr, true)
			t.Logf("%s every %v, no limit (%s): %.0f listings/h, no relay at most %.0f/h",
				atk.Behaviour, atk.Period, client.FailNoUrgentLimit, l.PerHour, l.BoundPerHour)
			if l.Count < 5*l.Bound {
				t.Errorf("%s without the limit: %v; the attack no longer bites", atk.Behaviour, l)
			}
		})
		t.Run(string(atk.Behaviour), func(t *testing.T) {
			t.Parallel()
			addr, stats := testrelay.StartBad(t, scaled)
			l := run(t, addr, false)
			t.Logf("%s every %v: %.0f listings/h, no relay at most %.0f/h (%d and %d in %v at %d× time; %d asks)",
				atk.Behaviour, atk.Period, l.PerHour, l.BoundPerHour, l.Count, l.Bound, d, relayScale, stats().Asks)
			if l.Count > l.Bound {
				t.Errorf("%s: %v, more than without a relay", atk.Behaviour, l)
			}
			if !strings.Contains(strings.Join(l.Problems, "\n"), "asks for urgent listings too often") {
				t.Errorf("%s: the Agent's Problems do not report the relay: %q", atk.Behaviour, l.Problems)
			}
		})
	}
}
