package roster

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// Bucket sizing. The set starts with one bucket and deepens them by one
// nibble whenever the average bucket would hold more than bucketLoad
// entries, up to 16^maxBucketDepth buckets (from about 2 million entries
// on, buckets simply grow longer). Starting small keeps a set of a few
// entries (a relay channel of one instance) at a few hundred bytes, not
// the 256 buckets and 273 sums it once began with (13.8 KiB).
const (
	maxBucketDepth = 5
	bucketLoad     = 32
)

// bucket holds, sorted by ID, the entries whose IDs share the bucket's
// prefix, each as a ref: 16 bytes instead of a 56-byte Entry, so a search
// reads a few cache lines of a whole bucket, and inserts and deletes shift
// plain words, no pointers.
type bucket []ref

// ref is an entry of a bucket: the first 8 bytes of its ID as an integer
// (what searches compare) and its slot in the set's slab.
type ref struct {
	key  uint64
	slot uint32
}

// minBucketCap is the least room a bucket gets when it grows.
const minBucketCap = 2

// insert puts r at index i.
func (b *bucket) insert(i int, r ref) {
	if n := len(*b); n == cap(*b) {
		*b = append(make(bucket, 0, max(2*n, minBucketCap)), *b...)
	}
	*b = slices.Insert(*b, i, r)
}

// bucketOf copies rs into a new bucket with room to grow.
func bucketOf(rs []ref) bucket {
	return append(make(bucket, 0, max(len(rs)+len(rs)/2, minBucketCap)), rs...)
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

// init makes the one bucket and root sum of a set's first entry.
func (s *Set) init() {
	s.depth = 0
	s.buckets = make([]bucket, 1)
	s.sums = [][]acc{make([]acc, 1)}
}

// empty reports whether the set has no buckets yet (it never had an entry).
func (s *Set) empty() bool { return s.buckets == nil }

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
		page = slices.Grow(page, min(max(2*cap(page), minBucketCap), slabPage)-len(page))
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
func search(s *Set, b bucket, id *ID) (int, bool) {
	depth := s.depth
	k := keyOf(id)
	less := func(i int) bool { // entry i sorts before id
		mk := b[i].key
		return mk < k || mk == k && bytes.Compare(s.entry(b[i].slot).ID[8:], id[8:]) < 0
	}
	n := len(b)
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
	return lo, lo < n && b[lo].key == k && s.entry(b[lo].slot).ID == *id
}

// find locates id: its bucket, its index in the bucket, and whether it is there.
func (s *Set) find(id *ID) (bucket uint64, i int, ok bool) {
	if s.empty() {
		return 0, 0, false
	}
	bucket = prefixOf(id, s.depth)
	i, ok = search(s, s.buckets[bucket], id)
	return bucket, i, ok
}

// entryAt returns the i-th entry of bucket p.
func (s *Set) entryAt(p uint64, i int) *Entry {
	return s.entry(s.buckets[p][i].slot)
}

func (s *Set) add(e Entry) bool {
	if s.empty() {
		s.init()
	}
	bi, i, ok := s.find(&e.ID)
	if ok {
		return false
	}
	b := &s.buckets[bi]
	b.insert(i, ref{keyOf(&e.ID), s.alloc(&e)})
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
	b := s.buckets[bi]
	s.release(b[i].slot)
	b = slices.Delete(b, i, i+1)
	if len(b) == 0 {
		b = nil // let the backing array go
	}
	s.buckets[bi] = b
	s.n--
	for d := 0; d <= s.depth; d++ {
		s.sums[d][prefixOf(id, d)].sub(id)
	}
	switch {
	case s.n == 0:
		*s = Set{} // a cache emptied: let its slab, buckets and sums go
	case s.slots > slabPage && s.n < s.slots/4:
		s.compact()
	}
	return true
}

// compact moves the entries into a dense slab once most slots are free,
// so that a set that lost most of its entries (a cache the memory budget
// shed) gives the memory back; each entry is moved once per halving, at
// least, so Remove stays amortized constant.
func (s *Set) compact() {
	slab := make([][]Entry, 0, (s.n+slabPage-1)/slabPage)
	var k uint32
	for _, b := range s.buckets {
		for i := range b {
			p := int(k >> slabBits)
			if p == len(slab) {
				slab = append(slab, make([]Entry, 0, min(slabPage, s.n-int(k))))
			}
			slab[p] = append(slab[p], *s.entry(b[i].slot))
			b[i].slot = k
			k++
		}
	}
	s.slab, s.slots, s.free = slab, int(k), nil
}

// deepen splits every bucket into its 16 children and adds the level of
// sums for the new depth. Each split is a cut of a sorted bucket.
func (s *Set) deepen() {
	nd := s.depth + 1
	nb := make([]bucket, len(s.buckets)*16)
	level := make([]acc, len(nb))
	for p, b := range s.buckets {
		for len(b) > 0 {
			c := keyPrefix(b[0].key, nd)
			j := 1
			for j < len(b) && keyPrefix(b[j].key, nd) == c {
				j++
			}
			nb[c] = bucketOf(b[:j])
			for _, r := range b[:j] {
				level[c].add(&s.entry(r.slot).ID)
			}
			b = b[j:]
		}
		s.buckets[p] = nil
	}
	s.depth, s.buckets = nd, nb
	s.sums = append(s.sums, level)
}

// nodeRange returns the part of bucket b that lies in n.
func nodeRange(b bucket, n Node) []ref {
	d := int(n.Depth)
	lo, hi := 0, len(b)
	// first index with prefix ≥ n.Prefix
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if keyPrefix(b[m].key, d) < n.Prefix {
			lo = m + 1
		} else {
			hi = m
		}
	}
	end := lo
	for end < len(b) && keyPrefix(b[end].key, d) == n.Prefix {
		end++
	}
	return b[lo:end]
}

