package wire

import (
	"errors"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func nopFrame(Type, []byte) error { return nil }

func TestReaderHugeLengthRefused(t *testing.T) {
	huge := []byte{0xFF, 0xFF, 0xFF, 0xFF, byte(TypeAnnounce), 0, 0}
	for split := range 5 {
		var r Reader
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := r.Feed(huge[:split], nopFrame)
		if err == nil {
			err = r.Feed(huge[split:], nopFrame)
		}
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("split %d: Feed = %v, want ErrFrameTooLarge", split, err)
		}
		if r.Buffered() != 0 || r.BufCapForTest() != 0 {
			t.Errorf("split %d: Buffered() = %d, cap %d after refusal, want 0", split, r.Buffered(), r.BufCapForTest())
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("split %d: refusing allocated %d bytes", split, n)
		}
		// Errors are sticky.
		if err := r.Feed([]byte{0, 0, 0, 1, 1}, nopFrame); !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("split %d: Feed after error = %v, want the same error", split, err)
		}
	}
}

func TestReaderMaxBoundary(t *testing.T) {
	const max = 100
	frame := func(size int) []byte {
		b := make([]byte, size)
		b[3] = byte(size - 4)
		b[4] = byte(TypePing)
		return b
	}
	var got []rawFrame
	r := Reader{Max: max}
	if err := r.Feed(frame(max), collect(&got)); err != nil || len(got) != 1 {
		t.Fatalf("frame of exactly Max: err %v, %d frames; want nil, 1", err, len(got))
	}
	r = Reader{Max: max}
	if err := r.Feed(frame(max + 1)[:4], nopFrame); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("frame of Max+1: got %v, want ErrFrameTooLarge", err)
	}
	r = Reader{} // default Max
	big := make([]byte, 4)
	big[1] = 1 // 65536 + 4 bytes
	if err := r.Feed(big, nopFrame); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("frame over DefaultMaxFrameSize: got %v, want ErrFrameTooLarge", err)
	}
}

func TestReaderEmptyFrame(t *testing.T) {
	var r Reader
	err := r.Feed([]byte{0, 0, 0, 0, 1}, nopFrame)
	if !errors.Is(err, ErrEmptyFrame) {
		t.Fatalf("Feed = %v, want ErrEmptyFrame", err)
	}
}

func TestReaderSplitEveryPosition(t *testing.T) {
	stream := sampleStream()
	var want []rawFrame
	var r Reader
	if err := r.Feed(stream, collect(&want)); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(samples()) {
		t.Fatalf("one-shot Feed yielded %d frames, want %d", len(want), len(samples()))
	}
	check := func(name string, chunks ...[]byte) {
		t.Helper()
		var got []rawFrame
		var r Reader
		for _, c := range chunks {
			if err := r.Feed(c, collect(&got)); err != nil {
				t.Fatalf("%s: Feed: %v", name, err)
			}
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("%s: frames (-want +got):\n%s", name, d)
		}
		if r.Buffered() != 0 || r.BufCapForTest() != 0 {
			t.Fatalf("%s: reader holds %d bytes (cap %d) at the end, want 0", name, r.Buffered(), r.BufCapForTest())
		}
	}
	for i := range len(stream) + 1 {
		check("split", stream[:i], stream[i:])
	}
	bytewise := make([][]byte, len(stream))
	for i := range stream {
		bytewise[i] = stream[i : i+1]
	}
	check("byte by byte", bytewise...)
}

func TestReaderWholeFramesNotCopied(t *testing.T) {
	b := Append(nil, &Ping{Data: 1})
	b = Append(b, &Ack{Handle: 1})
	var offs []int
	var r Reader
	err := r.Feed(b, func(_ Type, p []byte) error {
		for i := range b {
			if &b[i] == &p[0] {
				offs = append(offs, i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]int{HeaderSize, 13 + HeaderSize}, offs); d != "" {
		t.Fatalf("payload offsets in b (-want +got):\n%s", d)
	}
}

func TestReaderReleasesBuffer(t *testing.T) {
	b := Append(nil, &Announce{Entries: [][]byte{make([]byte, 1000)}})
	var r Reader
	n := 0
	count := func(Type, []byte) error { n++; return nil }
	if err := r.Feed(b[:700], count); err != nil {
		t.Fatal(err)
	}
	if r.Buffered() != 700 || r.BufCapForTest() > len(b) {
		t.Fatalf("partial: Buffered() = %d (cap %d), want 700 (cap <= %d)", r.Buffered(), r.BufCapForTest(), len(b))
	}
	if err := r.Feed(b[700:], count); err != nil {
		t.Fatal(err)
	}
	if n != 1 || r.Buffered() != 0 || r.BufCapForTest() != 0 {
		t.Fatalf("complete: %d frames, Buffered() = %d, cap %d; want 1, 0, 0", n, r.Buffered(), r.BufCapForTest())
	}
}

// TestReaderGrowsWithInput checks that a peer announcing a large frame and
// sending little of it costs little memory.
func TestReaderGrowsWithInput(t *testing.T) {
	r := Reader{Max: 1 << 24}
	if err := r.Feed([]byte{0, 0xF0, 0, 0, 1, 2, 3}, nopFrame); err != nil {
		t.Fatal(err)
	}
	if c := r.BufCapForTest(); c > 4096 {
		t.Fatalf("buffer capacity %d after 7 bytes of a 15 MiB frame", c)
	}
}

func TestReaderUnknownTypePassedThrough(t *testing.T) {
	b := []byte{0, 0, 0, 3, 0x7F, 1, 2}
	b = Append(b, &Ping{Data: 9})
	var got []rawFrame
	var r Reader
	if err := r.Feed(b, collect(&got)); err != nil {
		t.Fatal(err)
	}
	want := []rawFrame{{0x7F, []byte{1, 2}}, {TypePing, []byte{0, 0, 0, 0, 0, 0, 0, 9}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("frames (-want +got):\n%s", d)
	}
}

func TestReaderStopsOnCallbackError(t *testing.T) {
	errStop := errors.New("stop")
	b := Append(Append(nil, &Ping{}), &Pong{})
	var r Reader
	n := 0
	err := r.Feed(b, func(Type, []byte) error { n++; return errStop })
	if !errors.Is(err, errStop) || n != 1 {
		t.Fatalf("Feed = %v after %d frames, want errStop after 1", err, n)
	}
	r.Reset()
	if err := r.Feed(b, nopFrame); err != nil {
		t.Fatalf("Feed after Reset = %v", err)
	}
}
