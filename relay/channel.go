package relay

import (
	"slices"
	"time"

	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// Failpoints of the fan-out path.
const (
	// FailSkipFanout stores new entries but crashes, in effect, before
	// fanning them out.
	FailSkipFanout = "relay/skip-fanout"
	// FailSlowWriter treats every member as slow, so entries take the
	// merge-and-flush path.
	FailSlowWriter = "relay/slow-writer"
	// FailEchoAnnouncer fans entries out to their announcer too.
	FailEchoAnnouncer = "relay/echo-announcer"
	// FailWrongHandle labels fanned-out frames with the connection's
	// first handle instead of the member's.
	FailWrongHandle = "relay/wrong-handle"
	// FailNoResync drops a slow member's overflowing pending entries
	// without telling it to sync again.
	FailNoResync = "relay/no-resync"
	// FailKeepComplete leaves a channel flagged complete after an eviction.
	FailKeepComplete = "relay/keep-complete"
	// FailNoEvict lets a cache grow past its cap.
	FailNoEvict = "relay/no-evict"
	// FailCorruptDeliver flips a byte of every fanned-out entry.
	FailCorruptDeliver = "relay/corrupt-deliver"
	// FailNoFanoutBatch fans out each Announce on its own, as before
	// fan-outs were batched per read.
	FailNoFanoutBatch = "relay/no-fanout-batch"
)

// channel is the relay's memory of one channel: its members and a bounded
// cache of recent entries that lets a (re)joining client catch up with one
// sync instead of listing storage.
type channel struct {
	id      roster.ChannelID
	cache   roster.Set
	order   []cached // insertion order, oldest first, for eviction
	evicted int      // entries of order already evicted
	// complete is false once the cache evicted something: the relay no
	// longer holds everything announced since its epoch began.
	complete bool
	// evictedAny is set by the first eviction (complete may be false for a
	// channel forgotten and recreated, which evicted nothing).
	evictedAny bool
	members    []*member // in join order
	bytes      int64     // cache size, as the memory budget counts it
	stored     uint64    // entries ever stored, for the backbone's judgement of replies
	// emptySince is when the last member left; zero while it has members.
	emptySince time.Time
	bb         bbChannel // backbone state (backbone.go)
	// origins hold the eviction order of entries learnt from the bus, per
	// origin the bus message named (bbtrust.go); order holds the rest.
	origins []*busOrigin
}

// accept stores the new entries among sealed (which alias a read buffer)
// from member m and, if fan is set, fans them out to the other members of
// its channel. New entries are published on the backbone.
func (r *Relay) accept(m *member, sealed [][]byte, fan bool) {
	r.store(m.ch, m, sealed, fan, r.cfg.Backbone != nil, nil)
}

// store adds the new entries among sealed to ch's cache, fans them out to
// its members but from (nil for entries from the backbone) if fan is set,
// and queues them for the backbone if publish is set. origin is the bus
// origin they came from, nil for entries of local members.
func (r *Relay) store(ch *channel, from *member, sealed [][]byte, fan, publish bool, origin *busOrigin) {
	fresh := r.freshScratch[:0]
	for _, s := range sealed {
		e := roster.NewEntry(s)
		// Add searches once; a duplicate's copy is garbage, a rare case.
		e.Sealed = append([]byte(nil), s...)
		if !ch.cache.Add(e) {
			r.stats.Duplicates++
			continue
		}
		r.stored(ch, e, origin)
		fresh = append(fresh, e)
	}
	r.freshScratch = fresh[:0]
	r.stats.EntriesIn += uint64(len(fresh))
	if len(fresh) > 0 && publish {
		r.queuePublish(ch, fresh)
	}
	if len(fresh) == 0 || !fan {
		return
	}
	if _, ok := fault.Hit(r.cfg.Faults, FailSkipFanout); ok {
		return
	}
	r.queueFanout(ch, from, fresh)
}

// fanBatch is a fan-out held back while one read's frames are handled,
// so that consecutive Announces from one member reach each other member
// as one Deliver (a frame's fixed costs, on both sides, paid once) in the
// same event, hence with no added latency.
type fanBatch struct {
	on      bool // inside Data
	ch      *channel
	from    *member
	entries []roster.Entry
}

// queueFanout fans fresh out now, or adds it to the batch inside Data.
// A batch never spans two members or another kind of frame (handleFrame
// flushes first), so every member sees entries in the order it would
// have without it.
func (r *Relay) queueFanout(ch *channel, from *member, fresh []roster.Entry) {
	if _, ok := fault.Hit(r.cfg.Faults, FailNoFanoutBatch); ok || !r.batch.on {
		r.fanout(ch, from, fresh)
		return
	}
	b := &r.batch
	if b.ch != ch || b.from != from {
		r.flushFanout()
		b.ch, b.from = ch, from
	}
	b.entries = append(b.entries, fresh...)
}

// flushFanout sends the batch.
func (r *Relay) flushFanout() {
	b := &r.batch
	if len(b.entries) == 0 {
		return
	}
	ch, from, entries := b.ch, b.from, b.entries
	b.ch, b.from = nil, nil
	r.fanout(ch, from, entries)
	clear(entries) // let the cache alone hold the sealed bytes
	b.entries = entries[:0]
}

// cached is an entry's place in the eviction order; its size spares
// eviction a lookup.
type cached struct {
	id   roster.ID
	size int
}

// stored accounts for e, just added to the cache from origin (nil: a
// local member), and evicts past the cap and past origin's quota.
func (r *Relay) stored(ch *channel, e roster.Entry, origin *busOrigin) {
	c := cached{e.ID, len(e.Sealed)}
	if origin != nil {
		origin.order = append(origin.order, c)
	} else {
		ch.order = append(ch.order, c)
	}
	cost := sealedCost(len(e.Sealed))
	if ch.cache.Len() == 1 {
		cost += cacheBase
	}
	r.cachedBytes += cost
	ch.bytes += cost
	ch.stored++
	if _, ok := fault.Hit(r.cfg.Faults, FailNoEvict); ok {
		return
	}
	for origin != nil && origin.live() > r.originQuota() && !r.busEvictsLocal() {
		r.stats.BackboneQuotaEvicted++
		r.evictFrom(ch, &origin.order, &origin.evicted)
	}
	for ch.cache.Len() > r.cfg.CacheEntries {
		r.evictOldest(ch)
	}
	if r.overBudget() {
		r.shed()
	}
}

// fanout sends fresh entries to every member of ch but the sender from
// (nil for none). Members that are slow get them merged into their
// pending set instead.
func (r *Relay) fanout(ch *channel, from *member, fresh []roster.Entry) {
	_, forceSlow := fault.Hit(r.cfg.Faults, FailSlowWriter)
	_, echo := fault.Hit(r.cfg.Faults, FailEchoAnnouncer)
	_, wrongHandle := fault.Hit(r.cfg.Faults, FailWrongHandle)
	if _, ok := fault.Hit(r.cfg.Faults, FailCorruptDeliver); ok {
		for i := range fresh {
			fresh[i].Sealed = slices.Clone(fresh[i].Sealed)
			fresh[i].Sealed[len(fresh[i].Sealed)-1] ^= 1
		}
	}
	var frames [][]byte // encoded once, handle patched per member
	for _, m := range ch.members {
		if (m == from && !echo) || m.c.closed {
			continue
		}
		slow := forceSlow || m.c.tc.Queued() > r.highWater()
		if !slow && len(m.pending) > 0 {
			// Writable may never come if the queue never reached the
			// driver's own high-water mark: flush here too.
			r.flushPending(m)
			// flushPending encodes into the same scratch as frames.
			frames = nil
		}
		if slow || len(m.pending) > 0 {
			r.hold(m, fresh)
			continue
		}
		if frames == nil {
			frames = r.encodeEntries(wire.TypeDeliver, 0, 0, fresh)
		}
		handle := m.handle
		if wrongHandle {
			handle = m.c.members[0].handle
		}
		for _, f := range frames {
			wire.SetHandle(f, handle)
			r.sendRaw(m.c, f, wire.TypeDeliver)
		}
		r.stats.Delivered += uint64(len(fresh))
		r.fannedOut += uint64(len(fresh))
	}
}

// hold merges entries into a slow member's pending set. Past the cap the
// member loses them and is told to sync again.
func (r *Relay) hold(m *member, entries []roster.Entry) {
	if len(m.pending)+len(entries) > r.cfg.PendingEntries {
		r.overflow(m, len(entries), "too many entries pending for a slow reader: sync again")
		return
	}
	if !m.held {
		r.holdRetry(m)
	}
	m.pending = append(m.pending, entries...)
	r.pendingCount += int64(len(entries))
	cost := pendCost(entries)
	m.pendingBytes += cost
	r.pendingBytes += cost
	r.stats.PendingMerged += uint64(len(entries))
	r.fannedOut += uint64(len(entries))
}

// overflow drops what m holds, and lost entries more, and tells it to
// sync again, saying why.
func (r *Relay) overflow(m *member, lost int, why string) {
	r.stats.Resyncs++
	m.overflows++
	r.stats.PendingDropped += uint64(len(m.pending) + lost)
	r.dropPending(m)
	if _, ok := fault.Hit(r.cfg.Faults, FailNoResync); !ok {
		if !m.ch.complete {
			// A resync cannot bring back what the cache evicted.
			r.sendError(m.c, wire.CodeRescan, m.handle, false, "dropped entries the cache no longer holds: list storage")
		}
		r.sendError(m.c, wire.CodeResync, m.handle, false, why)
	}
}

// pendCost is what the budget charges for entries held for a slow member:
// their sealed bytes too, which an eviction may leave them alone holding.
func pendCost(entries []roster.Entry) int64 {
	var n int64
	for i := range entries {
		n += pendingCost + heapSize(len(entries[i].Sealed))
	}
	return n
}

// dropPending forgets what m holds.
func (r *Relay) dropPending(m *member) {
	r.pendingCount -= int64(len(m.pending))
	r.pendingBytes -= m.pendingBytes
	m.pending, m.pendingBytes = nil, 0
}

// flushPending sends what a member has pending while its queue has room.
func (r *Relay) flushPending(m *member) {
	if _, ok := fault.Hit(r.cfg.Faults, FailSlowWriter); ok {
		return
	}
	for len(m.pending) > 0 && !m.c.closed && m.c.tc.Queued() <= r.highWater() {
		n := r.entriesPerFrame(m.pending)
		for _, f := range r.encodeEntries(wire.TypeDeliver, m.handle, 0, m.pending[:n]) {
			r.sendRaw(m.c, f, wire.TypeDeliver)
		}
		r.stats.Delivered += uint64(n)
		r.pendingCount -= int64(n)
		cost := pendCost(m.pending[:n])
		m.pendingBytes -= cost
		r.pendingBytes -= cost
		clear(m.pending[:n]) // the sealed bytes may be held by nothing else
		m.pending = m.pending[n:]
	}
	if len(m.pending) == 0 {
		m.pending = nil
	}
}

// heldRetry is how often Tick retries flushing held entries and
// answering deferred syncs. Writable comes only for a queue that passed
// the driver's own high-water mark, and the next fan-out or sync may never
// come: without it a member whose queue drained kept its pending entries
// until the next announce (found by the simulator: seeds 496, 1890, 1927
// never converged).
const heldRetry = 20 * time.Millisecond

// holdRetry schedules a flush of m's entries, about to be held.
func (r *Relay) holdRetry(m *member) {
	m.held = true
	r.held = append(r.held, m)
	r.armRetry()
}

func (r *Relay) armRetry() {
	if r.flushAt.IsZero() {
		r.flushAt = r.now.Add(heldRetry)
	}
}

// retryHeld flushes held entries of members, and answers deferred syncs
// of connections, whose queues have room, and keeps the rest for the next
// retry.
func (r *Relay) retryHeld() {
	keep := r.held[:0]
	for _, m := range r.held {
		if !m.c.closed {
			r.flushPending(m)
		}
		if m.held = len(m.pending) > 0 && !m.c.closed; m.held {
			keep = append(keep, m)
		}
	}
	clear(r.held[len(keep):])
	r.held = keep
	wait := r.waiting[:0]
	for _, c := range r.waiting {
		if !c.closed {
			r.answerDeferred(c)
		}
		if c.waiting = len(c.deferred) > 0 && !c.closed; c.waiting {
			wait = append(wait, c)
		}
	}
	clear(r.waiting[len(wait):])
	r.waiting = wait
	r.flushAt = time.Time{}
	if len(keep) > 0 || len(wait) > 0 {
		r.armRetry()
	}
}

// entriesPerFrame counts how many leading entries fit in one frame.
func (r *Relay) entriesPerFrame(entries []roster.Entry) int {
	return wire.EntriesFit(len(entries), func(i int) int { return len(entries[i].Sealed) }, r.cfg.MaxFrameSize)
}

// sendEntries sends entries to c as frames of type t, split to fit.
func (r *Relay) sendEntries(c *conn, t wire.Type, handle, session uint32, entries []roster.Entry) {
	for _, f := range r.encodeEntries(t, handle, session, entries) {
		r.sendRaw(c, f, t)
	}
}

// encodeEntries encodes entries as Deliver or Delta frames no larger than the
// frame limit. The frames alias the relay's scratch buffers until the next call.
func (r *Relay) encodeEntries(t wire.Type, handle, session uint32, entries []roster.Entry) [][]byte {
	r.frames = r.frames[:0]
	buf := r.frameBuf[:0]
	var starts []int
	for len(entries) > 0 {
		n := r.entriesPerFrame(entries)
		r.sealedScratch = r.sealedScratch[:0]
		for _, e := range entries[:n] {
			r.sealedScratch = append(r.sealedScratch, e.Sealed)
		}
		starts = append(starts, len(buf))
		switch t {
		case wire.TypeDelta:
			r.delta = wire.Delta{Handle: handle, Session: session, Entries: r.sealedScratch}
			buf = wire.Append(buf, &r.delta)
		default:
			r.deliver = wire.Deliver{Handle: handle, Entries: r.sealedScratch}
			buf = wire.Append(buf, &r.deliver)
		}
		entries = entries[n:]
	}
	r.frameBuf = buf
	for i, s := range starts {
		end := len(buf)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		r.frames = append(r.frames, buf[s:end])
	}
	return r.frames
}

// leave removes a membership. The channel and its cache stay for
// ChannelIdleTimeout, so members that come back after a partition or a
// restart of theirs catch up from it.
func (r *Relay) leave(m *member) {
	c, ch := m.c, m.ch
	if i := slices.Index(c.members, m); i >= 0 {
		c.members = slices.Delete(c.members, i, i+1)
	}
	if i := slices.Index(ch.members, m); i >= 0 {
		ch.members = slices.Delete(ch.members, i, i+1)
		r.memberCount--
	}
	r.dropPending(m)
	if len(ch.members) == 0 {
		ch.emptySince = r.now
		if r.sweepAt.IsZero() {
			r.sweepAt = r.now.Add(r.cfg.ChannelIdleTimeout)
		}
	}
}

// sweep forgets channels that have had no member for ChannelIdleTimeout,
// and sets when to look again.
func (r *Relay) sweep() {
	r.sweepAt = time.Time{}
	for id, ch := range r.channels { // sorted: deletions and a minimum, order-free
		if len(ch.members) > 0 {
			continue
		}
		due := ch.emptySince.Add(r.cfg.ChannelIdleTimeout)
		if !r.now.Before(due) {
			delete(r.channels, id)
			r.bbForget(ch)
			r.forgetChannel(ch)
			r.cachedBytes -= ch.bytes
			r.stats.ChannelsForgotten++
			continue
		}
		if r.sweepAt.IsZero() || due.Before(r.sweepAt) {
			r.sweepAt = due
		}
	}
}
