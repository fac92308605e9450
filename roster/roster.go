package roster

import "crypto/sha256"

// IDSize is the size of an entry ID.
const IDSize = 32

// ID names an entry: the SHA-256 of its sealed bytes. IDs are uniform, which
// the reconciliation relies on to split the ID space evenly.
type ID [IDSize]byte

// Entry is one roster item: a sealed capsule reference and its ID.
// Sealed is never modified once the entry exists.
type Entry struct {
	ID     ID
	Sealed []byte
}

// NewEntry makes the entry for sealed bytes, computing its ID.
func NewEntry(sealed []byte) Entry {
	return Entry{ID: sha256.Sum256(sealed), Sealed: sealed}
}

// Set is a roster: a grow-only set of entries keyed by ID. The zero value is
// an empty set ready to use. A Set is not safe for concurrent use.
type Set struct {
	n     int // number of entries
	depth int // bucket depth in nibbles

	// buckets[p] holds, sorted by ID, the entries whose first depth nibbles
	// are p; there are 16^depth buckets, none until the first Add.
	buckets []bucket

	// slab holds the entries at the slots the buckets name (slots of
	// them so far); free lists the empty slots Remove left.
	slab  [][]Entry
	slots int
	free  []uint32

	// sums[d][p] is the running fingerprint of Node{d, p} for every
	// d ≤ depth: Add adds to depth+1 of them, Remove subtracts.
	sums [][]acc
}

// Len reports the number of entries.
func (s *Set) Len() int { return s.n }

// Has reports whether id is in the set.
func (s *Set) Has(id ID) bool {
	_, _, ok := s.find(&id)
	return ok
}

// Get returns the entry with id.
func (s *Set) Get(id ID) (Entry, bool) {
	b, i, ok := s.find(&id)
	if !ok {
		return Entry{}, false
	}
	return *s.entryAt(b, i), true
}

// Add inserts e and reports whether it was new. The set keeps e.Sealed as is
// (it does not copy); callers hand over ownership.
func (s *Set) Add(e Entry) bool { return s.add(e) }

// Merge adds every entry of o and returns how many were new.
func (s *Set) Merge(o *Set) int { return s.merge(o) }

// Entries returns all entries sorted by ID.
func (s *Set) Entries() []Entry {
	out := make([]Entry, 0, s.n)
	for _, b := range s.buckets {
		for _, r := range b {
			out = append(out, *s.entry(r.slot))
		}
	}
	return out
}

// Remove deletes id (used only by bounded caches, never by rosters).
func (s *Set) Remove(id ID) bool { return s.remove(&id) }
