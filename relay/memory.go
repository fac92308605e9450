package relay

import (
	"fmt"
	"slices"
	"time"

	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/wire"
)

// Estimated costs, for the memory budget.
const (
	entryOverhead   = 128  // ID, slice header, cache index and order slots
	pendingOverhead = 64   // an Entry held for a slow member
	connOverhead    = 2048 // conn, member, limiters, driver buffers
	channelOverhead = 512  // channel, its map slot, cache and order headers
	// queueSample is how often send queues and read buffers, which drain
	// and fill outside the core's events, are summed into the estimate.
	queueSample = time.Second
)

// MemoryUsage is the relay's estimate of what it holds, by part, in
// bytes, as the memory budget counts it.
type MemoryUsage struct {
	Caches   int64 `json:"caches"`   // cached entries
	Pending  int64 `json:"pending"`  // entries held for slow members
	Queues   int64 `json:"queues"`   // bytes queued to send, as last sampled
	Buffers  int64 `json:"buffers"`  // partial frames being read, as last sampled
	Channels int64 `json:"channels"` // per-channel overhead
	Conns    int64 `json:"conns"`    // per-connection overhead, driver state included
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
		Pending:  r.pendingCount * pendingOverhead,
		Queues:   r.queuedBytes,
		Buffers:  r.bufferedBytes,
		Channels: int64(len(r.channels))*channelOverhead + r.forgotten.bytes(),
		Conns:    int64(len(r.conns)) * int64(connOverhead+r.cfg.ConnBytes),
		Backbone: r.cfg.BackboneBytes,
	}
}

func (r *Relay) memory() int64 { return r.usage().Total() }

// sampleQueues sums what connections hold outside the core's events.
func (r *Relay) sampleQueues() {
	r.sampledAt = r.now
	r.queuedBytes, r.bufferedBytes = 0, 0
	for _, c := range r.conns { // sorted: sums only
		r.queuedBytes += int64(c.tc.Queued())
		r.bufferedBytes += int64(c.rd.Buffered())
	}
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
	low := r.cfg.MemoryBudget - r.cfg.MemoryBudget/32
	r.forgetEmpty()
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
		r.cachedBytes -= int64(old.size + entryOverhead)
		ch.bytes -= int64(old.size + entryOverhead)
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

// connCost is what c makes the relay hold beyond its fixed overhead: its
// send queue, its partial frame and the entries held for its slow
// memberships.
func connCost(c *conn) int64 {
	cost := int64(c.tc.Queued() + c.rd.Buffered())
	for _, m := range c.members {
		cost += int64(len(m.pending)) * pendingOverhead
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

// closeCostliestConn closes the connection that holds the most, if that
// is worth several newcomers, and reports whether it closed one.
func (r *Relay) closeCostliestConn() bool {
	var worst *conn
	var most int64
	for _, c := range r.conns { // sorted: a maximum with ties broken by id
		if cost := connCost(c); cost > most || cost == most && worst != nil && c.id < worst.id {
			worst, most = c, cost
		}
	}
	if worst == nil || most < 4*int64(connOverhead+r.cfg.ConnBytes) {
		return false
	}
	r.stats.ShedConns++
	r.closeWithError(worst, wire.CodeRelayFull, 0, fmt.Sprintf("relay full: this connection holds the most (%d bytes queued or held)", most))
	r.sampleQueues()
	return true
}
