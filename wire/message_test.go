package wire

import (
	"bytes"
	"testing"

	"github.com/cosnim/relays/roster"
)

func TestSplitMessage(t *testing.T) {
	joined := Append(nil, &Joined{Handle: 7, Cached: 3, Flags: JoinedComplete})
	sync := Append(nil, &Sync{Handle: 7, Session: 2})
	msg := append(append([]byte(nil), joined...), sync...)
	tests := []struct {
		name   string
		msg    []byte
		room   int
		ok     bool
		frames []Type
	}{
		{"two frames", msg, 3, true, []Type{TypeJoined, TypeSync}},
		{"empty", nil, 3, true, nil},
		{"more frames than room", msg, 1, false, []Type{TypeJoined}},
		{"cut inside the second", msg[:len(msg)-1], 3, false, []Type{TypeJoined}},
		{"cut inside a header", msg[:len(joined)+3], 3, false, []Type{TypeJoined}},
		{"zero length", []byte{0, 0, 0, 0, 1}, 3, false, nil},
		{"length past the end", []byte{0, 0, 0, 9, byte(TypePing), 0}, 3, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := SplitMessage(tc.msg, make([]RawFrame, 0, tc.room))
			if ok != tc.ok {
				t.Errorf("ok %v, want %v", ok, tc.ok)
			}
			var types []Type
			for _, f := range got {
				types = append(types, f.Type)
			}
			if !slicesEqual(types, tc.frames) {
				t.Errorf("got frames %v, want %v", types, tc.frames)
			}
		})
	}
	got, _ := SplitMessage(msg, make([]RawFrame, 0, 2))
	if !bytes.Equal(got[0].Payload, joined[HeaderSize:]) || !bytes.Equal(got[1].Payload, sync[HeaderSize:]) {
		t.Errorf("payloads %x %x, want %x %x", got[0].Payload, got[1].Payload, joined[HeaderSize:], sync[HeaderSize:])
	}
	if cap(got[0].Payload) != len(got[0].Payload) {
		t.Errorf("a payload's capacity reaches into the next frame")
	}
}

func slicesEqual(a, b []Type) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A message split agrees with the Reader over the same bytes.
func FuzzSplitMessage(f *testing.F) {
	f.Add(sampleStream())
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := SplitMessage(b, make([]RawFrame, 0, 64))
		var want []RawFrame
		rd := Reader{Max: len(b) + 4}
		err := rd.Feed(b, func(ty Type, p []byte) error {
			want = append(want, RawFrame{ty, p})
			return nil
		})
		whole := err == nil && rd.Buffered() == 0
		if len(want) > 64 {
			return // past the room given: SplitMessage stops early
		}
		if ok != whole {
			t.Fatalf("SplitMessage ok %v, Reader whole %v (%v)", ok, whole, err)
		}
		if ok && len(got) != len(want) {
			t.Fatalf("%d frames, Reader %d", len(got), len(want))
		}
		for i := range min(len(got), len(want)) {
			if got[i].Type != want[i].Type || !bytes.Equal(got[i].Payload, want[i].Payload) {
				t.Fatalf("frame %d: %v %x, Reader %v %x", i, got[i].Type, got[i].Payload, want[i].Type, want[i].Payload)
			}
		}
	})
}

func TestSetHandle(t *testing.T) {
	for _, nf := range samples() {
		t.Run(nf.name, func(t *testing.T) {
			b := Append(nil, nf.f)
			ok := SetHandle(b, 0xa1b2c3d4)
			if _, has := handleOf(nf.f); ok != has {
				t.Fatalf("SetHandle %v, want %v", ok, has)
			}
			if !ok {
				if !bytes.Equal(b, Append(nil, nf.f)) {
					t.Fatalf("SetHandle changed a frame without a handle")
				}
				return
			}
			g, err := Decode(nf.f.FrameType(), b[HeaderSize:])
			if err != nil {
				t.Fatal(err)
			}
			if h, _ := handleOf(g); h != 0xa1b2c3d4 {
				t.Fatalf("handle after SetHandle %#x, want 0xa1b2c3d4", h)
			}
		})
	}
	if SetHandle([]byte{0, 0, 0, 3, byte(TypeDeliver), 0, 0}, 1) {
		t.Errorf("SetHandle took a payload shorter than a handle")
	}
}

// handleOf is the Handle field of the frames whose payload starts with
// one (PROTOCOL.md's layouts), and whether f is one of them.
func handleOf(f Frame) (uint32, bool) {
	switch f := f.(type) {
	case *Join:
		return f.Handle, true
	case *Joined:
		return f.Handle, true
	case *Leave:
		return f.Handle, true
	case *Announce:
		return f.Handle, true
	case *Ack:
		return f.Handle, true
	case *Deliver:
		return f.Handle, true
	case *Sync:
		return f.Handle, true
	case *Delta:
		return f.Handle, true
	}
	return 0, false
}

// AppendSyncPart is AppendSyncSplit's first frame, standing alone.
func TestAppendSyncPart(t *testing.T) {
	var msg roster.SyncMsg
	for i := range 400 {
		msg.Ranges = append(msg.Ranges, roster.Range{
			Node: roster.Node{Depth: 4, Prefix: uint64(i)}, Mode: roster.ModeFingerprint,
			FP: roster.Fingerprint{Count: uint64(i)},
		})
	}
	f := &Sync{Handle: 3, Session: 9, Msg: msg}
	for _, limit := range []int{256, 4096, 1 << 20} {
		split, n := AppendSyncSplit(nil, f, limit)
		part, rest := AppendSyncPart(nil, f, limit)
		if rest != (n > 1) {
			t.Errorf("limit %d: left out %v, split into %d frames", limit, rest, n)
		}
		_, first, _, _ := Cut(split)
		var want Sync
		if err := want.DecodePayload(first); err != nil {
			t.Fatal(err)
		}
		want.Flags = 0
		if !bytes.Equal(part, Append(nil, &want)) {
			t.Errorf("limit %d: part is not the split's first frame without SyncMore", limit)
		}
		if len(part) > limit {
			t.Errorf("limit %d: part of %d bytes", limit, len(part))
		}
	}
}

// Known names exactly the types of the table, and no more.
func TestKnown(t *testing.T) {
	n := 0
	for i := range 256 {
		if Known(Type(i)) {
			n++
			if New(Type(i)) == nil {
				t.Errorf("%v is known but New makes nothing", Type(i))
			}
		}
	}
	if want := int(TypeError - TypeHello + 1); n != want {
		t.Errorf("%d known types, want %d", n, want)
	}
	if Known(0) || Known(0x7f) {
		t.Errorf("0 or 0x7f known")
	}
}
