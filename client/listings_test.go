package client

import (
	"testing"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// Listings routes a channel's events to its hub's policy only, link events
// and problems about no known channel to every hub's.
func TestListingsRoutes(t *testing.T) {
	var l Listings
	ids := []roster.ChannelID{{1}, {2}}
	for _, id := range ids {
		p := newPolicy(t)
		connectedAndCaughtUp(p)
		l.Add(id, p)
	}
	nexts := func() [2]time.Duration {
		return [2]time.Duration{l.Policy(0).next.Sub(t0), l.Policy(1).next.Sub(t0)}
	}
	before := nexts()

	l.Problem(ids[1], wire.CodeRescan, "", at(3*time.Minute))
	if got := nexts(); got[0] != before[0] || got[1] != 3*time.Minute+time.Second {
		t.Fatalf("a problem of hub 1 moved listings to %v (from %v), want only hub 1's to 3m1s", got, before)
	}
	l.Problem(roster.ChannelID{}, wire.CodeRescan, "", at(4*time.Minute))
	if got := nexts(); got[0] != 4*time.Minute+time.Second || got[1] != 3*time.Minute+time.Second {
		t.Fatalf("a link problem moved listings to %v, want hub 0's to 4m1s (hub 1's already sooner)", got)
	}
	if l.Index(ids[1]) != 1 || l.Index(roster.ChannelID{9}) != -1 {
		t.Fatalf("Index(%v) = %d, Index(unknown) = %d; want 1, -1", ids[1], l.Index(ids[1]), l.Index(roster.ChannelID{9}))
	}
}
