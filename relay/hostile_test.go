package relay

import (
	"fmt"
	"testing"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport/transporttest"
	"github.com/cosnim/relays/wire"
)

// emptyClaim is a sync message saying "I have nothing" for the channel.
var emptyClaim = roster.SyncMsg{Ranges: []roster.Range{{Mode: roster.ModeFingerprint}}}

// deltaEntries counts entries in Delta frames.
func deltaEntries(fs []wire.Frame) int { return entriesIn(fs, wire.TypeDelta) }

// deliverEntries counts entries in Deliver frames.
func deliverEntries(fs []wire.Frame) int { return entriesIn(fs, wire.TypeDeliver) }

// entriesIn counts the entries of the Delta or Deliver frames of type t.
func entriesIn(fs []wire.Frame, t wire.Type) int {
	n := 0
	for _, f := range fs {
		switch f := f.(type) {
		case *wire.Delta:
			if t == wire.TypeDelta {
				n += len(f.Entries)
			}
		case *wire.Deliver:
			if t == wire.TypeDeliver {
				n += len(f.Entries)
			}
		}
	}
	return n
}

// retryTick runs the core's next timer, which must be due within a
// second: the retry of held entries or deferred syncs.
func (h *harness) retryTick(t *testing.T) {
	t.Helper()
	at, ok := h.r.Deadline()
	if !ok || at.After(h.now.Add(time.Second)) {
		t.Fatalf("Deadline() = %v, %v with work held; want a retry within 1s", at, ok)
	}
	h.now = at
	h.r.Tick(h.now)
}

func filledChannel(t *testing.T, cfg Config, n int) (*harness, *roster.Keys) {
	t.Helper()
	h := newHarness(t, cfg)
	k := keys(t, "big")
	a := h.member("filler", k, 1)
	announce(t, h, a, k, "e", n, 20)
	return h, k
}

// One sync message gets at most SyncReplyEntries entries, however little
// the peer claims to hold; an honest empty peer still gets everything,
// round by round.
func TestSyncReplyPaced(t *testing.T) {
	h, k := filledChannel(t, Config{SyncReplyEntries: 100}, 2000)
	c := h.member("asker", k, 1)
	var mine roster.Set
	msgs := []roster.SyncMsg{mine.StartSync()}
	rounds := 0
	for len(msgs) > 0 && rounds < 1000 {
		rounds++
		wants := 0
		for _, m := range msgs {
			h.send(c, &wire.Sync{Handle: 1, Session: 1, Msg: m})
			wants += len(m.Want)
		}
		sent := len(msgs)
		msgs = nil
		fs := c.Frames(t)
		if n := deltaEntries(fs); n > 100*sent+wants {
			t.Fatalf("round %d: %d entries for %d messages wanting %d, over 100 each plus wants", rounds, n, sent, wants)
		}
		for _, f := range fs {
			switch f := f.(type) {
			case *wire.Delta:
				for _, e := range f.Entries {
					mine.Add(roster.NewEntry(e))
				}
			case *wire.Sync:
				if out, _ := mine.ReplySync(&f.Msg); !out.Empty() {
					msgs = append(msgs, out)
				}
			}
		}
	}
	if mine.Len() != 2000 {
		t.Fatalf("after %d rounds the peer holds %d of 2000 entries", rounds, mine.Len())
	}
	if rounds < 3 {
		t.Fatalf("2000 entries at 100 a reply came in %d rounds: not paced", rounds)
	}
}

// A member that stops reading and floods "I have nothing" gets no more
// replies queued, and is closed once its waiting messages pass the bound.
func TestSyncFloodFromNonReader(t *testing.T) {
	// The smallest send queue the rules allow: 64 KiB of room past high
	// water for waiting messages.
	h, k := filledChannel(t, Config{SendQueue: DefaultHighWater + wire.DefaultMaxFrameSize, FrameRate: 1 << 20}, 5000)
	c := h.member("attacker", k, 1)
	c.Backlog = h.r.cfg.HighWater + 1 // stopped reading
	for i := range 10000 {
		h.send(c, &wire.Sync{Handle: 1, Session: uint32(i), Msg: emptyClaim})
		if c.Closed {
			break
		}
	}
	fs := c.Frames(t)
	if n := deltaEntries(fs); n != 0 {
		t.Fatalf("a non-reading member was sent %d entries", n)
	}
	if !c.Closed {
		t.Fatal("the flooding non-reader is still connected")
	}
	wantError(t, fs, wire.CodeQueueFull, true)
	if st := h.r.Stats(); st.QueueFull != 1 || st.SyncsDeferred == 0 {
		t.Fatalf("QueueFull %d, SyncsDeferred %d; want 1 and some", st.QueueFull, st.SyncsDeferred)
	}
}

