package netsim

import (
	"fmt"
	"math/bits"
	"time"

	"github.com/cosnim/relays/transport"
)

// Node is one process on the network: it runs one Handler, may listen on
// addresses and dial others, and reads its own (possibly drifting) clock.
type Node struct {
	n       *Network
	name    string
	h       transport.Handler
	inc     uint64     // incarnation, bumped by Crash
	crashed bool       // between Crash and Restart
	addrs   []string   // addresses listened on in this incarnation
	ports   []*BusPort // its connections to buses (bus.go)

	// drift: now_node = start + (t-start)*(1e6+ppm)/1e6 + offset, never
	// below floor (the reading when the drift last changed).
	offset time.Duration
	ppm    int64
	floor  time.Duration

	timerGen uint64        // bumped to cancel the pending tick
	timerSet bool          // a tick is pending
	timerFor time.Time     // the node-clock deadline it serves
	timerAt  time.Duration // when (global) it fires
}

// AddNode adds a node named name, which must be new. It has no handler
// until SetHandler.
func (n *Network) AddNode(name string) *Node {
	if _, ok := n.byName[name]; ok {
		panic(fmt.Sprintf("netsim: node %q added twice", name))
	}
	nd := &Node{n: n, name: name}
	n.nodes = append(n.nodes, nd)
	n.byName[name] = nd
	return nd
}

// Node returns the node named name, or nil.
func (n *Network) Node(name string) *Node { return n.byName[name] }

// Name reports the node's name.
func (nd *Node) Name() string { return nd.name }

// SetHandler sets the core that this node feeds, replacing any other, and
// arms its timer from h.Deadline.
func (nd *Node) SetHandler(h transport.Handler) {
	nd.h = h
	nd.n.rearm(nd, false)
}

// Listen accepts connections dialed to addr from now on; Handler.Open fires
// for each. The latest node to listen on an address takes it over.
func (nd *Node) Listen(addr string) {
	if nd.crashed {
		return
	}
	nd.n.listeners[addr] = nd
	nd.n.owners[addr] = nd
	nd.addrs = append(nd.addrs, addr)
	nd.n.tracef(nd.name, "listen addr=%s", addr)
}

// Dialer returns the node's dialer.
func (nd *Node) Dialer() transport.Dialer { return dialer{nd} }

type dialer struct{ nd *Node }

// Dial implements transport.Dialer.
func (d dialer) Dial(addr string) transport.Conn { return d.nd.dial(addr) }

// Crash kills the process: its connections vanish (each peer gets
// Closed(ErrReset) when the RST reaches it, one delay later unless the link
// is blocked), its listeners close (dials get refused), its pending timer
// is cancelled and its handler is dropped.
func (nd *Node) Crash() {
	n := nd.n
	if nd.crashed {
		return
	}
	nd.crashed = true
	nd.h = nil
	nd.cancelTimer()
	n.stats.Crashes++
	n.tracef(nd.name, "crash")
	for _, a := range nd.addrs {
		if n.listeners[a] == nd {
			delete(n.listeners, a)
		}
	}
	nd.addrs = nil
	for _, p := range nd.ports {
		p.nodeCrashed()
	}
	for _, c := range n.conns {
		for side, e := range c.ends {
			if e == nil || c.nodes[side] != nd || e.state == stDead {
				continue
			}
			e.state = stDead
			out := c.pipes[side]
			n.clearPipe(out)
			if peer := c.ends[1-side]; peer != nil && peer.state != stDead {
				n.sendRST(out)
			}
		}
	}
	nd.inc++
}

// Restart brings the node back with a fresh handler h (crashing it first if
// it is up). It must Listen again to serve.
func (nd *Node) Restart(h transport.Handler) {
	if !nd.crashed {
		nd.Crash()
	}
	nd.crashed = false
	nd.n.tracef(nd.name, "restart")
	nd.SetHandler(h)
}

