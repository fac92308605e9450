package relay

import (
	"bytes"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// What the memory budget charges for each structure the core holds, in
// bytes of Go heap: measured, not guessed (TestChargesMatchHeap holds each
// within its tolerance of the heap it takes). Drivers add their own share
// per connection (Config.ConnBytes), and their send queues count at the
// memory they hold (transport.Holder).
const (
	channelCost = 576 // a channel with its empty cache and backbone state, and its map slot
	cacheBase   = 160 // what a cache's first entry allocates: its bucket, sums and slab headers
	entryCost   = 136 // a cached entry beyond its sealed bytes: slab Entry, bucket ref, eviction slot, their slack
	memberCost  = 96  // a membership and its slots in both member lists
	connCost    = 704 // a connection: limiters, frame reader, timer slot
	pendingCost = 64  // an Entry held for a slow member, beyond its sealed bytes (pendCost)
	// queueSample is how often send queues and read buffers, which drain
	// and fill outside the core's events, are summed into the estimate;
	// between samples what the core sends is added as it goes.
	queueSample = time.Second
)

// heapSize is what the Go allocator takes for n bytes: n rounded up to a
// size class, or a little past it (classes above 256 bytes are up to an
// eighth apart).
func heapSize(n int) int64 {
	switch {
	case n <= 0:
		return 0
	case n <= 8:
		return 8
	case n <= 256:
		return int64(n+15) &^ 15
	}
	shift := bits.Len(uint(n-1)) - 4
	if n > 512 {
		shift++
	}
	step := 1 << shift
	return int64((n + step - 1) &^ (step - 1))
}

// sealedCost is what the budget charges for one cached entry of n sealed
// bytes.
func sealedCost(n int) int64 { return heapSize(n) + entryCost }

// MemoryUsage is the relay's estimate of what it holds, by part, in
// bytes, as the memory budget counts it.
type MemoryUsage struct {
	Caches   int64 `json:"caches"`   // cached entries
	Pending  int64 `json:"pending"`  // entries held for slow members
	Queues   int64 `json:"queues"`   // bytes queued to send, as last sampled
	Buffers  int64 `json:"buffers"`  // partial frames being read, as last sampled
	Channels int64 `json:"channels"` // per-channel overhead
	Conns    int64 `json:"conns"`    // per-connection overhead, memberships and driver state included
	Backbone int64 `json:"backbone"` // what the backbone driver may hold (Config.BackboneBytes)
}

// Total is the sum of the parts.
func (u MemoryUsage) Total() int64 {
	return u.Caches + u.Pending + u.Queues + u.Buffers + u.Channels + u.Conns + u.Backbone
}

// Fixed is what eviction cannot free: everything but cached entries.
func (u MemoryUsage) Fixed() int64 { return u.Total() - u.Caches }

// usage is the current estimate, resampling queues at most once per
// queueSample of event time.
func (r *Relay) usage() MemoryUsage {
	if r.now.Sub(r.sampledAt) >= queueSample || r.sampledAt.IsZero() {
		r.sampleQueues()
	}
	return MemoryUsage{
		Caches:   r.cachedBytes,
		Pending:  r.pendingBytes,
		Queues:   r.queuedBytes,
		Buffers:  r.bufferedBytes,
		Channels: int64(len(r.channels))*channelCost + r.forgotten.bytes(),
		Conns:    int64(len(r.conns))*r.perConn() + r.memberCount*memberCost,
		Backbone: r.cfg.BackboneBytes,
	}
}

// perConn is what one connection costs beyond its memberships and queues.
func (r *Relay) perConn() int64 { return int64(connCost + r.cfg.ConnBytes) }

func (r *Relay) memory() int64 { return r.usage().Total() }

// sampleQueues sums what connections hold outside the core's events.
func (r *Relay) sampleQueues() {
	r.sampledAt = r.now
	r.queuedBytes, r.bufferedBytes, r.unsampled = 0, 0, 0
	for _, c := range r.conns { // sorted: sums only
		r.queuedBytes += int64(held(c.tc))
		r.bufferedBytes += c.buffered()
	}
}

// resample samples again if anything was sent since the last sample: the
// estimate adds what was sent but not what drained, so it is brought up
// to date before it costs anyone anything.
func (r *Relay) resample() {
	if r.unsampled > 0 {
		r.sampleQueues()
	}
}

// held is the memory c's send queue holds: the driver's figure when it
// has one (its buffers' capacity), else the bytes queued.
func held(c transport.Conn) int {
	if h, ok := c.(transport.Holder); ok {
		return h.Held()
	}
	return c.Queued()
}

// buffered is what c's partial frame and its deferred sync messages hold.
func (c *conn) buffered() int64 {
	const sliceHeader = 24
	return int64(c.rd.Buffered() + c.deferredBytes + len(c.deferred)*sliceHeader)
}

// overBudget reports whether the estimate passes the budget.
func (r *Relay) overBudget() bool { return r.memory() > r.cfg.MemoryBudget }

// shed brings the estimate back under the budget, to a low-water mark so
// that one pass serves many stores. It forgets channels nobody has joined
// first, then evicts the oldest entries of the channel holding the most
// cached bytes per member: a swarm of self-made channels, one member
// each, pays before a busy channel shared by many.
//
// What no eviction can free (send queues, read buffers, held entries) is
// held by connections: while it alone passes the mark, the costliest
// connection is closed first, and caches are evicted only for what they
// add, so a client that stops reading cannot make the relay drop honest
// entries. If that is not enough, shed does nothing more until
// shedRetry has passed, so that stores do not scan every channel each.
func (r *Relay) shed() {
	if r.now.Before(r.shedQuietUntil) {
		return
	}
	low := r.lowWater()
	r.resample()
	r.forgetEmpty()
	r.forgetIdle(func() bool { return r.memory() <= low })
	for r.usage().Fixed() > low {
		if !r.closeCostliestConn() {
			r.shedQuietUntil = r.now.Add(shedRetry)
			return // admission stops growth meanwhile
		}
	}
	for r.memory() > low {
		victim := r.costliest()
		if victim == nil {
			return // nothing left to evict: admission stops growth
		}
		for victim.cache.Len() > 0 && r.memory() > low {
			r.evictOldest(victim)
		}
	}
}

// highWater is the queue past which a member counts as slow: HighWater,
// and a quarter of it once the estimate passes half the budget, so that
// under memory pressure slow members hold merged entries (or are told to
// resync) rather than a queue of frames each.
func (r *Relay) highWater() int {
	if r.memory() > r.cfg.MemoryBudget/2 {
		return max(1, r.cfg.HighWater/4)
	}
	return r.cfg.HighWater
}

// lowWater is what shedding brings the estimate down to, so that one pass
// serves many stores.
func (r *Relay) lowWater() int64 { return r.cfg.MemoryBudget - r.cfg.MemoryBudget/32 }

// roomFor reports whether need more bytes of what eviction cannot free
// fit in the budget, first forgetting channels nobody is joined to if
// they do not (down to the low-water mark, for the next newcomers too).
func (r *Relay) roomFor(need int64) bool {
	fits := func() bool { return r.usage().Fixed()+need <= r.cfg.MemoryBudget }
	if fits() {
		return true
	}
	r.resample()
	if fits() {
		return true
	}
	r.forgetEmpty()
	low := r.lowWater()
	r.forgetIdle(func() bool { return r.usage().Fixed()+need <= low })
	return fits()
}

// forgetIdle forgets channels without members, those empty longest
// first, until enough reports true: under memory pressure a channel
// nobody is joined to goes before anything members hold, where without
// pressure it stays ChannelIdleTimeout for members coming back.
func (r *Relay) forgetIdle(enough func() bool) {
	if enough() {
		return
	}
	var idle []*channel
	for _, ch := range r.channels { // sorted: below
		if len(ch.members) == 0 {
			idle = append(idle, ch)
		}
	}
	slices.SortFunc(idle, func(a, b *channel) int {
		if c := a.emptySince.Compare(b.emptySince); c != 0 {
			return c
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	for _, ch := range idle {
		if enough() {
			return
		}
		delete(r.channels, ch.id)
		r.bbForget(ch)
		r.forgetChannel(ch) // as sweep: its entries are gone with it
		r.cachedBytes -= ch.bytes
		r.stats.ChannelsForgotten++
		r.stats.ChannelsForgottenEarly++
	}
}

// shedRetry is how long shed rests after it could not bring what
// connections hold under the budget.
const shedRetry = 100 * time.Millisecond

// costliest is the channel with the most cached bytes per member (ties:
// more bytes, then lower ID), or nil if no cache holds anything.
func (r *Relay) costliest() *channel {
	var best *channel
	var bestCost int64
	for _, ch := range r.channels { // sorted: a maximum with a total order
		if ch.cache.Len() == 0 {
			continue
		}
		cost := ch.bytes / int64(max(1, len(ch.members)))
		if best == nil || cost > bestCost || cost == bestCost && (ch.bytes > best.bytes ||
			ch.bytes == best.bytes && string(ch.id[:]) < string(best.id[:])) {
			best, bestCost = ch, cost
		}
	}
	return best
}

// forgetEmpty drops channels without members or entries: they cost their
// overhead and hold nothing a returning member needs.
func (r *Relay) forgetEmpty() {
	for id, ch := range r.channels { // sorted: deletions only
		if len(ch.members) == 0 && ch.cache.Len() == 0 {
			delete(r.channels, id)
			r.bbForget(ch)
			r.stats.ChannelsForgotten++
			// One that had entries comes back unable to say it holds
			// them all.
			if ch.evictedAny || !ch.complete {
				r.forgetChannel(ch)
			}
		}
	}
}

// evictOldest drops one of ch's cached entries, the oldest of those the
// bus brought (evictChoice), else the oldest; ch is no longer complete.
func (r *Relay) evictOldest(ch *channel) {
	if o := r.evictChoice(ch); o != nil {
		r.evictFrom(ch, &o.order, &o.evicted)
		return
	}
	r.evictFrom(ch, &ch.order, &ch.evicted)
}

// evictFrom drops the oldest entry of one eviction order of ch.
func (r *Relay) evictFrom(ch *channel, order *[]cached, evicted *int) {
	old := (*order)[*evicted]
	*evicted++
	if ch.cache.Remove(old.id) {
		cost := sealedCost(old.size)
		if ch.cache.Len() == 0 {
			cost += cacheBase // an empty set lets its buckets go
		}
		r.cachedBytes -= cost
		ch.bytes -= cost
	}
	if _, ok := fault.Hit(r.cfg.Faults, FailKeepComplete); !ok {
		ch.complete = false
	}
	if !ch.evictedAny {
		// Members joined a complete cache; from now on entries can be
		// missing from it, and sync pushes are not fanned out.
		ch.evictedAny = true
		for _, m := range ch.members {
			if slices.Contains(ch.bb.heldJoins, m) {
				continue // its Joined, still held, will not say complete
			}
			r.sendError(m.c, wire.CodeRescan, m.handle, false, "relay cache evicted entries: list storage")
		}
	}
	r.stats.Evicted++
	if *evicted > 0 && *evicted*2 >= len(*order) {
		live := (*order)[*evicted:]
		if len(live)*4 < cap(*order) {
			// Shed most of the cache: let the large array go.
			*order = append([]cached(nil), live...)
		} else {
			// At the cap: slide the live half down, no new array to
			// allocate and grow again.
			n := copy(*order, live)
			clear((*order)[n:])
			*order = (*order)[:n]
		}
		*evicted = 0
	}
}

// Memory reports the relay's estimate of what it holds, in bytes, as the
// memory budget counts it.
func (r *Relay) Memory() int64 { return r.memory() }

// MemoryUsage reports the estimate by part.
func (r *Relay) MemoryUsage() MemoryUsage { return r.usage() }

// heldBy is what c makes the relay hold beyond its fixed overhead: its
// send queue, its partial frame and the entries held for its slow
// memberships.
func heldBy(c *conn) int64 {
	cost := int64(held(c.tc)) + c.buffered()
	for _, m := range c.members {
		cost += m.pendingBytes
	}
	return cost
}

// shedCostliestConn closes the connection that holds the most, when what
// it holds would make room for several newcomers, so that under pressure
// the costliest connection goes rather than everyone new being refused.
// It reports whether the estimate is back under the budget.
func (r *Relay) shedCostliestConn() bool {
	return r.closeCostliestConn() && r.usage().Fixed() <= r.cfg.MemoryBudget
}

// closeCostliestConn relieves the connection that holds the most, if that
// is worth several newcomers, and reports whether it did: when entries
// held for its slow memberships are most of it, they are dropped and the
// members told to sync again; else it is closed.
func (r *Relay) closeCostliestConn() bool {
	var worst *conn
	var most int64
	for _, c := range r.conns { // sorted: a maximum with ties broken by id
		if cost := heldBy(c); cost > most || cost == most && worst != nil && c.id < worst.id {
			worst, most = c, cost
		}
	}
	if worst == nil || most < 4*r.perConn() {
		return false
	}
	var pending int64
	for _, m := range worst.members {
		pending += m.pendingBytes
	}
	if 2*pending >= most {
		r.stats.ShedResyncs++
		for _, m := range worst.members {
			if len(m.pending) > 0 {
				r.overflow(m, 0, "relay memory budget reached: dropped the entries held for this slow reader: sync again")
			}
		}
		return true
	}
	r.stats.ShedConns++
	r.abortWithError(worst, wire.CodeRelayFull, fmt.Sprintf("relay full: this connection holds the most (%d bytes queued or held)", most))
	r.sampleQueues()
	return true
}
