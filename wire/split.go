package wire

import "github.com/cosnim/relays/roster"

// AppendSyncSplit appends f as one or more Sync frames of at most limit bytes
// each (header included), splitting its ranges and wants between them and
// setting SyncMore on all but the last. Each frame is a sync message of its
// own, so the peer answers each. It returns the extended buffer and the
// number of frames appended. An empty message makes one frame.
func AppendSyncSplit(b []byte, f *Sync, limit int) ([]byte, int) {
	const overhead = HeaderSize + 4 + 4 + 1 + 2 + 10 // header, handle, session, flags, range count, want count
	budget := limit - overhead
	part := Sync{Handle: f.Handle, Session: f.Session}
	ranges, want := f.Msg.Ranges, f.Msg.Want
	frames := 0
	for {
		size := 0
		n := 0
		for n < len(ranges) {
			one := roster.SyncMsg{Ranges: ranges[n : n+1]}
			rs := one.EncodedSize() - 3 // less the range and want counts
			if n > 0 && size+rs > budget {
				break
			}
			size += rs
			n++
		}
		w := 0
		if n == len(ranges) {
			w = min(len(want), max(0, budget-size)/roster.IDSize)
			if w == 0 && n == 0 && len(want) > 0 {
				w = 1
			}
		}
		part.Msg = roster.SyncMsg{Ranges: ranges[:n], Want: want[:w]}
		ranges, want = ranges[n:], want[w:]
		part.Flags = 0
		if len(ranges) > 0 || len(want) > 0 {
			part.Flags = SyncMore
		}
		b = Append(b, &part)
		frames++
		if part.Flags == 0 {
			return b, frames
		}
	}
}

// EntriesFrameSize is the size of an Announce, Deliver or Delta frame of n
// entries whose sealed bytes add up to sealed: header, handle, seq or
// session, count, then a u16 length per entry.
func EntriesFrameSize(n, sealed int) int {
	return HeaderSize + 4 + 4 + 2 + 2*n + sealed
}

// EntriesFit reports how many of the leading n entries, whose sealed sizes
// size gives, fit in one Deliver or Delta frame of at most limit bytes. It
// is at least 1 when n > 0: an entry alone always fits, since entries are
// smaller than the frame limit less this overhead.
func EntriesFit(n int, size func(i int) int, limit int) int {
	total := EntriesFrameSize(0, 0)
	for i := range n {
		total += 2 + size(i)
		if total > limit || i == 0xFFFF {
			return max(i, 1)
		}
	}
	return n
}
