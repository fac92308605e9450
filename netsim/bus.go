package netsim

import (
	"strconv"
	"time"

	"github.com/cosnim/relays/backbone"
)

// A Bus is a simulated backbone: one NATS-like server that relay nodes
// connect to through BusPorts, each a backbone.Bus for one core. It runs
// on the Network's clock, random source and event queue, so its
// deliveries interleave deterministically with the connections' and
// appear in the trace ("bus-msg", "bus-reply", "bus-state" lines).
//
// It gives the promise of NATS core and no more. A publish reaches every
// other port connected and subscribed to its subject (never the
// publisher: no-echo) after Latency + rand[0, Jitter), in publish order
// per publisher and subscriber. A Request reaches every such port; its
// first reply and those that arrive within backbone.ReplyWindow after it
// are handed over, later ones are dropped; with no other subscriber it
// fails with backbone.ErrNoResponders after a round trip, without a reply
// within backbone.RequestTimeout with backbone.ErrTimeout, and from a
// disconnected port at once with backbone.ErrDown.
//
// Faults lose messages, as NATS does; nothing is held. Crash stops the
// server: every connected port gets BusState(false), messages in flight
// are lost and requests in flight fail with ErrDown; Restart brings it
// back and ports reconnect after one Latency. Partition cuts one node
// from the server likewise, until Heal. A crash of a node drops its
// port's handler and subscriptions; SetHandler with the restarted core
// connects it again. Subscriptions survive reconnects, as the NATS
// client restores them.
type Bus struct {
	n       *Network
	name    string
	opt     BusOptions
	down    bool
	gen     uint64 // bumped by Crash: deliveries scheduled before are lost
	ports   []*BusPort
	inboxes uint64
	pending map[string]*busRequest // by reply subject; lookups only
	stats   BusStats
}

// BusOptions configures a Bus; the zero value gives the defaults.
type BusOptions struct {
	// Latency and Jitter give the delay of each delivery, publisher to
	// subscriber through the server: Latency + rand[0, Jitter). Defaults
	// 1ms and 200µs; a negative Jitter means none.
	Latency, Jitter time.Duration
}

func (o BusOptions) withDefaults() BusOptions {
	if o.Latency == 0 {
		o.Latency = time.Millisecond
	}
	if o.Jitter == 0 {
		o.Jitter = 200 * time.Microsecond
	}
	return o
}

// BusStats counts what a Bus did.
type BusStats struct {
	Published    uint64 // Publish calls from connected ports
	Delivered    uint64 // messages handed to a Handler.Message, requests included
	Lost         uint64 // publishes from a disconnected port, and deliveries lost to faults
	Requests     uint64 // Request calls
	Replies      uint64 // replies handed to Handler.Response (first ones and those within the reply window)
	NoResponders uint64 // requests failed with ErrNoResponders
	Timeouts     uint64 // requests failed with ErrTimeout
}

// NewBus adds a bus named name (for the trace) to the network. It is up.
func (n *Network) NewBus(name string, opt BusOptions) *Bus {
	return &Bus{n: n, name: name, opt: opt.withDefaults(), pending: map[string]*busRequest{}}
}

// Stats reports the bus's counters.
func (b *Bus) Stats() BusStats { return b.stats }

// Up reports whether the server is running.
func (b *Bus) Up() bool { return !b.down }

// BusPort is one node's connection to a Bus; it implements backbone.Bus
// for the core SetHandler names.
type BusPort struct {
	b    *Bus
	nd   *Node
	id   int
	h    backbone.Handler
	inc  uint64          // the node incarnation h runs in
	subs map[string]bool // lookups only
	up   bool            // what h was last told
	conn uint64          // bumped at each connect and disconnect
	cut  bool            // Partition'ed from the server
	// last is, per subscriber port id, when the last delivery to it from
	// this port arrives, so deliveries keep publish order.
	last map[int]time.Duration
	reqs []*busRequest // in flight, in request order
}

var _ backbone.Bus = (*BusPort)(nil)

// busRequest is one Request waiting for its replies.
type busRequest struct {
	from *BusPort
	conn uint64
	id   uint64
	// inbox is the reply subject; answered is set by the first reply,
	// done once no more replies are handed over.
	inbox    string
	answered bool
	done     bool
}

