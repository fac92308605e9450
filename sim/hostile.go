package sim

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// HostileKind names a hostile client's behaviour. Hostile clients run
// beside the honest ones in the hostile class; the honest ones must keep
// every invariant meanwhile, and no fault span covers them for it.
type HostileKind string

const (
	// HostileBadProof joins channel 0 with a proof that does not verify.
	HostileBadProof HostileKind = "bad-proof"
	// HostileReplayedProof joins channel 0 with the proof of an earlier
	// connection's nonce.
	HostileReplayedProof HostileKind = "replayed-proof"
	// HostileMute joins channel 0 with its leaked join key, then goes
	// silent: the relay must close it at its idle timeout.
	HostileMute HostileKind = "mute"
	// HostileStalled joins channel 0 with the leaked key and stops reading
	// (its link is clogged): the relay must hold, merge and drop for it
	// without slowing the others.
	HostileStalled HostileKind = "stalled"
	// HostileSyncFlood sends bursts of Sync frames in a channel of its own.
	HostileSyncFlood HostileKind = "sync-flood"
	// HostilePingFlood sends bursts of Pings.
	HostilePingFlood HostileKind = "ping-flood"
	// HostileSwarm joins more self-made channels than allowed and fills them.
	HostileSwarm HostileKind = "swarm"
	// HostileGarbage sends oversized frames and bytes that do not frame.
	HostileGarbage HostileKind = "garbage"
)

var hostileKinds = []HostileKind{HostileBadProof, HostileReplayedProof, HostileMute, HostileStalled,
	HostileSyncFlood, HostilePingFlood, HostileSwarm, HostileGarbage}

// hostile is one hostile client.
type hostile struct {
	peer
	kind     HostileKind
	name     string
	rng      *rand.Rand
	rd       wire.Reader
	fr       wire.Frames
	joined   bool
	lastSent time.Time
	oldNonce [roster.JoinNonceSize]byte
	own      []*roster.Keys // self-made channels
	buf      []byte
}

func newHostile(w *world, i int, k HostileKind) {
	h := &hostile{peer: peer{w: w}, kind: k, name: fmt.Sprintf("h%d-%s", i, k), rng: w.coreRand()}
	h.node = w.net.AddNode(h.name)
	n := 1
	if k == HostileSwarm {
		n = w.relayConfig().MaxChannels + 4
	}
	for j := range n {
		keys, err := roster.DeriveKeys(fmt.Appendf(nil, "hostile secret %d", i), fmt.Sprintf("own-%d", j))
		if err != nil {
			panic(err)
		}
		h.own = append(h.own, keys)
	}
	h.node.SetHandler(h)
	h.next = w.net.Now().Add(time.Duration(h.rng.IntN(1000)) * time.Millisecond)
}

func (h *hostile) send(f wire.Frame) {
	h.buf = wire.Append(h.buf[:0], f)
	h.sendRaw(h.buf)
}

func (h *hostile) sendRaw(b []byte) {
	if h.conn != nil && h.conn.Send(b) == nil {
		h.lastSent = h.w.net.Now()
	}
}

func (h *hostile) Open(c transport.Conn, now time.Time) {
	if c != h.conn {
		return
	}
	if h.kind == HostileGarbage {
		// A length prefix far past any frame limit, then bytes that do
		// not frame.
		h.sendRaw(binary.BigEndian.AppendUint32(nil, 1<<30))
		return
	}
	h.send(&wire.Hello{MinVersion: 1, MaxVersion: wire.Version, Agent: h.name})
}

func (h *hostile) Data(c transport.Conn, b []byte, now time.Time) {
	if c != h.conn {
		return
	}
	_ = h.rd.Feed(b, func(t wire.Type, p []byte) error {
		f, err := h.fr.Decode(t, p)
		if err != nil {
			return nil
		}
		switch f := f.(type) {
		case *wire.Welcome:
			h.welcome(f)
		case *wire.Joined:
			h.onJoined(f)
		case *wire.Ping:
			if h.kind != HostileMute {
				h.send(&wire.Pong{Data: f.Data})
			}
		}
		return nil
	})
}

