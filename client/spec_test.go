package client

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cosnim/relays/wire"
)

// A Drain's alternates come first and the draining relay last.
func TestDrainTriesAlternatesFirst(t *testing.T) {
	for _, tc := range []struct {
		name       string
		addrs      []string
		draining   string
		alternates []string
		want       []string
	}{
		{"no alternates", []string{"r1", "r2"}, "r1", nil, []string{"r2", "r1"}},
		{"alone", []string{"r1"}, "r1", nil, []string{"r1"}},
		{"alternates first", []string{"r1", "r2"}, "r1", []string{"a", "b"}, []string{"a", "b", "r2", "r1"}},
		{"known alternate moves up", []string{"r1", "r2", "r3"}, "r2", []string{"r3"}, []string{"r3", "r1", "r2"}},
		{"draining named as alternate", []string{"r1"}, "r1", []string{"r1", "a"}, []string{"a", "r1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := drainOrder(tc.addrs, tc.draining, tc.alternates); !slices.Equal(got, tc.want) {
				t.Fatalf("drainOrder = %v, want %v", got, tc.want)
			}
		})
	}
}

// After a Drain the client dials an alternate, not the draining relay.
func TestDrainReconnectsToAlternate(t *testing.T) {
	c, d, _, _, now := newClient(t)
	conn := welcomed(c, d, &wire.Welcome{Version: 1}, now)
	deliver(c, conn, &wire.Drain{AfterMillis: 10, Alternates: []string{"alt"}}, now)
	c.Tick(now.Add(time.Second))
	if got := d.last().Addr; got != "alt" {
		t.Fatalf("after a drain dialled %q, want the alternate", got)
	}
}

// An entry over the relay's advertised max entry size stays in the roster
// but is not sent, in an Announce or a sync.
func TestClientHonoursMaxEntrySize(t *testing.T) {
	c, d, _, k, now := newClient(t)
	c.Start(now)
	conn := d.last()
	c.Open(conn, now)
	conn.Frames(t) // Hello
	deliver(c, conn, &wire.Welcome{Version: 1, Limits: []wire.Limit{{Key: wire.LimitMaxEntrySize, Value: 60}}}, now)
	fs := conn.Frames(t)
	j := fs[0].(*wire.Join)
	deliver(c, conn, &wire.Joined{Handle: j.Handle, Flags: wire.JoinedComplete}, now)
	conn.Frames(t)
	big := make([]byte, 100)
	if _, err := c.Announce(k.ID(), big, now); !errors.Is(err, ErrEntryTooLarge) {
		t.Fatalf("Announce of a 128-byte entry to a relay taking 60 = %v, want ErrEntryTooLarge", err)
	}
	if _, err := c.Announce(k.ID(), []byte("small"), now); err != nil {
		t.Fatal(err)
	}
	if c.Roster(k.ID()).Len() != 2 {
		t.Fatalf("roster holds %d entries, want both", c.Roster(k.ID()).Len())
	}
	for _, f := range conn.Frames(t) {
		if a, ok := f.(*wire.Announce); ok {
			for _, e := range a.Entries {
				if len(e) > 60 {
					t.Fatalf("announced a %d-byte entry to a relay taking 60", len(e))
				}
			}
		}
	}
	c.sendEntries(c.channelOf(j.Handle), 1, c.Roster(k.ID()).Entries())
	fs = conn.Frames(t)
	if len(fs) != 1 || len(fs[0].(*wire.Delta).Entries) != 1 {
		t.Fatalf("a sync push sent %+v, want one Delta with the small entry", fs)
	}
}
