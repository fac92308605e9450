package sim

import (
	"time"

	"github.com/cosnim/relays/netsim"
)

// Churn, second half (invariant 7): every sync a client starts has a
// cause. A catch-up follows a Joined or a Resync the client received; a
// Resync follows a pending overflow the relay recorded for that member;
// anti-entropy runs no more often than its period allows. A sync outside
// these is a needless catch-up: counted per client and reported, whatever
// faults the run holds (a fault explains a reconnect, never an uncaused
// sync).

// churn is what the checker counts for one client.
type churn struct {
	catchUps uint64 // syncs started by a Joined or a Resync
	needless uint64
	// aeSyncs counts anti-entropy syncs since aeStart, the core's start
	// in its node's time (timers run on it, drift included).
	aeSyncs uint64
	aeStart time.Time
}

// ClientChurn is one client's connection and catch-up counts.
type ClientChurn struct {
	Reconnects       uint64 `json:"reconnects"`
	CatchUps         uint64 `json:"catch_ups"`
	NeedlessCatchUps uint64 `json:"needless_catch_ups"`
}

// noteDataSyncs judges the syncs c's core started while handling bytes:
// at most one per cause the tap saw in them.
func (w *world) noteDataSyncs(c *simClient, started, causes int) {
	if started <= causes {
		c.churn.catchUps += uint64(started)
		return
	}
	c.churn.catchUps += uint64(causes)
	c.churn.needless += uint64(started - causes)
	w.violate("churn: %s started %d syncs that no Joined or Resync asked for", c.name, started-causes)
}

// noteTickSyncs judges syncs started by c's timers: anti-entropy, once
// per channel per period at most (the period's jitter is ±10%).
func (w *world) noteTickSyncs(c *simClient, started int) {
	if started == 0 {
		return
	}
	c.churn.aeSyncs += uint64(started)
	period := w.aePeriod()
	minGap := period - period/10
	allowed := uint64(len(c.chans)) * (uint64(c.node.Now().Sub(c.churn.aeStart)/minGap) + 1)
	if c.churn.aeSyncs > allowed {
		c.churn.needless += c.churn.aeSyncs - allowed
		w.violate("churn: %s ran %d anti-entropy syncs in %v, more than %d channels at one per %v allow",
			c.name, c.churn.aeSyncs, c.node.Now().Sub(c.churn.aeStart), len(c.chans), period)
		c.churn.aeSyncs = allowed // report once per excess
	}
}

// noteResync judges a Resync c got for channel index i: the relay must
// have recorded more overflows of that member than it sent Resyncs.
func (w *world) noteResync(c *simClient, i int) {
	t := c.tap
	t.resyncs[i]++
	peer := netsim.Peer(t.conn)
	if t.relay != w.relayGen || !w.relayUp || peer == nil {
		return
	}
	o, ok := w.relay.Overflows(peer, w.keys[c.chans[i]].ID())
	if !ok {
		// The member is gone (the relay closed the connection, or it
		// left) and its count with it; what it was sent before still
		// arrives.
		return
	}
	if uint64(t.resyncs[i]) > o {
		c.churn.needless++
		w.violate("churn: the relay told %s to sync channel %d again %d times, but its pending overflowed only %d times",
			c.name, c.chans[i], t.resyncs[i], o)
		t.resyncs[i] = int(o) // report once per excess
	}
}
