package relayserver

import "testing"

// Two sources never start alike: each is seeded from crypto/rand.
func TestCryptoSourceSeededPerServer(t *testing.T) {
	a, b := cryptoSource(), cryptoSource()
	if a.Uint64() == b.Uint64() && a.Uint64() == b.Uint64() {
		t.Fatal("two production sources drew the same values: not seeded from crypto/rand")
	}
}
