package roster

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sort"
	"testing"
)

// search agrees with a plain binary search for IDs spread evenly (hashes)
// and for IDs bunched at one end of their bucket, present or not.
func TestSearchMatchesBinarySearch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		depth int
		id    func(i int) ID
	}{
		{"hashes", 2, func(i int) ID { return sha256.Sum256(binary.BigEndian.AppendUint32(nil, uint32(i))) }},
		{"bunched low", 3, func(i int) ID {
			var id ID
			binary.BigEndian.PutUint64(id[:], uint64(i)) // all in bucket 0, at its very start
			return id
		}},
		{"bunched high", 1, func(i int) ID {
			var id ID
			binary.BigEndian.PutUint64(id[:], 0x0fffffffffffffff-uint64(i)*7)
			id[31] = byte(i)
			return id
		}},
		{"same first 8 bytes", 2, func(i int) ID {
			id := ID{0: 0x42, 7: 0x17} // ties on the key, decided by the slab
			binary.BigEndian.PutUint64(id[8:], uint64(i)*0x9e3779b97f4a7c15)
			return id
		}},
	} {
		for _, n := range []int{0, 1, 7, 8, 9, 24, 100, 1000} {
			var b []Entry
			for i := range n {
				b = append(b, Entry{ID: tc.id(2 * i)})
			}
			slices.SortFunc(b, func(x, y Entry) int { return bytes.Compare(x.ID[:], y.ID[:]) })
			s := Set{depth: tc.depth}
			var bk bucket
			for i := range b {
				bk = append(bk, ref{keyOf(&b[i].ID), s.alloc(&b[i])})
			}
			for q := range 2*n + 2 {
				id := tc.id(q)
				want := sort.Search(len(b), func(i int) bool { return bytes.Compare(b[i].ID[:], id[:]) >= 0 })
				got, ok := search(&s, bk, &id)
				if got != want || ok != (want < len(b) && b[want].ID == id) {
					t.Fatalf("%s, n=%d, query %d: got %d %v, want %d", tc.name, n, q, got, ok, want)
				}
			}
		}
	}
}
