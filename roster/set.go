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

func (s *Set) init() {
	s.depth = minBucketDepth
	s.buckets = make([][]Entry, 1<<(4*minBucketDepth))
	s.sums = make([][]acc, minBucketDepth+1)
	for d := range s.sums {
		s.sums[d] = make([]acc, 1<<(4*d))
	}
}

// search finds id in the sorted bucket b, whose IDs share their first
// depth nibbles: its index, or where it would go. IDs are SHA-256
// outputs, so the bits after the prefix are spread evenly: the first probe
// is where id would sit in an evenly spread bucket, and a gallop from there
// brackets it within a step or two, so a search touches two or three cache
// lines of a large bucket instead of one per halving (the relay searches
// its cache twice per entry). IDs that are not spread evenly cost at most
// about twice a binary search. The first 8 bytes, compared as an integer,
// decide almost every comparison.
func search(b []Entry, id *ID, depth int) (int, bool) {
	k := binary.BigEndian.Uint64(id[:8])
	less := func(i int) bool { // b[i] sorts before id
		mk := binary.BigEndian.Uint64(b[i].ID[:8])
		return mk < k || mk == k && bytes.Compare(b[i].ID[8:], id[8:]) < 0
	}
	n := len(b)
	lo, hi := 0, n // b[:lo] sorts before id, b[hi:] does not
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
	return lo, lo < n && b[lo].ID == *id
}

// find locates id: its bucket, its index in the bucket, and whether it is there.
func (s *Set) find(id *ID) (bucket uint64, i int, ok bool) {
	if s.depth == 0 {
		return 0, 0, false
	}
	bucket = prefixOf(id, s.depth)
	i, ok = search(s.buckets[bucket], id, s.depth)
	return bucket, i, ok
}

func (s *Set) add(e Entry) bool {
	if s.depth == 0 {
		s.init()
	}
	bi, i, ok := s.find(&e.ID)
	if ok {
		return false
	}
	s.buckets[bi] = slices.Insert(s.buckets[bi], i, e)
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
	b = slices.Delete(b, i, i+1)
	if len(b) == 0 {
		b = nil // let the backing array go
	}
	s.buckets[bi] = b
	s.n--
	for d := 0; d <= s.depth; d++ {
		s.sums[d][prefixOf(id, d)].sub(id)
	}
	return true
}

// deepen splits every bucket into its 16 children and adds the level of
// sums for the new depth. Each split is a cut of a sorted slice.
func (s *Set) deepen() {
	nd := s.depth + 1
	nb := make([][]Entry, len(s.buckets)*16)
	level := make([]acc, len(nb))
	for p, b := range s.buckets {
		for len(b) > 0 {
			c := prefixOf(&b[0].ID, nd)
			j := 1
			for j < len(b) && prefixOf(&b[j].ID, nd) == c {
				j++
			}
			nb[c] = slices.Clone(b[:j])
			for k := range nb[c] {
				level[c].add(&nb[c][k].ID)
			}
			b = b[j:]
		}
		s.buckets[p] = nil
	}
	s.depth, s.buckets = nd, nb
	s.sums = append(s.sums, level)
}

// nodeRange returns the sub-slice of the sorted bucket b that lies in n.
func nodeRange(b []Entry, n Node) []Entry {
	d := int(n.Depth)
	lo, hi := 0, len(b)
	// first index with prefix ≥ n.Prefix
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if prefixOf(&b[m].ID, d) < n.Prefix {
			lo = m + 1
		} else {
			hi = m
		}
	}
	end := lo
	for end < len(b) && prefixOf(&b[end].ID, d) == n.Prefix {
		end++
	}
	return b[lo:end]
}

// segments appends to dst the non-empty runs of entries that make up n, in
// ID order. Subtrees with a zero count are skipped without a look at their
// buckets.
func (s *Set) segments(dst [][]Entry, n Node) [][]Entry {
	if s.depth == 0 || !n.Valid() {
		return dst
	}
	d := int(n.Depth)
	switch {
	case d == s.depth:
		if b := s.buckets[n.Prefix]; len(b) > 0 {
			dst = append(dst, b)
		}
	case d > s.depth:
		b := s.buckets[n.Prefix>>(4*(d-s.depth))]
		if r := nodeRange(b, n); len(r) > 0 {
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
	r := nodeRange(s.buckets[n.Prefix>>(4*(d-s.depth))], n)
	for i := range r {
		a.add(&r[i].ID)
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
	return uint64(len(nodeRange(s.buckets[n.Prefix>>(4*(int(n.Depth)-s.depth))], n)))
}

// merge adds o's entries bucket by bucket: o's entries come in ID order, so
// each run that falls in one of our buckets is merged with it in one pass
// and one allocation. Buckets deepen at the end as needed.
func (s *Set) merge(o *Set) int {
	if o == nil || o == s || o.n == 0 {
		return 0
	}
	if s.depth == 0 {
		s.init()
	}
	added := 0
	for _, b := range o.buckets {
		for len(b) > 0 {
			p := prefixOf(&b[0].ID, s.depth)
			j := 1
			if o.depth >= s.depth {
				j = len(b) // the whole bucket lies in our bucket p
			} else {
				for j < len(b) && prefixOf(&b[j].ID, s.depth) == p {
					j++
				}
			}
			added += s.mergeBucket(p, b[:j])
			b = b[j:]
		}
	}
	for s.depth < maxBucketDepth && s.n > bucketLoad<<(4*s.depth) {
		s.deepen()
	}
	return added
}

// mergeBucket merges the sorted run in, all in bucket p, into that bucket.
func (s *Set) mergeBucket(p uint64, in []Entry) int {
	cur := s.buckets[p]
	if len(cur) == 0 {
		s.buckets[p] = slices.Clone(in)
		for i := range in {
			s.addSums(&in[i].ID)
		}
		s.n += len(in)
		return len(in)
	}
	fresh := 0
	for i, j := 0, 0; j < len(in); j++ {
		for i < len(cur) && compareIDs(cur[i].ID, in[j].ID) < 0 {
			i++
		}
		if i < len(cur) && cur[i].ID == in[j].ID {
			i++
			continue
		}
		fresh++
	}
	if fresh == 0 {
		return 0
	}
	out := make([]Entry, 0, len(cur)+fresh)
	i, j := 0, 0
	for i < len(cur) && j < len(in) {
		switch c := compareIDs(cur[i].ID, in[j].ID); {
		case c < 0:
			out = append(out, cur[i])
			i++
		case c == 0:
			out = append(out, cur[i])
			i++
			j++
		default:
			out = append(out, in[j])
			s.addSums(&in[j].ID)
			j++
		}
	}
	out = append(out, cur[i:]...)
	for _, e := range in[j:] {
		out = append(out, e)
		s.addSums(&e.ID)
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
