package relayserver

import (
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/transport/transporttest"
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
	p := newJoinPool(n, func(rs []joinResult) []transport.Conn {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range rs {
			if r.ok == (r.jc.Join.Handle == 1) {
				results[r.jc.Join.Handle]++
			}
			wg.Done()
		}
		return nil
	})
	p.verify = func(jc *relay.JoinCheck) bool {
		now := running.Add(1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		time.Sleep(100 * time.Microsecond) // long enough for workers to overlap
		running.Add(-1)
		return jc.Verify()
	}
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

// A connection that queued many checks gets one turn at a time: a check
// from another connection queued after them waits for one of its checks,
// not all of them. A connection the core no longer serves has the rest of
// its checks dropped.
func TestJoinPoolRoundRobin(t *testing.T) {
	flooder, honest, gone := &transporttest.Conn{Addr: "flooder"}, &transporttest.Conn{Addr: "honest"}, &transporttest.Conn{Addr: "gone"}
	check := func(c transport.Conn, h uint32) relay.JoinCheck {
		return relay.JoinCheck{Conn: c, Join: wire.Join{Handle: h}}
	}
	started, release, goneDropped := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var order []relay.JoinCheck // by the one worker
	waited := false             // by the one worker
	var delivered, verified atomic.Int64
	p := newJoinPool(1, func(rs []joinResult) (out []transport.Conn) {
		for _, r := range rs {
			if r.jc.Conn == gone {
				out = append(out, gone)
			}
		}
		delivered.Add(int64(len(rs)))
		return out
	})
	defer p.close()
	p.verify = func(jc *relay.JoinCheck) bool {
		order = append(order, *jc)
		defer verified.Add(1)
		switch {
		case len(order) == 1:
			close(started)
			<-release
		case len(order) > 1 && order[len(order)-2].Conn == gone && !waited:
			waited = true
			// The next check waits until gone's result was delivered
			// and its queue dropped, so the count below is exact.
			// (Not WaitFor: this is the worker's goroutine.)
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
				p.mu.Lock()
				dropped := p.queues[gone] == nil
				p.mu.Unlock()
				if dropped {
					break
				}
			}
			close(goneDropped)
		}
		return false
	}
	var flood []relay.JoinCheck
	for h := range uint32(100) {
		flood = append(flood, check(flooder, h+1))
	}
	p.add(flood)
	<-started // the worker holds the flooder's first check
	var goners []relay.JoinCheck
	for h := range uint32(50) {
		goners = append(goners, check(gone, h+1))
	}
	p.add(goners)
	p.add([]relay.JoinCheck{check(honest, 1)})
	close(release)
	<-goneDropped
	testutil.WaitFor(t, 10*time.Second, "checks done", func() bool { return delivered.Load() >= 102 && delivered.Load() == verified.Load() })
	at, gones := -1, 0
	for i, jc := range order {
		if jc.Conn == honest {
			at = i
		}
		if jc.Conn == gone {
			gones++
		}
	}
	// flooder 1 (held), flooder 2, gone 1, honest 1.
	if at < 0 || at > 3 {
		t.Errorf("the honest check ran %dth of %d, want within the first 4", at+1, len(order))
	}
	if gones != 1 {
		t.Errorf("%d checks of a connection gone were verified, want 1 (the one that told)", gones)
	}
	if n := len(order); n != 100+1+1 {
		t.Errorf("%d checks verified, want 102", n)
	}
}

// Connections whose proofs failed wait behind every connection whose
// proofs never did: an honest join queued while 50 flooders have checks
// left is the next one verified.
func TestJoinPoolCleanFirst(t *testing.T) {
	honest := &transporttest.Conn{Addr: "honest"}
	held, release := make(chan struct{}), make(chan struct{})
	var order []transport.Conn // by the one worker
	p := newJoinPool(1, func([]joinResult) []transport.Conn { return nil })
	defer p.close()
	p.verify = func(jc *relay.JoinCheck) bool {
		order = append(order, jc.Conn)
		if len(order) == 60 { // every flooder failed once, ten twice
			close(held)
			<-release
		}
		return jc.Conn == honest
	}
	var flood []relay.JoinCheck
	for i := range 50 {
		c := &transporttest.Conn{Addr: fmt.Sprint("flooder-", i)}
		for h := range uint32(10) {
			flood = append(flood, relay.JoinCheck{Conn: c, Join: wire.Join{Handle: h + 1}})
		}
	}
	p.add(flood)
	<-held
	p.add([]relay.JoinCheck{{Conn: honest, Join: wire.Join{Handle: 1}}})
	close(release)
	testutil.WaitFor(t, 10*time.Second, "checks done", func() bool { return p.pending() == 0 })
	p.close() // the worker is done with order
	if at := slices.Index(order, transport.Conn(honest)); at != 60 {
		t.Errorf("the honest check was verified %dth, want 61st: right after the held one", at+1)
	}
}
