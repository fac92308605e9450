package relayserver

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/cosnim/relays/transport"
)

// A source (sourceOf) that had a connection closed at max_denied_joins is
// held for deniedSourcePenalty: its new connections are suspect
// (relay.Suspect), closed at their first denied join, their checks after
// everyone else's. An attacker reconnecting to send more bad proofs then
// gets one frame past its Hello and no check before everyone else's,
// where it had max_denied_joins checks and a connection's worth of frames
// at join_rate. A client with the secret is never denied, so one sharing
// the source is served as before.
const (
	deniedSourcePenalty = 10 * time.Second
	// maxHeldSources bounds the box; past it the soonest released goes.
	maxHeldSources = 4096
	// heldAcceptRate is the connections a second served from a held
	// source; the others wait their turn unread, up to the handshake
	// timeout, so a reconnecting attacker waits instead of spinning.
	heldAcceptRate = 50
	// maxDelayed bounds the connections waiting so, over all sources;
	// past it they are closed at once.
	maxDelayed = 1024
)

// penaltyBox is the set of held sources, safe for concurrent use.
type penaltyBox struct {
	now func() time.Time

	mu    sync.Mutex // guards until
	until map[netip.Addr]*heldSource
}

func newPenaltyBox(now func() time.Time) *penaltyBox {
	return &penaltyBox{now: now, until: make(map[netip.Addr]*heldSource)}
}

// hold holds src for deniedSourcePenalty from now.
func (b *penaltyBox) hold(src netip.Addr) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.until[src]; !ok && len(b.until) >= maxHeldSources {
		var first netip.Addr
		var at time.Time
		for a, h := range b.until {
			if u := h.until; !u.After(now) {
				delete(b.until, a)
			} else if at.IsZero() || u.Before(at) {
				first, at = a, u
			}
		}
		if len(b.until) >= maxHeldSources {
			delete(b.until, first)
		}
	}
	h := b.until[src]
	if h == nil {
		h = &heldSource{accepts: rate.NewLimiter(heldAcceptRate, 1)}
		b.until[src] = h
	}
	h.until = now.Add(deniedSourcePenalty)
}

// heldSource is one held source: until when, and its accepts served.
type heldSource struct {
	until   time.Time
	accepts *rate.Limiter
}

// delay reports how long a connection from src waits before it is
// served: 0 for a source not held, else its turn at heldAcceptRate; ok
// is false past most, when the connection is not to be served at all.
func (b *penaltyBox) delay(src netip.Addr, most time.Duration) (d time.Duration, ok bool) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.until[src]
	if h == nil || !h.until.After(now) {
		return 0, true
	}
	r := h.accepts.ReserveN(now, 1)
	if d = r.DelayFrom(now); d > most {
		r.CancelAt(now)
		return most, false
	}
	return d, true
}

// held reports whether src is held now.
func (b *penaltyBox) held(src netip.Addr) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	h, ok := b.until[src]
	if ok && !h.until.After(b.now()) {
		delete(b.until, src)
		ok = false
	}
	return ok
}

// heldConn reports whether c's source is held.
func (b *penaltyBox) heldConn(c transport.Conn) bool {
	ap, err := netip.ParseAddrPort(c.RemoteAddr())
	return err == nil && b.held(sourceOfIP(ap.Addr()))
}

// holdConn holds c's source.
func (b *penaltyBox) holdConn(c transport.Conn) {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr()); err == nil {
		b.hold(sourceOfIP(ap.Addr()))
	}
}

// penaltyListener serves connections from held sources at
// heldAcceptRate each, the rest held unread for their turn; one that
// would wait longer than most is closed after most.
type penaltyListener struct {
	net.Listener
	box     *penaltyBox
	most    time.Duration
	ready   chan net.Conn
	errc    chan error
	done    chan struct{}
	close   sync.Once
	delayed atomic.Int64
}

func newPenaltyListener(inner net.Listener, box *penaltyBox, most time.Duration) *penaltyListener {
	l := &penaltyListener{Listener: inner, box: box, most: most,
		ready: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *penaltyListener) acceptLoop() {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			l.errc <- err
			return
		}
		d, ok := l.box.delay(sourceOf(nc.RemoteAddr()), l.most)
		switch {
		case d == 0 && ok:
			l.hand(nc)
		case l.delayed.Load() >= maxDelayed:
			nc.Close()
		default:
			l.delayed.Add(1)
			time.AfterFunc(d, func() {
				l.delayed.Add(-1)
				if ok {
					l.hand(nc)
				} else {
					nc.Close()
				}
			})
		}
	}
}

// hand passes nc to Accept, or closes it once the listener is closed.
func (l *penaltyListener) hand(nc net.Conn) {
	select {
	case l.ready <- nc:
	case <-l.done:
		nc.Close()
	}
}

func (l *penaltyListener) Accept() (net.Conn, error) {
	select {
	case nc := <-l.ready:
		return nc, nil
	case err := <-l.errc:
		l.errc <- err // for the next caller too
		return nil, err
	}
}

func (l *penaltyListener) Close() error {
	l.close.Do(func() { close(l.done) })
	return l.Listener.Close()
}