// segments appends to dst the non-empty runs of refs of the entries that
// make up n, in ID order. Subtrees with a zero count are skipped without a
// look at their buckets.
func (s *Set) segments(dst [][]ref, n Node) [][]ref {
	if s.empty() || !n.Valid() {
		return dst
	}
	d := int(n.Depth)
	switch {
	case d == s.depth:
		if b := s.buckets[n.Prefix]; len(b) > 0 {
			dst = append(dst, b)
		}
	case d > s.depth:
		if r := nodeRange(s.buckets[n.Prefix>>(4*(d-s.depth))], n); len(r) > 0 {
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
	if s.empty() || !n.Valid() {
		return Fingerprint{}
	}
	d := int(n.Depth)
	if d <= s.depth {
		return s.sums[d][n.Prefix].fingerprint()
	}
	var a acc
	for _, r := range nodeRange(s.buckets[n.Prefix>>(4*(d-s.depth))], n) {
		a.add(&s.entry(r.slot).ID)
	}
	return a.fingerprint()
}

// count returns how many entries of s lie in n.
func (s *Set) count(n Node) uint64 {
	if s.empty() || !n.Valid() {
		return 0
	}
	if d := int(n.Depth); d <= s.depth {
		return s.sums[d][n.Prefix].count
	}
	return uint64(len(nodeRange(s.buckets[n.Prefix>>(4*(int(n.Depth)-s.depth))], n)))
}

// merge adds o's entries bucket by bucket: o's entries come in ID order, so
// each run that falls in one of our buckets is merged with it in one pass.
// Buckets deepen at the end as needed.
func (s *Set) merge(o *Set) int {
	if o == nil || o == s || o.n == 0 {
		return 0
	}
	if s.empty() {
		s.init()
	}
	added := 0
	for _, b := range o.buckets {
		for len(b) > 0 {
			p := keyPrefix(b[0].key, s.depth)
			j := 1
			if o.depth >= s.depth {
				j = len(b) // the whole bucket lies in our bucket p
			} else {
				for j < len(b) && keyPrefix(b[j].key, s.depth) == p {
					j++
				}
			}
			added += s.mergeBucket(p, b[:j], o)
			b = b[j:]
		}
	}
	for s.depth < maxBucketDepth && s.n > bucketLoad<<(4*s.depth) {
		s.deepen()
	}
	return added
}

// mergeBucket merges the sorted run in of src's entries, all in bucket p,
// into that bucket.
func (s *Set) mergeBucket(p uint64, in []ref, src *Set) int {
	cur := s.buckets[p]
	// cmp orders our entry i against the run's entry j.
	cmp := func(i, j int) int {
		a, b := cur[i].key, in[j].key
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return bytes.Compare(s.entry(cur[i].slot).ID[8:], src.entry(in[j].slot).ID[8:])
	}
	fresh := 0
	for i, j := 0, 0; j < len(in); j++ {
		for i < len(cur) && cmp(i, j) < 0 {
			i++
		}
		if i < len(cur) && cmp(i, j) == 0 {
			i++
			continue
		}
		fresh++
	}
	if fresh == 0 {
		return 0
	}
	out := make(bucket, 0, len(cur)+fresh)
	take := func(j int) {
		e := src.entry(in[j].slot)
		out = append(out, ref{in[j].key, s.alloc(e)})
		s.addSums(&e.ID)
	}
	i, j := 0, 0
	for i < len(cur) && j < len(in) {
		switch c := cmp(i, j); {
		case c < 0:
			out = append(out, cur[i])
			i++
		case c == 0:
			out = append(out, cur[i])
			i++
			j++
		default:
			take(j)
			j++
		}
	}
	out = append(out, cur[i:]...)
	for ; j < len(in); j++ {
		take(j)
	}
	s.buckets[p] = out
	s.n += fresh
	return fresh
}

// addSums adds id to the running fingerprints of the nodes that hold it.
func (s *Set) addSums(id *ID) {
	for d := 0; d <= s.depth; d++ {
		s.sums[d][prefixOf(id, d)].add(id)
	}
}
