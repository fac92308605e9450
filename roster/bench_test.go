package roster

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

var benchSizes = []int{1000, 1000000}

// benchEntries caches random entries (sealed 80 bytes) across benchmarks.
var benchEntries []Entry

func entriesForBench(n int) []Entry {
	if len(benchEntries) < n {
		rng := rand.New(rand.NewPCG(42, uint64(n)))
		benchEntries = append(benchEntries, randEntries(rng, n-len(benchEntries), 80, 80)...)
	}
	return benchEntries[:n]
}

// BenchmarkAdd adds entries one by one into a set of about 10^5 (a relay
// cache), buckets and fingerprints included.
func BenchmarkAdd(b *testing.B) {
	es := entriesForBench(100000)
	b.ReportAllocs()
	var s Set
	i := 0
	for b.Loop() {
		if i == len(es) {
			s, i = Set{}, 0
		}
		s.Add(es[i])
		i++
	}
}

// BenchmarkAddRemoveAtCap adds entries to a set held at 10^5 entries by
// removing the oldest after each Add, as a relay cache at its cap does.
func BenchmarkAddRemoveAtCap(b *testing.B) {
	const capacity = 100000
	es := entriesForBench(2 * capacity)
	s := setOf(es[:capacity])
	b.ReportAllocs()
	i := capacity
	for b.Loop() {
		if !s.Add(es[i%len(es)]) || !s.Remove(es[(i-capacity)%len(es)].ID) {
			b.Fatal("entry present on Add or missing on Remove")
		}
		i++
	}
}

// BenchmarkMerge merges two sets of n entries that share half of them.
func BenchmarkMerge(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			es := entriesForBench(n + n/2)
			x, y := setOf(es[:n]), setOf(es[n/2:])
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				dst := setOf(x.Entries())
				b.StartTimer()
				dst.Merge(y)
			}
		})
	}
}

// BenchmarkSyncDiff runs a whole exchange between sets of n entries that
// differ by 10 (5 missing on each side).
func BenchmarkSyncDiff(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			es := entriesForBench(n + 5)
			x, y := setOf(es[:n]), setOf(es[5:])
			b.ReportAllocs()
			var st syncStats
			for b.Loop() {
				st = exchange(b, x, y, false)
				b.StopTimer()
				for _, e := range es[:5] {
					y.Remove(e.ID)
				}
				for _, e := range es[n:] {
					x.Remove(e.ID)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(st.total()), "wire-bytes/op")
			b.ReportMetric(float64(st.Msgs), "msgs/op")
		})
	}
}

// BenchmarkFingerprintRoot reads the root fingerprint of a large set.
func BenchmarkFingerprintRoot(b *testing.B) {
	s := setOf(entriesForBench(1000000))
	b.ReportAllocs()
	var fp Fingerprint
	for b.Loop() {
		fp = s.Fingerprint(Node{})
	}
	_ = fp
}

// BenchmarkFingerprintDeep reads fingerprints of nodes below the buckets,
// which scan part of one bucket.
func BenchmarkFingerprintDeep(b *testing.B) {
	es := entriesForBench(1000000)
	s := setOf(es)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := es[i%len(es)].ID
		s.Fingerprint(Node{Depth: 7, Prefix: prefixOf(&id, 7)})
		i++
	}
}

// BenchmarkSeal seals a 80-byte capsule reference, as an instance does for
// each capsule it announces (and the relay bench for each entry).
func BenchmarkSeal(b *testing.B) {
	k, err := DeriveKeys([]byte("bench secret"), "hub")
	if err != nil {
		b.Fatal(err)
	}
	ref := make([]byte, 80)
	b.ReportAllocs()
	for b.Loop() {
		ref[0]++
		if _, err := k.Seal(ref); err != nil {
			b.Fatal(err)
		}
	}
}