// An honest slow member's sync waits and is answered once it drains:
// on Writable, or, when the queue never passed the driver's own high-water
// mark and no Writable comes, on the retry Tick (else the member's resync
// waited for anti-entropy: found by the simulator's resync check, seed
// 434).
func TestDeferredSyncAnsweredWhenDrained(t *testing.T) {
	for _, tc := range []struct {
		name  string
		drain func(t *testing.T, h *harness, c *transporttest.Conn)
	}{
		{"writable", func(t *testing.T, h *harness, c *transporttest.Conn) { h.r.Writable(c, h.now) }},
		{"tick", func(t *testing.T, h *harness, c *transporttest.Conn) { h.retryTick(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, k := filledChannel(t, Config{}, 50)
			c := h.member("slow", k, 1)
			c.Backlog = h.r.cfg.HighWater + 1
			h.send(c, &wire.Sync{Handle: 1, Session: 1, Msg: emptyClaim})
			if fs := c.Frames(t); len(fs) != 0 {
				t.Fatalf("answered a member over its high water: %+v", fs)
			}
			c.Backlog = 0
			tc.drain(t, h, c)
			if n := deltaEntries(c.Frames(t)); n != 50 {
				t.Fatalf("after draining got %d entries, want 50", n)
			}
		})
	}
}

// Replies that would pass SendQueue close the connection: a Ping flood
// from a member that does not read costs at most the cap.
func TestSendQueueCap(t *testing.T) {
	h := newHarness(t, Config{FrameRate: 1 << 20})
	c, _ := h.connect("pinger")
	c.Backlog = h.r.cfg.SendQueue - 10 // a Pong is 13 bytes
	h.send(c, &wire.Ping{Data: 1})
	if !c.Closed {
		t.Fatal("a reply past the send queue cap was queued")
	}
	wantError(t, c.Frames(t), wire.CodeQueueFull, true)
}

// Joins past the per-connection rate close the connection: each costs a
// signature check.
func TestJoinRate(t *testing.T) {
	h := newHarness(t, Config{MaxChannels: 4, JoinRate: 1})
	c, w := h.connect("joiner")
	for i := range 12 {
		k := keys(t, fmt.Sprint("hub-", i))
		pub, sig := k.JoinProof(w.Nonce)
		h.send(c, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig})
		h.send(c, &wire.Leave{Handle: 1})
		if c.Closed {
			if i < 8 {
				t.Fatalf("closed after %d joins, burst is 8 (twice max-channels)", i+1)
			}
			wantError(t, c.Frames(t), wire.CodeRateLimited, true)
			return
		}
	}
	t.Fatal("12 joins in an instant at 1 per second (burst 8) were all taken")
}

// An honest member with small frames may have many sync messages in
// flight while slow; they wait within its send-queue cap rather than get
// it closed (found by the simulator's churn invariant).
func TestManyDeferredSyncsOfHonestMember(t *testing.T) {
	h, k := filledChannel(t, Config{MaxFrameSize: 1200, MaxEntrySize: 1000}, 50)
	c := h.member("slow", k, 1)
	c.Backlog = h.r.cfg.HighWater + 1
	for i := range 300 {
		h.send(c, &wire.Sync{Handle: 1, Session: uint32(i), Msg: emptyClaim})
	}
	if c.Closed {
		t.Fatal("an honest slow member with 300 small sync messages in flight was closed")
	}
	c.Backlog = 0
	h.r.Writable(c, h.now)
	if n := deltaEntries(c.Frames(t)); n != 300*50 {
		t.Fatalf("after draining got %d entries, want every message answered (%d)", n, 300*50)
	}
}
