package roster

import (
	"encoding/binary"
	"math/rand/v2"

	"pgregory.net/rapid"
)

// fataler is what exchange needs of *testing.T, *testing.B and *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// randEntries makes n random entries with sealed sizes in [min, max].
func randEntries(rng *rand.Rand, n, min, max int) []Entry {
	out := make([]Entry, n)
	var buf [8]byte
	for i := range out {
		b := make([]byte, min+rng.IntN(max-min+1))
		for j := 0; j < len(b); j += 8 {
			binary.LittleEndian.PutUint64(buf[:], rng.Uint64())
			copy(b[j:], buf[:])
		}
		out[i] = NewEntry(b)
	}
	return out
}

// clusteredEntries makes n entries whose IDs share their first 8 bytes (so
// they all fall in one node of depth MaxDepth) and differ after it. Such IDs
// cannot come out of SHA-256; they exercise the deepest nodes.
func clusteredEntries(rng *rand.Rand, n int) []Entry {
	var head [8]byte
	for i := range head {
		head[i] = byte(rng.Uint32())
	}
	out := make([]Entry, n)
	for i := range out {
		var id ID
		copy(id[:], head[:])
		for j := 8; j < IDSize; j++ {
			id[j] = byte(rng.Uint32())
		}
		out[i] = Entry{ID: id, Sealed: append([]byte("clustered:"), id[8:16]...)}
	}
	return out
}

func setOf(es ...[]Entry) *Set {
	s := new(Set)
	for _, l := range es {
		for _, e := range l {
			s.Add(e)
		}
	}
	return s
}

// model is the plain reference: a map from ID to sealed bytes.
type model map[ID]string

func modelOf(es ...[]Entry) model {
	m := model{}
	for _, l := range es {
		for _, e := range l {
			m[e.ID] = string(e.Sealed)
		}
	}
	return m
}

func (s *Set) model() model {
	m := model{}
	for _, e := range s.Entries() {
		m[e.ID] = string(e.Sealed)
	}
	return m
}

// pair is what the property tests draw: two rosters that share a common part
// and each hold a private part.
type pair struct {
	common, onlyA, onlyB []Entry
}

// drawPair draws a realistic pair of rosters: sizes from 0 up to a few
// thousand, skewed to small ones, entries random (sealed 40..120 bytes),
// sometimes with a cluster of IDs that share a long prefix.
func drawPair(t *rapid.T) pair {
	size := func(label string, max int) int {
		// half the time small, so that shrinking and edge cases get their share
		if rapid.Bool().Draw(t, label+"Small") {
			return rapid.IntRange(0, 40).Draw(t, label)
		}
		return rapid.IntRange(0, max).Draw(t, label)
	}
	nc, na, nb := size("common", 3000), size("onlyA", 300), size("onlyB", 300)
	rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 1))
	p := pair{
		common: randEntries(rng, nc, 40, 120),
		onlyA:  randEntries(rng, na, 40, 120),
		onlyB:  randEntries(rng, nb, 40, 120),
	}
	if rapid.IntRange(0, 4).Draw(t, "cluster") == 0 {
		c := clusteredEntries(rng, rapid.IntRange(1, 60).Draw(t, "clusterSize"))
		for i, e := range c {
			switch i % 3 {
			case 0:
				p.common = append(p.common, e)
			case 1:
				p.onlyA = append(p.onlyA, e)
			default:
				p.onlyB = append(p.onlyB, e)
			}
		}
	}
	return p
}

// entryWireSize is what an entry costs in a Delta frame.
func entryWireSize(e Entry) int { return len(e.Sealed) + 2 }

// syncStats measures one exchange.
type syncStats struct {
	Msgs  int    // non-empty sync messages sent, the first included
	Bytes [2]int // bytes each side sent: sync bodies (EncodedSize) plus entries
	Given [2]int // entries each side gave
}

func (st syncStats) total() int { return st.Bytes[0] + st.Bytes[1] }

// exchange runs a whole reconciliation: a starts, then the sides answer
// each other's non-empty messages with ReplySync until a message is empty.
// Given entries are added to the other side at once, or, if late, only
// when the exchange is over (as if Delta frames were slow).
func exchange(tb fataler, a, b *Set, late bool) syncStats {
	tb.Helper()
	return exchangeLimit(tb, a, b, late, 0)
}

// exchangeLimit is exchange with both sides answering through
// ReplySyncLimit(limit); it fails if a reply gives more than the limit
// allows.
func exchangeLimit(tb fataler, a, b *Set, late bool, limit int) syncStats {
	tb.Helper()
	maxMsgs := 64
	if limit > 0 {
		maxMsgs = 1 << 14
	}
	sides := [2]*Set{a, b}
	var pending [2][]Entry
	var st syncStats
	msg := a.StartSync()
	st.Bytes[0] += msg.EncodedSize()
	from := 0
	for !msg.Empty() {
		st.Msgs++
		if st.Msgs > maxMsgs {
			tb.Fatalf("exchange did not end after %d messages", st.Msgs)
		}
		to := 1 - from
		out, give := sides[to].ReplySyncLimit(&msg, limit)
		if bound := limit + len(msg.Want) + deepRanges(&msg)*deepest(sides[to]); limit > 0 && len(give) > bound {
			tb.Fatalf("a reply gave %d entries: limit %d, %d wants, %d deepest ranges", len(give), limit, len(msg.Want), deepRanges(&msg))
		}
		for _, e := range give {
			st.Bytes[to] += entryWireSize(e)
			st.Given[to]++
			if late {
				pending[from] = append(pending[from], e)
			} else {
				sides[from].Add(e)
			}
		}
		st.Bytes[to] += out.EncodedSize()
		msg, from = out, to
	}
	for i, p := range pending {
		for _, e := range p {
			sides[i].Add(e)
		}
	}
	return st
}

// deepRanges counts ranges at MaxDepth, which ReplySyncLimit gives whole.
func deepRanges(m *SyncMsg) int {
	n := 0
	for _, r := range m.Ranges {
		if r.Node.Depth == MaxDepth {
			n++
		}
	}
	return n
}

// deepest is the most entries of s in one node at MaxDepth.
func deepest(s *Set) int {
	counts := map[[MaxDepth / 2]byte]int{}
	most := 0
	for _, e := range s.Entries() {
		k := [MaxDepth / 2]byte(e.ID[:MaxDepth/2])
		counts[k]++
		most = max(most, counts[k])
	}
	return most
}
