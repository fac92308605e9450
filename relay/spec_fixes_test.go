package relay

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// forgetOne makes the relay forget k's channel, which held an entry.
func forgetOne(t *testing.T, h *harness, k *roster.Keys) {
	t.Helper()
	a, wa := h.connect("forgotten")
	h.join(a, wa, k, 1)
	h.send(a, &wire.Announce{Handle: 1, Seq: 1, Entries: [][]byte{seal(t, k, "lost").Sealed}})
	h.r.Closed(a, nil, h.now)
	h.idleFor(135 * time.Second)
	if h.r.ChannelCount() != 0 {
		t.Fatal("channel not forgotten")
	}
}

// complete is per channel (PROTOCOL §4.4): a channel created after the
// relay forgot another one lost nothing, so its Joined says complete; the
// forgotten one, created again, does not.
func TestCompleteIsPerChannel(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fs     faults
		wantOK bool
	}{{"per channel", nil, true}, {"relay-wide flag", faults{FailRelayWideForgot: true}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{ChannelIdleTimeout: time.Minute, Faults: tc.fs})
			forgetOne(t, h, keys(t, "old"))
			_, j := h.rejoin("new", keys(t, "new"))
			if got := j.Flags&wire.JoinedComplete != 0; got != tc.wantOK {
				t.Fatalf("a brand-new channel after another was forgotten: complete = %v, want %v", got, tc.wantOK)
			}
			if _, j := h.rejoin("back", keys(t, "old")); j.Flags&wire.JoinedComplete != 0 {
				t.Fatal("the forgotten channel came back flagged complete")
			}
		})
	}
}

// The record of forgotten channels is bounded: past ForgottenCapacity
// channels no new channel claims complete. It costs the budget what it
// holds.
func TestForgottenRecordOverflows(t *testing.T) {
	var f forgottenSet
	fresh := roster.ChannelID(hashOf("fresh"))
	if f.bytes() != 0 || f.mayHold(fresh) {
		t.Fatal("an empty record costs memory or holds something")
	}
	for i := range ForgottenCapacity {
		f.add(roster.ChannelID(hashOf(fmt.Sprint("c", i))))
	}
	f.add(roster.ChannelID(hashOf("c0"))) // again: held once
	if f.mayHold(fresh) || !f.mayHold(roster.ChannelID(hashOf("c7"))) {
		t.Fatal("at capacity the record lost a channel or holds a fresh one")
	}
	if got, want := f.bytes(), int64(ForgottenCapacity*forgottenEntryBytes); got != want {
		t.Fatalf("record costs %d bytes, want %d", got, want)
	}
	f.add(roster.ChannelID(hashOf("one more")))
	if !f.mayHold(fresh) || f.bytes() != 0 {
		t.Fatal("past capacity a fresh channel was still told complete, or the record kept its memory")
	}
}

// A Join on the reserved handle 0 is refused with a non-fatal join
// denied on handle 0 (PROTOCOL §4.3); the connection stays usable.
func TestJoinOnHandleZeroDenied(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fs     faults
		denied bool
	}{{"refused", nil, true}, {"accepted", faults{FailJoinHandleZero: true}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{Faults: tc.fs})
			c, w := h.connect("zero")
			k := keys(t, "hub")
			pub, sig := k.JoinProof(w.Nonce)
			h.send(c, &wire.Join{Handle: 0, Channel: k.ID(), Pub: pub, Sig: sig})
			fs := c.Frames(t)
			if !tc.denied {
				if _, ok := fs[0].(*wire.Joined); !ok {
					t.Fatalf("with the failpoint got %+v, want Joined", fs)
				}
				return
			}
			wantError(t, fs, wire.CodeJoinDenied, false)
			if e := fs[0].(*wire.Error); e.Handle != 0 || c.Closed {
				t.Fatalf("got handle %d, closed %v; want handle 0 and the connection open", e.Handle, c.Closed)
			}
			h.join(c, w, k, 1)
		})
	}
}

// Joins past max-channels get the non-fatal Error 6 (PROTOCOL §6.3), not
// a fatal rate limit: with the defaults an instance with 65 hubs gets 64
// Joined and one Error 6 at connect.
func TestJoinsPastCapNotRateLimited(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   faults
		ok   bool
	}{{"cap first", nil, true}, {"rate first", faults{FailJoinRateFirst: true}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{Faults: tc.fs})
			c, w := h.connect("many")
			var joined, tooMany int
			for i := range wire.DefaultMaxChannels + 1 {
				k := keys(t, fmt.Sprint("hub-", i))
				pub, sig := k.JoinProof(w.Nonce)
				h.send(c, &wire.Join{Handle: uint32(i + 1), Channel: k.ID(), Pub: pub, Sig: sig})
			}
			for _, f := range c.Frames(t) {
				switch f := f.(type) {
				case *wire.Joined:
					joined++
				case *wire.Error:
					if f.Code == wire.CodeTooManyChannels && !f.Fatal() {
						tooMany++
					}
				}
			}
			got := joined == wire.DefaultMaxChannels && tooMany == 1 && !c.Closed
			if got != tc.ok {
				t.Fatalf("%d joins: %d Joined, %d non-fatal Error 6, closed %v", wire.DefaultMaxChannels+1, joined, tooMany, c.Closed)
			}
		})
	}
}

func hashOf(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// One channel under two handles of one connection is refused, not fatal:
// the second membership would only send each entry twice (PROTOCOL §6.6).
func TestSameChannelTwiceDenied(t *testing.T) {
	h := newHarness(t, Config{})
	k := keys(t, "hub")
	c, w := h.connect("twice")
	h.join(c, w, k, 1)
	pub, sig := k.JoinProof(w.Nonce)
	h.send(c, &wire.Join{Handle: 2, Channel: k.ID(), Pub: pub, Sig: sig})
	fs := c.Frames(t)
	wantError(t, fs, wire.CodeJoinDenied, false)
	if e := fs[0].(*wire.Error); e.Handle != 2 || c.Closed {
		t.Fatalf("got handle %d, closed %v; want handle 2, open", e.Handle, c.Closed)
	}
}
