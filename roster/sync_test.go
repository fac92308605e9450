package roster

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

func TestSyncConverges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := drawPair(t)
		a, b := setOf(p.common, p.onlyA), setOf(p.common, p.onlyB)
		late := rapid.Bool().Draw(t, "lateDelivery")
		aStarts := rapid.Bool().Draw(t, "aStarts")
		var st syncStats
		if aStarts {
			st = exchange(t, a, b, late)
		} else {
			st = exchange(t, b, a, late)
		}
		// Both equal the union, which also says nothing appeared that
		// neither side had.
		union := modelOf(p.common, p.onlyA, p.onlyB)
		if diff := cmp.Diff(union, a.model()); diff != "" {
			t.Fatalf("a after sync differs from a∪b (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(union, b.model()); diff != "" {
			t.Fatalf("b after sync differs from a∪b (-want +got):\n%s", diff)
		}
		if !late {
			// Each missing entry travels exactly once.
			if got, want := st.Given[0]+st.Given[1], len(modelOf(p.onlyA))+len(modelOf(p.onlyB)); got != want {
				t.Fatalf("entries given = %d, want %d", got, want)
			}
		}
	})
}

// Limited replies still converge to the union, each missing entry given
// once, however small the limit.
func TestSyncLimitConverges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := drawPair(t)
		limit := rapid.IntRange(1, 40).Draw(t, "limit")
		a, b := setOf(p.common, p.onlyA), setOf(p.common, p.onlyB)
		st := exchangeLimit(t, a, b, false, limit)
		union := modelOf(p.common, p.onlyA, p.onlyB)
		if diff := cmp.Diff(union, a.model()); diff != "" {
			t.Fatalf("a after limited sync differs from a∪b (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(union, b.model()); diff != "" {
			t.Fatalf("b after limited sync differs from a∪b (-want +got):\n%s", diff)
		}
		if got, want := st.Given[0]+st.Given[1], len(modelOf(p.onlyA))+len(modelOf(p.onlyB)); got != want {
			t.Fatalf("entries given = %d, want %d", got, want)
		}
	})
}

// A peer claiming to hold nothing, by an empty root fingerprint or an
// empty root ID list, gets at most the limit per reply, and the rest
// round by round.
func TestSyncLimitPacesEmptyClaims(t *testing.T) {
	big := setOf(randEntries(rand.New(rand.NewPCG(7, 7)), 50_000, 16, 16))
	root := Node{}
	for _, claim := range []SyncMsg{
		{Ranges: []Range{{Node: root, Mode: ModeFingerprint}}},
		{Ranges: []Range{{Node: root, Mode: ModeIDs}}},
	} {
		_, all := big.ReplySync(&claim)
		if len(all) != 50_000 {
			t.Fatalf("unlimited reply gave %d entries, want all 50000", len(all))
		}
		out, give := big.ReplySyncLimit(&claim, 1000)
		if len(give) > 1000 {
			t.Fatalf("limited reply to an empty claim gave %d entries, want at most 1000", len(give))
		}
		if len(out.Ranges) != 16 {
			t.Fatalf("limited reply has %d ranges, want the root's 16 children", len(out.Ranges))
		}
	}
	// An honest empty peer still gets everything, paced.
	var empty Set
	st := exchangeLimit(t, &empty, big, false, 1000)
	if empty.Len() != 50_000 || st.Given[1] != 50_000 {
		t.Fatalf("empty peer holds %d after a paced sync (given %d), want 50000", empty.Len(), st.Given[1])
	}
	t.Logf("50000 entries to an empty peer at 1000 a reply: %d messages", st.Msgs)
}

func TestSyncEqualSetsOneRound(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := drawPair(t)
		a, b := setOf(p.common, p.onlyA), setOf(p.onlyA, p.common)
		msg := a.StartSync()
		if msg.Empty() {
			t.Fatal("StartSync returned an empty message")
		}
		out, give := b.ReplySync(&msg)
		if !out.Empty() || len(give) != 0 {
			t.Fatalf("reply to an equal set = %d ranges, %d wants, %d given; want nothing",
				len(out.Ranges), len(out.Want), len(give))
		}
		if limit := 64; msg.EncodedSize() > limit && a.Len() > int(idsThreshold) {
			t.Fatalf("first message of a large set is %d bytes, want ≤ %d", msg.EncodedSize(), limit)
		}
	})
}

