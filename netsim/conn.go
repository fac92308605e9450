package netsim

import (
	"fmt"
	"time"

	"github.com/cosnim/relays/transport"
)

// A conn is one connection: side 0 dialed, side 1 accepted. pipes[i]
// carries what ends[i] sends towards ends[1-i].
type conn struct {
	id    uint64
	addr  string
	nodes [2]*Node
	ends  [2]*end // ends[1] is nil until the SYN is accepted
	pipes [2]*pipe
}

type endState uint8

const (
	stConnecting endState = iota // dialed, handshake not done
	stOpen                       // usable
	stClosing                    // Close called; flushing
	stDead                       // gone: closed, reset, refused, crashed
)

// end is one side of a conn; it is the transport.Conn handed to handlers.
type end struct {
	n     *Network
	c     *conn
	side  int
	inc   uint64 // incarnation of its node at creation
	state endState
	sent  []byte       // first RecordBytes bytes sent, for Replay
	agent *replayAgent // non-nil for Replay's connections
}

var _ transport.Conn = (*end)(nil)

// Send implements transport.Conn. Bytes sent before the handshake
// completes wait for it.
func (e *end) Send(b []byte) error {
	if e.state == stClosing || e.state == stDead {
		return transport.ErrClosed
	}
	if len(b) == 0 {
		return nil
	}
	n := e.n
	if room := n.opt.RecordBytes - len(e.sent); room > 0 {
		e.sent = append(e.sent, b[:min(room, len(b))]...)
	}
	p := e.c.pipes[e.side]
	p.segs = append(p.segs, seg{kind: segData, b: append([]byte(nil), b...)})
	p.queued += len(b)
	n.stats.BytesSent += uint64(len(b))
	if p.queued >= n.opt.HighWater {
		p.high = true
	}
	n.markDirty(p)
	return nil
}

// Queued implements transport.Conn: bytes sent and not yet handed to the
// peer's handler (held by a blocked link included).
func (e *end) Queued() int { return e.c.pipes[e.side].queued }

// Close implements transport.Conn: queued bytes are flushed, then the peer
// gets Closed(io.EOF). The caller's handler hears nothing more of e.
func (e *end) Close() {
	if e.state == stClosing || e.state == stDead {
		return
	}
	e.state = stClosing
	e.n.tracef(e.node().name, "close conn=%d", e.c.id)
	p := e.c.pipes[e.side]
	p.segs = append(p.segs, seg{kind: segFIN})
	e.n.markDirty(p)
}

// RemoteAddr implements transport.Conn: the dialed address on the dialing
// side, "node#conn" on the accepting side.
func (e *end) RemoteAddr() string {
	if e.side == 0 {
		return e.c.addr
	}
	return fmt.Sprintf("%s#%d", e.c.nodes[0].name, e.c.id)
}

// String names the end in test failures.
func (e *end) String() string {
	return fmt.Sprintf("conn %d side %d of %s", e.c.id, e.side, e.node().name)
}

func (e *end) node() *Node { return e.c.nodes[e.side] }
func (e *end) peer() *end  { return e.c.ends[1-e.side] }

// notify calls one of e's handler methods (the node's current handler, or
// Replay's agent) with the node's clock, then rearms the node's timer. It
// does nothing if e's node crashed since e was made.
func (n *Network) notify(e *end, f func(h transport.Handler, now time.Time)) {
	nd := e.node()
	if nd.crashed || e.inc != nd.inc {
		return
	}
	if e.agent != nil {
		f(e.agent, nd.Now())
		return
	}
	if nd.h == nil {
		return
	}
	f(nd.h, nd.Now())
	n.rearm(nd, false)
}

