package client

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/fault/registry"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/transport/transporttest"
	"github.com/cosnim/relays/wire"
)

type fakeDialer struct{ conns []*transporttest.Conn }

func (d *fakeDialer) Dial(addr string) transport.Conn {
	c := &transporttest.Conn{Addr: addr}
	d.conns = append(d.conns, c)
	return c
}

func (d *fakeDialer) last() *transporttest.Conn { return d.conns[len(d.conns)-1] }

type recorder struct {
	NopObserver
	learned []string
	states  []State
}

func (r *recorder) Learned(_ roster.ChannelID, refs [][]byte, _ time.Time) {
	for _, ref := range refs {
		r.learned = append(r.learned, string(ref))
	}
}
func (r *recorder) StateChanged(s State, _ time.Time) { r.states = append(r.states, s) }

func newClient(t *testing.T) (*Client, *fakeDialer, *recorder, *roster.Keys, time.Time) {
	d := &fakeDialer{}
	obs := &recorder{}
	c, err := New(Config{Addrs: []string{"r1", "r2"}, BackoffMin: 100 * time.Millisecond, BackoffMax: 2 * time.Second}, d, rand.New(rand.NewPCG(3, 4)), obs)
	if err != nil {
		t.Fatal(err)
	}
	k, err := roster.DeriveKeys([]byte("s"), "hub")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(5000, 0)
	if err := c.Join(k, nil, now); err != nil {
		t.Fatal(err)
	}
	return c, d, obs, k, now
}

// newClientOf returns a client of the one relay "r" that reports to obs,
// its dialer, and the keys of hub "hub" (not joined yet) at time 1.
func newClientOf(t *testing.T, obs Observer) (*Client, *fakeDialer, *roster.Keys, time.Time) {
	d := &fakeDialer{}
	c, err := New(Config{Addrs: []string{"r"}}, d, rand.New(rand.NewPCG(1, 1)), obs)
	if err != nil {
		t.Fatal(err)
	}
	k, err := roster.DeriveKeys([]byte("s"), "hub")
	if err != nil {
		t.Fatal(err)
	}
	return c, d, k, time.Unix(1, 0)
}

func deliver(c *Client, conn *transporttest.Conn, f wire.Frame, now time.Time) {
	c.Data(conn, wire.Append(nil, f), now)
}

// welcomed starts c, opens the connection it dials and answers its Hello
// with w; it returns that connection.
func welcomed(c *Client, d *fakeDialer, w *wire.Welcome, now time.Time) *transporttest.Conn {
	c.Start(now)
	conn := d.last()
	c.Open(conn, now)
	deliver(c, conn, w, now)
	return conn
}

func TestHandshakeJoinsAndSyncs(t *testing.T) {
	c, d, _, k, now := newClient(t)
	c.Start(now)
	conn := d.last()
	c.Open(conn, now)
	if fs := conn.Frames(t); len(fs) != 1 || fs[0].FrameType() != wire.TypeHello {
		t.Fatalf("after open sent %+v, want Hello", fs)
	}
	deliver(c, conn, &wire.Welcome{Version: 1, Epoch: 7}, now)
	fs := conn.Frames(t)
	j, ok := fs[0].(*wire.Join)
	if len(fs) != 1 || !ok || j.Channel != k.ID() || !roster.VerifyJoin(j.Channel, [16]byte{}, j.Pub, j.Sig) {
		t.Fatalf("after welcome sent %+v, want a Join with a valid proof", fs)
	}
	deliver(c, conn, &wire.Joined{Handle: j.Handle}, now)
	if fs := conn.Frames(t); len(fs) != 1 || fs[0].FrameType() != wire.TypeSync {
		t.Fatalf("after joined sent %+v, want a Sync", fs)
	}
	if c.State() != Connected {
		t.Fatalf("state %v, want connected", c.State())
	}
}

