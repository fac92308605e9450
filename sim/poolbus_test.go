package sim

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/backbone"
	"github.com/cosnim/relays/relay"
)

// docs/SIMULATION.md's description of the hostile bus publisher gives its figures.
func TestHostileBusDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/SIMULATION.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("(caches of %d\nentries)", hostileBusCache),
		fmt.Sprintf("(%d junk entries\nper channel from one origin)", busFlood),
		fmt.Sprintf("(%d requests of 16 empty ID\nranges per channel at once", busAsks),
		fmt.Sprintf("refill, %d s, plus a request timeout", (askTouch()-backbone.RequestTimeout)/time.Second),
		fmt.Sprintf("within max(%d × request, %d KiB)", relay.BackboneReplyFactor, relay.BackboneReplyFloor>>10),
		fmt.Sprintf("within %d/s after a burst of %d", relay.BackboneAnswerRate, relay.BackboneAnswerBurst),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("docs/SIMULATION.md does not say %q", want)
		}
	}
}

// A hostile-bus seed draws its publisher's faults, and a seed without
// one draws none.
func TestHostileBusSeeds(t *testing.T) {
	var hostile, plain int
	for seed := uint64(1); seed <= 3000 && (hostile == 0 || plain == 0); seed++ {
		sc := Generate(seed)
		if sc.Pool == nil || !sc.Pool.Backbone {
			continue
		}
		n := 0
		for _, f := range sc.Faults {
			if f.Kind == FaultBusInject || f.Kind == FaultBusAsk {
				n++
			}
		}
		switch {
		case sc.Pool.HostileBus:
			hostile++
			if sc.Caps.CacheEntries != hostileBusCache {
				t.Errorf("seed %d: cache %d, want %d", seed, sc.Caps.CacheEntries, hostileBusCache)
			}
		case n > 0:
			t.Errorf("seed %d: %d bus publisher faults without a publisher", seed, n)
		default:
			plain++
		}
	}
	if hostile == 0 || plain == 0 {
		t.Errorf("hostile-bus seeds %d, plain backbone seeds %d: want both", hostile, plain)
	}
}