// dial starts a connection from nd to addr.
func (nd *Node) dial(addr string) *end {
	n := nd.n
	n.connSeq++
	c := &conn{id: n.connSeq, addr: addr}
	c.nodes[0] = nd
	e := &end{n: n, c: c, inc: nd.inc, state: stConnecting}
	c.ends[0] = e
	c.pipes = [2]*pipe{{c: c, dir: 0}, {c: c, dir: 1}}
	n.stats.Dials++
	n.tracef(nd.name, "dial conn=%d addr=%s", c.id, addr)
	if nd.crashed {
		e.state = stDead
		return e
	}
	target := n.owners[addr]
	if target == nil {
		// No host has that address: refused after a round trip.
		n.schedule(n.now+n.delay()+n.delay(), func() {
			if e.state == stConnecting {
				n.failDial(e, transport.ErrRefused)
			}
		})
		return e
	}
	c.nodes[1] = target
	n.conns = append(n.conns, c)
	c.pipes[0].segs = append(c.pipes[0].segs, seg{kind: segSYN})
	n.markDirty(c.pipes[0])
	n.schedule(n.now+n.opt.ConnectTimeout, func() {
		if e.state == stConnecting {
			n.failDial(e, transport.ErrTimeout)
		}
	})
	return e
}

// failDial ends a dial that got no answer or a refusal.
func (n *Network) failDial(e *end, err error) {
	e.state = stDead
	c := e.c
	if err == transport.ErrTimeout {
		n.stats.Timeouts++
		// Give up the handshake; a listener that accepted is told.
		n.clearPipe(c.pipes[0])
		n.clearPipe(c.pipes[1])
		if p := e.peer(); p != nil && p.state != stDead {
			n.sendRST(c.pipes[0])
		}
	} else {
		n.stats.Refused++
	}
	n.tracef(e.node().name, "closed conn=%d err=%s", c.id, errName(err))
	n.notify(e, func(h transport.Handler, now time.Time) { h.Closed(e, err, now) })
}

// ResetConn kills the connection of c at once: every end that is not
// closed or dead gets Closed(ErrReset), and nothing in flight arrives.
func (n *Network) ResetConn(c transport.Conn) {
	e, ok := c.(*end)
	if !ok || e.n != n {
		panic("netsim: ResetConn of a Conn from another network")
	}
	cc := e.c
	n.tracef("net", "reset conn=%d", cc.id)
	n.clearPipe(cc.pipes[0])
	n.clearPipe(cc.pipes[1])
	for _, x := range cc.ends {
		if x == nil || x.state == stDead {
			continue
		}
		was := x.state
		x.state = stDead
		if was == stClosing {
			continue
		}
		n.schedule(n.now, func() {
			n.stats.Resets++
			n.tracef(x.node().name, "closed conn=%d err=reset", cc.id)
			n.notify(x, func(h transport.Handler, now time.Time) { h.Closed(x, transport.ErrReset, now) })
		})
	}
}

// Conns returns the connections that have an end not yet dead (one
// transport.Conn per connection, the dialing end), in creation order.
func (n *Network) Conns() []transport.Conn {
	var out []transport.Conn
	live := n.conns[:0]
	for _, c := range n.conns {
		alive := false
		for _, e := range c.ends {
			alive = alive || (e != nil && e.state != stDead)
		}
		if alive {
			out = append(out, c.ends[0])
		}
		if alive || len(c.pipes[0].segs) > 0 || len(c.pipes[1].segs) > 0 {
			live = append(live, c)
		}
	}
	clear(n.conns[len(live):])
	n.conns = live
	return out
}

// Peer returns the other end of c, for checkers that ask a core about the
// connection it sees; nil before the peer accepted or for a Conn of
// another network.
func Peer(c transport.Conn) transport.Conn {
	e, ok := c.(*end)
	if !ok || e.c.ends[1-e.side] == nil {
		return nil
	}
	return e.c.ends[1-e.side]
}

// PeerQueued reports the bytes c's peer has queued towards c that the
// network has not yet taken, for checkers that bound delivery times. It is
// 0 for a Conn of another network.
func PeerQueued(c transport.Conn) int {
	e, ok := c.(*end)
	if !ok {
		return 0
	}
	return e.c.pipes[1-e.side].queued
}