func TestRefusesEntriesThatDoNotOpen(t *testing.T) {
	c, d, obs, k, now := newClient(t)
	conn := welcomed(c, d, &wire.Welcome{Version: 1}, now)
	deliver(c, conn, &wire.Joined{Handle: 1}, now)
	good, _ := k.Seal([]byte("capsule"))
	other, _ := roster.DeriveKeys([]byte("another secret"), "hub")
	forged, _ := other.Seal([]byte("forged"))
	deliver(c, conn, &wire.Deliver{Handle: 1, Entries: [][]byte{forged.Sealed, good.Sealed, []byte("garbage bytes of no use")}}, now)
	if len(obs.learned) != 1 || obs.learned[0] != "capsule" {
		t.Fatalf("learned %q, want only \"capsule\"", obs.learned)
	}
	if got := c.Roster(k.ID()).Len(); got != 1 {
		t.Fatalf("roster holds %d entries, want 1", got)
	}
	if s := c.Stats(); s.Forged != 2 {
		t.Fatalf("Forged = %d, want 2", s.Forged)
	}
}

func TestBackoffGrowsWithJitterAndRotates(t *testing.T) {
	c, d, _, _, now := newClient(t)
	c.Start(now)
	var delays []time.Duration
	for range 8 {
		conn := d.last()
		c.Closed(conn, transport.ErrRefused, now)
		at, ok := c.Deadline()
		for ok && !at.After(now) {
			c.Tick(now)
			at, ok = c.Deadline()
		}
		// Advance to the reconnect.
		n := len(d.conns)
		start := now
		for len(d.conns) == n {
			at, _ = c.Deadline()
			now = at
			c.Tick(now)
		}
		delays = append(delays, now.Sub(start))
	}
	for i, dl := range delays {
		base := min(100*time.Millisecond<<i, 2*time.Second)
		if dl < base/2 || dl > base {
			t.Errorf("attempt %d waited %v, want within [%v, %v]", i, dl, base/2, base)
		}
	}
	if d.conns[1].Addr != "r2" || d.conns[2].Addr != "r1" {
		t.Errorf("dials went to %s, %s; want r2 then r1", d.conns[1].Addr, d.conns[2].Addr)
	}
}

