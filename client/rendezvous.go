package client

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"

	"github.com/cosnim/relays/roster"
)

// RendezvousWeight is relay name's weight for channel id in the
// highest-random-weight order of a pool: the first 8 bytes, big-endian, of
// SHA-256(id || name). Every member of a channel computes the same order
// from the channel ID and the relay names alone, and adding or removing a
// relay moves only the channels whose order it heads.
func RendezvousWeight(id roster.ChannelID, name string) uint64 {
	h := sha256.New()
	h.Write(id[:])
	h.Write([]byte(name))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// RendezvousOrder returns the indexes of names in channel id's order:
// heaviest first, equal weights by name.
func RendezvousOrder(id roster.ChannelID, names []string) []int {
	w := make([]uint64, len(names))
	order := make([]int, len(names))
	for i, n := range names {
		w[i], order[i] = RendezvousWeight(id, n), i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := cmp.Compare(w[b], w[a]); c != 0 {
			return c
		}
		return cmp.Compare(names[a], names[b])
	})
	return order
}
