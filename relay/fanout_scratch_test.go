package relay

import (
	"testing"

	"github.com/cosnim/relays/transport/transporttest"
	"github.com/cosnim/relays/wire"
)

// delivered lists the sealed entries of the Deliver frames c was sent.
func delivered(t *testing.T, c *transporttest.Conn) []string {
	t.Helper()
	var got []string
	for _, f := range c.Frames(t) {
		if d, ok := f.(*wire.Deliver); ok {
			for _, e := range d.Entries {
				got = append(got, string(e))
			}
		}
	}
	return got
}

// A member that flushes what it held while slow, in the middle of a
// fan-out, must not change what the members after it are sent: the flush
// and the fan-out share encoding scratch.
func TestFanoutAfterPendingFlushSendsFreshEntries(t *testing.T) {
	h := newHarness(t, Config{})
	k := keys(t, "hub")
	p := h.member("pub", k, 1)
	a := h.member("a", k, 1)
	b := h.member("b", k, 1)
	c := h.member("c", k, 1)

	old := seal(t, k, "old")
	b.Backlog = 1 << 30 // b is slow: old is held for it
	h.send(p, &wire.Announce{Handle: 1, Seq: 1, Entries: [][]byte{old.Sealed}})
	p.Frames(t)
	delivered(t, a)
	delivered(t, c)
	if got := delivered(t, b); len(got) != 0 {
		t.Fatalf("slow member was sent %d entries, want them held", len(got))
	}

	b.Backlog = 0
	fresh := seal(t, k, "fresh")
	h.send(p, &wire.Announce{Handle: 1, Seq: 2, Entries: [][]byte{fresh.Sealed}})
	if got := delivered(t, a); len(got) != 1 || got[0] != string(fresh.Sealed) {
		t.Fatalf("a got %d entries, want the fresh one", len(got))
	}
	if got := delivered(t, b); len(got) != 2 || got[0] != string(old.Sealed) || got[1] != string(fresh.Sealed) {
		t.Fatalf("b got %d entries, want the held one then the fresh one", len(got))
	}
	if got := delivered(t, c); len(got) != 1 || got[0] != string(fresh.Sealed) {
		t.Fatalf("c got %d entries (fresh: %v), want the fresh one", len(got), len(got) == 1 && got[0] == string(fresh.Sealed))
	}
}
