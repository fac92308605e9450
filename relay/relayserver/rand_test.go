package relayserver

import "testing"

// Two sources never start alike: each is seeded from crypto/rand.
func TestCryptoSourceSeededPerServer(t *testing.T) {
	a, b := cryptoSource(), cryptoSource()
	da := [2]uint64{a.Uint64(), a.Uint64()}
	db := [2]uint64{b.Uint64(), b.Uint64()}
	if da == db {
		t.Fatal("two production sources drew the same values: not seeded from crypto/rand")
	}
}
