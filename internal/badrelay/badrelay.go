// Package badrelay is a malicious relay: it speaks the real handshake and
// answers joins, syncs and pings as a relay does, so that a client counts
// it as connected and caught up, and meanwhile asks its clients, again and
// again, to list storage: Error rescan or resync frames, a new epoch at
// every reconnect, or Joined frames never flagged complete. The hostile
// suite runs it on real sockets (a tcp.Loop) against a real Agent, the
// simulator on netsim; it is a transport.Handler and, like a core, pure:
// no clock, goroutine or global randomness.
package badrelay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// Behaviour is what the relay does every Period.
type Behaviour string

// Behaviours.
const (
	// Rescan sends Error rescan on every joined channel.
	Rescan Behaviour = "rescan"
	// Resync sends Error resync on every joined channel.
	Resync Behaviour = "resync"
	// EpochChurn takes a new epoch and closes every connection, so each
	// reconnect's Welcome tells of a relay that forgot everything.
	EpochChurn Behaviour = "epoch-churn"
	// IncompleteJoined closes every connection; no Joined it sends is
	// flagged complete.
	IncompleteJoined Behaviour = "incomplete-joined"
)

// Behaviours lists every behaviour, in a fixed order.
var Behaviours = []Behaviour{Rescan, Resync, EpochChurn, IncompleteJoined}

// Attacks are the hostile suite's malicious relays at their real timings:
// a rescan every 200ms, a resync every 2s, a new epoch every 3s, a
// reconnect with an incomplete Joined every 3s.
var Attacks = []Config{
	{Behaviour: Rescan, Period: 200 * time.Millisecond},
	{Behaviour: Resync, Period: 2 * time.Second},
	{Behaviour: EpochChurn, Period: 3 * time.Second},
	{Behaviour: IncompleteJoined, Period: 3 * time.Second},
}

// Config sets the relay's behaviour and its period.
type Config struct {
	Behaviour Behaviour
	Period    time.Duration
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if !slices.Contains(Behaviours, c.Behaviour) {
		return fmt.Errorf("badrelay: unknown behaviour %q", c.Behaviour)
	}
	if c.Period <= 0 {
		return errors.New("badrelay: period must be positive")
	}
	return nil
}

// Stats counts what the relay did.
type Stats struct {
	Conns   uint64 // connections opened
	Asks    uint64 // rescans, resyncs, epoch changes or incomplete Joined frames sent
	Catchup uint64 // syncs answered as finished
}

// Relay is the malicious relay. It implements transport.Handler.
type Relay struct {
	cfg   Config
	rng   *rand.Rand
	epoch uint64
	conns []*conn // in open order
	next  time.Time
	out   []byte
	stats Stats
}

type conn struct {
	c        transport.Conn
	rd       wire.Reader
	welcomed bool
	handles  []uint32 // joined, in join order
}

var _ transport.Handler = (*Relay)(nil)

// New returns a relay whose first misdeed is due a Period after now.
func New(cfg Config, rng *rand.Rand, now time.Time) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Relay{cfg: cfg, rng: rng, epoch: rng.Uint64(), next: now.Add(cfg.Period)}, nil
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats { return r.stats }

// Epoch is the epoch the next Welcome carries.
func (r *Relay) Epoch() uint64 { return r.epoch }

// Open takes a connection; the client speaks first.
func (r *Relay) Open(c transport.Conn, _ time.Time) {
	r.stats.Conns++
	r.conns = append(r.conns, &conn{c: c})
}

// Data answers the client's frames; a bad stream closes the connection.
func (r *Relay) Data(c transport.Conn, b []byte, _ time.Time) {
	i := r.index(c)
	if i < 0 {
		return
	}
	cn := r.conns[i]
	if err := cn.rd.Feed(b, func(t wire.Type, p []byte) error { return r.handle(cn, t, p) }); err != nil {
		r.drop(i)
	}
}

func (r *Relay) handle(cn *conn, t wire.Type, p []byte) error {
	f, err := wire.Decode(t, p)
	if errors.Is(err, wire.ErrUnknownType) {
		return nil
	}
	if err != nil {
		return err
	}
	switch f := f.(type) {
	case *wire.Hello:
		if cn.welcomed {
			return errors.New("badrelay: second hello")
		}
		cn.welcomed = true
		w := &wire.Welcome{Version: wire.Version, Epoch: r.epoch}
		for i := range w.Nonce {
			w.Nonce[i] = byte(r.rng.Uint32())
		}
		r.send(cn, w)
	case *wire.Join:
		if !slices.Contains(cn.handles, f.Handle) {
			cn.handles = append(cn.handles, f.Handle)
		}
		j := &wire.Joined{Handle: f.Handle, Flags: wire.JoinedComplete}
		if r.cfg.Behaviour == IncompleteJoined {
			j.Flags = 0
			r.stats.Asks++
		}
		r.send(cn, j)
	case *wire.Leave:
		cn.handles = slices.DeleteFunc(cn.handles, func(h uint32) bool { return h == f.Handle })
	case *wire.Sync:
		if !f.Msg.Empty() {
			// "I hold nothing you lack, and lack nothing": the sync ends.
			r.stats.Catchup++
			r.send(cn, &wire.Sync{Handle: f.Handle, Session: f.Session, Msg: roster.SyncMsg{}})
		}
	case *wire.Announce:
		r.send(cn, &wire.Ack{Handle: f.Handle, Seq: f.Seq})
	case *wire.Ping:
		r.send(cn, &wire.Pong{Data: f.Data})
	}
	return nil
}

func (r *Relay) send(cn *conn, f wire.Frame) {
	r.out = wire.Append(r.out[:0], f)
	_ = cn.c.Send(r.out)
}

// Writable is not needed: the relay sends little.
func (r *Relay) Writable(transport.Conn, time.Time) {}

// Closed forgets the connection.
func (r *Relay) Closed(c transport.Conn, _ error, _ time.Time) {
	if i := r.index(c); i >= 0 {
		r.conns = slices.Delete(r.conns, i, i+1)
	}
}

// Tick does the relay's misdeed when due.
func (r *Relay) Tick(now time.Time) {
	for !now.Before(r.next) {
		r.next = r.next.Add(r.cfg.Period)
		r.misbehave()
	}
}

// Deadline is the next misdeed.
func (r *Relay) Deadline() (time.Time, bool) { return r.next, true }

func (r *Relay) misbehave() {
	switch r.cfg.Behaviour {
	case Rescan, Resync:
		code := wire.CodeRescan
		if r.cfg.Behaviour == Resync {
			code = wire.CodeResync
		}
		for _, cn := range r.conns {
			for _, h := range cn.handles {
				r.stats.Asks++
				r.send(cn, &wire.Error{Code: code, Handle: h, Text: "list storage"})
			}
		}
	case EpochChurn, IncompleteJoined:
		if r.cfg.Behaviour == EpochChurn {
			r.epoch = r.rng.Uint64()
			r.stats.Asks++
		}
		for len(r.conns) > 0 {
			r.drop(len(r.conns) - 1)
		}
	}
}

// drop closes connection i and forgets it (Close brings no Closed).
func (r *Relay) drop(i int) {
	r.conns[i].c.Close()
	r.conns = slices.Delete(r.conns, i, i+1)
}

func (r *Relay) index(c transport.Conn) int {
	return slices.IndexFunc(r.conns, func(cn *conn) bool { return cn.c == c })
}
