package roster

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
)

// specKeys re-derives a channel's keys the way PROTOCOL.md §7 states it,
// without the code under test, so the tests below compare Seal with the
// document rather than with itself.
type specKeys struct {
	seal, nonce []byte
	aead        cipher.AEAD
}

func newSpecKeys(t *testing.T, secret, hub string) specKeys {
	t.Helper()
	key := func(label string) []byte {
		b, err := hkdf.Key(sha256.New, []byte(secret), []byte("cosnim relay v1"), label+"\x00"+hub, 32)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s := specKeys{seal: key("seal"), nonce: key("nonce")}
	block, err := aes.NewCipher(s.seal)
	if err != nil {
		t.Fatal(err)
	}
	if s.aead, err = cipher.NewGCM(block); err != nil {
		t.Fatal(err)
	}
	return s
}

// specNonce is §8's nonce: the first 12 bytes of HMAC-SHA256(nonce key, ref).
func (s specKeys) specNonce(ref []byte) []byte {
	m := hmac.New(sha256.New, s.nonce)
	m.Write(ref)
	return m.Sum(nil)[:12]
}

// The nonce of an entry is the HMAC of its reference, as §8 states: a
// constant, counter or random nonce fails here, and a repeated GCM nonce
// under one key would leak the XOR of two references and the GHASH key.
func TestSealNonceIsHMACOfRef(t *testing.T) {
	const secret, hub = "continuum secret", "hub-a"
	k, spec := mustKeys(t, secret, hub), newSpecKeys(t, secret, hub)
	seen := map[string]string{}
	for i := range 1000 {
		ref := fmt.Appendf(nil, "capsule/%04d", i)
		e, err := k.Seal(ref)
		if err != nil {
			t.Fatal(err)
		}
		nonce := e.Sealed[:12]
		if want := spec.specNonce(ref); !bytes.Equal(nonce, want) {
			t.Fatalf("Seal(%q) nonce %x, want HMAC-derived %x", ref, nonce, want)
		}
		if prev, ok := seen[string(nonce)]; ok {
			t.Fatalf("Seal(%q) and Seal(%q) share the nonce %x", prev, ref, nonce)
		}
		seen[string(nonce)] = string(ref)
	}
}

// The sealed bytes are nonce ‖ AES-256-GCM(seal key, nonce, ref, additional
// data = channel ID), byte for byte.
func TestSealMatchesSpec(t *testing.T) {
	const secret, hub = "continuum secret", "hub-a"
	k, spec := mustKeys(t, secret, hub), newSpecKeys(t, secret, hub)
	for _, ref := range [][]byte{{}, []byte("capsule/0001"), bytes.Repeat([]byte{0xa5}, MaxRefSize)} {
		e, err := k.Seal(ref)
		if err != nil {
			t.Fatal(err)
		}
		nonce := spec.specNonce(ref)
		id := k.ID()
		want := spec.aead.Seal(bytes.Clone(nonce), nonce, ref, id[:])
		if !bytes.Equal(e.Sealed, want) {
			t.Fatalf("Seal(%d bytes) =\n%x\nwant\n%x", len(ref), e.Sealed, want)
		}
		if _, err := spec.aead.Open(nil, nonce, e.Sealed[12:], nil); err == nil {
			t.Fatal("the entry opens without the channel ID as additional data")
		}
	}
}

// An entry moved to another channel does not open there even if that
// channel had the same seal key: the channel ID is the AEAD's additional
// data. Dropping it from both Seal and Open keeps round trips working and
// fails only here (and in TestSealMatchesSpec and the KAT).
func TestSealBindsChannelID(t *testing.T) {
	k := mustKeys(t, "continuum secret", "hub-a")
	e, err := k.Seal([]byte("capsule/9"))
	if err != nil {
		t.Fatal(err)
	}
	moved := &Keys{id: k.id, aead: k.aead} // Open needs no more
	moved.id[0] ^= 1
	if ref, err := moved.Open(e); !errors.Is(err, ErrForged) {
		t.Fatalf("Open under another channel ID = %q, %v; want ErrForged", ref, err)
	}
	if _, err := k.Open(e); err != nil {
		t.Fatalf("Open under its own channel ID: %v", err)
	}
}
