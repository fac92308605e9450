package relayserver

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cosnim/relays/relay"
)

// gate holds what a TLS port knows of its connections before and during
// their handshakes: per source (sourceOf), the connections open and the
// handshakes in progress, and a token bucket of accepts; and the pool of
// connections waiting for their ClientHello, oldest first, so that a
// full pool closes its oldest silent holder rather than turn a newcomer
// away.
type gate struct {
	connsPerSource      int
	handshakesPerSource int
	ratePerSource       int
	maxWaiting          int
	now                 func() time.Time

	mu        sync.Mutex // guards the following
	sources   map[netip.Addr]*source
	waiting   list.List // of *waiter, oldest first
	swept     time.Time
	evictions uint64
}

// source is one address's (one IPv6 /64's) share of the gate.
type source struct {
	conns, handshakes int
	accepts           *rate.Limiter
	idleSince         time.Time // when conns and handshakes last reached 0
}

// waiter is one connection waiting for its ClientHello.
type waiter struct {
	nc      net.Conn
	src     *source
	el      *list.Element // nil once it left the pool
	evicted bool
}

// sweepEvery is how often the gate forgets idle sources. A source's
// bucket holds one second's worth, so after a second idle it is full and
// forgetting it changes nothing.
const sweepEvery = time.Second

func newGate(limits relay.Config, now func() time.Time) *gate {
	return &gate{
		connsPerSource:      limits.MaxConnsPerSource,
		handshakesPerSource: limits.MaxHandshakesPerSource,
		ratePerSource:       limits.AcceptRatePerSource,
		maxWaiting:          limits.MaxPreHandshake,
		now:                 now,
		sources:             make(map[netip.Addr]*source),
	}
}

// sourceOf names the source of a remote address: the IPv4 address, or
// the /64 of an IPv6 one (one host's usual share). Anything else is one
// source of its own, the zero Addr.
func sourceOf(addr net.Addr) netip.Addr {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Addr{}
	}
	return sourceOfIP(ip)
}

// sourceOfIP is sourceOf for an IP address.
func sourceOfIP(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// admit counts a new connection from key, or names why it is refused:
// its source has max_connections_per_source open (nil source: nothing
// counted), or is over accept_rate_per_source (counted all the same: the
// caller holds the connection for a while before it closes it).
func (g *gate) admit(key netip.Addr) (*source, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.sweepLocked(now)
	src := g.sources[key]
	if src == nil {
		src = &source{accepts: rate.NewLimiter(rate.Limit(g.ratePerSource), g.ratePerSource)}
		g.sources[key] = src
	}
	if src.conns >= g.connsPerSource {
		return nil, TLSFailSourceFull
	}
	src.conns++
	if !src.accepts.AllowN(now, 1) {
		return src, TLSFailSourceRate
	}
	return src, ""
}

// release counts src's connection closed.
func (g *gate) release(src *source) {
	g.mu.Lock()
	src.conns--
	g.idleLocked(src)
	g.mu.Unlock()
}

func (g *gate) idleLocked(src *source) {
	if src.conns == 0 && src.handshakes == 0 {
		src.idleSince = g.now()
	}
}

// sweepLocked forgets, at most once per sweepEvery, sources idle that long.
func (g *gate) sweepLocked(now time.Time) {
	if now.Sub(g.swept) < sweepEvery {
		return
	}
	g.swept = now
	for key, src := range g.sources { // sorted: deletions only
		if src.conns == 0 && src.handshakes == 0 && now.Sub(src.idleSince) >= sweepEvery {
			delete(g.sources, key)
		}
	}
}

// wait puts nc in the pool of connections waiting for their ClientHello;
// when that passes max_pre_handshake the oldest waiter is closed (its
// handshake goroutine sees it evicted).
func (g *gate) wait(nc net.Conn, src *source) *waiter {
	w := &waiter{nc: nc, src: src}
	g.mu.Lock()
	w.el = g.waiting.PushBack(w)
	var old *waiter
	if g.waiting.Len() > g.maxWaiting {
		old = g.waiting.Remove(g.waiting.Front()).(*waiter)
		old.el, old.evicted = nil, true
		g.evictions++
	}
	g.mu.Unlock()
	if old != nil {
		old.nc.Close()
	}
	return w
}

// hello takes w out of the pool as its ClientHello arrived and counts a
// handshake of its source, or names why it may not start one: evicted
// meanwhile, or max_handshakes_per_source in progress.
func (g *gate) hello(w *waiter) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if w.evicted {
		return TLSFailEvicted
	}
	g.leaveLocked(w)
	if w.src.handshakes >= g.handshakesPerSource {
		return TLSFailSourceBusy
	}
	w.src.handshakes++
	return ""
}

// leave takes w out of the pool without a handshake (it failed first); it
// reports whether w had been evicted.
func (g *gate) leave(w *waiter) (evicted bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.leaveLocked(w)
	return w.evicted
}

func (g *gate) leaveLocked(w *waiter) {
	if w.el != nil {
		g.waiting.Remove(w.el)
		w.el = nil
	}
}

// handshakeDone counts src's handshake over, whatever its outcome.
func (g *gate) handshakeDone(src *source) {
	g.mu.Lock()
	src.handshakes--
	g.idleLocked(src)
	g.mu.Unlock()
}

// gateStats is what the gate holds now, for tests and /metrics.
type gateStats struct {
	Waiting, Sources int
	Evictions        uint64
}

func (g *gate) stats() gateStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return gateStats{Waiting: g.waiting.Len(), Sources: len(g.sources), Evictions: g.evictions}
}
