package client

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport/transporttest"
	"github.com/cosnim/relays/wire"
)

// joinedWith returns a client core with cfg, connected and joined to one
// channel, and its connection.
func joinedWith(t *testing.T, cfg Config) (*Client, *transporttest.Conn, *roster.Keys, time.Time) {
	t.Helper()
	d := &fakeDialer{}
	cfg.Addrs = []string{"r"}
	c, err := New(cfg, d, rand.New(rand.NewPCG(1, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, k, now := newClientOf(t, nil) // the keys and clock tests share
	if err := c.Join(k, nil, now); err != nil {
		t.Fatal(err)
	}
	conn := welcomed(c, d, &wire.Welcome{Version: 1}, now)
	j := conn.Frames(t)[1].(*wire.Join)
	deliver(c, conn, &wire.Joined{Handle: j.Handle, Flags: wire.JoinedComplete}, now)
	conn.Frames(t)
	return c, conn, k, now
}

func announces(fs []wire.Frame) (frames, entries int, seqs map[uint32]bool) {
	seqs = map[uint32]bool{}
	for _, f := range fs {
		if a, ok := f.(*wire.Announce); ok {
			frames++
			entries += len(a.Entries)
			seqs[a.Seq] = true
		}
	}
	return frames, entries, seqs
}

// Announces within AnnounceDelay leave together, in one frame, under one
// seq; with no delay each leaves at once in its own.
func TestAnnouncesCoalesce(t *testing.T) {
	c, conn, k, now := joinedWith(t, Config{AnnounceDelay: time.Millisecond})
	var seqs []uint32
	for _, ref := range []string{"a", "b", "c"} {
		seq, err := c.Announce(k.ID(), []byte(ref), now)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	if n, _, _ := announces(conn.Frames(t)); n != 0 {
		t.Fatalf("%d Announce frames before the delay ran out, want 0", n)
	}
	if d, ok := c.Deadline(); !ok || d.After(now.Add(time.Millisecond)) {
		t.Fatalf("next deadline %v (%v), want within the 1ms delay", d, ok)
	}
	c.Tick(now.Add(time.Millisecond))
	frames, entries, sent := announces(conn.Frames(t))
	if frames != 1 || entries != 3 || len(sent) != 1 || !sent[seqs[0]] || seqs[0] != seqs[2] {
		t.Fatalf("sent %d frames with %d entries under seqs %v (Announce returned %v), want 1 frame of 3 under one seq", frames, entries, sent, seqs)
	}

	c, conn, k, now = joinedWith(t, Config{})
	for _, ref := range []string{"a", "b"} {
		if _, err := c.Announce(k.ID(), []byte(ref), now); err != nil {
			t.Fatal(err)
		}
	}
	if frames, _, _ := announces(conn.Frames(t)); frames != 2 {
		t.Fatalf("without a delay sent %d frames for 2 announces, want 2", frames)
	}
}

func TestAnnounceDelayBounded(t *testing.T) {
	cfg := Config{Addrs: []string{"r"}, AnnounceDelay: 2 * time.Millisecond}.WithDefaults()
	if err := cfg.Validate(); err == nil {
		t.Fatalf("an announce delay of 2ms was accepted; the bound is %v", MaxAnnounceDelay)
	}
}

// Announces held past one frame's worth leave in frames of their own seq
// each, so that an Ack acknowledges every entry of its seq.
func TestHeldAnnouncesOneSeqPerFrame(t *testing.T) {
	c, conn, k, now := joinedWith(t, Config{AnnounceDelay: time.Millisecond})
	ref := make([]byte, 1000)
	returned := map[uint32]int{}
	const n = 200 // about 200 KB: several 64 KiB frames
	for i := range n {
		ref[0], ref[1] = byte(i), byte(i>>8)
		seq, err := c.Announce(k.ID(), ref, now)
		if err != nil {
			t.Fatal(err)
		}
		returned[seq]++
	}
	c.Tick(now.Add(time.Millisecond))
	perSeq := map[uint32]int{}
	frames := 0
	for _, f := range conn.Frames(t) {
		if a, ok := f.(*wire.Announce); ok {
			frames++
			if perSeq[a.Seq] != 0 {
				t.Fatalf("seq %d carried by more than one frame", a.Seq)
			}
			perSeq[a.Seq] = len(a.Entries)
			if size := len(wire.Append(nil, a)); size > wire.DefaultMaxFrameSize {
				t.Fatalf("frame of %d bytes, over the limit", size)
			}
		}
	}
	if frames < 3 || len(perSeq) != frames {
		t.Fatalf("%d frames under %d seqs, want several frames, one seq each", frames, len(perSeq))
	}
	for seq, k := range returned {
		if perSeq[seq] != k {
			t.Fatalf("seq %d: Announce returned it for %d entries, its frame carries %d", seq, k, perSeq[seq])
		}
	}
}
