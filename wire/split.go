package wire

import "github.com/cosnim/relays/roster"

// syncOverhead is a Sync frame's size without ranges or wants: header,
// handle, session, flags, range count, want count (a uvarint, at most 10).
const syncOverhead = HeaderSize + 4 + 4 + 1 + 2 + 10

// AppendSyncSplit appends f as one or more Sync frames of at most limit bytes
// each (header included), splitting its ranges and wants between them and
// setting SyncMore on all but the last. Each frame is a sync message of its
// own, so the peer answers each. It returns the extended buffer and the
// number of frames appended. An empty message makes one frame.
func AppendSyncSplit(b []byte, f *Sync, limit int) ([]byte, int) {
	part := Sync{Handle: f.Handle, Session: f.Session}
	msg := f.Msg
	frames := 0
	for {
		part.Msg, msg = cutSync(msg, limit-syncOverhead)
		part.Flags = 0
		if !msg.Empty() {
			part.Flags = SyncMore
		}
		b = Append(b, &part)
		frames++
		if part.Flags == 0 {
			return b, frames
		}
	}
}

// AppendSyncPart appends the first frame AppendSyncSplit would, standing
// alone (no SyncMore): a message of at most limit bytes. It reports
// whether it left ranges or wants out.
func AppendSyncPart(b []byte, f *Sync, limit int) ([]byte, bool) {
	part := Sync{Handle: f.Handle, Session: f.Session}
	var rest roster.SyncMsg
	part.Msg, rest = cutSync(f.Msg, limit-syncOverhead)
	return Append(b, &part), !rest.Empty()
}

// cutSync cuts from m the leading ranges, then wants, that fit in budget
// bytes, at least one of either when m has any; it returns them and what
// is left.
func cutSync(m roster.SyncMsg, budget int) (part, rest roster.SyncMsg) {
	ranges, want := m.Ranges, m.Want
	size, n := 0, 0
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
	return roster.SyncMsg{Ranges: ranges[:n], Want: want[:w]}, roster.SyncMsg{Ranges: ranges[n:], Want: want[w:]}
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
