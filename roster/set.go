package roster

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// Bucket sizing. The set starts with 16^minBucketDepth buckets and deepens
// them by one nibble whenever the average bucket would hold more than
// bucketLoad entries, up to 16^maxBucketDepth buckets (from about 2 million
// entries on, buckets simply grow longer).
const (
	minBucketDepth = 2
	maxBucketDepth = 5
	bucketLoad     = 32
)

// bucket holds, sorted by ID, the entries whose IDs share the bucket's
// prefix: the first 8 bytes of each ID as an integer (what a search
// reads, a few cache lines for a whole bucket) and, beside it, the entry's
// place in the set's slab. Neither holds a pointer, so inserts and
// deletes shift plain words.
type bucket struct {
	keys  []uint64
	slots []uint32
}

// minBucketCap is the least room a bucket's arrays get: small buckets
// grow in fewer steps, two allocations each (keys and slots).
const minBucketCap = 8

// insert puts key k and slot at index i, growing both arrays together.
func (b *bucket) insert(i int, k uint64, slot uint32) {
	if n := len(b.keys); n == cap(b.keys) || n == cap(b.slots) {
		c := max(2*n, minBucketCap)
		b.keys = append(make([]uint64, 0, c), b.keys...)
		b.slots = append(make([]uint32, 0, c), b.slots...)
	}
	b.keys = slices.Insert(b.keys, i, k)
	b.slots = slices.Insert(b.slots, i, slot)
}

// bucketOf copies keys and slots into a new bucket with room to grow.
func bucketOf(keys []uint64, slots []uint32) bucket {
	c := max(len(keys)+len(keys)/2, minBucketCap)
	return bucket{
		keys:  append(make([]uint64, 0, c), keys...),
		slots: append(make([]uint32, 0, c), slots...),
	}
}

// keyOf returns the first 8 bytes of id as a big-endian integer.
func keyOf(id *ID) uint64 { return binary.BigEndian.Uint64(id[:8]) }

// keyPrefix returns the first depth nibbles of an ID with key k
// (prefixOf without the ID).
func keyPrefix(k uint64, depth int) uint64 {
	if depth == 0 {
		return 0
	}
	return k >> (64 - 4*depth)
}

func (s *Set) init() {
	s.depth = minBucketDepth
	s.buckets = make([]bucket, 1<<(4*minBucketDepth))
	s.sums = make([][]acc, minBucketDepth+1)
	for d := range s.sums {
		s.sums[d] = make([]acc, 1<<(4*d))
	}
}

// The slab is pages of up to slabPage entries, so that it grows without
// copying what it holds; a small set's only page grows like a slice.
const (
	slabBits = 10
	slabPage = 1 << slabBits
)

// entry returns the entry at slot k.
func (s *Set) entry(k uint32) *Entry {
	return &s.slab[k>>slabBits][k&(slabPage-1)]
}

// alloc stores e in a free slot of the slab and returns the slot.
func (s *Set) alloc(e *Entry) uint32 {
	if n := len(s.free); n > 0 {
		k := s.free[n-1]
		s.free = s.free[:n-1]
		*s.entry(k) = *e
		return k
	}
	k := uint32(s.slots)
	s.slots++
	p := int(k >> slabBits)
	if p == len(s.slab) {
		s.slab = append(s.slab, nil)
	}
	page := s.slab[p]
	if len(page) == cap(page) {
		page = slices.Grow(page, min(max(2*cap(page), 8), slabPage)-len(page))
	}
	s.slab[p] = append(page, *e)
	return k
}

// release empties slot k (so its sealed bytes can be collected) and
// keeps it for the next alloc.
func (s *Set) release(k uint32) {
	*s.entry(k) = Entry{}
	s.free = append(s.free, k)
}

