package relay

import (
	"encoding/binary"
	"testing"

	"github.com/cosnim/relays/transport/transporttest"
	"github.com/cosnim/relays/wire"
)

// PROTOCOL §8: a bad entry is dropped alone; the rest of its frame is
// stored, fanned out and acked.
func TestBadEntryDropsOnlyItself(t *testing.T) {
	h := newHarness(t, Config{MaxEntrySize: 100})
	k := keys(t, "hub")
	a := h.member("a", k, 1)
	b := h.member("b", k, 1)
	good := seal(t, k, "good")
	h.send(a, &wire.Announce{Handle: 1, Seq: 4, Entries: [][]byte{make([]byte, 101), good.Sealed, make([]byte, 200)}})
	fs := a.Frames(t)
	if len(fs) != 2 {
		t.Fatalf("announcer got %d frames, want an Error then an Ack: %+v", len(fs), fs)
	}
	if e, ok := fs[0].(*wire.Error); !ok || e.Code != wire.CodeBadEntry || e.Flags&wire.ErrorFatal != 0 {
		t.Fatalf("first frame %+v, want a non-fatal bad entry Error", fs[0])
	}
	if ack, ok := fs[1].(*wire.Ack); !ok || ack.Seq != 4 {
		t.Fatalf("second frame %+v, want Ack 4", fs[1])
	}
	got := b.Frames(t)
	if len(got) != 1 {
		t.Fatalf("member got %d frames, want one Deliver", len(got))
	}
	if d, ok := got[0].(*wire.Deliver); !ok || len(d.Entries) != 1 || string(d.Entries[0]) != string(good.Sealed) {
		t.Fatalf("member got %+v, want the good entry alone", got[0])
	}
	if st := h.r.Stats(); st.BadEntries != 2 /* 101 and 200 bytes */ || st.EntriesIn != 1 {
		t.Fatalf("stats: %d bad entries, %d stored; want 2 and 1", st.BadEntries, st.EntriesIn)
	}
}

// A Leave for a handle that is not joined is answered, like any other
// frame naming one.
func TestLeaveUnknownHandle(t *testing.T) {
	h := newHarness(t, Config{})
	c, _ := h.connect("a")
	h.send(c, &wire.Leave{Handle: 9})
	fs := c.Frames(t)
	if len(fs) != 1 {
		t.Fatalf("got %d frames, want one Error", len(fs))
	}
	if e, ok := fs[0].(*wire.Error); !ok || e.Code != wire.CodeUnknownHandle || e.Handle != 9 {
		t.Fatalf("got %+v, want unknown handle Error for handle 9", fs[0])
	}
}

// PROTOCOL §11: before Welcome the default frame size holds, whatever the
// relay's configured one.
func TestFrameLimitBeforeWelcomeIsDefault(t *testing.T) {
	h := newHarness(t, Config{MaxFrameSize: 4 * wire.DefaultMaxFrameSize, ByteRate: 1 << 30})
	c := &transporttest.Conn{Addr: "big"}
	h.r.Open(c, h.now)
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(wire.DefaultMaxFrameSize)) // a frame just over the default
	h.r.Data(c, hdr[:], h.now)
	fs := c.Frames(t)
	if len(fs) != 1 {
		t.Fatalf("got %d frames, want one Error", len(fs))
	}
	if e, ok := fs[0].(*wire.Error); !ok || e.Code != wire.CodeFrameTooLarge {
		t.Fatalf("got %+v, want frame too large", fs[0])
	}
	// After Welcome the configured size holds.
	d, _ := h.connect("after")
	h.r.Data(d, wire.Append(nil, &wire.Ping{Data: 1}), h.now)
	h.r.Data(d, hdr[:], h.now)
	for _, f := range d.Frames(t) {
		if e, ok := f.(*wire.Error); ok {
			t.Fatalf("a frame within the configured size was refused after Welcome: %+v", e)
		}
	}
}
