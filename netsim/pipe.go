package netsim

import (
	"io"
	"time"

	"github.com/cosnim/relays/transport"
)

type segKind uint8

const (
	segData   segKind = iota
	segSYN            // handshake: dialer to listener
	segSYNACK         // handshake: listener to dialer
	segFIN            // orderly close after the bytes before it
	segRST            // reset (or refusal, before the handshake is done)
)

type seg struct {
	kind segKind
	b    []byte
}

// pipe is one direction of a conn. segs holds, in order, everything sent
// and not yet delivered; segs[:nsched] is in flight (an arrival event is
// scheduled for each, at nondecreasing times), the rest is held: sent while
// the link was blocked or during the current event.
type pipe struct {
	c        *conn
	dir      int // index of the sending end in c
	segs     []seg
	nsched   int
	epoch    uint64        // bumped to void the scheduled arrivals
	lastAt   time.Duration // arrival time of the last scheduled seg
	wireFree time.Duration // when the sender's wire is free again
	queued   int           // data bytes in segs
	high     bool          // queued reached HighWater since the last Writable
	dirty    bool          // in Network.dirty
}

func (p *pipe) from() *Node    { return p.c.nodes[p.dir] }
func (p *pipe) to() *Node      { return p.c.nodes[1-p.dir] }
func (p *pipe) sender() *end   { return p.c.ends[p.dir] }
func (p *pipe) receiver() *end { return p.c.ends[1-p.dir] }

func (n *Network) markDirty(p *pipe) {
	if !p.dirty {
		p.dirty = true
		n.dirty = append(n.dirty, p)
	}
}

// blocked reports whether the link from→to is partitioned or clogged.
func (n *Network) blocked(from, to string) bool {
	l := link{from, to}
	return n.cut[l] || n.clogged[l]
}

// pipeBlocked reports whether s, the next seg of p, cannot move now. A SYN
// needs both directions, as a handshake does.
func (n *Network) pipeBlocked(p *pipe, s seg) bool {
	from, to := p.from().name, p.to().name
	return n.blocked(from, to) || (s.kind == segSYN && n.blocked(to, from))
}

// pump schedules the arrival of p's held segs, unless the link is blocked.
// Held data segs are coalesced, then (with SplitReads) cut at random.
func (n *Network) pump(p *pipe) {
	p.dirty = false
	if p.nsched == len(p.segs) || n.pipeBlocked(p, p.segs[p.nsched]) {
		return
	}
	out := coalesce(p.segs[p.nsched:])
	if n.opt.SplitReads {
		out = n.split(out)
	}
	segs := make([]seg, 0, p.nsched+len(out))
	segs = append(segs, p.segs[:p.nsched]...)
	p.segs = append(segs, out...)
	for _, s := range out {
		start := max(n.now, p.wireFree)
		p.wireFree = start + n.xmit(len(s.b))
		p.lastAt = max(p.lastAt, p.wireFree+n.delay())
		p.nsched++
		epoch := p.epoch
		n.schedule(p.lastAt, func() { n.arrive(p, epoch) })
	}
}

// coalesce returns held with each run of data segs joined into one.
func coalesce(held []seg) []seg {
	var out []seg
	for i := 0; i < len(held); {
		j, size := i, 0
		for j < len(held) && held[j].kind == segData {
			size += len(held[j].b)
			j++
		}
		switch {
		case j == i:
			out = append(out, held[i])
			j++
		case j == i+1:
			out = append(out, held[i])
		default:
			b := make([]byte, 0, size)
			for _, s := range held[i:j] {
				b = append(b, s.b...)
			}
			out = append(out, seg{kind: segData, b: b})
		}
		i = j
	}
	return out
}

// split cuts each data seg into pieces of random sizes.
func (n *Network) split(in []seg) []seg {
	var out []seg
	for _, s := range in {
		b := s.b
		for s.kind == segData && len(b) > 1 {
			k := 1 + n.rng.IntN(len(b))
			out = append(out, seg{kind: segData, b: b[:k:k]})
			b = b[k:]
		}
		if s.kind != segData || len(b) > 0 {
			out = append(out, seg{kind: s.kind, b: b})
		}
	}
	return out
}

// clearPipe drops everything in p.
func (n *Network) clearPipe(p *pipe) {
	n.stats.BytesDropped += uint64(p.queued)
	clear(p.segs)
	p.segs = p.segs[:0]
	p.nsched = 0
	p.queued = 0
	p.epoch++
	p.lastAt, p.wireFree = n.now, n.now
}