// search finds id in bucket b, whose IDs share their first depth nibbles:
// its index, or where it would go. IDs are SHA-256 outputs, so the bits
// after the prefix are spread evenly: the first probe is where id would
// sit in an evenly spread bucket, and a gallop from there brackets it
// within a step or two. IDs that are not spread evenly cost at most about
// twice a binary search. The keys decide every comparison but between IDs
// that share their first 8 bytes, which read the slab.
func search(s *Set, b *bucket, id *ID) (int, bool) {
	depth := s.depth
	k := keyOf(id)
	keys := b.keys
	less := func(i int) bool { // entry i sorts before id
		mk := keys[i]
		return mk < k || mk == k && bytes.Compare(s.entry(b.slots[i]).ID[8:], id[8:]) < 0
	}
	n := len(keys)
	lo, hi := 0, n // [:lo] sorts before id, [hi:] does not
	if n >= 8 {
		g := int(uint64(n) * ((k << (4 * depth)) >> 32) >> 32)
		if less(g) {
			lo = g + 1
			for step := 1; ; step *= 2 {
				j := g + step
				if j >= n {
					break
				}
				if !less(j) {
					hi = j
					break
				}
				lo = j + 1
			}
		} else {
			hi = g
			for step := 1; ; step *= 2 {
				j := g - step
				if j < 0 {
					break
				}
				if less(j) {
					lo = j + 1
					break
				}
				hi = j
			}
		}
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if less(m) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < n && keys[lo] == k && s.entry(b.slots[lo]).ID == *id
}

// find locates id: its bucket, its index in the bucket, and whether it is there.
func (s *Set) find(id *ID) (bucket uint64, i int, ok bool) {
	if s.depth == 0 {
		return 0, 0, false
	}
	bucket = prefixOf(id, s.depth)
	i, ok = search(s, &s.buckets[bucket], id)
	return bucket, i, ok
}

// entryAt returns the i-th entry of bucket p.
func (s *Set) entryAt(p uint64, i int) *Entry {
	return s.entry(s.buckets[p].slots[i])
}

func (s *Set) add(e Entry) bool {
	if s.depth == 0 {
		s.init()
	}
	bi, i, ok := s.find(&e.ID)
	if ok {
		return false
	}
	b := &s.buckets[bi]
	b.insert(i, keyOf(&e.ID), s.alloc(&e))
	s.n++
	s.addSums(&e.ID)
	if s.depth < maxBucketDepth && s.n > bucketLoad<<(4*s.depth) {
		s.deepen()
	}
	return true
}

func (s *Set) remove(id *ID) bool {
	bi, i, ok := s.find(id)
	if !ok {
		return false
	}
	b := &s.buckets[bi]
	s.release(b.slots[i])
	b.keys = slices.Delete(b.keys, i, i+1)
	b.slots = slices.Delete(b.slots, i, i+1)
	if len(b.keys) == 0 {
		*b = bucket{} // let the backing arrays go
	}
	s.n--
	for d := 0; d <= s.depth; d++ {
		s.sums[d][prefixOf(id, d)].sub(id)
	}
	if s.n == 0 {
		s.slab, s.slots, s.free = nil, 0, nil // a cache emptied: let the slab go
	}
	return true
}

// deepen splits every bucket into its 16 children and adds the level of
// sums for the new depth. Each split is a cut of a sorted bucket.
func (s *Set) deepen() {
	nd := s.depth + 1
	nb := make([]bucket, len(s.buckets)*16)
	level := make([]acc, len(nb))
	for p, b := range s.buckets {
		keys, slots := b.keys, b.slots
		for len(keys) > 0 {
			c := keyPrefix(keys[0], nd)
			j := 1
			for j < len(keys) && keyPrefix(keys[j], nd) == c {
				j++
			}
			nb[c] = bucketOf(keys[:j], slots[:j])
			for _, k := range slots[:j] {
				level[c].add(&s.entry(k).ID)
			}
			keys, slots = keys[j:], slots[j:]
		}
		s.buckets[p] = bucket{}
	}
	s.depth, s.buckets = nd, nb
	s.sums = append(s.sums, level)
}

// nodeRange returns the slots, in ID order, of the entries of bucket b
// that lie in n.
func nodeRange(b *bucket, n Node) []uint32 {
	d := int(n.Depth)
	lo, hi := 0, len(b.keys)
	// first index with prefix ≥ n.Prefix
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if keyPrefix(b.keys[m], d) < n.Prefix {
			lo = m + 1
		} else {
			hi = m
		}
	}
	end := lo
	for end < len(b.keys) && keyPrefix(b.keys[end], d) == n.Prefix {
		end++
	}
	return b.slots[lo:end]
}

// segments appends to dst the non-empty runs of slots of the entries that
// make up n, in ID order. Subtrees with a zero count are skipped without a
// look at their buckets.
func (s *Set) segments(dst [][]uint32, n Node) [][]uint32 {
	if s.depth == 0 || !n.Valid() {
		return dst
	}
	d := int(n.Depth)
	switch {
	case d == s.depth:
		if b := s.buckets[n.Prefix]; len(b.slots) > 0 {
			dst = append(dst, b.slots)
		}
	case d > s.depth:
		if r := nodeRange(&s.buckets[n.Prefix>>(4*(d-s.depth))], n); len(r) > 0 {
			dst = append(dst, r)
		}
	default:
		if s.sums[d][n.Prefix].count == 0 {
			return dst
		}
		for i := range 16 {
			dst = s.segments(dst, n.child(i))
		}
	}
	return dst
}

