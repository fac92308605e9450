package sim

import (
	"time"

	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// The timing invariants, checked while they matter: each is armed by the
// event that starts its window (an announce, a connection's Welcome, a
// finished sync, a relay restart, a reset) and judged when the window's
// bound has passed, unless a fault touched the window (see touches) or the
// connections it concerns changed.

// entryInfo is what the simulator knows of an entry it announced.
type entryInfo struct {
	ch  int
	ref string
	by  *simClient
}

// relayHad records that the relay of this incarnation held entry id of
// channel ch (it acked it, delivered it or sent it in a Delta).
func (w *world) relayHad(ch int, id roster.ID) {
	if w.model[ch] == nil {
		w.model[ch] = map[roster.ID]bool{}
	}
	w.model[ch][id] = true
}

// cacheComplete reports whether the relay says its cache of ch is complete.
func (w *world) cacheComplete(ch int) bool {
	if !w.relayUp {
		return false
	}
	_, complete, ok := w.relay.Cached(w.keys[ch].ID())
	return ok && complete
}

// relayCache returns the relay's cache of ch, or nil.
func (w *world) relayCache(ch int) *roster.Set {
	if !w.relayUp {
		return nil
	}
	s, _, _ := w.relay.Cached(w.keys[ch].ID())
	return s
}

// checkAwareness arms invariant 1 for an announce by c in channel ch: every
// other member joined on its connection now holds the entry within
// awarenessBound, if no fault touches the announcer, the member or
// everybody meanwhile and both keep their connections.
func (w *world) checkAwareness(c *simClient, ch int, id roster.ID, ref string) {
	i := c.chanIndex(ch)
	if !c.tap.joinedIn(i) {
		return // not sent: the next catch-up carries it
	}
	c.tap.announced(id)
	w.awaitMembers(c, ch, []roster.ID{id}, ref, "announced")
}

// awaitMembers checks, after awarenessBound, that every member of ch other
// than from that is joined now holds ids.
func (w *world) awaitMembers(from *simClient, ch int, ids []roster.ID, what, how string) {
	type target struct {
		m   *simClient
		gen int
	}
	var ms []target
	q := from.tap.queued()
	for _, m := range w.clients {
		j := m.chanIndex(ch)
		if m == from || j < 0 || !m.up || !m.tap.joinedIn(j) {
			continue
		}
		ms = append(ms, target{m, m.tap.gen})
		q = max(q, from.tap.queued()+m.tap.queued())
	}
	if len(ms) == 0 {
		return
	}
	t0, gen, relayGen := w.net.Now(), from.tap.gen, w.relayGen
	bound := w.awarenessBound(q)
	w.net.At(t0.Add(bound), func() {
		now := w.net.Now()
		if w.relayGen != relayGen || !w.relayUp || !from.tap.same(gen) {
			return
		}
		for _, t := range ms {
			if !t.m.tap.same(t.gen) || w.touch.touched([]string{from.name, t.m.name}, t0, now, 0, false) {
				continue
			}
			if !t.m.tap.resync.Before(t0) {
				// Overloaded: a member told to resync again and again may
				// restart its sync before it ends; counted, not judged.
				w.overloaded++
				continue
			}
			w.checked[invAwareness]++
			r := t.m.rosterOf(ch)
			for _, id := range ids {
				if r.Has(id) {
					continue
				}
				if w.lostToEviction(ch, id) {
					w.evictionLosses++
					continue
				}
				w.violate("awareness: %s lacks %s %s by %s at t=%s, %v later (bound %v)",
					t.m.name, w.refOf(id, what), how, from.name, w.stampOf(t0), now.Sub(t0), bound)
				break
			}
		}
	})
}

// lostToEviction reports an entry the relay no longer holds in a cache
// that evicted: a member that was told to resync cannot get it back from
// the relay (it lists storage then), so awareness cannot be asked of it.
func (w *world) lostToEviction(ch int, id roster.ID) bool {
	s := w.relayCache(ch)
	return s != nil && !s.Has(id) && !w.cacheComplete(ch)
}

func (w *world) refOf(id roster.ID, fallback string) string {
	if fallback != "" {
		return fallback
	}
	if info, ok := w.entries[id]; ok {
		return info.ref
	}
	return "an entry"
}

// onCaughtUp arms invariant 1 for entries a finished sync gave the relay:
// every settled member must hold the client's roster within the awareness
// bound, unless the relay's cache evicted (then it may not hold it all).
func (w *world) onCaughtUp(c *simClient, ch int) {
	i := c.chanIndex(ch)
	if !c.tap.joinedIn(i) {
		return
	}
	c.tap.caught[i] = w.net.Now()
	w.checkReport(c, i)
	if !w.cacheComplete(ch) {
		return
	}
	mine := c.rosterOf(ch)
	fp := mine.Fingerprint(roster.Node{})
	now := w.net.Now()
	for _, m := range w.clients {
		j := m.chanIndex(ch)
		// A member holds what the relay held at its last catch-up and what
		// reached the relay since, if no fault touched it since.
		if m == c || j < 0 || !m.up || !m.tap.settledIn(j) ||
			w.touch.touched([]string{m.name}, m.tap.caught[j].Add(-settle), now, 0, false) {
			continue
		}
		theirs := m.rosterOf(ch)
		if theirs.Fingerprint(roster.Node{}) == fp {
			continue
		}
		var lack []roster.ID
		for _, e := range mine.Entries() {
			if !theirs.Has(e.ID) {
				lack = append(lack, e.ID)
			}
		}
		if len(lack) > 0 {
			w.awaitOne(c, m, ch, lack)
		}
	}
}

// checkReport judges a CaughtUp of channel index i (the report
// invariant): the client holds every entry the relay's cache held when
// the sync began (tap.syncBegins), unless the cache evicted since or the
// relay is another incarnation.
func (w *world) checkReport(c *simClient, i int) {
	from := c.tap.syncFrom[i]
	c.tap.syncFrom[i] = nil
	ch := c.chans[i]
	if from == nil || !c.tap.joinedIn(i) || c.tap.relay != w.relayGen || !w.cacheComplete(ch) {
		return
	}
	w.checked[invReport]++
	mine, cache := c.rosterOf(ch), w.relayCache(ch)
	for _, id := range from {
		if !mine.Has(id) && cache.Has(id) {
			w.violate("report: %s reported channel %d caught up lacking %s, which the relay held when the sync began at t=%s",
				c.name, ch, w.refOf(id, ""), w.stampOf(c.tap.syncAt[i]))
			return
		}
	}
}

// awaitOne is awaitMembers for one member.
func (w *world) awaitOne(from, m *simClient, ch int, ids []roster.ID) {
	t0, gen, mgen, relayGen := w.net.Now(), from.tap.gen, m.tap.gen, w.relayGen
	bound := w.awarenessBound(from.tap.queued() + m.tap.queued())
	w.net.At(t0.Add(bound), func() {
		now := w.net.Now()
		if w.relayGen != relayGen || !w.relayUp || !from.tap.same(gen) || !m.tap.same(mgen) ||
			w.touch.touched([]string{from.name, m.name}, t0, now, 0, false) || !w.cacheComplete(ch) {
			return
		}
		w.checked[invAwareness]++
		r := m.rosterOf(ch)
		for _, id := range ids {
			if !r.Has(id) {
				w.violate("awareness: %s lacks %s, which %s's sync gave the relay at t=%s, %v later (bound %v)",
					m.name, w.refOf(id, ""), from.name, w.stampOf(t0), now.Sub(t0), bound)
				return
			}
		}
	})
}

// onWelcome arms invariant 2 for a new connection: within the catch-up
// bound the client has rejoined every channel, finished a sync in each
// and holds every entry the relay's cache held when the Welcome arrived.
func (w *world) onWelcome(c *simClient, f *wire.Welcome) {
	t0, gen, relayGen := w.net.Now(), c.tap.gen, w.relayGen
	need := make([][]roster.ID, len(c.chans))
	n := 0
	for i, ch := range c.chans {
		mine := c.rosterOf(ch)
		n = max(n, mine.Len())
		cache := w.relayCache(ch)
		if cache == nil {
			continue
		}
		n = max(n, cache.Len())
		if cache.Len() == 0 {
			continue
		}
		for _, e := range cache.Entries() {
			// Entries nobody honest announced (a forger's) are refused.
			if _, known := w.entries[e.ID]; known && !mine.Has(e.ID) {
				need[i] = append(need[i], e.ID)
			}
		}
	}
	bound := w.catchUpBound(n) + w.xmit(c.tap.queued())
	var judge func(from time.Time, rearms int)
	judge = func(from time.Time, rearms int) {
		now := w.net.Now()
		if w.relayGen != relayGen || !w.relayUp || !c.up || !c.tap.same(gen) ||
			w.touch.touched([]string{c.name}, t0, now, 0, false) {
			return
		}
		if r := c.tap.resync; r.After(from) && w.catchUpLate(c, need) {
			// Told to resync during the catch-up (its queue overflowed
			// while it caught up): the sync starts over, so the bound
			// does too (sim seed 1114). Past a few rounds it is counted
			// as overloaded, as awareness does.
			if rearms == maxRearms {
				w.overloaded++
				return
			}
			w.net.At(r.Add(bound), func() { judge(r, rearms+1) })
			return
		}
		w.checked[invCatchUp]++
		for i, ch := range c.chans {
			switch {
			case !c.tap.joined[i]:
				w.violate("catch-up: %s did not rejoin channel %d within %v of its Welcome at t=%s", c.name, ch, bound, w.stampOf(t0))
				return
			case c.tap.caught[i].IsZero():
				w.violate("catch-up: %s did not finish a sync of channel %d within %v of its Welcome at t=%s", c.name, ch, bound, w.stampOf(t0))
				return
			}
			if id, ok := w.lacksHeld(c, ch, need[i]); ok {
				if r := c.rescanAt[ch]; !r.Before(t0) {
					// The cache evicted during the sync (it may hold the
					// entry again, pushed back by another member) and said
					// so: the client lists storage, at the latest in its
					// next listing round (sim seeds 1114, 1290).
					w.judgeListed(c, ch, need[i], t0, r, gen, relayGen)
					continue
				}
				w.violate("catch-up: %s lacks %s, which the relay held at its Welcome at t=%s, %v later (bound %v)",
					c.name, w.refOf(id, ""), w.stampOf(t0), now.Sub(t0), bound)
				return
			}
		}
	}
	w.net.At(t0.Add(bound), func() { judge(t0.Add(-1), 0) })
}

// maxRearms is how many resyncs in a row a catch-up check waits out.
const maxRearms = 3

// catchUpLate reports whether c has not yet rejoined, synced or received
// need in every channel.
func (w *world) catchUpLate(c *simClient, need [][]roster.ID) bool {
	for i, ch := range c.chans {
		if !c.tap.joined[i] || c.tap.caught[i].IsZero() {
			return true
		}
		if _, ok := w.lacksHeld(c, ch, need[i]); ok {
			return true
		}
	}
	return false
}

// lacksHeld returns an entry of ids that c lacks in ch while the relay's
// cache holds it.
func (w *world) lacksHeld(c *simClient, ch int, ids []roster.ID) (roster.ID, bool) {
	mine, cache := c.rosterOf(ch), w.relayCache(ch)
	for _, id := range ids {
		if !mine.Has(id) && cache != nil && cache.Has(id) {
			return id, true
		}
	}
	return roster.ID{}, false
}

// judgeListed checks that a client told to rescan at r holds ids once
// its first listing of ch begun since is done, and that the listing is
// done within urgentListBound of r (the listing policy's own limit).
func (w *world) judgeListed(c *simClient, ch int, ids []roster.ID, t0, r time.Time, gen, relayGen int) {
	judged := false
	valid := func() bool {
		return w.relayGen == relayGen && w.relayUp && c.up && c.tap.same(gen) &&
			!w.touch.touched([]string{c.name}, t0, w.net.Now(), 0, false)
	}
	c.listWaits = append(c.listWaits, listWait{ch: ch, after: r, judge: func() {
		judged = true
		if !valid() {
			return
		}
		if id, ok := w.lacksHeld(c, ch, ids); ok {
			w.violate("catch-up: %s lacks %s, which the relay held at its Welcome at t=%s, after the listing the relay's rescan at t=%s asked for",
				c.name, w.refOf(id, ""), w.stampOf(t0), w.stampOf(r))
		}
	}})
	bound := urgentListBound(listConfig)
	c.node.At(r.Add(bound), func() { // r is on the client's clock
		if !judged && valid() {
			w.violate("catch-up: %s did not list channel %d within %v of the relay's rescan at t=%s",
				c.name, ch, bound, w.stampOf(r))
		}
	})
}

// onJoined checks the Joined flag: a relay that says its cache is complete
// must hold every entry it acked, delivered or sent in this incarnation.
func (w *world) onJoined(c *simClient, i int, f *wire.Joined) {
	ch := c.chans[i]
	w.judgeNewChannel(c, ch, f)
	if f.Flags&wire.JoinedComplete == 0 || !w.cacheComplete(ch) || w.touch.touched(nil, w.relayStart, w.net.Now(), 0, false) {
		return
	}
	w.checked[invCatchUp]++
	cache := w.relayCache(ch)
	missing := 0
	var first roster.ID
	for id := range w.model[ch] { // sorted: a count and the least ID
		if !cache.Has(id) {
			if missing == 0 || bytesCompare(id[:], first[:]) < 0 {
				first = id
			}
			missing++
		}
	}
	if missing > 0 {
		w.violate("catch-up: the relay told %s its cache of channel %d is complete, but it lacks %d entries it held in this incarnation, such as %s",
			c.name, ch, missing, w.refOf(first, ""))
	}
}

// armEpochCheck records, as the relay goes down, who must see its next
// epoch (invariant 3).
func (w *world) armEpochCheck(spanID int) {
	w.epochWatch = w.epochWatch[:0]
	for _, c := range w.clients {
		if c.up && c.tap.connected() {
			w.epochWatch = append(w.epochWatch, c)
		}
	}
	w.epochSince, w.epochSpan = w.net.Now(), spanID
}

// checkEpoch runs as the relay comes back: every client connected when it
// went down observes the new epoch and finishes a sync of every channel
// within the reconnect bound, unless a fault other than the restart
// touched it.
func (w *world) checkEpoch() {
	watch := append([]*simClient(nil), w.epochWatch...)
	w.epochWatch = w.epochWatch[:0]
	since, span, up, relayGen, epoch := w.epochSince, w.epochSpan, w.net.Now(), w.relayGen, w.relay.Epoch()
	n := 0
	for _, c := range watch {
		for _, ch := range c.chans {
			n = max(n, c.rosterOf(ch).Len())
		}
	}
	bound := w.reconnectBound(w.sc.Timing.BackoffMax, n)
	w.net.At(up.Add(bound), func() {
		now := w.net.Now()
		if w.relayGen != relayGen || !w.relayUp {
			return
		}
		for _, c := range watch {
			if !c.up || w.touch.touched([]string{c.name}, since, now, span, true) {
				continue
			}
			w.checked[invEpoch]++
			e, _ := c.core.Epoch()
			if e != epoch || c.epochAt.Before(up) {
				w.violate("epoch: %s did not observe the relay's new epoch within %v of its restart at t=%s", c.name, bound, w.stampOf(up))
				continue
			}
			w.judgeEpochCatchUp(c, up, since, span, relayGen, bound, n, 0)
		}
	})
}

// judgeEpochCatchUp checks that c finished a sync of every channel since
// the relay came back at up. A client told to resync meanwhile starts its
// sync over, so the judgement waits a resync bound past the last Resync,
// up to maxRearms times (sim seed 2338).
func (w *world) judgeEpochCatchUp(c *simClient, up, since time.Time, span, relayGen int, bound time.Duration, n, rearms int) {
	for i, ch := range c.chans {
		if c.tap.connected() && !c.tap.caught[i].Before(up) {
			continue
		}
		if r := c.tap.resync; c.tap.connected() && r.After(up) && r.After(c.tap.caught[i]) {
			if rearms == maxRearms {
				w.overloaded++
				return
			}
			gen := c.tap.gen
			wait := w.resyncBound(n) + w.xmit(c.tap.queued())
			w.net.At(r.Add(wait), func() {
				now := w.net.Now()
				if w.relayGen != relayGen || !w.relayUp || !c.up || !c.tap.same(gen) ||
					w.touch.touched([]string{c.name}, since, now, span, true) {
					return
				}
				w.judgeEpochCatchUp(c, up, since, span, relayGen, bound+now.Sub(up.Add(bound)), n, rearms+1)
			})
			return
		}
		w.violate("epoch: %s did not finish a full catch-up of channel %d within %v of the relay's restart at t=%s", c.name, ch, bound, w.stampOf(up))
		return
	}
}

// checkReconnect arms the rejoin part of invariant 2 for a reset: a client
// whose healthy connection was reset is back and caught up within one
// minimal backoff and a catch-up.
func (w *world) checkReconnect(c *simClient, spanID int) {
	if !c.up || !c.tap.connected() {
		return
	}
	t0, gen := w.net.Now(), c.tap.gen
	n := 0
	for _, ch := range c.chans {
		n = max(n, c.rosterOf(ch).Len())
	}
	bound := w.reconnectBound(w.sc.Timing.BackoffMin, n)
	w.net.At(t0.Add(bound), func() {
		now := w.net.Now()
		if !w.relayUp || !c.up || w.touch.touched([]string{c.name}, t0, now, spanID, true) {
			return
		}
		w.checked[invCatchUp]++
		if c.tap.gen == gen || !c.tap.connected() {
			w.violate("catch-up: %s was not reconnected %v after a reset at t=%s", c.name, bound, w.stampOf(t0))
		}
	})
}

// onLost counts a lost connection and checks invariant 7: no fault touched
// the client lately, so it had no reason to lose it.
func (w *world) onLost(c *simClient) {
	if !c.tap.connected() {
		c.tap.lost()
		return
	}
	c.tap.lost()
	c.reconnects++
	now := w.net.Now()
	look := now.Add(-w.sc.Timing.Idle - w.sc.Timing.Heartbeat)
	if w.touch.touched([]string{c.name}, look, now, 0, false) {
		return
	}
	w.needless++
	w.violate("churn: %s lost its relay connection with no fault touching it", c.name)
}

// relayTap checks the relay after every event that can grow what it
// holds (invariant 6); core is the relay's current incarnation.
type relayTap struct {
	core  func() *relay.Relay
	check func()
}

var _ transport.Handler = relayTap{}

func (t relayTap) Open(c transport.Conn, now time.Time) { t.core().Open(c, now); t.check() }
func (t relayTap) Data(c transport.Conn, b []byte, now time.Time) {
	t.core().Data(c, b, now)
	t.check()
}
func (t relayTap) Writable(c transport.Conn, now time.Time) { t.core().Writable(c, now) }
func (t relayTap) Closed(c transport.Conn, err error, now time.Time) {
	t.core().Closed(c, err, now)
}
func (t relayTap) Tick(now time.Time)          { t.core().Tick(now); t.check() }
func (t relayTap) Deadline() (time.Time, bool) { return t.core().Deadline() }

// oneRelayTap is the one-relay world's relayTap.
func (w *world) oneRelayTap() relayTap {
	return relayTap{core: func() *relay.Relay { return w.relay }, check: w.checkRelay}
}

func (w *world) checkRelay() {
	w.noteOverflows()
	if m := w.relay.Memory(); m > w.memoryBudget && !w.memoryOver {
		w.memoryOver = true
		w.violate("boundedness: relay accounts %d bytes, over its budget of %d", m, w.memoryBudget)
	}
}
