package relayserver

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/cosnim/relays/transport"
)

// A source (sourceOf) that had a connection closed at max_denied_joins is
// held for deniedSourcePenalty: its new connections are never served
// and the joins of its open ones are denied without checking the proof,
// so an attacker reconnecting to send more bad proofs costs neither
// signature checks nor event-loop turns. An honest client never has a
// join denied, so it is held only when it shares a source with one.
const (
	deniedSourcePenalty = 10 * time.Second
	// maxHeldSources bounds the box; past it the soonest released goes.
	maxHeldSources = 4096
)

// penaltyBox is the set of held sources and the connections kept from
// them, safe for concurrent use.
type penaltyBox struct {
	now func() time.Time

	mu      sync.Mutex // guards the following
	until   map[netip.Addr]time.Time
	refused uint64    // connections from held sources accepted, never served
	kept    list.List // of *kept, oldest first
}

func newPenaltyBox(now func() time.Time) *penaltyBox {
	return &penaltyBox{now: now, until: make(map[netip.Addr]time.Time)}
}

// hold holds src for deniedSourcePenalty from now.
func (b *penaltyBox) hold(src netip.Addr) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.until[src]; !ok && len(b.until) >= maxHeldSources {
		var first netip.Addr
		var at time.Time
		for a, u := range b.until {
			if !u.After(now) {
				delete(b.until, a)
			} else if at.IsZero() || u.Before(at) {
				first, at = a, u
			}
		}
		if len(b.until) >= maxHeldSources {
			delete(b.until, first)
		}
	}
	b.until[src] = now.Add(deniedSourcePenalty)
}

// held reports whether src is held now.
func (b *penaltyBox) held(src netip.Addr) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, ok := b.until[src]
	if ok && !u.After(b.now()) {
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

// penaltyListener takes connections from held sources off the accept
// queue without serving them: each is kept open, unread, for hold (the
// handshake timeout), at most maxTarpit at once, the oldest closed first.
// Closed at once, a reconnecting attacker would spin on connect, taking
// the CPU from the connections served; kept, each of its connects costs it
// hold.
type penaltyListener struct {
	net.Listener
	box  *penaltyBox
	hold time.Duration
}

// maxTarpit bounds the connections penaltyListener keeps.
const maxTarpit = 1024

func (l penaltyListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil || !l.box.held(sourceOf(nc.RemoteAddr())) {
			return nc, err
		}
		l.box.tarpit(nc, l.hold)
	}
}

// tarpit keeps nc for hold, closing the oldest kept past maxTarpit.
func (b *penaltyBox) tarpit(nc net.Conn, hold time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refused++
	if b.kept.Len() >= maxTarpit {
		b.kept.Remove(b.kept.Front()).(*kept).release()
	}
	k := &kept{nc: nc}
	e := b.kept.PushBack(k)
	k.timer = time.AfterFunc(hold, func() {
		b.mu.Lock()
		if k.timer != nil { // not evicted meanwhile
			b.kept.Remove(e)
		}
		b.mu.Unlock()
		nc.Close()
	})
}

// kept is one connection in the tarpit.
type kept struct {
	nc    net.Conn
	timer *time.Timer // nil once released
}

// release closes k now; the caller holds the box's lock.
func (k *kept) release() {
	k.timer.Stop()
	k.timer = nil
	k.nc.Close()
}

// closeKept closes every kept connection (at shutdown).
func (b *penaltyBox) closeKept() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.kept.Len() > 0 {
		b.kept.Remove(b.kept.Front()).(*kept).release()
	}
}
