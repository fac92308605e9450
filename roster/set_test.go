package roster

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

func TestZeroSet(t *testing.T) {
	var s Set
	e := NewEntry([]byte("x"))
	if s.Len() != 0 || s.Has(e.ID) || len(s.Entries()) != 0 || s.Remove(e.ID) {
		t.Fatal("zero Set is not empty")
	}
	if _, ok := s.Get(e.ID); ok {
		t.Fatal("Get on zero Set found something")
	}
	if got := s.Fingerprint(Node{}); got != (Fingerprint{}) {
		t.Fatalf("Fingerprint(root) = %v, want zero", got)
	}
	if !s.Add(e) || s.Len() != 1 || !s.Has(e.ID) {
		t.Fatal("Add on zero Set did not add")
	}
}

func TestAddGetHas(t *testing.T) {
	var s Set
	sealed := []byte("sealed bytes")
	e := NewEntry(sealed)
	if !s.Add(e) {
		t.Fatal("first Add = false, want true")
	}
	if s.Add(NewEntry([]byte("sealed bytes"))) {
		t.Fatal("second Add of the same entry = true, want false")
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
	got, ok := s.Get(e.ID)
	if !ok || got.ID != e.ID || string(got.Sealed) != "sealed bytes" {
		t.Fatalf("Get = %v, %v", got, ok)
	}
	if &got.Sealed[0] != &sealed[0] {
		t.Fatal("Add copied Sealed; it must keep the caller's slice")
	}
	if s.Has(NewEntry([]byte("other")).ID) {
		t.Fatal("Has(other) = true")
	}
}

func TestEntriesSorted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	es := randEntries(rng, 20000, 10, 20) // crosses a bucket split
	s := setOf(es)
	got := s.Entries()
	if len(got) != len(es) {
		t.Fatalf("len(Entries) = %d, want %d", len(got), len(es))
	}
	if !slices.IsSortedFunc(got, func(a, b Entry) int { return compareIDs(a.ID, b.ID) }) {
		t.Fatal("Entries not sorted by ID")
	}
	if diff := cmp.Diff(modelOf(es), s.model()); diff != "" {
		t.Fatalf("Entries differ from what was added (-want +got):\n%s", diff)
	}
}

// naiveFingerprint is the reference: the definition, applied to a list.
func naiveFingerprint(es []Entry, n Node) Fingerprint {
	var a acc
	for i := range es {
		if n.Contains(es[i].ID) {
			a.add(&es[i].ID)
		}
	}
	return a.fingerprint()
}

// TestFingerprintLevels checks fingerprints at every depth against the
// definition while the set deepens its buckets twice and after removals.
func TestFingerprintLevels(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	es := randEntries(rng, 140000, 8, 8)
	var s Set
	check := func(live []Entry) {
		t.Helper()
		for range 40 {
			id := live[rng.IntN(len(live))].ID
			for d := 0; d <= MaxDepth; d++ {
				n := Node{Depth: uint8(d), Prefix: prefixOf(&id, d)}
				if got, want := s.Fingerprint(n), naiveFingerprint(live, n); got != want {
					t.Fatalf("n=%d: Fingerprint(%v) = %v, want %v", len(live), n, got, want)
				}
				if got, want := s.count(n), naiveFingerprint(live, n).Count; got != want {
					t.Fatalf("count(%v) = %d, want %d", n, got, want)
				}
			}
		}
	}
	for i, e := range es {
		s.Add(e)
		if i == 100 || i == 8192 || i == 8193 || i == 131073 {
			check(es[:i+1])
		}
	}
	check(es)
	for _, e := range es[:70000] {
		if !s.Remove(e.ID) {
			t.Fatal("Remove of a present ID = false")
		}
	}
	if s.Remove(es[0].ID) {
		t.Fatal("Remove of an absent ID = true")
	}
	if s.Len() != 70000 || s.Has(es[0].ID) || !s.Has(es[70000].ID) {
		t.Fatal("Remove did not remove exactly what it was asked to")
	}
	check(es[70000:])
	// The root sum of the rest equals that of a set built from it.
	if got, want := s.Fingerprint(Node{}), setOf(es[70000:]).Fingerprint(Node{}); got != want {
		t.Fatalf("after Remove, root = %v, want %v", got, want)
	}
}

