package netsim

import (
	"fmt"
	"time"

	"github.com/cosnim/relays/transport"
)

// Partition blocks both directions between every node in a and every node
// in b until Heal. Blocked bytes are held, not lost.
func (n *Network) Partition(a, b []string) {
	n.tracef("net", "partition %v %v", a, b)
	for _, x := range a {
		for _, y := range b {
			n.cut[link{x, y}] = true
			n.cut[link{y, x}] = true
		}
	}
}

// PartitionOneWay blocks only the direction from→to until Heal.
func (n *Network) PartitionOneWay(from, to string) {
	n.tracef("net", "partition-one-way %s %s", from, to)
	n.cut[link{from, to}] = true
}

// Clog holds the traffic between a and b, both ways, until Unclog or Heal.
func (n *Network) Clog(a, b string) {
	n.tracef("net", "clog %s %s", a, b)
	n.clogged[link{a, b}] = true
	n.clogged[link{b, a}] = true
}

// Unclog releases a clog between a and b; held traffic resumes in order.
// Partitions between them stay.
func (n *Network) Unclog(a, b string) {
	n.tracef("net", "unclog %s %s", a, b)
	delete(n.clogged, link{a, b})
	delete(n.clogged, link{b, a})
	n.repump()
}

// SwizzleClog schedules FoundationDB's swizzle: starting one interval from
// now, it clogs the links among nodes one at a time, in random order, every
// interval; then it unclogs them one at a time in another random order. It
// returns when the last unclog happens. A Heal cancels the steps not yet
// taken.
func (n *Network) SwizzleClog(nodes []string, interval time.Duration) time.Time {
	var links [][2]string
	for i := range nodes {
		for j := i + 1; j < len(nodes); j++ {
			links = append(links, [2]string{nodes[i], nodes[j]})
		}
	}
	clogOrder := n.rng.Perm(len(links))
	unclogOrder := n.rng.Perm(len(links))
	t := n.now
	gen := n.heals // a Heal cancels the rest of the swizzle
	for _, k := range clogOrder {
		t += interval
		l := links[k]
		n.schedule(t, func() {
			if n.heals == gen {
				n.Clog(l[0], l[1])
			}
		})
	}
	for _, k := range unclogOrder {
		t += interval
		l := links[k]
		n.schedule(t, func() {
			if n.heals == gen {
				n.Unclog(l[0], l[1])
			}
		})
	}
	return n.opt.Start.Add(t)
}

// Heal removes every partition and clog; held traffic resumes in order.
func (n *Network) Heal() {
	n.tracef("net", "heal")
	n.heals++
	clear(n.cut)
	clear(n.clogged)
	n.repump()
}

// repump marks every pipe with held segs for pumping, in conn order.
func (n *Network) repump() {
	for _, c := range n.conns {
		for _, p := range c.pipes {
			if p.nsched < len(p.segs) {
				n.markDirty(p)
			}
		}
	}
}

// Refuse makes dials to addr fail with ErrRefused while on.
func (n *Network) Refuse(addr string, on bool) {
	n.tracef("net", "refuse addr=%s on=%t", addr, on)
	if on {
		n.refused[addr] = true
	} else {
		delete(n.refused, addr)
	}
}

// Replay opens a fresh connection from node from to addr and, once it is
// open, sends the first nbytes that old (a Conn of this network, either
// end) sent, as far as they were recorded (Options.RecordBytes). The new
// connection belongs to from but not to its handler: what comes back is
// discarded, and it stays open until the peer closes it, a reset, or a
// crash of from. It returns the new connection.
func (n *Network) Replay(from string, addr string, old transport.Conn, nbytes int) transport.Conn {
	oe, ok := old.(*end)
	if !ok || oe.n != n {
		panic("netsim: Replay of a Conn from another network")
	}
	nd := n.byName[from]
	if nd == nil {
		panic(fmt.Sprintf("netsim: Replay from unknown node %q", from))
	}
	data := append([]byte(nil), oe.sent[:min(max(nbytes, 0), len(oe.sent))]...)
	n.tracef(from, "replay conn=%d bytes=%d", oe.c.id, len(data))
	e := nd.dial(addr)
	e.agent = &replayAgent{data: data}
	return e
}

// replayAgent is the handler of a Replay connection.
type replayAgent struct{ data []byte }

func (a *replayAgent) Open(c transport.Conn, _ time.Time) {
	_ = c.Send(a.data) // cannot fail: c is open
}
func (a *replayAgent) Data(transport.Conn, []byte, time.Time)  {}
func (a *replayAgent) Writable(transport.Conn, time.Time)      {}
func (a *replayAgent) Closed(transport.Conn, error, time.Time) {}
func (a *replayAgent) Tick(time.Time)                          {}
func (a *replayAgent) Deadline() (time.Time, bool)             { return time.Time{}, false }
