package wire

import (
	"fmt"
	"testing"
)

func benchAnnounce(n int) *Announce {
	f := &Announce{Handle: 1, Seq: 1, Entries: make([][]byte, n)}
	for i := range f.Entries {
		f.Entries[i] = seq(128, byte(i))
	}
	return f
}

func BenchmarkAppendAnnounce(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			f := benchAnnounce(n)
			buf := Append(nil, f)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf = Append(buf[:0], f)
			}
		})
	}
}

func BenchmarkDecodeAnnounce(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			p := benchAnnounce(n).AppendPayload(nil)
			var f Announce
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if err := f.DecodePayload(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReaderFeed feeds a stream of Announce frames in 16 KiB reads, as
// from a socket, so some frames span reads and are buffered.
func BenchmarkReaderFeed(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			var stream []byte
			for len(stream) < 1<<20 {
				stream = Append(stream, benchAnnounce(n))
			}
			var f Announce
			decode := func(_ Type, p []byte) error { return f.DecodePayload(p) }
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				var r Reader
				for s := stream; len(s) > 0; {
					k := min(len(s), 16<<10)
					if err := r.Feed(s[:k], decode); err != nil {
						b.Fatal(err)
					}
					s = s[k:]
				}
			}
		})
	}
}
