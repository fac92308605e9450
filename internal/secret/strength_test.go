package secret

import (
	"encoding/base64"
	"encoding/hex"
	"testing"
)

func TestStrength(t *testing.T) {
	for _, tc := range []struct {
		secret string
		weak   bool
	}{
		{"a", true},
		{"password", true},
		{"Password123", true},
		{"my continuum secret", true}, // README's old example
		{"correct horse battery staple", true},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true},
		{"12345678901234567890", true},
		{"abcdefghijklmnopqrstuvwxyz", true},
		{"Tr0ub4dor&3", true},
		{"k8#Qz!v2@Lp9$Wm4^Rt7", false}, // 20 characters of all classes
		{"orbit-quilt-mango-fever-pluck-tundra", false},
		{"3f9a1c0b7e5d2a4869c1f0e3b7a5d9c2", false}, // 128 bits in hex
	} {
		bits, why := Strength([]byte(tc.secret))
		if (why != "") != tc.weak || (why != "") != (bits < MinBits) {
			t.Errorf("Strength(%q) = %.1f bits, %q; want weak %v", tc.secret, bits, why, tc.weak)
		}
	}
}

func TestNewIsStrong(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s := New()
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) != NewBits/8 {
			t.Fatalf("New() = %q: %d bytes, %v; want %d bytes of base64url", s, len(b), err, NewBits/8)
		}
		if bits, why := Strength([]byte(s)); why != "" {
			t.Fatalf("New() = %q estimated %.1f bits: %s", s, bits, why)
		}
		if seen[s] {
			t.Fatalf("New() repeated %q", s)
		}
		seen[s] = true
	}
	if bits, why := Strength([]byte(hex.EncodeToString(make([]byte, 32)))); why == "" {
		t.Fatalf("64 zeros in hex estimated %.1f bits, want weak", bits)
	}
}
