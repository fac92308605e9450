package relay

import (
	"testing"
	"time"

	"github.com/cosnim/relays/wire"
)

// A channel the relay forgot and that comes back holds none of its old
// entries: its Joined must not claim a complete cache, or members would
// not list storage for what only the forgotten cache had (found by the
// simulator: a complete flag over an emptied cache, without a new epoch).
func TestForgottenChannelComesBackIncomplete(t *testing.T) {
	h := newHarness(t, Config{ChannelIdleTimeout: time.Minute})
	k := keys(t, "hub")
	a, wa := h.connect("a")
	h.join(a, wa, k, 1)
	h.send(a, &wire.Announce{Handle: 1, Seq: 1, Entries: [][]byte{seal(t, k, "lost").Sealed}})
	h.r.Closed(a, nil, h.now)
	for range 3 {
		h.now = h.now.Add(45 * time.Second)
		if d, ok := h.r.Deadline(); ok && !d.After(h.now) {
			h.r.Tick(h.now)
		}
	}
	if h.r.ChannelCount() != 0 {
		t.Fatal("channel not forgotten")
	}
	b, wb := h.connect("b")
	pub, sig := k.JoinProof(wb.Nonce)
	h.send(b, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig})
	fs := b.Frames(t)
	j, ok := fs[0].(*wire.Joined)
	if !ok {
		t.Fatalf("got %+v, want Joined", fs[0])
	}
	if j.Flags&wire.JoinedComplete != 0 {
		t.Fatal("a forgotten channel came back flagged complete")
	}
}