// sendRST drops p's contents and sends a reset in their place.
func (n *Network) sendRST(p *pipe) {
	n.clearPipe(p)
	p.segs = append(p.segs, seg{kind: segRST})
	n.markDirty(p)
}

// arrive handles the arrival of p's first seg, scheduled in epoch.
func (n *Network) arrive(p *pipe, epoch uint64) {
	if p.epoch != epoch || p.nsched == 0 {
		return // voided
	}
	s := p.segs[0]
	if n.pipeBlocked(p, s) {
		// The link went down in flight: hold everything until it heals.
		p.epoch++
		p.nsched = 0
		p.lastAt, p.wireFree = n.now, n.now
		n.tracef(p.from().name, "held conn=%d to=%s", p.c.id, p.to().name)
		return
	}
	p.segs[0] = seg{}
	p.segs = p.segs[1:]
	p.nsched--
	switch s.kind {
	case segData:
		n.arriveData(p, s.b)
	case segSYN:
		n.arriveSYN(p.c)
	case segSYNACK:
		d := p.receiver()
		if d.state != stConnecting {
			return
		}
		d.state = stOpen
		n.tracef(d.node().name, "open conn=%d peer=%s", p.c.id, p.from().name)
		n.notify(d, func(h transport.Handler, now time.Time) { h.Open(d, now) })
	case segFIN:
		if snd := p.sender(); snd.state == stClosing {
			snd.state = stDead
		}
		r := p.receiver()
		if r == nil || r.state != stOpen {
			return
		}
		r.state = stDead
		n.stats.EOFs++
		n.tracef(r.node().name, "closed conn=%d err=eof", p.c.id)
		n.notify(r, func(h transport.Handler, now time.Time) { h.Closed(r, io.EOF, now) })
	case segRST:
		n.arriveRST(p)
	}
}

func (n *Network) arriveData(p *pipe, b []byte) {
	p.queued -= len(b)
	if p.high && p.queued < n.opt.LowWater {
		p.high = false
		snd := p.sender()
		n.schedule(n.now, func() {
			if snd.state != stOpen {
				return
			}
			n.tracef(snd.node().name, "writable conn=%d", p.c.id)
			n.notify(snd, func(h transport.Handler, now time.Time) { h.Writable(snd, now) })
		})
	}
	r := p.receiver()
	if r == nil || r.state != stOpen {
		n.stats.BytesDropped += uint64(len(b))
		return
	}
	n.stats.Messages++
	n.stats.BytesDelivered += uint64(len(b))
	n.traceData(r.node().name, p.c.id, p.from().name, len(b))
	if n.seen != nil {
		n.seen(n.now, p.c.id, p.from().name, r.node().name, b)
	}
	n.notify(r, func(h transport.Handler, now time.Time) { h.Data(r, b, now) })
}

// arriveSYN accepts c at its listener, or refuses it.
func (n *Network) arriveSYN(c *conn) {
	d, lnode := c.ends[0], c.nodes[1]
	if d.state == stDead || c.ends[1] != nil {
		return
	}
	if n.listeners[c.addr] != lnode || n.refused[c.addr] {
		n.tracef(lnode.name, "refuse conn=%d from=%s", c.id, c.nodes[0].name)
		n.sendRST(c.pipes[1])
		return
	}
	l := &end{n: n, c: c, side: 1, inc: lnode.inc, state: stOpen}
	c.ends[1] = l
	// The SYNACK goes first, before anything Open sends.
	c.pipes[1].segs = append(c.pipes[1].segs, seg{kind: segSYNACK})
	n.markDirty(c.pipes[1])
	n.stats.Accepted++
	n.tracef(lnode.name, "open conn=%d peer=%s", c.id, c.nodes[0].name)
	n.notify(l, func(h transport.Handler, now time.Time) { h.Open(l, now) })
}

// arriveRST kills the receiving end: a refusal if it was still dialing,
// else a reset.
func (n *Network) arriveRST(p *pipe) {
	r := p.receiver()
	if r == nil || r.state == stDead {
		return
	}
	was := r.state
	r.state = stDead
	n.clearPipe(p.c.pipes[r.side])
	var err error
	switch was {
	case stConnecting:
		err = transport.ErrRefused
		n.stats.Refused++
	case stOpen:
		err = transport.ErrReset
		n.stats.Resets++
	default:
		return
	}
	n.tracef(r.node().name, "closed conn=%d err=%s", p.c.id, errName(err))
	n.notify(r, func(h transport.Handler, now time.Time) { h.Closed(r, err, now) })
}