// Attach gives node nd a port on the bus. Pass it as the core's
// backbone, then SetHandler with the core.
func (b *Bus) Attach(nd *Node) *BusPort {
	p := &BusPort{b: b, nd: nd, id: len(b.ports), subs: map[string]bool{}, last: map[int]time.Duration{}}
	b.ports = append(b.ports, p)
	nd.ports = append(nd.ports, p)
	return p
}

// SetHandler binds the port to h, a core just created on its node (after
// a Restart too): subscriptions start empty and the port connects one
// Latency from now, if the server is up and the node not cut from it.
func (p *BusPort) SetHandler(h backbone.Handler) {
	p.disconnect(false)
	p.h, p.inc = h, p.nd.inc
	clear(p.subs)
	p.scheduleConnect()
}

// delay draws one delivery delay.
func (b *Bus) delay() time.Duration {
	d := b.opt.Latency
	if b.opt.Jitter > 0 {
		d += time.Duration(b.n.rng.Int64N(int64(b.opt.Jitter)))
	}
	return d
}

// live reports whether the port's handler belongs to its node's current
// incarnation.
func (p *BusPort) live() bool {
	return p.h != nil && !p.nd.crashed && p.inc == p.nd.inc
}

func (p *BusPort) scheduleConnect() {
	b := p.b
	b.n.schedule(b.n.now+b.opt.Latency, func() {
		if p.up || b.down || p.cut || !p.live() {
			return
		}
		p.up = true
		p.conn++
		p.notify(true)
	})
}

// notify tells the handler the port's state, as an event of its own.
func (p *BusPort) notify(up bool) {
	n := p.b.n
	n.tracef(p.nd.name, "bus-state up=%t", up)
	p.h.BusState(up, p.nd.Now())
	n.rearm(p.nd, false)
}

// disconnect drops the port's connection: the handler hears of it (if
// tell) in an event of its own, then its requests fail with ErrDown.
func (p *BusPort) disconnect(tell bool) {
	if !p.up {
		return
	}
	p.up = false
	p.conn++
	n, h, inc := p.b.n, p.h, p.inc
	var reqs []*busRequest
	for _, rq := range p.reqs {
		rq.done = true
		delete(p.b.pending, rq.inbox)
		if !rq.answered {
			reqs = append(reqs, rq)
		}
	}
	p.reqs = nil
	if !tell {
		return
	}
	n.schedule(n.now, func() {
		if !p.live() || p.h != h || p.inc != inc {
			return
		}
		p.notify(false)
		for _, rq := range reqs {
			p.respond(rq.id, nil, backbone.ErrDown)
		}
	})
}

// respond hands a Response to the port's handler.
func (p *BusPort) respond(id uint64, data []byte, err error) {
	n := p.b.n
	if n.tracing() {
		n.tracef(p.nd.name, "bus-reply id=%d n=%d err=%v", id, len(data), err)
	}
	p.h.Response(id, data, err, p.nd.Now())
	n.rearm(p.nd, false)
}

// Subscribe implements backbone.Bus.
func (p *BusPort) Subscribe(subject string) { p.subs[subject] = true }

// Unsubscribe implements backbone.Bus.
func (p *BusPort) Unsubscribe(subject string) { delete(p.subs, subject) }

// Publish implements backbone.Bus.
func (p *BusPort) Publish(subject string, data []byte) {
	b := p.b
	if !p.up {
		b.stats.Lost++
		return
	}
	b.stats.Published++
	p.fanout(backbone.Msg{Subject: subject, Data: append([]byte(nil), data...)})
}

// fanout schedules m's delivery to every other subscribed port, and
// reports how many it reached.
func (p *BusPort) fanout(m backbone.Msg) int {
	b := p.b
	sent := 0
	for _, q := range b.ports {
		if q == p || !q.up || !q.subs[m.Subject] {
			continue
		}
		sent++
		at := max(b.n.now+b.delay(), p.last[q.id])
		p.last[q.id] = at
		gen, conn := b.gen, q.conn
		from := p.nd.name
		b.n.schedule(at, func() {
			if b.gen != gen || q.conn != conn || !q.up || !q.subs[m.Subject] || !q.live() {
				b.stats.Lost++
				return
			}
			b.stats.Delivered++
			if b.n.tracing() {
				b.n.tracef(q.nd.name, "bus-msg subject=%s reply=%t from=%s n=%d", m.Subject, m.Reply != "", from, len(m.Data))
			}
			q.h.Message(m, q.nd.Now())
			b.n.rearm(q.nd, false)
		})
	}
	return sent
}

