package roster

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// Node names a subtree of the ID space: the IDs whose first Depth nibbles
// (4-bit digits, most significant first) equal the low 4*Depth bits of
// Prefix. The root is Depth 0. Depth is at most MaxDepth.
type Node struct {
	Depth  uint8
	Prefix uint64
}

// MaxDepth is the deepest node; below it, ranges are always sent as IDs.
const MaxDepth = 16

// Mode says how a Range describes its node.
type Mode uint8

const (
	// ModeFingerprint carries Count and Sum of the sender's IDs in the node.
	ModeFingerprint Mode = 1
	// ModeIDs lists every ID the sender holds in the node.
	ModeIDs Mode = 2
)

// Fingerprint summarises the IDs in a node: their count and the sum, modulo
// 2^128, of each ID's first 16 bytes read as a big-endian number.
type Fingerprint struct {
	Count uint64
	Sum   [16]byte
}

// Range is one node of a sync message.
type Range struct {
	Node Node
	Mode Mode
	FP   Fingerprint // ModeFingerprint
	IDs  []ID        // ModeIDs, sorted
}

// SyncMsg is one round of range-based reconciliation. Nodes a message does
// not mention are in agreement. An empty message (no ranges, no wants) ends
// the exchange.
type SyncMsg struct {
	Ranges []Range
	Want   []ID // IDs the sender lacks and asks the peer for
}

// Empty reports whether m ends the exchange.
func (m *SyncMsg) Empty() bool { return len(m.Ranges) == 0 && len(m.Want) == 0 }

// FewIDs is the "few" of PROTOCOL §10: a node where a side holds at most
// this many IDs is described by its ID list.
const FewIDs = idsThreshold

// Reconciliation thresholds; see doc.go for how they were chosen.
const (
	// idsThreshold is T: a node where we hold at most this many IDs is
	// answered with its ID list rather than split into 16 children.
	idsThreshold = 16
	// childIDsMax: when a node is split, a child where we hold at most this
	// many IDs is sent as its ID list (an empty list is cheaper than a
	// fingerprint, and a short list saves a round).
	childIDsMax = 1
)

// StartSync returns the first message of a reconciliation of s with a peer:
// the whole ID list when s holds at most a few entries, else the root's
// fingerprint alone, so that equal sets agree after one small message.
func (s *Set) StartSync() SyncMsg {
	root := Node{}
	if s.n <= idsThreshold {
		return SyncMsg{Ranges: []Range{{Node: root, Mode: ModeIDs, IDs: s.appendIDs(nil, root)}}}
	}
	return SyncMsg{Ranges: []Range{{Node: root, Mode: ModeFingerprint, FP: s.Fingerprint(root)}}}
}

// ReplySync answers a peer's message. give holds the entries the peer lacks
// (asked for by Want, or found missing from the peer's ID lists); out is the
// next message for the peer, empty when the two sides agree on everything in
// in. Unknown wants are ignored.
//
// Ranges with an invalid node or an unknown mode are ignored, as are IDs of
// an ID list that lie outside its node. out lists its ranges by node (depth,
// then prefix) and its wants sorted; give is sorted by ID without
// duplicates. Both depend only on s and in.
func (s *Set) ReplySync(in *SyncMsg) (out SyncMsg, give []Entry) {
	return s.ReplySyncLimit(in, 0)
}

// ReplySyncLimit is ReplySync giving at most limit entries in answer to
// the peer's fingerprints and ID lists; limit <= 0 means none. A node
// whose entries would pass the limit is split instead: its children go
// back as fingerprints and the peer asks for them in later rounds, so a
// reply to "I have nothing" for a large set is paced, limit entries a
// round, rather than materialised at once. Nodes at MaxDepth cannot split
// and are given whole; wants are answered in full (the peer's frame size
// bounds both).
func (s *Set) ReplySyncLimit(in *SyncMsg, limit int) (out SyncMsg, give []Entry) {
	for _, id := range in.Want {
		if e, ok := s.Get(id); ok {
			give = append(give, e)
		}
	}
	var segs [][]ref
	for i := range in.Ranges {
		r := &in.Ranges[i]
		if !r.Node.Valid() {
			continue
		}
		room := -1 // no limit
		if limit > 0 {
			room = max(0, limit-len(give))
		}
		switch r.Mode {
		case ModeFingerprint:
			give = s.replyFingerprint(&out, give, r, room)
		case ModeIDs:
			give = s.replyIDs(&out, give, &segs, r, room)
		}
	}
	slices.SortFunc(out.Ranges, func(a, b Range) int {
		switch {
		case a.Node.less(b.Node):
			return -1
		case b.Node.less(a.Node):
			return 1
		}
		return 0
	})
	out.Ranges = slices.CompactFunc(out.Ranges, func(a, b Range) bool { return a.Node == b.Node })
	slices.SortFunc(out.Want, compareIDs)
	out.Want = slices.Compact(out.Want)
	slices.SortFunc(give, func(a, b Entry) int { return compareIDs(a.ID, b.ID) })
	give = slices.CompactFunc(give, func(a, b Entry) bool { return a.ID == b.ID })
	return out, give
}

