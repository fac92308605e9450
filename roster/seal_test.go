package roster

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func mustKeys(t *testing.T, secret, hub string) *Keys {
	t.Helper()
	k, err := DeriveKeys([]byte(secret), hub)
	if err != nil {
		t.Fatalf("DeriveKeys(%q, %q): %v", secret, hub, err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustKeys(t, "continuum secret", "hub-a")
	for _, ref := range [][]byte{{}, []byte("capsule/0001"), bytes.Repeat([]byte{0xa5}, MaxRefSize)} {
		e, err := k.Seal(ref)
		if err != nil {
			t.Fatalf("Seal(%d bytes): %v", len(ref), err)
		}
		if e.ID != NewEntry(e.Sealed).ID {
			t.Fatal("Seal's ID is not the SHA-256 of its sealed bytes")
		}
		if bytes.Contains(e.Sealed, []byte("capsule")) {
			t.Fatal("sealed bytes contain the reference in clear")
		}
		got, err := k.Open(e)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, ref) {
			t.Fatalf("Open = %q, want %q", got, ref)
		}
	}
}

func TestSealDeterministic(t *testing.T) {
	k1 := mustKeys(t, "continuum secret", "hub-a")
	k2 := mustKeys(t, "continuum secret", "hub-a") // another instance
	e1, _ := k1.Seal([]byte("capsule/42"))
	e2, _ := k2.Seal([]byte("capsule/42"))
	if e1.ID != e2.ID || !bytes.Equal(e1.Sealed, e2.Sealed) {
		t.Fatal("the same reference sealed twice gives different entries")
	}
	e3, _ := k1.Seal([]byte("capsule/43"))
	if e3.ID == e1.ID {
		t.Fatal("different references give the same entry")
	}
	if k1.ID() != k2.ID() {
		t.Fatal("the same secret and hub give different channel IDs")
	}
}

func TestOpenForged(t *testing.T) {
	k := mustKeys(t, "continuum secret", "hub-a")
	e, err := k.Seal([]byte("capsule/7"))
	if err != nil {
		t.Fatal(err)
	}
	otherHub := mustKeys(t, "continuum secret", "hub-b")
	otherSecret := mustKeys(t, "another secret", "hub-a")
	if otherHub.ID() == k.ID() || otherSecret.ID() == k.ID() {
		t.Fatal("distinct channels share an ID")
	}
	tampered := func(i int) Entry {
		b := bytes.Clone(e.Sealed)
		b[i] ^= 0x01
		return NewEntry(b)
	}
	tests := []struct {
		name string
		keys *Keys
		e    Entry
	}{
		{"another hub", otherHub, e},
		{"another secret", otherSecret, e},
		{"tampered nonce", k, tampered(0)},
		{"tampered body", k, tampered(len(e.Sealed) / 2)},
		{"tampered tag", k, tampered(len(e.Sealed) - 1)},
		{"truncated", k, NewEntry(e.Sealed[:len(e.Sealed)-1])},
		{"too short", k, NewEntry(e.Sealed[:8])},
		{"empty", k, NewEntry(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, err := tt.keys.Open(tt.e)
			if !errors.Is(err, ErrForged) {
				t.Fatalf("Open = %q, %v; want ErrForged", ref, err)
			}
		})
	}
}

// TestOpenMintedNonce: a holder of the secret can seal one reference
// under any nonce it likes; each such entry has its own ID, so without the
// nonce check one capsule would be many entries that never deduplicate.
func TestOpenMintedNonce(t *testing.T) {
	k := mustKeys(t, "continuum secret", "hub-a")
	ref := []byte("capsule/7")
	honest, err := k.Seal(ref)
	if err != nil {
		t.Fatal(err)
	}
	ns := k.aead.NonceSize()
	for i := range 3 {
		nonce := bytes.Repeat([]byte{byte(i)}, ns)
		minted := NewEntry(k.aead.Seal(append([]byte(nil), nonce...), nonce, ref, k.id[:]))
		if minted.ID == honest.ID {
			t.Fatal("a minted entry has the honest entry's ID")
		}
		got, err := k.Open(minted)
		if !errors.Is(err, ErrBadNonce) || !errors.Is(err, ErrForged) {
			t.Fatalf("Open(ref sealed under nonce %x) = %q, %v; want ErrBadNonce (an ErrForged)", nonce, got, err)
		}
	}
	if got, err := k.Open(honest); err != nil || !bytes.Equal(got, ref) {
		t.Fatalf("Open(Seal(ref)) = %q, %v", got, err)
	}
}

func TestDeriveKeysNoSecret(t *testing.T) {
	for _, secret := range [][]byte{nil, {}} {
		if k, err := DeriveKeys(secret, "hub"); !errors.Is(err, ErrNoSecret) || k != nil {
			t.Fatalf("DeriveKeys(%q) = %v, %v; want nil, ErrNoSecret", secret, k, err)
		}
	}
}

func TestSealRefTooLong(t *testing.T) {
	k := mustKeys(t, "s", "h")
	if _, err := k.Seal(make([]byte, MaxRefSize)); err != nil {
		t.Fatalf("Seal of MaxRefSize bytes: %v", err)
	}
	if _, err := k.Seal(make([]byte, MaxRefSize+1)); !errors.Is(err, ErrRefTooLong) {
		t.Fatalf("Seal of MaxRefSize+1 bytes: err = %v, want ErrRefTooLong", err)
	}
}

func TestVerifyJoin(t *testing.T) {
	k := mustKeys(t, "continuum secret", "hub-a")
	other := mustKeys(t, "continuum secret", "hub-b")
	nonce := [JoinNonceSize]byte{1, 2, 3}
	pub, sig := k.JoinProof(nonce)
	if ChannelIDOf(pub) != k.ID() {
		t.Fatal("JoinProof's public key does not stand for the channel")
	}
	otherPub, otherSig := other.JoinProof(nonce)
	wrongNonce := nonce
	wrongNonce[0] ^= 1
	badSig := sig
	badSig[10] ^= 1
	tests := []struct {
		name    string
		channel ChannelID
		nonce   [JoinNonceSize]byte
		pub     [PublicKeySize]byte
		sig     [SignatureSize]byte
		want    bool
	}{
		{"correct", k.ID(), nonce, pub, sig, true},
		{"wrong nonce", k.ID(), wrongNonce, pub, sig, false},
		{"wrong channel", other.ID(), nonce, pub, sig, false},
		{"pubkey of another channel", k.ID(), nonce, otherPub, otherSig, false},
		{"other channel's pubkey with our sig", k.ID(), nonce, otherPub, sig, false},
		{"bad signature", k.ID(), nonce, pub, badSig, false},
		{"other channel, its own proof", other.ID(), nonce, otherPub, otherSig, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyJoin(tt.channel, tt.nonce, tt.pub, tt.sig); got != tt.want {
				t.Fatalf("VerifyJoin = %v, want %v", got, tt.want)
			}
		})
	}
	// Proofs are deterministic: no random source is involved.
	pub2, sig2 := k.JoinProof(nonce)
	if pub2 != pub || sig2 != sig {
		t.Fatal("JoinProof is not deterministic")
	}
}

// Keys are shared between goroutines: sealing from several at once must
// give each reference its one entry (the keyed MACs are pooled).
func TestSealConcurrent(t *testing.T) {
	k := mustKeys(t, "continuum secret", "hub")
	want := make([][]byte, 200)
	for i := range want {
		e, err := k.Seal(fmt.Appendf(nil, "capsule/%d", i))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = e.Sealed
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for j := range want {
				i := (j + 50*g) % len(want)
				e, err := k.Seal(fmt.Appendf(nil, "capsule/%d", i))
				if err != nil || !bytes.Equal(e.Sealed, want[i]) {
					errs <- fmt.Errorf("goroutine %d, ref %d: sealed differently (%v)", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