// Fingerprint returns the fingerprint of the entries of s in n (the zero
// Fingerprint if n is not Valid). For nodes no deeper than the buckets it
// is a lookup; deeper nodes scan part of one bucket.
func (s *Set) Fingerprint(n Node) Fingerprint {
	if s.depth == 0 || !n.Valid() {
		return Fingerprint{}
	}
	d := int(n.Depth)
	if d <= s.depth {
		return s.sums[d][n.Prefix].fingerprint()
	}
	var a acc
	for _, k := range nodeRange(&s.buckets[n.Prefix>>(4*(d-s.depth))], n) {
		a.add(&s.entry(k).ID)
	}
	return a.fingerprint()
}

// count returns how many entries of s lie in n.
func (s *Set) count(n Node) uint64 {
	if s.depth == 0 || !n.Valid() {
		return 0
	}
	if d := int(n.Depth); d <= s.depth {
		return s.sums[d][n.Prefix].count
	}
	return uint64(len(nodeRange(&s.buckets[n.Prefix>>(4*(int(n.Depth)-s.depth))], n)))
}

// merge adds o's entries bucket by bucket: o's entries come in ID order, so
// each run that falls in one of our buckets is merged with it in one pass.
// Buckets deepen at the end as needed.
func (s *Set) merge(o *Set) int {
	if o == nil || o == s || o.n == 0 {
		return 0
	}
	if s.depth == 0 {
		s.init()
	}
	added := 0
	for _, b := range o.buckets {
		keys, slots := b.keys, b.slots
		for len(keys) > 0 {
			p := keyPrefix(keys[0], s.depth)
			j := 1
			if o.depth >= s.depth {
				j = len(keys) // the whole bucket lies in our bucket p
			} else {
				for j < len(keys) && keyPrefix(keys[j], s.depth) == p {
					j++
				}
			}
			added += s.mergeBucket(p, keys[:j], slots[:j], o)
			keys, slots = keys[j:], slots[j:]
		}
	}
	for s.depth < maxBucketDepth && s.n > bucketLoad<<(4*s.depth) {
		s.deepen()
	}
	return added
}

// mergeBucket merges the sorted run of entries of src at inSlots (with
// keys inKeys), all in bucket p, into that bucket.
func (s *Set) mergeBucket(p uint64, inKeys []uint64, inSlots []uint32, src *Set) int {
	cur := &s.buckets[p]
	// cmp orders our entry i against the run's entry j.
	cmp := func(i, j int) int {
		a, b := cur.keys[i], inKeys[j]
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return bytes.Compare(s.entry(cur.slots[i]).ID[8:], src.entry(inSlots[j]).ID[8:])
	}
	fresh := 0
	for i, j := 0, 0; j < len(inKeys); j++ {
		for i < len(cur.keys) && cmp(i, j) < 0 {
			i++
		}
		if i < len(cur.keys) && cmp(i, j) == 0 {
			i++
			continue
		}
		fresh++
	}
	if fresh == 0 {
		return 0
	}
	keys := make([]uint64, 0, len(cur.keys)+fresh)
	slots := make([]uint32, 0, len(cur.keys)+fresh)
	take := func(j int) {
		e := src.entry(inSlots[j])
		keys = append(keys, inKeys[j])
		slots = append(slots, s.alloc(e))
		s.addSums(&e.ID)
	}
	i, j := 0, 0
	for i < len(cur.keys) && j < len(inKeys) {
		switch c := cmp(i, j); {
		case c < 0:
			keys, slots = append(keys, cur.keys[i]), append(slots, cur.slots[i])
			i++
		case c == 0:
			keys, slots = append(keys, cur.keys[i]), append(slots, cur.slots[i])
			i++
			j++
		default:
			take(j)
			j++
		}
	}
	keys, slots = append(keys, cur.keys[i:]...), append(slots, cur.slots[i:]...)
	for ; j < len(inKeys); j++ {
		take(j)
	}
	*cur = bucket{keys: keys, slots: slots}
	s.n += fresh
	return fresh
}

// addSums adds id to the running fingerprints of the nodes that hold it.
func (s *Set) addSums(id *ID) {
	for d := 0; d <= s.depth; d++ {
		s.sums[d][prefixOf(id, d)].add(id)
	}
}
