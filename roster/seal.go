package roster

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// ChannelID is the opaque name of a channel: SHA-256 of the channel's join
// public key, which is derived from the continuum secret. The relay sees
// only this.
type ChannelID [32]byte

// Sizes on the wire.
const (
	JoinNonceSize = 16
	PublicKeySize = ed25519.PublicKeySize
	SignatureSize = ed25519.SignatureSize
	// MaxRefSize is the largest capsule reference an entry may seal.
	MaxRefSize = 1024
)

// Errors from opening entries and checking joins.
var (
	ErrForged = errors.New("roster: entry does not open with the channel key")
	// ErrBadNonce: an entry that opens but whose nonce is not the HMAC of
	// its reference, so it would not deduplicate with the honest entry of
	// the same capsule. It wraps ErrForged.
	ErrBadNonce   = fmt.Errorf("%w: nonce is not the HMAC of the reference", ErrForged)
	ErrRefTooLong = fmt.Errorf("roster: capsule reference longer than %d bytes", MaxRefSize)
	ErrNoSecret   = errors.New("roster: empty continuum secret")
)

// Keys are a channel's keys, derived from the continuum secret and the hub
// name. Whoever holds them can join the channel, seal and open its entries.
type Keys struct {
	id       ChannelID
	priv     ed25519.PrivateKey
	pub      [PublicKeySize]byte
	aead     cipher.AEAD
	nonceKey []byte
	// macs keeps keyed HMACs for Seal: keying one costs two SHA-256
	// blocks and six allocations, more than the MAC of a reference. A
	// pool, since Keys are shared between goroutines.
	macs sync.Pool
}

// DeriveKeys derives the keys of the channel for hub from the continuum
// secret with HKDF-SHA256. The same inputs give the same keys everywhere.
func DeriveKeys(secret []byte, hub string) (*Keys, error) {
	if len(secret) == 0 {
		return nil, ErrNoSecret
	}
	derive := func(label string, n int) ([]byte, error) {
		return hkdf.Key(sha256.New, secret, []byte("cosnim relay v1"), label+"\x00"+hub, n)
	}
	seed, err := derive("join", ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	encKey, err := derive("seal", 32)
	if err != nil {
		return nil, err
	}
	nonceKey, err := derive("nonce", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &Keys{priv: ed25519.NewKeyFromSeed(seed), aead: aead, nonceKey: nonceKey}
	k.macs.New = func() any { return hmac.New(sha256.New, nonceKey) }
	copy(k.pub[:], k.priv.Public().(ed25519.PublicKey))
	k.id = ChannelIDOf(k.pub)
	return k, nil
}

// ChannelIDOf returns the channel ID that a join public key stands for.
func ChannelIDOf(pub [PublicKeySize]byte) ChannelID {
	h := sha256.New()
	h.Write([]byte("cosnim channel v1\x00"))
	h.Write(pub[:])
	var id ChannelID
	h.Sum(id[:0])
	return id
}

// ID returns the channel ID.
func (k *Keys) ID() ChannelID { return k.id }

// Seal makes the entry for a capsule reference. Sealing is deterministic
// (the nonce is an HMAC of the reference, as in SIV): every instance that
// discovers the same capsule makes the same entry, so rosters deduplicate,
// and a seeded simulation stays byte-identical without a random source.
func (k *Keys) Seal(ref []byte) (Entry, error) {
	if len(ref) > MaxRefSize {
		return Entry{}, ErrRefTooLong
	}
	var sum [sha256.Size]byte
	nonce := k.nonce(ref, &sum)
	out := make([]byte, 0, len(nonce)+len(ref)+k.aead.Overhead())
	out = append(out, nonce...)
	out = k.aead.Seal(out, nonce, ref, k.id[:])
	return NewEntry(out), nil
}

// nonce returns the entry nonce of ref (PROTOCOL.md §8), in sum.
func (k *Keys) nonce(ref []byte, sum *[sha256.Size]byte) []byte {
	m := k.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(ref)
	nonce := m.Sum(sum[:0])[:k.aead.NonceSize()]
	k.macs.Put(m)
	return nonce
}

// Open returns the capsule reference sealed in e, ErrForged if e was not
// sealed with this channel's keys, or ErrBadNonce if it was but with
// another nonce than Seal's: a holder of the secret could otherwise mint
// one reference as many distinct entries that never deduplicate.
func (k *Keys) Open(e Entry) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(e.Sealed) < ns+k.aead.Overhead() {
		return nil, ErrForged
	}
	ref, err := k.aead.Open(nil, e.Sealed[:ns], e.Sealed[ns:], k.id[:])
	if err != nil {
		return nil, ErrForged
	}
	var sum [sha256.Size]byte
	if !hmac.Equal(k.nonce(ref, &sum), e.Sealed[:ns]) {
		return nil, ErrBadNonce
	}
	return ref, nil
}

// JoinProof signs a relay's join nonce for this channel. Ed25519 signing is
// deterministic, so proofs need no random source.
func (k *Keys) JoinProof(nonce [JoinNonceSize]byte) (pub [PublicKeySize]byte, sig [SignatureSize]byte) {
	copy(sig[:], ed25519.Sign(k.priv, joinMessage(k.id, nonce)))
	return k.pub, sig
}

// VerifyJoin checks a join proof: pub must stand for channel, and sig must
// sign the relay's nonce. A relay learns nothing about the secret from it.
func VerifyJoin(channel ChannelID, nonce [JoinNonceSize]byte, pub [PublicKeySize]byte, sig [SignatureSize]byte) bool {
	if ChannelIDOf(pub) != channel {
		return false
	}
	return ed25519.Verify(pub[:], joinMessage(channel, nonce), sig[:])
}

func joinMessage(channel ChannelID, nonce [JoinNonceSize]byte) []byte {
	msg := make([]byte, 0, 16+len(nonce)+len(channel))
	msg = append(msg, "cosnim join v1\x00"...)
	msg = append(msg, nonce[:]...)
	return append(msg, channel[:]...)
}

// Short returns the first 4 bytes of id, for logs.
func (id ChannelID) Short() []byte { return id[:4] }
