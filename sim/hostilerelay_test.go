package sim

import (
	"testing"

	"github.com/cosnim/relays/internal/badrelay"
)

// Every malicious relay, alone or in a pool, leaves its instances listing
// no more than with no relay, and they still learn every capsule; a run
// replays by seed.
func TestHostileRelaySeeds(t *testing.T) {
	seen := map[badrelay.Behaviour]bool{}
	pool := false
	for _, seed := range []uint64{30, 74, 274, 432, 519} {
		sc := Generate(seed)
		if sc.Class != ClassHostileRelay {
			t.Fatalf("seed %d is of class %s, want %s", seed, sc.Class, ClassHostileRelay)
		}
		seen[sc.HostileRelay.Attack.Behaviour] = true
		pool = pool || sc.HostileRelay.Pool
		res := Run(sc, Options{})
		if len(res.Violations) > 0 || !res.Converged {
			t.Errorf("seed %d: converged=%v violations %q", seed, res.Converged, res.Violations)
		}
		if res.Listings == 0 || res.Listings > res.ListingsWithoutRelay {
			t.Errorf("seed %d: %d listings, want 1 to %d (no relay)", seed, res.Listings, res.ListingsWithoutRelay)
		}
		if again := Run(sc, Options{}); again.TraceSHA256 != res.TraceSHA256 {
			t.Errorf("seed %d: two runs gave traces %s and %s", seed, res.TraceSHA256, again.TraceSHA256)
		}
	}
	if len(seen) != len(badrelay.Behaviours) || !pool {
		t.Errorf("the seeds cover behaviours %v and pool=%v, want all %d and a pool", seen, pool, len(badrelay.Behaviours))
	}
}
