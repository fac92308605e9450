package roster

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// heapPerItem is the live heap that n items made by mk cost each, by
// runtime.MemStats before and after (keep holds them through the second
// reading).
func heapPerItem(n int, mk func(i int) any) float64 {
	keep := mk(0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	items := []any{keep}
	for i := range n {
		items = append(items, mk(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(items)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// A set of one entry costs a few hundred bytes, not the 256 buckets and
// 273 sums the set once allocated at its first Add (13.8 KiB): a relay
// keeps one per channel, and outsiders make channels.
func TestSmallSetIsSmall(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	es := randEntries(rng, 4000, 38, 38)
	const bound = 512 // bytes a set beyond its 38 sealed bytes
	per := heapPerItem(len(es)-1, func(i int) any {
		s := new(Set)
		s.Add(es[i])
		return s
	})
	// The entries' sealed bytes were made before the first reading.
	if per > bound {
		t.Fatalf("a set of one entry costs %.0f bytes of heap, want at most %d", per, bound)
	}
	t.Logf("a set of one entry: %.0f bytes", per)
}
