// Package secret stretches continuum secrets before instances derive keys
// from them (PROTOCOL.md §7.1). It lives outside the cores: Argon2id runs
// its lanes on goroutines and the cache is process state, so drivers call
// it (the Agent) and hand the cores the result.
package secret

import (
	"crypto/sha256"
	"errors"
	"sync"

	"golang.org/x/crypto/argon2"
)

// ErrEmpty reports an empty secret: nothing to stretch.
var ErrEmpty = errors.New("secret: empty continuum secret")

// Parameters (PROTOCOL.md §7.1): Argon2id, the second
// recommended option of RFC 9106 §4. They are part of the protocol:
// changing any of them changes every channel ID.
const (
	Time      = 3         // passes
	MemoryKiB = 64 * 1024 // KiB (64 MiB)
	Threads   = 4         // lanes; part of the result, not only of speed
	Size      = 32        // bytes out
	// Salt separates this use from any other of the same secret. It
	// is fixed: an instance has no per-continuum value to salt with before
	// it has keys.
	Salt = "cosnim continuum secret v1"
)

// stretchCacheMax bounds the cache; a process holds one or a few secrets.
const stretchCacheMax = 16

var stretchCache struct {
	mu sync.Mutex // guards m
	m  map[[32]byte]*stretched
}

type stretched struct {
	once sync.Once
	out  []byte
}

// Stretch returns the continuum secret stretched with Argon2id, the
// input key material that real instances give DeriveKeys. HKDF alone is
// fast, so a passphrase secret could be guessed offline by anyone who saw a
// channel ID and its public key; stretching makes each guess cost 64 MiB
// and tens of milliseconds of memory-hard work.
//
// The result is cached per process (by a hash of the secret), so every
// Agent with one secret pays once; concurrent first calls share one
// computation. It is deterministic and draws no randomness. Cores do not
// call it: drivers do, where the secret enters (client/agent.New).
func Stretch(secret []byte) ([]byte, error) {
	if len(secret) == 0 {
		return nil, ErrEmpty
	}
	key := sha256.Sum256(secret)
	stretchCache.mu.Lock()
	s := stretchCache.m[key]
	if s == nil {
		if stretchCache.m == nil || len(stretchCache.m) >= stretchCacheMax {
			stretchCache.m = make(map[[32]byte]*stretched)
		}
		s = &stretched{}
		stretchCache.m[key] = s
	}
	stretchCache.mu.Unlock()
	s.once.Do(func() { s.out = stretch(secret) })
	return append([]byte(nil), s.out...), nil
}

// stretch is a variable so tests can count calls.
var stretch = func(secret []byte) []byte {
	return argon2.IDKey(secret, []byte(Salt), Time, MemoryKiB, Threads, Size)
}
