package relay

import (
	"fmt"
	"testing"

	"github.com/cosnim/relays/wire"
)

// A connection gets MaxDeniedJoins bad proofs: the ones before are
// refused and it stays; the last closes it with a fatal Error.
func TestDeniedJoinsClose(t *testing.T) {
	for _, max := range []int{1, 3} {
		h := newHarness(t, Config{MaxDeniedJoins: max})
		c, w := h.connect("attacker")
		k, other := keys(t, "hub"), keys(t, "other")
		pub, sig := other.JoinProof(w.Nonce)
		for i := 1; i < max; i++ {
			h.send(c, &wire.Join{Handle: uint32(i), Channel: k.ID(), Pub: pub, Sig: sig})
			wantError(t, c.Frames(t), wire.CodeJoinDenied, false)
			if c.Closed {
				t.Fatalf("max %d: closed after %d denials", max, i)
			}
		}
		h.send(c, &wire.Join{Handle: uint32(max), Channel: k.ID(), Pub: pub, Sig: sig})
		wantError(t, c.Frames(t), wire.CodeJoinDenied, true)
		if !c.Closed {
			t.Fatalf("max %d: open after %d denials", max, max)
		}
		if st := h.r.Stats(); st.DeniedClosed != 1 || st.JoinsDenied != uint64(max) {
			t.Errorf("max %d: stats denied %d, closed %d; want %d and 1", max, st.JoinsDenied, st.DeniedClosed, max)
		}
	}
}

// With checks off the loop, the denial that reaches the limit closes the
// connection and later results for it are ignored.
func TestDeniedJoinsCloseAsync(t *testing.T) {
	h := newHarness(t, Config{MaxDeniedJoins: 2, AsyncJoinChecks: true})
	c, w := h.connect("attacker")
	pub, sig := keys(t, "other").JoinProof(w.Nonce)
	for i := uint32(1); i <= 3; i++ {
		ch := keys(t, fmt.Sprintf("hub-%d", i)) // one channel per handle (§6)
		h.send(c, &wire.Join{Handle: i, Channel: ch.ID(), Pub: pub, Sig: sig})
	}
	checks := h.r.Ready().JoinChecks
	if len(checks) != 3 {
		t.Fatalf("%d checks queued, want 3", len(checks))
	}
	for _, jc := range checks {
		h.r.JoinChecked(jc, jc.Verify(), h.now)
	}
	if !c.Closed || h.r.Conns() != 0 {
		t.Fatalf("closed %v, %d conns after 3 denials with max 2", c.Closed, h.r.Conns())
	}
	if st := h.r.Stats(); st.JoinsDenied != 2 || st.DeniedClosed != 1 {
		t.Errorf("denied %d, closed %d; want 2 and 1", st.JoinsDenied, st.DeniedClosed)
	}
}

// A join queued after a denial says so, for the driver's ordering.
func TestJoinCheckCarriesDenials(t *testing.T) {
	h := newHarness(t, Config{MaxDeniedJoins: 3, AsyncJoinChecks: true})
	c, w := h.connect("attacker")
	k, other := keys(t, "hub"), keys(t, "other")
	pub, sig := other.JoinProof(w.Nonce)
	h.send(c, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig})
	first := h.r.Ready().JoinChecks
	h.r.JoinChecked(first[0], first[0].Verify(), h.now)
	h.send(c, &wire.Join{Handle: 2, Channel: k.ID(), Pub: pub, Sig: sig})
	second := h.r.Ready().JoinChecks
	if len(first) != 1 || len(second) != 1 || first[0].Denied != 0 || second[0].Denied != 1 {
		t.Fatalf("checks %+v then %+v, want Denied 0 then 1", first, second)
	}
}