// Crashed reports whether the node is down.
func (nd *Node) Crashed() bool { return nd.crashed }

// SetDrift sets the node's clock to read
// start + (t-start)*(1+ratePPM/1e6) + offset at global time t. A change
// that would move the clock back freezes it until the new reading catches
// up, so it stays monotonic. ratePPM must be above -1e6.
func (nd *Node) SetDrift(offset time.Duration, ratePPM int) {
	if ratePPM <= -1e6 {
		panic("netsim: clock drift rate at or below -1e6 ppm")
	}
	nd.floor = nd.clock(nd.n.now)
	nd.offset, nd.ppm = offset, int64(ratePPM)
	nd.n.rearm(nd, false)
}

// Now reports the node's clock at the current virtual time.
func (nd *Node) Now() time.Time { return nd.n.opt.Start.Add(nd.clock(nd.n.now)) }

// At runs f when the node's clock first reads t (at once if it already
// does): a timer of the node's own, such as a driver beside a core keeps.
// A later SetDrift does not move it.
func (nd *Node) At(t time.Time, f func()) {
	nd.n.schedule(nd.global(t.Sub(nd.n.opt.Start)), f)
}

// clock converts global virtual time to the node's reading (both as
// offsets from Start).
func (nd *Node) clock(t time.Duration) time.Duration {
	c := t
	if nd.ppm != 0 {
		c = time.Duration(mulDiv(int64(t), 1e6+nd.ppm, 1e6))
	}
	c += nd.offset
	return max(c, nd.floor)
}

// global returns the earliest global time at which the node's clock reads
// at least c, never before now.
func (nd *Node) global(c time.Duration) time.Duration {
	now := nd.n.now
	if nd.clock(now) >= c {
		return now
	}
	d := int64(c - nd.offset)
	g := time.Duration(-mulDiv(-d, 1e6, 1e6+nd.ppm)) // ceiling
	g = max(g, now)
	for nd.clock(g) < c {
		g++
	}
	return g
}

// mulDiv returns floor(a*m/d) for m, d > 0 without overflowing the product.
func mulDiv(a, m, d int64) int64 {
	neg := a < 0
	ua := uint64(a)
	if neg {
		ua = uint64(-a)
	}
	hi, lo := bits.Mul64(ua, uint64(m))
	q, r := bits.Div64(hi, lo, uint64(d))
	if neg {
		if r != 0 {
			q++
		}
		return -int64(q)
	}
	return int64(q)
}

func (nd *Node) cancelTimer() {
	nd.timerGen++
	nd.timerSet = false
}

// tickSpin is how long a node whose Deadline is still due right after its
// Tick waits before the next Tick, so a core that does not advance its
// timers cannot stall the simulation.
const tickSpin = time.Millisecond

// rearm keeps one pending tick for nd at its handler's Deadline.
func (n *Network) rearm(nd *Node, afterTick bool) {
	if nd.h == nil || nd.crashed {
		nd.cancelTimer()
		return
	}
	t, ok := nd.h.Deadline()
	if !ok {
		nd.cancelTimer()
		return
	}
	c := t.Sub(n.opt.Start)
	at := nd.global(c)
	if afterTick && at == n.now {
		at = n.now + tickSpin
	}
	if nd.timerSet && nd.timerFor.Equal(t) && nd.timerAt == at {
		return
	}
	nd.cancelTimer()
	nd.timerSet, nd.timerFor, nd.timerAt = true, t, at
	gen := nd.timerGen
	n.schedule(at, func() {
		if nd.timerGen != gen {
			return
		}
		nd.timerSet = false
		n.tick(nd)
	})
}

func (n *Network) tick(nd *Node) {
	if nd.h == nil || nd.crashed {
		return
	}
	n.stats.Ticks++
	n.traceWord(nd.name, "tick")
	nd.h.Tick(nd.Now())
	n.rearm(nd, true)
}