func TestDrainWaitsAndAddsAlternates(t *testing.T) {
	c, d, _, _, now := newClient(t)
	conn := welcomed(c, d, &wire.Welcome{Version: 1}, now)
	deliver(c, conn, &wire.Drain{AfterMillis: 1000, JitterMillis: 500, Alternates: []string{"r3"}}, now)
	if !conn.Closed {
		t.Fatal("drained connection left open")
	}
	n := len(d.conns)
	start := now
	for len(d.conns) == n {
		at, ok := c.Deadline()
		if !ok {
			t.Fatal("no reconnect scheduled after drain")
		}
		now = at
		c.Tick(now)
	}
	if wait := now.Sub(start); wait < time.Second || wait > 1500*time.Millisecond {
		t.Fatalf("reconnected after %v, want within [1s, 1.5s]", wait)
	}
	if !contains(c.addrs, "r3") {
		t.Fatalf("alternate r3 not added: %v", c.addrs)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestAnnounceIsReadYourWrites(t *testing.T) {
	c, _, _, k, now := newClient(t)
	if _, err := c.Announce(k.ID(), []byte("mine"), now); err != nil {
		t.Fatal(err)
	}
	e, _ := k.Seal([]byte("mine"))
	if !c.Roster(k.ID()).Has(e.ID) {
		t.Fatal("announced entry not in own roster while disconnected")
	}
}

type problems struct {
	NopObserver
	codes []wire.Code
}

func (p *problems) Problem(_ roster.ChannelID, code wire.Code, _ string, _ time.Time) {
	p.codes = append(p.codes, code)
}

func TestIncompleteRelayAsksForRescan(t *testing.T) {
	for _, complete := range []bool{true, false} {
		obs := &problems{}
		c, d, k, now := newClientOf(t, obs)
		c.Join(k, nil, now)
		conn := welcomed(c, d, &wire.Welcome{Version: 1}, now)
		var flags uint8
		if complete {
			flags = wire.JoinedComplete
		}
		deliver(c, conn, &wire.Joined{Handle: 1, Flags: flags}, now)
		asked := len(obs.codes) == 1 && obs.codes[0] == wire.CodeRescan
		if asked == complete {
			t.Errorf("relay cache complete=%v: problems %v", complete, obs.codes)
		}
	}
}

type caughtUp struct {
	NopObserver
	n int
}

func (c *caughtUp) CaughtUp(roster.ChannelID, time.Time) { c.n++ }

// A sync that pushed entries to the relay ends only when a Ping sent behind
// them comes back: then the relay has stored them.
func TestCaughtUpWaitsForPushedEntries(t *testing.T) {
	obs := &caughtUp{}
	c, d, k, now := newClientOf(t, obs)
	mine, _ := k.Seal([]byte("mine"))
	c.Join(k, []roster.Entry{mine}, now)
	conn := welcomed(c, d, &wire.Welcome{Version: 1}, now)
	deliver(c, conn, &wire.Joined{Handle: 1, Flags: wire.JoinedComplete}, now)
	conn.Frames(t)
	// The relay holds nothing: it lists no IDs for the root.
	deliver(c, conn, &wire.Sync{Handle: 1, Session: 1, Msg: roster.SyncMsg{Ranges: []roster.Range{{Mode: roster.ModeIDs}}}}, now)
	var ping *wire.Ping
	pushed := false
	for _, f := range conn.Frames(t) {
		switch f := f.(type) {
		case *wire.Delta:
			pushed = len(f.Entries) == 1
		case *wire.Ping:
			ping = f
		}
	}
	if !pushed || ping == nil {
		t.Fatalf("pushed=%v ping=%v; want the entry pushed and a barrier Ping behind it", pushed, ping)
	}
	if obs.n != 0 {
		t.Fatal("caught up before the relay confirmed it stored the pushed entry")
	}
	deliver(c, conn, &wire.Pong{Data: ping.Data}, now)
	if obs.n != 1 {
		t.Fatalf("CaughtUp fired %d times after the barrier Pong, want 1", obs.n)
	}
}

// A relay that says nothing while the client's own upload still drains is
// not silent: the client's Ping waits behind its bytes. Once they stop
// leaving, the idle timeout holds (found by the simulator's churn check,
// seed 4013).
func TestIdleWaitsForOwnUpload(t *testing.T) {
	c, d, _, k, now := newClient(t)
	conn := welcomed(c, d, &wire.Welcome{Version: 1, Epoch: 7}, now)
	deliver(c, conn, &wire.Joined{Handle: 1}, now)
	for i := range 50 {
		if _, err := c.Announce(k.ID(), fmt.Appendf(nil, "cap-%d", i), now); err != nil {
			t.Fatal(err)
		}
	}
	c.Tick(now.Add(time.Second))               // held announces go out
	conn.Backlog = int(c.Stats().BytesOut / 2) // half our push is still queued
	idle := c.idle
	now = now.Add(idle + time.Millisecond)
	c.Tick(now)
	if c.State() != Connected {
		t.Fatalf("dropped the relay at its idle timeout while our upload drained; state %v", c.State())
	}
	// Nothing more leaves: the link is dead, what is sent stays queued.
	for range 10 {
		conn.Backlog += len(conn.Sent)
		conn.Sent = nil
		at, _ := c.Deadline()
		now = at
		c.Tick(now)
	}
	if c.State() == Connected {
		t.Fatalf("still connected %v after the relay went silent with nothing leaving", now.Sub(time.Unix(5000, 0)))
	}
}

// An entry that does not open is not asked for again by later syncs
// (PROTOCOL §8.3); with the failpoint, every sync asks for it.
func TestRejectedEntriesNotWantedAgain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		forget bool
	}{{"remembered", false}, {"forgotten", true}} {
		t.Run(tc.name, func(t *testing.T) {
			c, d, _, _, now := newClient(t)
			if tc.forget {
				fs := registry.New()
				fs.Enable(FailForgetRejected, "return(true)")
				c.cfg.Faults = fs
			}
			conn := welcomed(c, d, &wire.Welcome{Version: 1}, now)
			deliver(c, conn, &wire.Joined{Handle: 1}, now)
			junk := []byte("junk that opens with no key")
			deliver(c, conn, &wire.Delta{Handle: 1, Session: 1, Entries: [][]byte{junk}}, now)
			conn.Frames(t)
			id := roster.NewEntry(junk).ID
			// The relay lists the junk among the root's IDs, as its cache holds it.
			deliver(c, conn, &wire.Sync{Handle: 1, Session: 1, Msg: roster.SyncMsg{Ranges: []roster.Range{{Mode: roster.ModeIDs, IDs: []roster.ID{id}}}}}, now)
			var wanted bool
			for _, f := range conn.Frames(t) {
				if s, ok := f.(*wire.Sync); ok && slices.Contains(s.Msg.Want, id) {
					wanted = true
				}
			}
			if wanted != tc.forget {
				t.Fatalf("asked again for an entry that did not open: %v, want %v", wanted, tc.forget)
			}
		})
	}
}
