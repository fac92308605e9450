package relayserver

import (
	"net/netip"
	"testing"
	"time"
)

// A source is held for deniedSourcePenalty, then released; the box holds
// at most maxHeldSources.
func TestPenaltyBoxBounds(t *testing.T) {
	now := time.Unix(1, 0)
	b := newPenaltyBox(func() time.Time { return now })
	a := netip.MustParseAddr("192.0.2.1")
	b.hold(a)
	if !b.held(a) || b.held(netip.MustParseAddr("192.0.2.2")) {
		t.Fatal("held: only the source held")
	}
	now = now.Add(deniedSourcePenalty)
	if b.held(a) {
		t.Fatal("still held after deniedSourcePenalty")
	}
	for i := range maxHeldSources + 10 {
		b.hold(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if n := len(b.until); n > maxHeldSources {
		t.Fatalf("%d sources held, at most %d", n, maxHeldSources)
	}
}
