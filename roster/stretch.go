package roster

import (
	"crypto/sha256"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Stretching parameters (PROTOCOL.md §7.1): Argon2id, the second
// recommended option of RFC 9106 §4. They are part of the protocol:
// changing any of them changes every channel ID.
const (
	stretchTime    = 3         // passes
	stretchMemory  = 64 * 1024 // KiB (64 MiB)
	stretchThreads = 4         // lanes; part of the result, not only of speed
	stretchSize    = 32        // bytes out
	// stretchSalt separates this use from any other of the same secret. It
	// is fixed: an instance has no per-continuum value to salt with before
	// it has keys.
	stretchSalt = "cosnim continuum secret v1"
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

// StretchSecret returns the continuum secret stretched with Argon2id, the
// input key material that real instances give DeriveKeys. HKDF alone is
// fast, so a passphrase secret could be guessed offline by anyone who saw a
// channel ID and its public key; stretching makes each guess cost 64 MiB
// and tens of milliseconds of memory-hard work.
//
// The result is cached per process (by a hash of the secret), so every
// Agent with one secret pays once; concurrent first calls share one
// computation. It is deterministic and draws no randomness. Cores do not
// call it: drivers do, where the secret enters (client/agent.New).
func StretchSecret(secret []byte) ([]byte, error) {
	if len(secret) == 0 {
		return nil, ErrNoSecret
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
	return argon2.IDKey(secret, []byte(stretchSalt), stretchTime, stretchMemory, stretchThreads, stretchSize)
}
