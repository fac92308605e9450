package sim

import (
	"time"

	"github.com/cosnim/relays/netsim"
)

// Resync (part of invariant 2): a member whose pending entries overflowed
// at the relay lost entries; the relay tells it to sync again, and it must
// finish a sync of that channel within a catch-up bound of the overflow,
// unless a fault touched it or its connection changed. relay/no-resync
// (the relay drops without telling) and client/ignore-resync (the client
// does not act on it) break it.

// A flooded member's sync can outlast that bound (its replies queue behind
// the flood): such a finish is counted (Result.ResyncLate) and judged
// again when the run ends, against the heal bound (judgeLateResyncs).

// noteOverflows runs after relay events: if the relay counted a new
// overflow, it finds the members it hit and arms their checks.
func (w *world) noteOverflows() {
	n := w.relay.Stats().Resyncs
	if n == w.resyncsSeen {
		return
	}
	w.resyncsSeen = n
	now := w.net.Now()
	for _, c := range w.clients {
		if !c.up || !c.tap.connected() {
			continue
		}
		peer := netsim.Peer(c.tap.conn)
		if peer == nil {
			continue
		}
		for i, ch := range c.chans {
			o, _ := w.relay.Overflows(peer, w.keys[ch].ID())
			if o <= c.tap.overflows[i] {
				c.tap.overflows[i] = o // fewer: a new membership
				continue
			}
			c.tap.overflows[i], c.tap.overflowAt[i] = o, now
			if !c.tap.resyncArmed[i] {
				c.tap.resyncArmed[i] = true
				w.armResync(c, i, now, 0)
			}
		}
	}
}

// armResync judges, a catch-up bound after an overflow at t0, that c
// finished a sync of channel index i since. The sync's replies wait
// behind whatever the relay sent the member meanwhile (it was flooded:
// that is why it overflowed), so the bound grows, once, by the wire time
// of the bytes that arrived or were queued in the window. A later
// overflow restarts the window, up to maxRearms times (then it counts as
// overloaded).
func (w *world) armResync(c *simClient, i int, t0 time.Time, rearms int) {
	ch := c.chans[i]
	gen, relayGen, rx0 := c.tap.gen, w.relayGen, c.tap.rx
	n := c.rosterOf(ch).Len()
	if cache := w.relayCache(ch); cache != nil {
		n = max(n, cache.Len())
	}
	// The Error waits behind what is queued to the member.
	bound := w.resyncBound(n) + w.xmit(c.tap.queued())
	extended := false
	var judge func()
	judge = func() {
		now := w.net.Now()
		if !c.tap.same(gen) {
			return // a new connection: its Welcome arms a catch-up check
		}
		if w.relayGen != relayGen || !w.relayUp || !c.up ||
			w.touch.touched([]string{c.name}, t0, now, 0, false) {
			c.tap.resyncArmed[i] = false
			return
		}
		// The sync restarts at the last overflow, or at the last Resync
		// the member received (it comes after, behind the queue).
		last := c.tap.overflowAt[i]
		if r := c.tap.resyncAt[i]; r.After(last) {
			last = r
		}
		if last.After(t0) && !c.tap.caught[i].After(last) {
			if rearms == maxRearms {
				w.overloaded++
				c.tap.resyncArmed[i] = false
				return
			}
			w.armResync(c, i, last, rearms+1)
			return
		}
		if !c.tap.caught[i].After(t0) && !extended {
			// Flooded: what tells it to resync, and the sync's replies,
			// queue behind everything the relay sent it meanwhile, so it
			// is judged again once that (twice over) has passed.
			extended = true
			bound = 2*bound + 2*w.xmit(c.tap.rx-rx0+c.tap.queued())
			w.net.At(t0.Add(bound), judge)
			return
		}
		c.tap.resyncArmed[i] = false
		if c.tap.caught[i].After(t0) {
			return
		}
		w.checked[invResync]++
		if c.tap.resyncAt[i].Before(t0) {
			w.violate("resync: %s lost pending entries of channel %d at the relay at t=%s and was not told to sync again within %v",
				c.name, ch, w.stampOf(t0), bound)
			return
		}
		// Told, and (the tap checks) it started a sync at once, but a
		// flooded member's sync can take longer than this bound (5000
		// seeds found 8, all small-caps, all finishing later); one that
		// never finishes is a bug (the relay's, seed 434): judged at the end.
		w.resyncLate++
		w.lateResyncs = append(w.lateResyncs, lateResync{c: c, i: i, t0: t0, gen: gen})
	}
	w.net.At(t0.Add(bound), judge)
}

// lateResync is a resync that had not finished within its bound.
type lateResync struct {
	c   *simClient
	i   int
	t0  time.Time
	gen int
}

// unfinished reports whether l's member, still on the same connection,
// has not finished a sync since it was told to.
func (l lateResync) unfinished() bool {
	return l.c.tap.same(l.gen) && !l.c.tap.caught[l.i].After(l.t0)
}

// judgeLateResyncs runs on, at most the heal bound, while a late resync
// is unfinished, and reports those that never finish.
func (w *world) judgeLateResyncs() {
	waiting := func() bool {
		for _, l := range w.lateResyncs {
			if l.unfinished() {
				return true
			}
		}
		return false
	}
	end := w.net.Now().Add(w.healBound)
	for waiting() && w.net.Now().Before(end) {
		w.net.RunUntil(w.net.Now().Add(checkEvery))
	}
	for _, l := range w.lateResyncs {
		if l.unfinished() {
			w.checked[invResync]++
			w.violate("resync: %s was told to sync channel %d again at t=%s and had not finished one when the run ended",
				l.c.name, l.c.chans[l.i], w.stampOf(l.t0))
		}
	}
}