// TestSyncEmptySides: a fresh client (empty) catching up, and a relay that
// lost its memory being caught up.
func TestSyncEmptySides(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	es := randEntries(rng, 5000, 80, 80)
	for _, tc := range []struct {
		name  string
		aFull bool
	}{{"empty starts", false}, {"full starts", true}} {
		t.Run(tc.name, func(t *testing.T) {
			full, empty := setOf(es), new(Set)
			a, b := empty, full
			if tc.aFull {
				a, b = full, empty
			}
			st := exchange(t, a, b, false)
			if diff := cmp.Diff(modelOf(es), empty.model()); diff != "" {
				t.Fatalf("empty side after sync (-want +got):\n%s", diff)
			}
			if st.Msgs > 2 {
				t.Errorf("messages = %d, want ≤ 2", st.Msgs)
			}
			t.Logf("%s: %d messages, %d bytes", tc.name, st.Msgs, st.total())
		})
	}
}

// TestSyncCost100k: a side missing 10 of 100,000 entries pays for about
// what it lacks, not for the roster's size.
func TestSyncCost100k(t *testing.T) {
	const n, k = 100000, 10
	const maxBytes, maxMsgs = 300 * 82, 8
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := range 3 {
		es := randEntries(rng, n, 80, 80)
		for _, bStarts := range []bool{false, true} {
			full, lacking := setOf(es), setOf(es[k:])
			var st syncStats
			if bStarts {
				st = exchange(t, lacking, full, false)
			} else {
				st = exchange(t, full, lacking, false)
			}
			if !slices.EqualFunc(full.Entries(), lacking.Entries(), func(a, b Entry) bool {
				return a.ID == b.ID && string(a.Sealed) == string(b.Sealed)
			}) {
				t.Fatalf("lacking side not caught up: %d entries, want %d", lacking.Len(), full.Len())
			}
			given := st.Given[0] + st.Given[1]
			t.Logf("trial %d, lacking side starts=%v: %d messages, %d bytes (%d sync + %d entries, %d given), ≈%.0f entries' worth",
				trial, bStarts, st.Msgs, st.total(), st.total()-given*82, given*82, given, float64(st.total())/82)
			if given != k {
				t.Errorf("entries given = %d, want %d", given, k)
			}
			if st.total() > maxBytes {
				t.Errorf("bytes = %d, want ≤ %d", st.total(), maxBytes)
			}
			if st.Msgs > maxMsgs {
				t.Errorf("messages = %d, want ≤ %d", st.Msgs, maxMsgs)
			}
		}
	}
}

// TestSyncGivesK: k missing entries come back as exactly k entries, and the
// cost grows with k, not with the roster.
func TestSyncGivesK(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	es := randEntries(rng, 20000, 60, 100)
	for _, k := range []int{0, 1, 2, 17, 100, 1000} {
		full, lacking := setOf(es), setOf(es[k:])
		st := exchange(t, lacking, full, false)
		if st.Given[1] != k || st.Given[0] != 0 {
			t.Errorf("k=%d: full side gave %d, lacking side gave %d; want %d and 0", k, st.Given[1], st.Given[0], k)
		}
		if lacking.Len() != full.Len() {
			t.Errorf("k=%d: lacking side has %d after sync, want %d", k, lacking.Len(), full.Len())
		}
		if limit := 1000 + 1500*k; st.total() > limit {
			t.Errorf("k=%d: %d bytes, want ≤ %d", k, st.total(), limit)
		}
		t.Logf("k=%d: %d messages, %d bytes", k, st.Msgs, st.total())
	}
}

// TestReplySyncDeterministic: the reply depends only on the set's contents
// and the message, not on insertion order or map order.
func TestReplySyncDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	es := randEntries(rng, 3000, 20, 40)
	peer := setOf(es[100:], randEntries(rng, 50, 20, 40))
	shuffled := slices.Clone(es)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	a1, a2 := setOf(es), setOf(shuffled)
	msg := peer.StartSync()
	for range 6 {
		out1, give1 := a1.ReplySync(&msg)
		out2, give2 := a2.ReplySync(&msg)
		if diff := cmp.Diff(out1, out2); diff != "" {
			t.Fatalf("replies differ:\n%s", diff)
		}
		if diff := cmp.Diff(give1, give2); diff != "" {
			t.Fatalf("gives differ:\n%s", diff)
		}
		if !slices.IsSortedFunc(out1.Ranges, func(a, b Range) int {
			if a.Node.less(b.Node) {
				return -1
			}
			return 1
		}) {
			t.Fatal("ranges not in strict node order")
		}
		if !slices.IsSortedFunc(give1, func(a, b Entry) int { return compareIDs(a.ID, b.ID) }) {
			t.Fatal("give not sorted")
		}
		if out1.Empty() {
			return
		}
		msg, _ = peer.ReplySync(&out1)
		if msg.Empty() {
			return
		}
	}
}

