package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cosnim/relays/roster"
)

func TestAppendExactBytes(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
		want []byte
	}{
		{"ping", &Ping{Data: 0x0102030405060708}, []byte{
			0, 0, 0, 9, byte(TypePing), 1, 2, 3, 4, 5, 6, 7, 8}},
		{"ack", &Ack{Handle: 0x0A0B0C0D, Seq: 5}, []byte{
			0, 0, 0, 9, byte(TypeAck), 0x0A, 0x0B, 0x0C, 0x0D, 0, 0, 0, 5}},
		{"hello", &Hello{MinVersion: 1, MaxVersion: 2, Agent: "ab"}, []byte{
			0, 0, 0, 12, byte(TypeHello), 'C', 'S', 'N', 'M', 0, 1, 0, 2, 2, 'a', 'b'}},
		{"announce", &Announce{Handle: 1, Seq: 2, Entries: [][]byte{{0xAA}, {0xBB, 0xCC}}}, []byte{
			0, 0, 0, 18, byte(TypeAnnounce),
			0, 0, 0, 1, 0, 0, 0, 2, // handle, seq
			0, 2, // count
			0, 1, 0xAA,
			0, 2, 0xBB, 0xCC}},
		{"error", &Error{Code: CodeJoinDenied, Handle: 3, Flags: ErrorFatal, Text: "no"}, []byte{
			0, 0, 0, 12, byte(TypeError), 0, 5, 0, 0, 0, 3, 1, 0, 2, 'n', 'o'}},
		{"welcome", &Welcome{Version: 1, Epoch: 2, Limits: []Limit{{LimitMaxChannels, 300}}}, []byte{
			0, 0, 0, 32, byte(TypeWelcome), 0, 1, 0, 0, 0, 0, 0, 0, 0, 2,
			0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // nonce
			1, 0, 2, 0xAC, 0x02}}, // one limit: key 2, uvarint 300
		{"sync", &Sync{Handle: 1, Session: 2, Flags: SyncMore, Msg: roster.SyncMsg{Ranges: []roster.Range{
			{Node: roster.Node{Depth: 3, Prefix: 0xABC}, Mode: roster.ModeFingerprint, FP: roster.Fingerprint{Count: 2}},
			{Node: roster.Node{Depth: 2, Prefix: 0x12}, Mode: roster.ModeIDs},
		}}}, []byte{
			0, 0, 0, 38, byte(TypeSync), 0, 0, 0, 1, 0, 0, 0, 2,
			SyncMore, // flags
			0, 2,     // ranges
			3, 0x0A, 0xBC, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
			2, 0x12, 2, 0, // depth 2, prefix, ModeIDs, no IDs
			0}}, // no wants
		{"drain", &Drain{AfterMillis: 1, JitterMillis: 2, Alternates: []string{"x"}}, []byte{
			0, 0, 0, 13, byte(TypeDrain), 0, 0, 0, 1, 0, 0, 0, 2, 1, 0, 1, 'x'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Append([]byte{0xFF}, tt.f)
			if !bytes.Equal(got[1:], tt.want) || got[0] != 0xFF {
				t.Fatalf("Append = % x\nwant    ff % x", got, tt.want)
			}
			f, err := Decode(tt.f.FrameType(), tt.want[HeaderSize:])
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if d := diffFrames(tt.f, f); d != "" {
				t.Fatalf("Decode mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 1000)
	tests := append(samples(),
		namedFrame{"hello-empty", &Hello{}},
		namedFrame{"hello-max-agent", &Hello{MinVersion: 1, MaxVersion: 1, Agent: strings.Repeat("a", MaxAgentLen)}},
		namedFrame{"welcome-no-limits", &Welcome{Version: 1}},
		namedFrame{"announce-empty", &Announce{Handle: 1}},
		namedFrame{"announce-big-entry", &Announce{Entries: [][]byte{bytes.Repeat([]byte{7}, 0xFFFF)}}},
		namedFrame{"deliver-many", &Deliver{Entries: [][]byte{{1}, {2}, {3}, {4}, {5}}}},
		namedFrame{"sync-empty", &Sync{Handle: 1, Session: 1}},
		namedFrame{"sync-max-fp", &Sync{Msg: roster.SyncMsg{Ranges: []roster.Range{{
			Node: roster.Node{Depth: 15, Prefix: 1<<60 - 1}, Mode: roster.ModeFingerprint,
			FP: roster.Fingerprint{Count: ^uint64(0), Sum: [16]byte{0: 0xFF, 15: 0xFF}}}}}}},
		namedFrame{"delta-empty", &Delta{}},
		namedFrame{"drain-max", &Drain{Alternates: []string{long[:MaxAlternateLen], "", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n"}}},
		namedFrame{"error-max-text", &Error{Code: Code(999), Text: strings.Repeat("é", MaxErrorText/2)}},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Validate(tt.f); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			b := Append(nil, tt.f)
			var got []rawFrame
			r := Reader{Max: 1 << 20}
			if err := r.Feed(b, collect(&got)); err != nil {
				t.Fatalf("Feed: %v", err)
			}
			if len(got) != 1 || got[0].Type != tt.f.FrameType() {
				t.Fatalf("Feed yielded %v, want one %v frame", got, tt.f.FrameType())
			}
			f, err := Decode(got[0].Type, got[0].Payload)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if d := diffFrames(tt.f, f); d != "" {
				t.Fatalf("round trip mismatch (-want +got):\n%s", d)
			}
		})
	}
}

// TestDecodeReuse decodes every sample into a frame that holds another
// decoded value of the same type, checking that reused slices carry nothing
// over.
func TestDecodeReuse(t *testing.T) {
	big := map[Type]Frame{
		TypeAnnounce: &Announce{Handle: 1, Entries: [][]byte{{1}, {2}, {3}, {4}}},
		TypeSync: &Sync{Msg: roster.SyncMsg{Ranges: []roster.Range{
			{Mode: roster.ModeIDs, IDs: []roster.ID{id(1), id(2), id(3)}},
			{Mode: roster.ModeIDs, IDs: []roster.ID{id(4)}},
			{Mode: roster.ModeIDs, IDs: []roster.ID{id(5)}},
			{Mode: roster.ModeIDs, IDs: []roster.ID{id(6)}},
		}, Want: []roster.ID{id(7), id(8)}}},
		TypeDrain:   &Drain{Alternates: []string{"a", "b", "c"}},
		TypeWelcome: &Welcome{Limits: DefaultLimits()},
	}
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			f := New(s.f.FrameType())
			if b, ok := big[s.f.FrameType()]; ok {
				if err := f.DecodePayload(b.AppendPayload(nil)); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.DecodePayload(s.f.AppendPayload(nil)); err != nil {
				t.Fatal(err)
			}
			if d := diffFrames(s.f, f); d != "" {
				t.Fatalf("reused decode mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestDecodeTruncated(t *testing.T) {
	for _, s := range samples() {
		p := s.f.AppendPayload(nil)
		for n := range len(p) {
			_, err := Decode(s.f.FrameType(), p[:n])
			var fe *FrameError
			if !errors.As(err, &fe) || fe.Type != s.f.FrameType() {
				t.Fatalf("%s: Decode of %d/%d bytes: got %v, want *FrameError for %v", s.name, n, len(p), err, s.f.FrameType())
			}
		}
	}
}

func TestDecodeTrailing(t *testing.T) {
	for _, s := range samples() {
		p := append(s.f.AppendPayload(nil), 0)
		_, err := Decode(s.f.FrameType(), p)
		var fe *FrameError
		if !errors.As(err, &fe) {
			t.Errorf("%s: Decode with a trailing byte: got %v, want *FrameError", s.name, err)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	ids := func(b ...byte) []byte { return b }
	tests := []struct {
		name string
		t    Type
		p    []byte
	}{
		{"hello bad magic", TypeHello, []byte{'T', 'L', 'S', '!', 0, 1, 0, 1, 0}},
		{"welcome varint overflow", TypeWelcome, append(make([]byte, 26), 1, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01)},
		{"welcome non-minimal varint", TypeWelcome, append(make([]byte, 26), 1, 0, 1, 0x80, 0x00)},
		{"welcome count over payload", TypeWelcome, append(make([]byte, 26), 2, 0, 1, 5)},
		{"announce empty entry", TypeAnnounce, ids(0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0)},
		{"announce count over payload", TypeAnnounce, ids(0, 0, 0, 1, 0, 0, 0, 1, 0xFF, 0xFF, 0, 1, 9)},
		{"deliver entry over payload", TypeDeliver, ids(0, 0, 0, 1, 0, 1, 0, 5, 1, 2)},
		{"sync depth 17", TypeSync, ids(0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0)},
		{"sync unknown mode", TypeSync, ids(0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 3, 0, 0)},
		{"sync prefix above depth", TypeSync, ids(0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0x10, 2, 0, 0)},
		{"sync want over payload", TypeSync, ids(0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 2, 1, 2, 3)},
		{"drain 17 alternates", TypeDrain, append(ids(0, 0, 0, 1, 0, 0, 0, 1, 17), make([]byte, 34)...)},
		{"drain alternate too long", TypeDrain, append(ids(0, 0, 0, 1, 0, 0, 0, 1, 1, 0x02, 0x01), make([]byte, 513)...)},
		{"error text too long", TypeError, append(ids(0, 1, 0, 0, 0, 0, 0, 0x04, 0x01), make([]byte, 1025)...)},
		{"join short", TypeJoin, make([]byte, 131)},
		{"ping empty", TypePing, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.t, tt.p)
			var fe *FrameError
			if !errors.As(err, &fe) || fe.Type != tt.t {
				t.Fatalf("Decode: got %v, want *FrameError for %v", err, tt.t)
			}
			if !strings.HasPrefix(err.Error(), "wire: ") {
				t.Errorf("error %q lacks the wire: prefix", err)
			}
		})
	}
}

func TestDecodeUnknownType(t *testing.T) {
	for _, typ := range []Type{0, 0x0F, 0x7F, 0xFF} {
		f, err := Decode(typ, []byte{1, 2, 3})
		if !errors.Is(err, ErrUnknownType) || f != nil {
			t.Errorf("Decode(%v) = %v, %v; want nil, ErrUnknownType", typ, f, err)
		}
	}
}

func TestAppendClamps(t *testing.T) {
	t.Run("agent", func(t *testing.T) {
		f := &Hello{Agent: strings.Repeat("a", 300)}
		g := decodeSame(t, f).(*Hello)
		if len(g.Agent) != MaxAgentLen {
			t.Fatalf("got agent of %d bytes, want %d", len(g.Agent), MaxAgentLen)
		}
	})
	t.Run("text at a character boundary", func(t *testing.T) {
		f := &Error{Text: "x" + strings.Repeat("é", MaxErrorText/2)} // 1025 bytes
		g := decodeSame(t, f).(*Error)
		if want := f.Text[:MaxErrorText-1]; g.Text != want {
			t.Fatalf("got text of %d bytes, want %d", len(g.Text), len(want))
		}
	})
	t.Run("alternates", func(t *testing.T) {
		var as []string
		as = append(as, strings.Repeat("u", MaxAlternateLen+1))
		for i := range 20 {
			as = append(as, string(rune('a'+i)))
		}
		g := decodeSame(t, &Drain{Alternates: as}).(*Drain)
		if d := diffFrames(&Drain{Alternates: as[1 : 1+MaxAlternates]}, g); d != "" {
			t.Fatalf("clamped alternates (-want +got):\n%s", d)
		}
	})
}

func decodeSame(t *testing.T, f Frame) Frame {
	t.Helper()
	if Validate(f) == nil {
		t.Errorf("Validate(%v) = nil, want an error for a clamped field", f.FrameType())
	}
	g, err := Decode(f.FrameType(), f.AppendPayload(nil))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return g
}

func TestValidate(t *testing.T) {
	for _, s := range samples() {
		if err := Validate(s.f); err != nil {
			t.Errorf("Validate(%s) = %v, want nil", s.name, err)
		}
	}
	bad := []namedFrame{
		{"empty entry", &Announce{Entries: [][]byte{{}}}},
		{"huge entry", &Deliver{Entries: [][]byte{make([]byte, 0x10000)}}},
		{"too many entries", &Delta{Entries: make([][]byte, 0x10000)}},
		{"deep node", &Sync{Msg: roster.SyncMsg{Ranges: []roster.Range{{Node: roster.Node{Depth: 17}, Mode: roster.ModeIDs}}}}},
		{"prefix bits", &Sync{Msg: roster.SyncMsg{Ranges: []roster.Range{{Node: roster.Node{Depth: 1, Prefix: 0x10}, Mode: roster.ModeIDs}}}}},
		{"no mode", &Sync{Msg: roster.SyncMsg{Ranges: []roster.Range{{}}}}},
		{"ids in fp", &Sync{Msg: roster.SyncMsg{Ranges: []roster.Range{{Mode: roster.ModeFingerprint, IDs: []roster.ID{{}}}}}}},
		{"fp in ids", &Sync{Msg: roster.SyncMsg{Ranges: []roster.Range{{Mode: roster.ModeIDs, FP: roster.Fingerprint{Count: 1}}}}}},
		{"many limits", &Welcome{Limits: make([]Limit, 256)}},
		{"many alternates", &Drain{Alternates: make([]string, MaxAlternates+1)}},
	}
	for _, s := range bad {
		var fe *FrameError
		if err := Validate(s.f); !errors.As(err, &fe) || fe.Type != s.f.FrameType() {
			t.Errorf("Validate(%s) = %v, want *FrameError", s.name, err)
		}
	}
}

func TestNames(t *testing.T) {
	for typ := range 256 {
		f, name := New(Type(typ)), Type(typ).String()
		if (f != nil) == strings.HasPrefix(name, "Type(") {
			t.Errorf("Type(%d).String() = %q, New = %T", typ, name, f)
		}
		if f != nil && f.FrameType() != Type(typ) {
			t.Errorf("New(%v).FrameType() = %v", Type(typ), f.FrameType())
		}
	}
	if got := TypeAnnounce.String(); got != "Announce" {
		t.Errorf("TypeAnnounce.String() = %q, want Announce", got)
	}
	if got := Type(0x2A).String(); got != "Type(0x2a)" {
		t.Errorf("Type(0x2a).String() = %q", got)
	}
	for c := CodeProtocol; c <= CodeQueueFull; c++ {
		if strings.HasPrefix(c.String(), "Code(") {
			t.Errorf("Code %d has no name", c)
		}
	}
	if got := CodeResync.String(); got != "resync" {
		t.Errorf("CodeResync.String() = %q", got)
	}
	if got := Code(99).String(); got != "Code(99)" {
		t.Errorf("Code(99).String() = %q", got)
	}
	for _, l := range DefaultLimits() {
		if strings.HasPrefix(l.Key.String(), "Limit(") {
			t.Errorf("limit %d has no name", l.Key)
		}
	}
}

func TestWelcomeLimit(t *testing.T) {
	w := &Welcome{Limits: DefaultLimits()}
	if v, ok := w.Limit(LimitIdleTimeoutMilli); !ok || v != 45000 {
		t.Errorf("Limit(idle) = %d, %v; want 45000, true", v, ok)
	}
	if _, ok := w.Limit(LimitKey(77)); ok {
		t.Error("Limit(77) found, want absent")
	}
}

func TestAppendAllocs(t *testing.T) {
	entries := make([][]byte, 64)
	for i := range entries {
		entries[i] = seq(128, byte(i))
	}
	frames := []Frame{
		&Announce{Handle: 1, Seq: 2, Entries: entries},
		&Deliver{Handle: 1, Entries: entries},
		&Delta{Handle: 1, Session: 2, Entries: entries},
		&Ack{Handle: 1, Seq: 2},
	}
	for _, f := range frames {
		buf := make([]byte, 0, 64<<10)
		if n := testing.AllocsPerRun(100, func() { buf = Append(buf[:0], f) }); n != 0 {
			t.Errorf("Append(%v) allocates %v times, want 0", f.FrameType(), n)
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	for _, s := range samples() {
		switch s.f.FrameType() {
		case TypeAnnounce, TypeDeliver, TypeDelta, TypeAck, TypeSync:
		default:
			continue
		}
		p := s.f.AppendPayload(nil)
		f := New(s.f.FrameType())
		if err := f.DecodePayload(p); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { _ = f.DecodePayload(p) }); n != 0 {
			t.Errorf("DecodePayload(%s) into a used frame allocates %v times, want 0", s.name, n)
		}
	}
}

// TestDecodeCountNoAlloc checks that a declared count is checked against the
// payload before anything is allocated for it.
func TestDecodeCountNoAlloc(t *testing.T) {
	p := []byte{0, 0, 0, 1, 0, 0, 0, 1, 0xFF, 0xFF, 0, 1, 9} // 65535 entries claimed
	var f Announce
	n := testing.AllocsPerRun(100, func() {
		if f.DecodePayload(p) == nil {
			t.Fatal("decoded a count over the payload")
		}
	})
	if n > 1 { // the *FrameError
		t.Errorf("DecodePayload allocates %v times, want at most 1", n)
	}
}

func TestEntriesAliasPayload(t *testing.T) {
	p := (&Announce{Entries: [][]byte{{1, 2}, {3}}}).AppendPayload(nil)
	var f Announce
	if err := f.DecodePayload(p); err != nil {
		t.Fatal(err)
	}
	if &f.Entries[0][0] != &p[12] {
		t.Error("Entries[0] does not alias the payload")
	}
	if cap(f.Entries[0]) != 2 {
		t.Errorf("cap(Entries[0]) = %d, want 2 so appends cannot overwrite the payload", cap(f.Entries[0]))
	}
}

// Frames decodes every type like Decode does, into frames it reuses, and
// without allocating once warm.
func TestFramesDecodeReuses(t *testing.T) {
	var s Frames
	for ty := range Type(255) {
		want := New(ty)
		if want == nil {
			if _, err := s.Decode(ty, nil); !errors.Is(err, ErrUnknownType) {
				t.Errorf("type %v: err %v, want ErrUnknownType", ty, err)
			}
			continue
		}
		if s.frame(ty).FrameType() != ty {
			t.Errorf("type %v: set returns a %v frame", ty, s.frame(ty).FrameType())
		}
	}
	ann := &Announce{Handle: 3, Seq: 7, Entries: [][]byte{[]byte("abc"), []byte("de")}}
	p := ann.AppendPayload(nil)
	f1, err := s.Decode(TypeAnnounce, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := f1.(*Announce); got.Handle != 3 || got.Seq != 7 || len(got.Entries) != 2 || string(got.Entries[1]) != "de" {
		t.Fatalf("decoded %+v, want %+v", got, ann)
	}
	f2, _ := s.Decode(TypeAnnounce, p)
	if f1 != f2 {
		t.Fatal("second Decode of the same type returned a new frame")
	}
	if n := testing.AllocsPerRun(100, func() { s.Decode(TypeAnnounce, p) }); n != 0 {
		t.Fatalf("Decode allocates %.1f times per call once warm, want 0", n)
	}
}
