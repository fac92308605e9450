package roster

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

// StartSync returns the first message of a reconciliation of s with a peer.
func (s *Set) StartSync() SyncMsg { panic("unimplemented") }

// ReplySync answers a peer's message. give holds the entries the peer lacks
// (asked for by Want, or found missing from the peer's ID lists); out is the
// next message for the peer, empty when the two sides agree on everything in
// in. Unknown wants are ignored.
func (s *Set) ReplySync(in *SyncMsg) (out SyncMsg, give []Entry) { panic("unimplemented") }