// TestAddRemoveReuse interleaves Adds and Removes, as a cache at its cap
// does, so Removes free slots of the slab that later Adds take: the set
// stays equal to a model, sorted, and its fingerprints to their definition.
// Half the entries share their first 8 bytes.
func TestAddRemoveReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	es := append(randEntries(rng, 3000, 8, 40), clusteredEntries(rng, 3000)...)
	rng.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
	var s Set
	live := model{}
	for step := range 40000 {
		e := es[rng.IntN(len(es))]
		_, in := live[e.ID]
		if rng.IntN(2) == 0 {
			if s.Add(e) == in {
				t.Fatalf("step %d: Add = %v for an entry present: %v", step, !in, in)
			}
			live[e.ID] = string(e.Sealed)
		} else {
			if s.Remove(e.ID) != in {
				t.Fatalf("step %d: Remove = %v for an entry present: %v", step, !in, in)
			}
			delete(live, e.ID)
		}
		if got, ok := s.Get(e.ID); ok != (s.Has(e.ID)) || ok && string(got.Sealed) != live[e.ID] {
			t.Fatalf("step %d: Get = %q, %v; want %q", step, got.Sealed, ok, live[e.ID])
		}
	}
	if diff := cmp.Diff(live, s.model()); diff != "" {
		t.Fatalf("set differs from the model (-want +got):\n%s", diff)
	}
	got := s.Entries()
	if len(got) != s.Len() || !slices.IsSortedFunc(got, func(a, b Entry) int { return compareIDs(a.ID, b.ID) }) {
		t.Fatalf("Entries: %d entries, Len %d, or not sorted", len(got), s.Len())
	}
	for _, e := range got[:100] {
		for d := 0; d <= MaxDepth; d++ {
			n := Node{Depth: uint8(d), Prefix: prefixOf(&e.ID, d)}
			if f, want := s.Fingerprint(n), naiveFingerprint(got, n); f != want {
				t.Fatalf("Fingerprint(%v) = %v, want %v", n, f, want)
			}
		}
	} // Emptied, the set lets its slab go and fills again from scratch.
	for _, e := range got {
		s.Remove(e.ID)
	}
	if s.Len() != 0 || len(s.Entries()) != 0 || s.Fingerprint(Node{}) != (Fingerprint{}) {
		t.Fatalf("emptied set: Len %d, %d entries, root %v", s.Len(), len(s.Entries()), s.Fingerprint(Node{}))
	}
	for _, e := range got[:2000] {
		s.Add(e)
	}
	if diff := cmp.Diff(modelOf(got[:2000]), s.model()); diff != "" {
		t.Fatalf("refilled set differs (-want +got):\n%s", diff)
	}
}

func TestFingerprintSum(t *testing.T) {
	var a, b ID
	a[15], b[15] = 0xff, 0x01
	a[0], b[0] = 0xff, 0x01 // the top carries out of 128 bits
	a[32-1] = 0xee          // bytes past 16 do not count
	s := setOf([]Entry{{ID: a}, {ID: b}})
	want := Fingerprint{Count: 2}
	want.Sum[14] = 1 // 0xff..ff + 0x01..01 = 0x(1)00..0100
	if got := s.Fingerprint(Node{}); got != want {
		t.Fatalf("Fingerprint = %x, want %x", got, want)
	}
}

func TestNodeValidContains(t *testing.T) {
	var id ID
	id[0], id[1], id[7] = 0xab, 0xcd, 0x12
	tests := []struct {
		n               Node
		valid, contains bool
	}{
		{Node{}, true, true},
		{Node{Depth: 1, Prefix: 0xa}, true, true},
		{Node{Depth: 1, Prefix: 0xb}, true, false},
		{Node{Depth: 3, Prefix: 0xabc}, true, true},
		{Node{Depth: 3, Prefix: 0x1abc}, false, false},
		{Node{Depth: 16, Prefix: 0xabcd000000000012}, true, true},
		{Node{Depth: 17}, false, false},
	}
	for _, tt := range tests {
		if got := tt.n.Valid(); got != tt.valid {
			t.Errorf("%v.Valid() = %v, want %v", tt.n, got, tt.valid)
		}
		if got := tt.n.Contains(id); got != tt.contains {
			t.Errorf("%v.Contains = %v, want %v", tt.n, got, tt.contains)
		}
	}
}

func drawSet(t *rapid.T, label string) []Entry {
	rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, label+"Seed"), 0))
	pool := randEntries(rng, 64, 1, 4) // a small pool, so sets overlap
	n := rapid.IntRange(0, 3000).Draw(t, label+"Extra")
	if rapid.Bool().Draw(t, label+"Small") {
		n = rapid.IntRange(0, 20).Draw(t, label+"ExtraSmall")
	}
	var out []Entry
	for _, e := range pool {
		if rapid.Bool().Draw(t, label+"Pick") {
			out = append(out, e)
		}
	}
	return append(out, randEntries(rng, n, 1, 4)...)
}

func TestMergeProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := drawSet(t, "a"), drawSet(t, "b"), drawSet(t, "c")
		merged := func(parts ...[]Entry) *Set {
			s := setOf(parts[0])
			for _, p := range parts[1:] {
				s.Merge(setOf(p))
			}
			return s
		}
		union := modelOf(a, b, c)
		ab := merged(a, b)
		if diff := cmp.Diff(modelOf(a, b), ab.model()); diff != "" {
			t.Fatalf("a∪b lost or invented entries (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(ab.model(), merged(b, a).model()); diff != "" {
			t.Fatalf("merge not commutative:\n%s", diff)
		}
		left := merged(a, b)
		left.Merge(setOf(c))
		right := setOf(b)
		right.Merge(setOf(c))
		right2 := setOf(a)
		right2.Merge(right)
		if diff := cmp.Diff(left.model(), right2.model()); diff != "" {
			t.Fatalf("merge not associative:\n%s", diff)
		}
		if diff := cmp.Diff(union, left.model()); diff != "" {
			t.Fatalf("(a∪b)∪c differs from the model (-want +got):\n%s", diff)
		}
		before := ab.model()
		fp := ab.Fingerprint(Node{})
		if n := ab.Merge(setOf(a)); n != 0 {
			t.Fatalf("re-merging a part added %d, want 0", n)
		}
		if n := ab.Merge(ab); n != 0 {
			t.Fatalf("self-merge added %d", n)
		}
		if diff := cmp.Diff(before, ab.model()); diff != "" || ab.Fingerprint(Node{}) != fp {
			t.Fatalf("merge not idempotent:\n%s", diff)
		}
		sa := setOf(a)
		if got, want := sa.Merge(setOf(b)), len(modelOf(a, b))-len(modelOf(a)); got != want {
			t.Fatalf("Merge returned %d new, want %d", got, want)
		}
	})
}

// TestMergeDepths merges sets whose buckets have different depths, both
// ways, and across a deepening of the receiver.
func TestMergeDepths(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	es := randEntries(rng, 160000, 8, 8)
	tests := []struct {
		name         string
		dst, src     []Entry
		wantDstDepth int
	}{
		{"small into large", es[:20000], es[19900:20100], 3},
		{"large into small", es[19900:20100], es[:20000], 3},
		{"large into large", es[:100000], es[60000:], 4},
		{"into empty", nil, es[:9000], 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst, src := setOf(tt.dst), setOf(tt.src)
			union := append(slices.Clone(tt.dst), tt.src...)
			want := setOf(union)
			if got, wantN := dst.Merge(src), want.Len()-len(tt.dst); got != wantN {
				t.Fatalf("Merge = %d, want %d", got, wantN)
			}
			if !slices.EqualFunc(dst.Entries(), want.Entries(), func(a, b Entry) bool { return a.ID == b.ID }) {
				t.Fatalf("merged entries differ from the union: %d, want %d", dst.Len(), want.Len())
			}
			if dst.depth != tt.wantDstDepth {
				t.Fatalf("bucket depth = %d, want %d", dst.depth, tt.wantDstDepth)
			}
			for range 20 {
				id := union[rng.IntN(len(union))].ID
				for d := 0; d <= 6; d++ {
					n := Node{Depth: uint8(d), Prefix: prefixOf(&id, d)}
					if got, w := dst.Fingerprint(n), want.Fingerprint(n); got != w {
						t.Fatalf("Fingerprint(%v) = %v, want %v", n, got, w)
					}
				}
			}
		})
	}
}

// A set that loses most of its entries (a cache shed by the memory budget)
// moves the rest into a dense slab and gives the slots back; it stays the
// same set, and fills again.
func TestSetCompactsWhenMostlyFree(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	es := append(randEntries(rng, 6000, 8, 40), clusteredEntries(rng, 2000)...)
	var s Set
	live := model{}
	for _, e := range es {
		s.Add(e)
		live[e.ID] = string(e.Sealed)
	}
	peak := s.slots
	for _, e := range es[:7000] {
		s.Remove(e.ID)
		delete(live, e.ID)
	}
	if s.slots >= peak/4 || len(s.free) > s.slots {
		t.Fatalf("after removing 7000 of 8000 entries the slab has %d slots (%d free), was %d: not given back", s.slots, len(s.free), peak)
	}
	if diff := cmp.Diff(live, s.model()); diff != "" {
		t.Fatalf("set differs from the model after compacting (-want +got):\n%s", diff)
	}
	for _, e := range es[:3000] {
		s.Add(e)
		live[e.ID] = string(e.Sealed)
	}
	if diff := cmp.Diff(live, s.model()); diff != "" {
		t.Fatalf("set differs from the model after refilling (-want +got):\n%s", diff)
	}
	for _, e := range s.Entries()[:50] {
		n := Node{Depth: 2, Prefix: prefixOf(&e.ID, 2)}
		if f, want := s.Fingerprint(n), naiveFingerprint(s.Entries(), n); f != want {
			t.Fatalf("Fingerprint(%v) = %v, want %v", n, f, want)
		}
	}
}