// welcome joins as the kind says.
func (h *hostile) welcome(f *wire.Welcome) {
	leaked := h.w.keys[0]
	switch h.kind {
	case HostileBadProof:
		pub, sig := leaked.JoinProof(f.Nonce)
		sig[h.rng.IntN(len(sig))] ^= 1
		h.send(&wire.Join{Handle: 1, Channel: leaked.ID(), Pub: pub, Sig: sig})
	case HostileReplayedProof:
		pub, sig := leaked.JoinProof(h.oldNonce)
		h.send(&wire.Join{Handle: 1, Channel: leaked.ID(), Pub: pub, Sig: sig})
		h.oldNonce = f.Nonce
	case HostileMute, HostileStalled:
		pub, sig := leaked.JoinProof(f.Nonce)
		h.send(&wire.Join{Handle: 1, Channel: leaked.ID(), Pub: pub, Sig: sig})
	default:
		for i, k := range h.own {
			pub, sig := k.JoinProof(f.Nonce)
			h.send(&wire.Join{Handle: uint32(i + 1), Channel: k.ID(), Pub: pub, Sig: sig})
		}
	}
}

func (h *hostile) onJoined(f *wire.Joined) {
	w := h.w
	switch h.kind {
	case HostileBadProof, HostileReplayedProof:
		if f.Handle == 1 && h.oldNonce != ([roster.JoinNonceSize]byte{}) || h.kind == HostileBadProof {
			w.violate("isolation: %s joined channel 0 without a valid proof", h.name)
		}
	case HostileMute:
		h.joined = true
		h.armMuteCheck()
	case HostileStalled:
		h.joined = true
		w.net.Clog(h.name, relayName)
		w.net.At(w.net.Now().Add(w.sc.Timing.Idle+2*time.Second), func() { w.net.Unclog(h.name, relayName) })
	case HostileSwarm:
		for i := 0; i < 8; i++ {
			e, _ := h.own[f.Handle-1].Seal(fmt.Appendf(nil, "junk %d %d", f.Handle, h.rng.Uint64()))
			h.send(&wire.Announce{Handle: f.Handle, Seq: uint32(i + 1), Entries: [][]byte{e.Sealed}})
		}
	}
}

// armMuteCheck: a member that says nothing must be closed at the relay's
// idle timeout (invariant 6: a silent connection is not kept).
func (h *hostile) armMuteCheck() {
	w := h.w
	conn, sent, gen := h.conn, h.lastSent, w.relayGen
	bound := w.sc.Timing.Idle + 4*w.owMax + boundSlack
	w.net.At(sent.Add(bound), func() {
		if h.conn == conn && h.lastSent.Equal(sent) && w.relayGen == gen && w.relayUp && !w.relay.Draining() &&
			!w.touch.touched([]string{h.name}, sent, w.net.Now(), 0, false) {
			w.violate("boundedness: the relay kept %s's silent connection open %v after its last byte (idle timeout %v)",
				h.name, w.net.Now().Sub(sent), w.sc.Timing.Idle)
		}
	})
}

func (h *hostile) Tick(now time.Time) {
	if !h.due(now) {
		return
	}
	if h.conn == nil {
		h.joined = false
		h.rd = wire.Reader{Max: 1 << 24}
		h.conn = h.node.Dialer().Dial(relayAddr)
		return
	}
	switch h.kind {
	case HostileSyncFlood:
		k := h.own[0]
		var s roster.Set
		msg := s.StartSync()
		for range 500 {
			h.send(&wire.Sync{Handle: 1, Session: h.rng.Uint32(), Msg: msg})
		}
		_ = k
	case HostilePingFlood:
		for range 500 {
			h.send(&wire.Ping{Data: h.rng.Uint64()})
		}
	case HostileGarbage:
		junk := make([]byte, 64)
		for i := range junk {
			junk[i] = byte(h.rng.Uint32())
		}
		h.sendRaw(junk)
	case HostileMute:
		return
	}
	if h.kind != HostileMute && h.kind != HostileStalled {
		h.send(&wire.Ping{})
	}
}

func (h *hostile) Deadline() (time.Time, bool) {
	if h.w.healed {
		return time.Time{}, false
	}
	return h.next, true
}
