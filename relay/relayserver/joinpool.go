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
// at most one check of every other connection, however many they queued.
// Connections that never had a proof fail come first: once a connection
// sent a bad proof its checks wait until no clean connection has one
// queued. So a thousand connections flooding bad proofs delay an honest
// join by about one check of each new flooder, not by everything they
// sent, nor by a check of each of them.
//
// Results reach the core in batches, through one goroutine: workers never
// wait for the event loop's lock, which a flood of frames keeps busy, and
// the loop is taken once for many results rather than once for each.
type joinPool struct {
	deliver func(rs []joinResult) (gone []transport.Conn)
	verify  func(jc *relay.JoinCheck) bool

	mu      sync.Mutex // guards the following
	queues  map[transport.Conn]*connChecks
	clean   list.List // of *connChecks with checks queued, no proof failed; next turn first
	suspect list.List // the same, for connections with a proof failed
	n       int       // checks queued
	results []joinResult
	closed  bool
	wake    *sync.Cond // workers: checks queued, or closed
	ready   *sync.Cond // the deliverer: results, or closed

	wg sync.WaitGroup
}

// joinResult is one verified check.
type joinResult struct {
	jc relay.JoinCheck
	ok bool
}

// connChecks is one connection's queued checks, in arrival order.
type connChecks struct {
	conn    transport.Conn
	checks  []relay.JoinCheck
	turn    *list.Element // in clean, or in suspect once suspected
	suspect bool
}

// line is the list q waits in.
func (p *joinPool) line(q *connChecks) *list.List {
	if q.suspect {
		return &p.suspect
	}
	return &p.clean
}

// suspectLocked moves q behind every clean connection.
func (p *joinPool) suspectLocked(q *connChecks) {
	if q.suspect {
		return
	}
	p.clean.Remove(q.turn)
	q.suspect = true
	q.turn = p.suspect.PushBack(q)
}

// newJoinPool starts workers (when n <= 0, one fewer than GOMAXPROCS,
// at least one: proofs flooding in must leave a core to the event loop
// and the readers, or honest joins wait for the CPU, not the pool) and a
// goroutine
// that hands their results to deliver, in order, off the caller's
// goroutine. deliver returns the connections that no longer want results;
// the pool drops what they have queued.
func newJoinPool(n int, deliver func(rs []joinResult) (gone []transport.Conn)) *joinPool {
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)-1)
	}
	p := &joinPool{deliver: deliver, verify: (*relay.JoinCheck).Verify, queues: make(map[transport.Conn]*connChecks)}
	p.wake = sync.NewCond(&p.mu)
	p.ready = sync.NewCond(&p.mu)
	for range n {
		p.wg.Go(p.work)
	}
	p.wg.Go(p.deliverLoop)
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
			q.turn = p.clean.PushBack(q)
		}
		if jc.Denied > 0 {
			p.suspectLocked(q)
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
	for p.clean.Len() == 0 && p.suspect.Len() == 0 && !p.closed {
		p.wake.Wait()
	}
	if p.closed {
		return relay.JoinCheck{}, false
	}
	first := p.clean.Front()
	if first == nil {
		first = p.suspect.Front()
	}
	q := first.Value.(*connChecks)
	jc := q.checks[0]
	q.checks[0] = relay.JoinCheck{}
	q.checks = q.checks[1:]
	p.n--
	if len(q.checks) == 0 {
		p.removeLocked(q)
	} else {
		p.line(q).MoveToBack(q.turn)
	}
	return jc, true
}

func (p *joinPool) removeLocked(q *connChecks) {
	p.line(q).Remove(q.turn)
	delete(p.queues, q.conn)
	p.n -= len(q.checks)
}

func (p *joinPool) work() {
	for {
		jc, ok := p.next()
		if !ok {
			return
		}
		r := joinResult{jc: jc, ok: p.verify(&jc)}
		p.mu.Lock()
		if q := p.queues[jc.Conn]; q != nil && !r.ok {
			p.suspectLocked(q)
		}
		p.results = append(p.results, r)
		p.ready.Signal()
		p.mu.Unlock()
	}
}

// deliverLoop hands results over as they come, all that wait at once.
func (p *joinPool) deliverLoop() {
	for {
		p.mu.Lock()
		for len(p.results) == 0 && !p.closed {
			p.ready.Wait()
		}
		if p.closed {
			p.mu.Unlock()
			return
		}
		batch := p.results
		p.results = nil
		p.mu.Unlock()
		gone := p.deliver(batch)
		p.mu.Lock()
		for _, c := range gone {
			if q := p.queues[c]; q != nil {
				p.removeLocked(q)
			}
		}
		p.mu.Unlock()
	}
}

// close drops what is queued and waits for the workers.
func (p *joinPool) close() {
	p.mu.Lock()
	p.closed, p.queues, p.n, p.results = true, nil, 0, nil
	p.clean.Init()
	p.suspect.Init()
	p.wake.Broadcast()
	p.ready.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}
