package relayserver

import (
	"runtime"
	"sync"

	"github.com/cosnim/relays/relay"
)

// joinPool verifies join proofs on a fixed number of workers, so a flood
// of joins costs at most that many cores and no goroutine per proof. The
// queue is bounded by the core, which lets each connection have at most
// max_channels joins outstanding.
type joinPool struct {
	done func(jc relay.JoinCheck, ok bool)

	mu     sync.Mutex // guards the following
	queue  []relay.JoinCheck
	closed bool
	wake   *sync.Cond

	wg sync.WaitGroup
}

// newJoinPool starts workers (GOMAXPROCS when n <= 0) that report each
// result through done, off the caller's goroutine.
func newJoinPool(n int, done func(jc relay.JoinCheck, ok bool)) *joinPool {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	p := &joinPool{done: done}
	p.wake = sync.NewCond(&p.mu)
	for range n {
		p.wg.Go(p.work)
	}
	return p
}

// add queues checks; it never blocks, so the event loop can call it.
func (p *joinPool) add(checks []relay.JoinCheck) {
	p.mu.Lock()
	if !p.closed {
		p.queue = append(p.queue, checks...)
		p.wake.Broadcast()
	}
	p.mu.Unlock()
}

// pending reports checks queued and not yet taken by a worker.
func (p *joinPool) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

func (p *joinPool) work() {
	for {
		p.mu.Lock()
		for len(p.queue) == 0 && !p.closed {
			p.wake.Wait()
		}
		if p.closed {
			p.mu.Unlock()
			return
		}
		jc := p.queue[0]
		p.queue[0] = relay.JoinCheck{}
		p.queue = p.queue[1:]
		if len(p.queue) == 0 {
			p.queue = nil // let a flood's backing array go
		}
		p.mu.Unlock()
		p.done(jc, jc.Verify())
	}
}

// close drops what is queued and waits for the workers.
func (p *joinPool) close() {
	p.mu.Lock()
	p.closed, p.queue = true, nil
	p.wake.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}