// Request implements backbone.Bus.
func (p *BusPort) Request(subject string, data []byte, id uint64) {
	b := p.b
	n := b.n
	b.stats.Requests++
	if !p.up {
		h, inc := p.h, p.inc
		n.schedule(n.now, func() {
			if p.live() && p.h == h && p.inc == inc {
				p.respond(id, nil, backbone.ErrDown)
			}
		})
		return
	}
	b.inboxes++
	rq := &busRequest{from: p, conn: p.conn, id: id, inbox: "_INBOX." + b.name + "." + strconv.FormatUint(b.inboxes, 10)}
	if p.fanout(backbone.Msg{Subject: subject, Reply: rq.inbox, Data: append([]byte(nil), data...)}) == 0 {
		b.stats.NoResponders++
		n.schedule(n.now+2*b.delay(), func() {
			if p.conn == rq.conn && p.live() {
				p.respond(id, nil, backbone.ErrNoResponders)
			}
		})
		return
	}
	b.pending[rq.inbox] = rq
	p.reqs = append(p.reqs, rq)
	n.schedule(n.now+backbone.RequestTimeout, func() {
		if rq.done || rq.answered {
			return
		}
		p.finish(rq)
		b.stats.Timeouts++
		p.respond(id, nil, backbone.ErrTimeout)
	})
}

// finish marks rq answered.
func (p *BusPort) finish(rq *busRequest) {
	rq.done = true
	delete(p.b.pending, rq.inbox)
	for i, x := range p.reqs {
		if x == rq {
			p.reqs = append(p.reqs[:i], p.reqs[i+1:]...)
			break
		}
	}
}

// Respond implements backbone.Bus.
func (p *BusPort) Respond(reply string, data []byte) {
	b := p.b
	rq := b.pending[reply]
	if !p.up || rq == nil {
		b.stats.Lost++
		return
	}
	data = append([]byte(nil), data...)
	gen := b.gen
	b.n.schedule(b.n.now+b.delay(), func() {
		from := rq.from
		if rq.done || b.gen != gen || from.conn != rq.conn || !from.live() {
			b.stats.Lost++
			return
		}
		if !rq.answered {
			rq.answered = true
			b.n.schedule(b.n.now+backbone.ReplyWindow, func() {
				if !rq.done {
					from.finish(rq)
				}
			})
		}
		b.stats.Replies++
		from.respond(rq.id, data, nil)
	})
}

// Crash stops the server: connected ports get BusState(false), messages
// in flight are lost and requests in flight fail with ErrDown.
func (b *Bus) Crash() {
	if b.down {
		return
	}
	b.n.tracef("net", "bus-crash bus=%s", b.name)
	b.down = true
	b.gen++
	for _, p := range b.ports {
		p.disconnect(true)
	}
}

// Restart starts the server again; ports reconnect after one Latency.
func (b *Bus) Restart() {
	if !b.down {
		return
	}
	b.n.tracef("net", "bus-restart bus=%s", b.name)
	b.down = false
	for _, p := range b.ports {
		if !p.cut && p.live() {
			p.scheduleConnect()
		}
	}
}

// Partition cuts node from the server, as Crash does for all, until Heal.
func (b *Bus) Partition(node string) {
	b.n.tracef("net", "bus-partition bus=%s node=%s", b.name, node)
	for _, p := range b.ports {
		if p.nd.name == node {
			p.cut = true
			p.disconnect(true)
		}
	}
}

// Heal reconnects node to the server (after one Latency, if it is up).
func (b *Bus) Heal(node string) {
	b.n.tracef("net", "bus-heal bus=%s node=%s", b.name, node)
	for _, p := range b.ports {
		if p.nd.name == node && p.cut {
			p.cut = false
			if !b.down && p.live() {
				p.scheduleConnect()
			}
		}
	}
}

// nodeCrashed drops the port's state with its node: a dead process
// holds no connection and no subscriptions.
func (p *BusPort) nodeCrashed() {
	p.disconnect(false)
	p.h = nil
	clear(p.subs)
}
