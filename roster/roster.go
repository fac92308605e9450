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
	// implementation: see set.go
}

// Len reports the number of entries.
func (s *Set) Len() int { panic("unimplemented") }

// Has reports whether id is in the set.
func (s *Set) Has(id ID) bool { panic("unimplemented") }

// Get returns the entry with id.
func (s *Set) Get(id ID) (Entry, bool) { panic("unimplemented") }

// Add inserts e and reports whether it was new. The set keeps e.Sealed as is
// (it does not copy); callers hand over ownership.
func (s *Set) Add(e Entry) bool { panic("unimplemented") }

// Merge adds every entry of o and returns how many were new.
func (s *Set) Merge(o *Set) int { panic("unimplemented") }

// Entries returns all entries sorted by ID.
func (s *Set) Entries() []Entry { panic("unimplemented") }

// Remove deletes id (used only by bounded caches, never by rosters).
func (s *Set) Remove(id ID) bool { panic("unimplemented") }
