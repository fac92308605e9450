package relayserver

import (
	"crypto/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// The pool verifies every proof, right and wrong, on at most n workers at
// once, and close stops it.
func TestJoinPoolBoundsWorkers(t *testing.T) {
	k, err := roster.DeriveKeys([]byte("secret"), "hub")
	if err != nil {
		t.Fatal(err)
	}
	var nonce [roster.JoinNonceSize]byte
	rand.Read(nonce[:])
	pub, sig := k.JoinProof(nonce)
	good := relay.JoinCheck{Join: wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig}, Nonce: nonce}
	bad := good
	bad.Join.Handle = 2
	bad.Join.Sig[0] ^= 1

	var running, most atomic.Int32
	var mu sync.Mutex
	results := map[uint32]int{}
	var wg sync.WaitGroup
	const n, checks = 2, 200
	wg.Add(checks)
	p := newJoinPool(n, func(jc relay.JoinCheck, ok bool) {
		now := running.Add(1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		time.Sleep(100 * time.Microsecond) // long enough for workers to overlap
		running.Add(-1)
		mu.Lock()
		if ok == (jc.Join.Handle == 1) {
			results[jc.Join.Handle]++
		}
		mu.Unlock()
		wg.Done()
	})
	for range checks / 2 {
		p.add([]relay.JoinCheck{good, bad})
	}
	wg.Wait()
	p.close()
	if results[1] != checks/2 || results[2] != checks/2 {
		t.Fatalf("right verdicts: %d good, %d bad; want %d each", results[1], results[2], checks/2)
	}
	if m := most.Load(); m > n {
		t.Fatalf("%d checks ran at once on a pool of %d", m, n)
	}
	p.add([]relay.JoinCheck{good})
	if p.pending() != 0 {
		t.Fatal("a closed pool queued a check")
	}
}
