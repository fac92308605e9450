package client

import (
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/cosnim/relays/roster"
)

func genChannel(t *rapid.T) roster.ChannelID {
	var id roster.ChannelID
	copy(id[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "channel"))
	return id
}

func genNames(t *rapid.T, min int) []string {
	return rapid.SliceOfNDistinct(rapid.StringMatching(`[a-z]{1,3}-[0-9]`), min, 12, rapid.ID[string]).Draw(t, "names")
}

// orderNames is the order of names as names.
func orderNames(id roster.ChannelID, names []string) []string {
	var out []string
	for _, i := range RendezvousOrder(id, names) {
		out = append(out, names[i])
	}
	return out
}

// Every member computes the same order, whatever order its configuration
// lists the relays in, and the order is a permutation of the pool.
func TestRendezvousAllMembersAgree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		id := genChannel(t)
		names := genNames(t, 1)
		want := orderNames(id, names)
		shuffled := rapid.Permutation(names).Draw(t, "listed")
		if got := orderNames(id, shuffled); !slices.Equal(got, want) {
			t.Fatalf("order %q from %q, %q from %q", got, shuffled, want, names)
		}
		sorted := slices.Sorted(slices.Values(want))
		if !slices.Equal(sorted, slices.Sorted(slices.Values(names))) {
			t.Fatalf("order %q is not a permutation of %q", want, names)
		}
		for i := 1; i < len(want); i++ {
			if RendezvousWeight(id, want[i-1]) < RendezvousWeight(id, want[i]) {
				t.Fatalf("order %q is not heaviest first", want)
			}
		}
	})
}

// Adding a relay keeps the others' relative order, so a channel's first k
// relays change only if the new relay is among them; removing one moves
// only the channels that had it among their first k.
func TestRendezvousMinimalMovement(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		id := genChannel(t)
		names := genNames(t, 2)
		k := rapid.IntRange(1, len(names)-1).Draw(t, "homes")
		added := names[len(names)-1]
		before := orderNames(id, names[:len(names)-1])
		after := orderNames(id, names)
		if got := slices.DeleteFunc(slices.Clone(after), func(n string) bool { return n == added }); !slices.Equal(got, before) {
			t.Fatalf("adding %q reordered the others: %q, was %q", added, got, before)
		}
		if !slices.Contains(after[:k], added) && !slices.Equal(after[:k], before[:k]) {
			t.Fatalf("adding %q (not in the first %d) moved the homes %q → %q", added, k, before[:k], after[:k])
		}
		gone := rapid.SampledFrom(names).Draw(t, "removed")
		rest := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == gone })
		if left := orderNames(id, rest); !slices.Contains(after[:k], gone) && !slices.Equal(left[:k], after[:k]) {
			t.Fatalf("removing %q (not in the first %d) moved the homes %q → %q", gone, k, after[:k], left[:k])
		}
	})
}

// The weight is the documented one: SHA-256(id || name), first 8 bytes
// big-endian. A known answer pins it, since every member must agree.
func TestRendezvousWeightKnownAnswer(t *testing.T) {
	var id roster.ChannelID
	// sha256("\x00"*32 + "east-1")[:8], computed with sha256sum.
	const want = 0xfe09770bde5cf211
	got := RendezvousWeight(id, "east-1")
	if got != want {
		t.Fatalf("RendezvousWeight(zero, east-1) = %#x, want %#x", got, uint64(want))
	}
}