// over reports whether giving want more entries passes room (-1: no limit)
// in a node that can still be split.
func over(want uint64, room int, n Node) bool {
	return room >= 0 && want > uint64(room) && n.Depth < MaxDepth
}

// replyIDs handles a peer's ID list of r.Node, splitting the node instead
// when what the peer lacks passes room.
func (s *Set) replyIDs(out *SyncMsg, give []Entry, segs *[][]ref, r *Range, room int) []Entry {
	n := r.Node
	// We give at least our count minus theirs: split without diffing
	// when even that is too much.
	if ours := s.count(n); ours > uint64(len(r.IDs)) && over(ours-uint64(len(r.IDs)), room, n) {
		s.split(out, n)
		return give
	}
	before, wants := len(give), len(out.Want)
	*segs = s.segments((*segs)[:0], n)
	give = s.diffIDs(out, give, *segs, r)
	if over(uint64(len(give)-before), room, n) {
		out.Want = out.Want[:wants]
		s.split(out, n)
		return give[:before]
	}
	return give
}

// split answers node n with its children, as fingerprints or short ID
// lists, so the exchange goes on one level down.
func (s *Set) split(out *SyncMsg, n Node) {
	for i := range 16 {
		c := n.child(i)
		if s.count(c) <= childIDsMax {
			out.Ranges = append(out.Ranges, Range{Node: c, Mode: ModeIDs, IDs: s.appendIDs([]ID{}, c)})
		} else {
			out.Ranges = append(out.Ranges, Range{Node: c, Mode: ModeFingerprint, FP: s.Fingerprint(c)})
		}
	}
}

// replyFingerprint handles a peer's fingerprint of r.Node.
func (s *Set) replyFingerprint(out *SyncMsg, give []Entry, r *Range, room int) []Entry {
	n := r.Node
	ours := s.Fingerprint(n)
	switch {
	case ours == r.FP:
		return give
	case r.FP.Count == 0 && over(ours.Count, room, n):
		s.split(out, n)
		return give
	case r.FP.Count == 0:
		// The peer has nothing here: it lacks all of ours.
		for _, seg := range s.segments(nil, n) {
			for _, r := range seg {
				give = append(give, *s.entry(r.slot))
			}
		}
		return give
	case ours.Count <= idsThreshold || n.Depth == MaxDepth:
		out.Ranges = append(out.Ranges, Range{Node: n, Mode: ModeIDs, IDs: s.appendIDs([]ID{}, n)})
		return give
	}
	s.split(out, n)
	return give
}

// diffIDs handles a peer's full ID list of r.Node, given ours as segs: it
// gives what the peer lacks and wants what we lack.
func (s *Set) diffIDs(out *SyncMsg, give []Entry, segs [][]ref, r *Range) []Entry {
	theirs := r.IDs
	if !slices.IsSortedFunc(theirs, compareIDs) {
		theirs = slices.Clone(theirs)
		slices.SortFunc(theirs, compareIDs)
	}
	j := 0
	next := func() (ID, bool) { // the peer's next ID in the node, duplicates skipped
		for j < len(theirs) {
			id := theirs[j]
			j++
			if j > 1 && theirs[j-2] == id || !r.Node.Contains(id) {
				continue
			}
			return id, true
		}
		return ID{}, false
	}
	t, more := next()
	for _, seg := range segs {
		for _, r := range seg {
			e := s.entry(r.slot)
			for more && compareIDs(t, e.ID) < 0 {
				out.Want = append(out.Want, t)
				t, more = next()
			}
			if more && t == e.ID {
				t, more = next()
				continue
			}
			give = append(give, *e)
		}
	}
	for more {
		out.Want = append(out.Want, t)
		t, more = next()
	}
	return give
}

// appendIDs appends the IDs of s in n to dst, sorted.
func (s *Set) appendIDs(dst []ID, n Node) []ID {
	for _, seg := range s.segments(nil, n) {
		for _, r := range seg {
			dst = append(dst, s.entry(r.slot).ID)
		}
	}
	return dst
}

func compareIDs(a, b ID) int { return bytes.Compare(a[:], b[:]) }

// EncodedSize returns the size in bytes of m's body in the layout the wire
// package encodes: a 2-byte count of ranges; per range the depth (1 byte),
// the prefix in ceil(depth/2) bytes, the mode (1 byte), then either the
// count as a uvarint and the 16-byte sum, or a uvarint count of IDs and 32
// bytes per ID; then a uvarint count of wants and 32 bytes per want. The
// frame header and the handle and session fields of the Sync frame come on
// top. Entries given in answer travel in Delta frames, 2+len(Sealed) bytes
// each.
func (m *SyncMsg) EncodedSize() int {
	n := 2
	for i := range m.Ranges {
		r := &m.Ranges[i]
		n += 2 + (int(r.Node.Depth)+1)/2
		if r.Mode == ModeFingerprint {
			n += uvarintLen(r.FP.Count) + len(r.FP.Sum)
		} else {
			n += uvarintLen(uint64(len(r.IDs))) + IDSize*len(r.IDs)
		}
	}
	return n + uvarintLen(uint64(len(m.Want))) + IDSize*len(m.Want)
}

func uvarintLen(x uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], x)
}
