package relay

import (
	"fmt"
	"slices"
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

// Announces that arrive in one read leave as one Deliver per member, in
// order; a frame of another kind between them, or another announcer,
// ends the batch first, so nothing is reordered around it.
func TestFanoutBatchesOneRead(t *testing.T) {
	for _, tc := range []struct {
		name       string
		fs         faults
		wantFrames int
	}{{"batched", nil, 3}, {"failpoint", faults{FailNoFanoutBatch: true}, 7}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{Faults: tc.fs})
			k := keys(t, "hub")
			p := h.member("pub", k, 1)
			q := h.member("pub2", k, 1)
			a := h.member("a", k, 1)
			var read []byte
			var want []string
			for i := range 5 {
				e := seal(t, k, fmt.Sprint("e", i))
				want = append(want, string(e.Sealed))
				read = wire.Append(read, &wire.Announce{Handle: 1, Seq: uint32(i + 1), Entries: [][]byte{e.Sealed}})
			}
			// A frame of another kind ends the batch.
			read = wire.Append(read, &wire.Ping{Data: 7})
			e := seal(t, k, "after-ping")
			want = append(want, string(e.Sealed))
			read = wire.Append(read, &wire.Announce{Handle: 1, Seq: 6, Entries: [][]byte{e.Sealed}})
			h.r.Data(p, read, h.now)
			// Another announcer's entry, in its own read, comes after.
			other := seal(t, k, "other")
			want = append(want, string(other.Sealed))
			h.send(q, &wire.Announce{Handle: 1, Seq: 1, Entries: [][]byte{other.Sealed}})

			var frames int
			var got []string
			for _, f := range a.Frames(t) {
				if d, ok := f.(*wire.Deliver); ok {
					frames++
					for _, e := range d.Entries {
						got = append(got, string(e))
					}
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("member got %d entries %q, want %d in announce order", len(got), got, len(want))
			}
			// Batched: the 5 announces, the one after the ping, the
			// other announcer's.
			if frames != tc.wantFrames {
				t.Errorf("%d Deliver frames, want %d", frames, tc.wantFrames)
			}
			var kinds []string
			for _, f := range p.Frames(t) {
				kinds = append(kinds, fmt.Sprintf("%T", f))
			}
			wantKinds := []string{"*wire.Ack", "*wire.Ack", "*wire.Ack", "*wire.Ack", "*wire.Ack", "*wire.Pong", "*wire.Ack", "*wire.Deliver"}
			if !slices.Equal(kinds, wantKinds) {
				t.Errorf("announcer got %v, want %v", kinds, wantKinds)
			}
		})
	}
}
