package relayserver

import (
	"net"
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

// The tarpit keeps at most maxTarpit connections, closing the oldest
// first, each for hold at most.
func TestTarpitBounds(t *testing.T) {
	b := newPenaltyBox(time.Now)
	peers := make([]net.Conn, maxTarpit+1)
	for i := range peers {
		kept, peer := net.Pipe()
		peers[i] = peer
		b.tarpit(kept, time.Hour)
	}
	closed := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		return err != nil && !isTimeout(err)
	}
	if !closed(peers[0]) || closed(peers[1]) {
		t.Fatal("past maxTarpit, the oldest kept connection, and only it, is closed")
	}
	if b.kept.Len() != maxTarpit {
		t.Fatalf("%d kept, want %d", b.kept.Len(), maxTarpit)
	}
	kept, peer := net.Pipe()
	b.tarpit(kept, 10*time.Millisecond)
	if !closed(peer) {
		t.Fatal("a kept connection outlived its hold")
	}
	b.closeKept()
	if !closed(peers[maxTarpit]) || b.kept.Len() != 0 {
		t.Fatal("closeKept left connections open")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
