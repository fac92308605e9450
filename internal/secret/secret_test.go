package secret

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/argon2"
)

// countStretch makes stretch cheap and counts its calls for one test.
func countStretch(t *testing.T) *atomic.Int64 {
	var n atomic.Int64
	real := stretch
	stretch = func(secret []byte) []byte {
		n.Add(1)
		sum := sha256.Sum256(secret)
		return sum[:]
	}
	stretchCache.mu.Lock()
	stretchCache.m = nil
	stretchCache.mu.Unlock()
	t.Cleanup(func() {
		stretch = real
		stretchCache.mu.Lock()
		stretchCache.m = nil
		stretchCache.mu.Unlock()
	})
	return &n
}

// Agents of one process with one secret pay for stretching once, even when
// they start together.
func TestStretchSecretOncePerProcess(t *testing.T) {
	calls := countStretch(t)
	var wg sync.WaitGroup
	outs := make([][]byte, 8)
	for i := range outs {
		wg.Go(func() {
			out, err := Stretch([]byte("my continuum secret"))
			if err != nil {
				t.Error(err)
			}
			outs[i] = out
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("stretched %d times for one secret, want 1", n)
	}
	for _, out := range outs[1:] {
		if !bytes.Equal(out, outs[0]) {
			t.Fatal("one secret stretched to different values")
		}
	}
	outs[0][0] ^= 1 // a caller's copy is its own
	if again, _ := Stretch([]byte("my continuum secret")); !bytes.Equal(again, outs[1]) {
		t.Fatal("changing a returned value changed the cache")
	}
	if _, err := Stretch([]byte("another secret")); err != nil || calls.Load() != 2 {
		t.Fatalf("another secret: err %v, %d calls; want nil, 2", err, calls.Load())
	}
}

func TestStretchCacheBounded(t *testing.T) {
	countStretch(t)
	for i := range 10 * stretchCacheMax {
		if _, err := Stretch([]byte{byte(i), byte(i >> 8)}); err != nil {
			t.Fatal(err)
		}
	}
	stretchCache.mu.Lock()
	defer stretchCache.mu.Unlock()
	if n := len(stretchCache.m); n > stretchCacheMax {
		t.Fatalf("cache holds %d secrets, want at most %d", n, stretchCacheMax)
	}
}

func TestStretchSecretEmpty(t *testing.T) {
	for _, secret := range [][]byte{nil, {}} {
		if out, err := Stretch(secret); !errors.Is(err, ErrEmpty) || out != nil {
			t.Fatalf("Stretch(%q) = %x, %v; want nil, ErrEmpty", secret, out, err)
		}
	}
}

// BenchmarkStretchCost times one stretch with the protocol's parameters,
// uncached: the figure PROTOCOL §7.1 quotes
// (go test -run '^$' -bench StretchCost -benchtime 8x ./internal/secret/).
func BenchmarkStretchCost(b *testing.B) {
	for i := range b.N {
		argon2.IDKey([]byte{byte(i), 'x'}, []byte(Salt), Time, MemoryKiB, Threads, Size)
	}
}
