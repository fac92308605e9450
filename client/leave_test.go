package client

import (
	"testing"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

func TestLeaveSendsLeaveAndKeepsHandleUntilReconnect(t *testing.T) {
	c, d, obs, k, now := newClient(t)
	conn := welcomed(c, d, &wire.Welcome{Version: 1}, now)
	deliver(c, conn, &wire.Joined{Handle: 1}, now)
	conn.Frames(t)
	if err := c.Leave(k.ID(), now); err != nil {
		t.Fatal(err)
	}
	if fs := conn.Frames(t); len(fs) != 1 || *fs[0].(*wire.Leave) != (wire.Leave{Handle: 1}) {
		t.Fatalf("Leave sent %+v, want Leave{Handle: 1}", fs)
	}
	if c.Roster(k.ID()) != nil {
		t.Fatal("roster kept after Leave")
	}
	// Late frames on the old handle reach no channel.
	e, _ := k.Seal([]byte("late"))
	deliver(c, conn, &wire.Deliver{Handle: 1, Entries: [][]byte{e.Sealed}}, now)
	if len(obs.learned) != 0 {
		t.Fatalf("learned %q on a left handle", obs.learned)
	}
	other, _ := roster.DeriveKeys([]byte("s"), "hub-2")
	if err := c.Join(other, nil, now); err != nil {
		t.Fatal(err)
	}
	if fs := conn.Frames(t); len(fs) != 1 || fs[0].(*wire.Join).Handle != 2 {
		t.Fatalf("join on the same connection sent %+v, want a fresh handle 2", fs)
	}
	// Once the connection is gone the old handle is free again.
	c.Closed(conn, nil, now)
	if err := c.Join(k, nil, now); err != nil {
		t.Fatalf("rejoin after Leave: %v", err)
	}
	if got := c.byID[k.ID()].handle; got != 1 {
		t.Fatalf("rejoined on handle %d, want the freed 1", got)
	}
}

func TestLeaveDuringJoinCheckLeavesWhenJoined(t *testing.T) {
	c, d, _, k, now := newClient(t)
	conn := welcomed(c, d, &wire.Welcome{Version: 1}, now)
	conn.Frames(t)
	if err := c.Leave(k.ID(), now); err != nil {
		t.Fatal(err)
	}
	if fs := conn.Frames(t); len(fs) != 0 {
		t.Fatalf("Leave before Joined sent %+v, want nothing yet", fs)
	}
	deliver(c, conn, &wire.Joined{Handle: 1}, now)
	if fs := conn.Frames(t); len(fs) != 1 || fs[0].FrameType() != wire.TypeLeave {
		t.Fatalf("Joined of a left channel answered %+v, want a Leave", fs)
	}
}

func TestMergeAddsWithoutSending(t *testing.T) {
	c, d, obs, k, now := newClient(t)
	conn := welcomed(c, d, &wire.Welcome{Version: 1}, now)
	deliver(c, conn, &wire.Joined{Handle: 1}, now)
	conn.Frames(t)
	e, _ := k.Seal([]byte("from another relay"))
	if n, err := c.Merge(k.ID(), []roster.Entry{e, e}); n != 1 || err != nil {
		t.Fatalf("Merge = %d, %v; want 1 new", n, err)
	}
	if fs := conn.Frames(t); len(fs) != 0 {
		t.Fatalf("Merge sent %+v, want nothing", fs)
	}
	if !c.Roster(k.ID()).Has(e.ID) || len(obs.learned) != 0 {
		t.Fatalf("after Merge: in roster %v, observer heard %q; want in, nothing heard", c.Roster(k.ID()).Has(e.ID), obs.learned)
	}
}
