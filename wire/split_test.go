package wire

import (
	"testing"

	"github.com/cosnim/relays/roster"
	"github.com/google/go-cmp/cmp"
)

func TestAppendSyncSplit(t *testing.T) {
	var msg roster.SyncMsg
	for i := range 3000 {
		msg.Ranges = append(msg.Ranges, roster.Range{
			Node: roster.Node{Depth: 4, Prefix: uint64(i % 65536)}, Mode: roster.ModeFingerprint,
			FP: roster.Fingerprint{Count: uint64(i)},
		})
	}
	for i := range 2500 {
		var id roster.ID
		id[0], id[1] = byte(i>>8), byte(i)
		msg.Want = append(msg.Want, id)
	}
	const max = 4096
	b, n := AppendSyncSplit(nil, &Sync{Handle: 3, Session: 9, Msg: msg}, max)
	if n < 2 {
		t.Fatalf("split into %d frames, want several", n)
	}
	var rd Reader
	rd.Max = max
	var got roster.SyncMsg
	frames, more := 0, 0
	err := rd.Feed(b, func(ty Type, p []byte) error {
		var f Sync
		if err := f.DecodePayload(p); err != nil {
			return err
		}
		frames++
		if f.Flags&SyncMore != 0 {
			more++
		} else if frames != n {
			t.Errorf("frame %d of %d lacks SyncMore", frames, n)
		}
		if f.Handle != 3 || f.Session != 9 {
			t.Errorf("frame %d has handle %d session %d", frames, f.Handle, f.Session)
		}
		got.Ranges = append(got.Ranges, f.Msg.Ranges...)
		got.Want = append(got.Want, f.Msg.Want...)
		return nil
	})
	if err != nil {
		t.Fatalf("a split frame broke the %d-byte limit or failed to decode: %v", max, err)
	}
	if frames != n || more != n-1 {
		t.Fatalf("read %d frames (%d with SyncMore), want %d (%d)", frames, more, n, n-1)
	}
	if diff := cmp.Diff(msg, got); diff != "" {
		t.Fatalf("reassembled message differs (-want +got):\n%s", diff)
	}
	_, n = AppendSyncSplit(nil, &Sync{}, max)
	if n != 1 {
		t.Fatalf("empty message made %d frames, want 1", n)
	}
}

// roster's size model must match this package's encoding, since splitting
// relies on it.
func TestEncodedSizeMatchesWire(t *testing.T) {
	var id roster.ID
	m := roster.SyncMsg{
		Ranges: []roster.Range{
			{Mode: roster.ModeFingerprint, FP: roster.Fingerprint{Count: 100000}},
			{Node: roster.Node{Depth: 3, Prefix: 0xabc}, Mode: roster.ModeIDs, IDs: []roster.ID{id, id}},
			{Node: roster.Node{Depth: 16}, Mode: roster.ModeIDs},
		},
		Want: []roster.ID{id},
	}
	for _, msg := range []roster.SyncMsg{m, {}} {
		payload := (&Sync{Msg: msg}).AppendPayload(nil)
		if got, want := msg.EncodedSize(), len(payload)-9; got != want {
			t.Errorf("EncodedSize = %d, wire payload less handle, session and flags = %d", got, want)
		}
	}
}

func TestEntriesFit(t *testing.T) {
	thirty := func(int) int { return 30 }
	tests := []struct {
		name           string
		n, limit, want int
	}{
		{"none", 0, 100, 0},
		{"two of five", 5, 100, 2}, // 15 + 2×32 = 79; a third makes 111
		{"all", 2, 100, 2},
		{"one too big still goes", 3, 40, 1},
	}
	for _, tt := range tests {
		if got := EntriesFit(tt.n, thirty, tt.limit); got != tt.want {
			t.Errorf("%s: EntriesFit(%d, 30 each, %d) = %d, want %d", tt.name, tt.n, tt.limit, got, tt.want)
		}
	}
	// What fits, encoded, stays within the limit.
	entries := [][]byte{make([]byte, 30), make([]byte, 30), make([]byte, 30)}
	n := EntriesFit(len(entries), func(i int) int { return len(entries[i]) }, 100)
	if b := Append(nil, &Delta{Entries: entries[:n]}); len(b) > 100 {
		t.Fatalf("%d entries that fit encode to %d bytes, over 100", n, len(b))
	}
}
