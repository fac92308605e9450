package sim

import (
	"math/rand/v2"
	"time"

	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// forger holds channel 0's join key (as if it leaked) but not its seal key,
// and announces entries it made up. Clients must refuse every one.
type forger struct {
	peer
	rng   *rand.Rand
	rd    wire.Reader
	ready bool
	buf   []byte
}

// peer is what the simulator's own wire clients (the forger and the
// hostile clients) share: one connection at a time, and an action at most
// once a second until the heal.
type peer struct {
	w    *world
	node *netsim.Node
	conn transport.Conn
	next time.Time // next action
}

// Writable implements transport.Handler: these peers never wait to write.
func (p *peer) Writable(transport.Conn, time.Time) {}

// Closed forgets the connection and acts again a second later.
func (p *peer) Closed(c transport.Conn, err error, now time.Time) {
	if c == p.conn {
		p.conn = nil
		p.next = now.Add(time.Second)
	}
}

// due reports whether it is time to act, and if so schedules the next.
func (p *peer) due(now time.Time) bool {
	if now.Before(p.next) || p.w.healed {
		return false
	}
	p.next = now.Add(time.Second)
	return true
}

func newForger(w *world) {
	f := &forger{peer: peer{w: w, node: w.net.AddNode("forger")}, rng: w.coreRand()}
	f.node.SetHandler(f)
	f.redial(w.net.Now())
}

func (f *forger) redial(now time.Time) {
	f.ready = false
	f.rd = wire.Reader{}
	f.conn = f.node.Dialer().Dial(relayAddr)
	f.next = now.Add(2 * time.Second)
}

func (f *forger) send(fr wire.Frame) {
	f.buf = wire.Append(f.buf[:0], fr)
	_ = f.conn.Send(f.buf)
}

func (f *forger) Open(c transport.Conn, now time.Time) {
	if c == f.conn {
		f.send(wirepeer.HelloFrame("forger"))
	}
}

func (f *forger) Data(c transport.Conn, b []byte, now time.Time) {
	if c != f.conn {
		return
	}
	_ = f.rd.Feed(b, func(t wire.Type, p []byte) error {
		switch t {
		case wire.TypeWelcome:
			var w wire.Welcome
			if err := w.DecodePayload(p); err != nil {
				return err
			}
			f.send(wirepeer.JoinFrame(f.w.keys[0], 1, w.Nonce))
		case wire.TypeJoined:
			f.ready = true
		case wire.TypePing:
			if pong, err := wirepeer.PongFor(p); err == nil {
				f.send(pong)
			}
		}
		return nil
	})
}

func (f *forger) Tick(now time.Time) {
	if !f.due(now) {
		return
	}
	if f.conn == nil {
		f.redial(now)
		return
	}
	if f.ready {
		entry := make([]byte, 40+f.rng.IntN(60))
		for i := range entry {
			entry[i] = byte(f.rng.Uint32())
		}
		f.send(&wire.Announce{Handle: 1, Seq: 1, Entries: [][]byte{entry}})
		f.send(&wire.Ping{})
	}
}

func (f *forger) Deadline() (time.Time, bool) {
	if f.w.healed {
		return time.Time{}, false
	}
	return f.next, true
}
