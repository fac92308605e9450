package relay

import (
	"time"

	"golang.org/x/time/rate"

	"github.com/cosnim/relays/backbone"
	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// What the relay believes of the bus (PROTOCOL.md §14, "Trust"): a NATS
// user that may publish on the pool's subjects can name any origin, claim
// any cache and ask any question. So no single reply makes a cache
// complete, bus entries never evict local members' entries and one
// origin's take at most a quota of a cache, and answers are bounded by
// the request's size and rate-limited per channel.

// Failpoints of the defences against a hostile bus publisher.
const (
	// FailTrustSingleComplete takes one reply's word that the cache is
	// complete, as before replies were collected and checked.
	FailTrustSingleComplete = "relay/trust-single-complete"
	// FailBusEvictsLocal evicts the oldest entries whoever brought them,
	// with no per-origin quota.
	FailBusEvictsLocal = "relay/bus-evicts-local"
	// FailUnboundedReply answers every request with as much as a message
	// holds, at any rate.
	FailUnboundedReply = "relay/unbounded-reply"
)

// BackboneReplyWindow is how long a relay collects the replies to the
// first request of a reconciliation before it judges whether they prove
// its cache complete (backbone.ReplyWindow, the drivers' promise).
const BackboneReplyWindow = backbone.ReplyWindow

// BackboneCompleteQuorum is how many distinct origins must say complete,
// none refuted, for a reconciliation over a bus that is not authenticated
// (Config.BackboneAuthenticated) to make a cache complete.
const BackboneCompleteQuorum = 2

// maxClaims bounds the replies one reconciliation keeps to judge.
const maxClaims = 8

// BackboneReplyFactor bounds a reply to a reconciliation request: at most
// this many times the request's size, or BackboneReplyFloor, whichever is
// larger (and never over max-frame-size). What does not fit is left as
// fingerprints of subranges, and the reply says partial.
const BackboneReplyFactor = 16

// BackboneReplyFloor is the reply room of even the smallest request, so
// that a relay with an empty cache (whose first request is a few dozen
// bytes) learns some entries per round.
const BackboneReplyFloor = wire.DefaultMaxFrameSize / 16

// BackboneAnswerRate is how many reconciliation requests of one channel a
// relay answers per second, with a burst of BackboneAnswerBurst; more are
// dropped and counted (Stats.BackboneLimited).
const BackboneAnswerRate = 64

// BackboneAnswerBurst is the answer rate's burst: one full
// reconciliation's requests.
const BackboneAnswerBurst = backboneMaxRounds

// backboneMaxOrigins bounds the origins a channel tracks apart; entries
// of further origins share one more slot, and its quota.
const backboneMaxOrigins = 16

// backboneOriginShare: one origin's bus entries take at most
// CacheEntries/backboneOriginShare of a channel's cache.
const backboneOriginShare = 2

// busOrigin is the eviction order of a channel's entries that the bus
// brought from one origin (the relay ID its messages named).
type busOrigin struct {
	id      uint32
	other   bool // the shared slot of origins past backboneMaxOrigins
	order   []cached
	evicted int
}

func (o *busOrigin) live() int { return len(o.order) - o.evicted }

// originOf finds, or makes, ch's slot for origin id.
func (r *Relay) originOf(ch *channel, id uint32) *busOrigin {
	var other *busOrigin
	for _, o := range ch.origins {
		if o.other {
			other = o
		} else if o.id == id {
			return o
		}
	}
	if len(ch.origins) < backboneMaxOrigins {
		o := &busOrigin{id: id}
		ch.origins = append(ch.origins, o)
		return o
	}
	if other == nil {
		other = &busOrigin{other: true}
		ch.origins = append(ch.origins, other)
	}
	return other
}

// originQuota is how many entries of one origin a cache keeps.
func (r *Relay) originQuota() int { return max(1, r.cfg.CacheEntries/backboneOriginShare) }

func (r *Relay) busEvictsLocal() bool {
	_, ok := fault.Hit(r.cfg.Faults, FailBusEvictsLocal)
	return ok
}

// evictChoice is the bus origin whose oldest entry goes next: the one
// holding the most (ties: the first tracked), nil when the bus brought
// nothing the cache still holds. Entries of local members go only after
// every bus entry.
func (r *Relay) evictChoice(ch *channel) *busOrigin {
	var best *busOrigin
	for _, o := range ch.origins {
		if o.live() > 0 && (best == nil || o.live() > best.live()) {
			best = o
		}
	}
	if best != nil && r.busEvictsLocal() && ch.evicted < len(ch.order) {
		// Oldest first, whoever brought it: the first entries of the
		// cache are usually local.
		return nil
	}
	return best
}

// replyRoom is how many bytes the answer to a request of n bytes may take.
func (r *Relay) replyRoom(n int) int {
	if _, ok := fault.Hit(r.cfg.Faults, FailUnboundedReply); ok {
		return r.cfg.MaxFrameSize
	}
	return min(r.cfg.MaxFrameSize, max(BackboneReplyFloor, BackboneReplyFactor*n))
}

// replyEntries is how many entries of ch fit half of room, by the
// average size of its cached entries, capped by SyncReplyEntries.
func (r *Relay) replyEntries(ch *channel, room int) int {
	n := ch.cache.Len()
	if n == 0 {
		return r.cfg.SyncReplyEntries
	}
	// ch.bytes charges each entry its heap size, at least its length:
	// an average that errs toward fewer entries per reply.
	avg := max(1, int((ch.bytes-cacheBase)/int64(n)-entryCost)+2) // 2: its length on the wire
	return max(1, min(r.cfg.SyncReplyEntries, room/2/avg))
}

// mayAnswer reports whether ch's answer rate allows one more answer.
func (r *Relay) mayAnswer(ch *channel) bool {
	if _, ok := fault.Hit(r.cfg.Faults, FailUnboundedReply); ok {
		return true
	}
	if ch.bb.answers == nil {
		ch.bb.answers = rate.NewLimiter(BackboneAnswerRate, BackboneAnswerBurst)
	}
	if ch.bb.answers.AllowN(r.now, 1) {
		return true
	}
	r.stats.BackboneLimited++
	return false
}

// claim is what one reply to a reconciliation said of its replier.
type claim struct {
	origin   uint32
	complete bool
	cached   uint32
}

// noteClaim keeps what a reply said, one claim per origin (its highest
// count, complete only if every reply of it said so).
func (rc *reconcile) noteClaim(origin uint32, flags uint8, cached uint32) {
	complete := flags&wire.JoinedComplete != 0
	for i := range rc.claims {
		if c := &rc.claims[i]; c.origin == origin {
			c.complete = c.complete && complete
			c.cached = max(c.cached, cached)
			return
		}
	}
	if len(rc.claims) < maxClaims {
		rc.claims = append(rc.claims, claim{origin: origin, complete: complete, cached: cached})
	}
}

// provenComplete judges the claims of ch's reconciliation. A cache that
// holds everything holds at least what any replier holds and what the
// replies gave, but for what arrived meanwhile by publish or from local
// members: a claim of complete below that is a lie (ignored and counted).
// The rest prove the cache complete if they number at least
// BackboneCompleteQuorum distinct origins, or one on an authenticated bus.
func (r *Relay) provenComplete(ch *channel, rc *reconcile) bool {
	need := BackboneCompleteQuorum
	if r.cfg.BackboneAuthenticated {
		need = 1
	}
	if _, ok := fault.Hit(r.cfg.Faults, FailTrustSingleComplete); ok {
		return rc.peerComplete
	}
	floor := rc.learned
	for _, c := range rc.claims {
		floor = max(floor, uint64(c.cached))
	}
	meanwhile := ch.stored - rc.storedAt - rc.learned
	n := 0
	for _, c := range rc.claims {
		switch {
		case !c.complete:
		case uint64(c.cached)+meanwhile < floor:
			r.stats.BackboneCompleteRefuted++
			r.logConn(logBackboneBad, "reason", "a reply claimed a complete cache holding fewer entries than others", "origin", c.origin)
		default:
			n++
		}
	}
	return rc.peerComplete && n >= need
}

// collecting reports whether ch's reconciliation still waits for replies
// to its first request: over a bus that is not authenticated, the first
// reply cannot be taken at its word.
func (r *Relay) collecting(rc *reconcile) bool {
	if _, ok := fault.Hit(r.cfg.Faults, FailTrustSingleComplete); ok {
		return false
	}
	return !r.cfg.BackboneAuthenticated && r.now.Before(rc.windowEnd)
}

// extraReply takes a further reply to the request of ch's reconciliation
// in flight, within the reply window: its entries are stored and what it
// said of its cache kept to judge; if the exchange had ended on the
// first reply's word but this one goes on, the exchange goes on with it,
// so a forged "we agree" cannot end it early.
func (r *Relay) extraReply(ch *channel, data []byte) {
	rc := ch.bb.sync
	if len(data) > r.cfg.MaxFrameSize {
		r.badMessage("reply of %d bytes over max frame size %d", len(data), r.cfg.MaxFrameSize)
		return
	}
	reply, msg, ok := r.decodeSyncMessage(data, true)
	if !ok {
		return
	}
	if rc.exchanged && (!msg.Msg.Empty() || reply.flags&BackbonePartial != 0) {
		rc.exchanged = false
		r.stepReconcile(ch, reply, msg)
		return
	}
	rc.learned += r.learnFromBus(ch, reply.origin, reply.push.Entries, !ch.evictedAny)
	rc.noteClaim(reply.origin, reply.flags, reply.cached)
}

// windowDue ends ch's reconciliation if its exchange ended and its
// window is over.
func (r *Relay) windowDue(ch *channel) {
	rc := ch.bb.sync
	if rc == nil || !rc.exchanged || r.collecting(rc) {
		return
	}
	r.endReconcile(ch, nil)
}

// replyWindowEnd is when the replies to a first request sent now stop
// counting.
func (r *Relay) replyWindowEnd() time.Time { return r.now.Add(BackboneReplyWindow) }

// BackboneID is the relay ID this relay's backbone messages name.
func (r *Relay) BackboneID() uint32 { return r.bbID }

// SaysComplete reports whether a Joined for channel id sent now would
// flag its cache complete, for checkers.
func (r *Relay) SaysComplete(id roster.ChannelID) bool {
	ch := r.channels[id]
	return ch != nil && r.joinedFlags(ch)&wire.JoinedComplete != 0
}

// LocalIDs lists the entries of channel id's cache that the relay's own
// members announced (not the bus), oldest first, for checkers.
func (r *Relay) LocalIDs(id roster.ChannelID) []roster.ID {
	ch := r.channels[id]
	if ch == nil {
		return nil
	}
	var ids []roster.ID
	for _, c := range ch.order[ch.evicted:] {
		if ch.cache.Has(c.id) {
			ids = append(ids, c.id)
		}
	}
	return ids
}
