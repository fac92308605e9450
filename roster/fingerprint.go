package roster

import (
	"encoding/binary"
	"math/bits"
)

// acc accumulates a Fingerprint: a count and a 128-bit sum held as two
// words, so that adding and subtracting an ID costs a few instructions.
type acc struct {
	count  uint64
	hi, lo uint64
}

// idWords returns the first 16 bytes of id as a big-endian 128-bit number.
func idWords(id *ID) (hi, lo uint64) {
	return binary.BigEndian.Uint64(id[0:8]), binary.BigEndian.Uint64(id[8:16])
}

func (a *acc) add(id *ID) {
	hi, lo := idWords(id)
	var c uint64
	a.lo, c = bits.Add64(a.lo, lo, 0)
	a.hi, _ = bits.Add64(a.hi, hi, c)
	a.count++
}

func (a *acc) sub(id *ID) {
	hi, lo := idWords(id)
	var b uint64
	a.lo, b = bits.Sub64(a.lo, lo, 0)
	a.hi, _ = bits.Sub64(a.hi, hi, b)
	a.count--
}

func (a *acc) fingerprint() Fingerprint {
	f := Fingerprint{Count: a.count}
	binary.BigEndian.PutUint64(f.Sum[0:8], a.hi)
	binary.BigEndian.PutUint64(f.Sum[8:16], a.lo)
	return f
}

// prefixOf returns the first depth nibbles of id as a number (0 for depth 0).
func prefixOf(id *ID, depth int) uint64 {
	if depth == 0 {
		return 0
	}
	return binary.BigEndian.Uint64(id[0:8]) >> (64 - 4*depth)
}

// Valid reports whether n names a node: Depth at most MaxDepth and no bit of
// Prefix set above the low 4*Depth bits. Sync ranges with invalid nodes are
// ignored.
func (n Node) Valid() bool {
	if n.Depth > MaxDepth {
		return false
	}
	return n.Depth == MaxDepth || n.Prefix>>(4*uint(n.Depth)) == 0
}

// Contains reports whether id lies in n.
func (n Node) Contains(id ID) bool {
	return n.Valid() && prefixOf(&id, int(n.Depth)) == n.Prefix
}

// child returns the i-th child of n (0 ≤ i < 16); n.Depth < MaxDepth.
func (n Node) child(i int) Node {
	return Node{Depth: n.Depth + 1, Prefix: n.Prefix<<4 | uint64(i)}
}

// less orders nodes by depth, then prefix: the order of ranges in a SyncMsg.
func (n Node) less(o Node) bool {
	if n.Depth != o.Depth {
		return n.Depth < o.Depth
	}
	return n.Prefix < o.Prefix
}