// TestReplySyncBadInput: malformed messages are ignored or read leniently,
// never a panic.
func TestReplySyncBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	es := randEntries(rng, 500, 20, 40)
	s := setOf(es)
	ids := func(list []Entry) []ID {
		out := make([]ID, len(list))
		for i, e := range list {
			out[i] = e.ID
		}
		return out
	}
	stranger := NewEntry([]byte("stranger")).ID
	all := ids(s.Entries())
	reversed := slices.Clone(all)
	slices.Reverse(reversed)
	tests := []struct {
		name      string
		in        SyncMsg
		wantGive  int
		wantWant  []ID
		wantEmpty bool
	}{
		{"depth too deep", SyncMsg{Ranges: []Range{{Node: Node{Depth: 17}, Mode: ModeFingerprint}}}, 0, nil, true},
		{"prefix too wide", SyncMsg{Ranges: []Range{{Node: Node{Depth: 1, Prefix: 16}, Mode: ModeIDs}}}, 0, nil, true},
		{"unknown mode", SyncMsg{Ranges: []Range{{Node: Node{}, Mode: 9}}}, 0, nil, true},
		{"unknown want", SyncMsg{Want: []ID{stranger}}, 0, nil, true},
		{"duplicate wants", SyncMsg{Want: []ID{all[3], all[3], all[1]}}, 2, nil, true},
		{"unsorted full list", SyncMsg{Ranges: []Range{{Node: Node{}, Mode: ModeIDs, IDs: reversed}}}, 0, nil, true},
		{"duplicated list", SyncMsg{Ranges: []Range{{Node: Node{}, Mode: ModeIDs, IDs: append(slices.Clone(all), all...)}}}, 0, nil, true},
		{"list with a stranger", SyncMsg{Ranges: []Range{{Node: Node{}, Mode: ModeIDs, IDs: append([]ID{stranger}, all[1:]...)}}}, 1, []ID{stranger}, false},
		{"empty list", SyncMsg{Ranges: []Range{{Node: Node{}, Mode: ModeIDs}}}, len(all), nil, true},
		{"zero count", SyncMsg{Ranges: []Range{{Node: Node{}, Mode: ModeFingerprint}}}, len(all), nil, true},
		{"same node twice", SyncMsg{Ranges: []Range{{Node: Node{}, Mode: ModeIDs}, {Node: Node{}, Mode: ModeIDs}}}, len(all), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, give := s.ReplySync(&tt.in)
			if len(give) != tt.wantGive {
				t.Errorf("gave %d, want %d", len(give), tt.wantGive)
			}
			if diff := cmp.Diff(tt.wantWant, out.Want); diff != "" {
				t.Errorf("want list (-want +got):\n%s", diff)
			}
			if out.Empty() != tt.wantEmpty {
				t.Errorf("reply empty = %v, want %v", out.Empty(), tt.wantEmpty)
			}
		})
	}
	// An ID list ignores IDs outside its node.
	id := all[0]
	n := Node{Depth: 2, Prefix: prefixOf(&id, 2)}
	in := SyncMsg{Ranges: []Range{{Node: n, Mode: ModeIDs, IDs: []ID{stranger}}}}
	if n.Contains(stranger) {
		t.Skip("stranger happens to lie in the node")
	}
	out, give := s.ReplySync(&in)
	if len(out.Want) != 0 {
		t.Errorf("wanted an ID outside the node: %x", out.Want)
	}
	if got, want := len(give), int(s.count(n)); got != want {
		t.Errorf("gave %d, want the node's %d", got, want)
	}
}

func TestEncodedSize(t *testing.T) {
	var id ID
	m := SyncMsg{
		Ranges: []Range{
			{Node: Node{}, Mode: ModeFingerprint, FP: Fingerprint{Count: 100000}},   // 1+0+1 + 3+16
			{Node: Node{Depth: 3, Prefix: 0xabc}, Mode: ModeIDs, IDs: []ID{id, id}}, // 1+2+1 + 1+64
			{Node: Node{Depth: 16}, Mode: ModeIDs},                                  // 1+8+1 + 1
		},
		Want: []ID{id}, // 1+32
	}
	want := 2 + (2 + 3 + 16) + (4 + 1 + 64) + (10 + 1) + (1 + 32)
	if got := m.EncodedSize(); got != want {
		t.Fatalf("EncodedSize = %d, want %d", got, want)
	}
	if got := (&SyncMsg{}).EncodedSize(); got != 3 {
		t.Fatalf("EncodedSize of an empty message = %d, want 3", got)
	}
}
