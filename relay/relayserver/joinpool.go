package relayserver

import (
	"container/list"
	"runtime"
	"sync"

	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/transport"
)

// joinPool verifies join proofs on a fixed number of workers, so a flood
// of joins costs at most that many cores and no goroutine per proof. The
// queue is bounded by the core, which lets each connection have at most
// max_channels joins outstanding.
//
// Checks are served round robin across connections, one check of each
// connection with checks queued in turn, so a connection's join waits for
// at most one check of every other connection, however many they queued:
// a thousand connections flooding bad proofs delay an honest join by a
// thousand checks, not by everything they sent.
type joinPool struct {
	done func(jc relay.JoinCheck, ok bool) (more bool)

	mu     sync.Mutex // guards the following
	queues map[transport.Conn]*connChecks
	turns  list.List // of *connChecks with checks queued, next turn first
	n      int       // checks queued
	closed bool
	wake   *sync.Cond

	wg sync.WaitGroup
}

// connChecks is one connection's queued checks, in arrival order.
type connChecks struct {
	conn   transport.Conn
	checks []relay.JoinCheck
	turn   *list.Element
}

// newJoinPool starts workers (GOMAXPROCS when n <= 0) that report each
// result through done, off the caller's goroutine. done reports whether
// the check's connection still wants results; when it does not, the
// pool drops what that connection has queued.
func newJoinPool(n int, done func(jc relay.JoinCheck, ok bool) (more bool)) *joinPool {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	p := &joinPool{done: done, queues: make(map[transport.Conn]*connChecks)}
	p.wake = sync.NewCond(&p.mu)
	for range n {
		p.wg.Go(p.work)
	}
	return p
}

// add queues checks; it never blocks, so the event loop can call it.
func (p *joinPool) add(checks []relay.JoinCheck) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for _, jc := range checks {
		q := p.queues[jc.Conn]
		if q == nil {
			q = &connChecks{conn: jc.Conn}
			p.queues[jc.Conn] = q
			q.turn = p.turns.PushBack(q)
		}
		q.checks = append(q.checks, jc)
		p.n++
	}
	p.wake.Broadcast()
}

// pending reports checks queued and not yet taken by a worker.
func (p *joinPool) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// next takes the first check of the connection whose turn it is, and
// sends that connection to the back of the line; false once closed.
func (p *joinPool) next() (relay.JoinCheck, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.turns.Len() == 0 && !p.closed {
		p.wake.Wait()
	}
	if p.closed {
		return relay.JoinCheck{}, false
	}
	q := p.turns.Front().Value.(*connChecks)
	jc := q.checks[0]
	q.checks[0] = relay.JoinCheck{}
	q.checks = q.checks[1:]
	p.n--
	if len(q.checks) == 0 {
		p.removeLocked(q)
	} else {
		p.turns.MoveToBack(q.turn)
	}
	return jc, true
}

func (p *joinPool) removeLocked(q *connChecks) {
	p.turns.Remove(q.turn)
	delete(p.queues, q.conn)
	p.n -= len(q.checks)
}

// drop forgets what conn has queued.
func (p *joinPool) drop(conn transport.Conn) {
	p.mu.Lock()
	if q := p.queues[conn]; q != nil {
		p.removeLocked(q)
	}
	p.mu.Unlock()
}

func (p *joinPool) work() {
	for {
		jc, ok := p.next()
		if !ok {
			return
		}
		if !p.done(jc, jc.Verify()) {
			p.drop(jc.Conn)
		}
	}
}

// close drops what is queued and waits for the workers.
func (p *joinPool) close() {
	p.mu.Lock()
	p.closed, p.queues, p.n = true, nil, 0
	p.turns.Init()
	p.wake.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}
