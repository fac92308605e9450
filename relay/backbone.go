package relay

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/cosnim/relays/backbone"
	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// The relay over the backbone (PROTOCOL.md, "Relay-to-relay backbone").
//
// A relay with a channel subscribes to its two subjects: ChannelSubject,
// where relays publish the entries their own members announce, and
// SyncSubject, where they reconcile their caches by request and reply.
// Entries that came from the backbone are stored and fanned out to local
// members, never published again, so an entry crosses the bus once.

// Failpoints of the backbone.
const (
	// FailNoBackbonePublish keeps entries from local members off the bus.
	FailNoBackbonePublish = "relay/no-backbone-publish"
	// FailRepublishBackbone publishes entries learnt from the bus again.
	FailRepublishBackbone = "relay/republish-backbone"
	// FailNoBackboneReconcile never starts a reconciliation.
	FailNoBackboneReconcile = "relay/no-backbone-reconcile"
	// FailNoBackboneHold sends Joined of a channel still reconciling at
	// once, claiming its cache complete.
	FailNoBackboneHold = "relay/no-backbone-hold"
	// FailBackboneAnswerAtOnce answers peers at once even when the cache
	// is not known complete (see BackboneLateAnswer).
	FailBackboneAnswerAtOnce = "relay/backbone-answer-at-once"
)

// DefaultBackbonePrefix is Config.BackbonePrefix's default.
const DefaultBackbonePrefix = "cosnim"

// DefaultBackboneAntiEntropy is Config.BackboneAntiEntropy's default: how
// often a relay reconciles each channel with members with its peers, to
// repair what the bus's at-most-once delivery lost.
const DefaultBackboneAntiEntropy = 30 * time.Second

// backboneMaxRounds bounds the requests of one reconciliation; what is
// left is repaired by the next one.
const backboneMaxRounds = 256

// BackbonePartial is the bit of a reconciliation reply's Joined flags
// saying the replier left entries or ranges out to fit the message: the
// exchange must run again before the two caches can agree.
const BackbonePartial uint8 = 1 << 1

// ChannelSubject is the subject of channel id's entries:
// "<prefix>.ch.<64 lowercase hex digits of id>".
func ChannelSubject(prefix string, id roster.ChannelID) string {
	return prefix + ".ch." + hex.EncodeToString(id[:])
}

// SyncSubject is the subject of channel id's reconciliation requests:
// "<prefix>.sync.<64 lowercase hex digits of id>".
func SyncSubject(prefix string, id roster.ChannelID) string {
	return prefix + ".sync." + hex.EncodeToString(id[:])
}

// ErrBadBackbonePrefix is wrapped by CheckBackbonePrefix's errors.
var ErrBadBackbonePrefix = errors.New("relay: bad backbone subject prefix")

// CheckBackbonePrefix reports whether prefix can start NATS subjects: one
// or more dot-separated tokens, none empty, without spaces, control
// characters or the wildcards '*' and '>'.
func CheckBackbonePrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("%w: empty", ErrBadBackbonePrefix)
	}
	for tok := range strings.SplitSeq(prefix, ".") {
		if tok == "" {
			return fmt.Errorf("%w: %q has an empty token", ErrBadBackbonePrefix, prefix)
		}
		for _, c := range tok {
			if c <= ' ' || c == 0x7f || c == '*' || c == '>' {
				return fmt.Errorf("%w: %q holds %q (no spaces, control characters, '*' or '>')", ErrBadBackbonePrefix, prefix, c)
			}
		}
	}
	return nil
}

var _ backbone.Handler = (*Relay)(nil)

// bbChannel is a channel's backbone state; zero without a backbone.
type bbChannel struct {
	subject, syncSubject string
	gone                 bool // forgotten: timers and replies skip it
	// learnt is set once a reconciliation ended with a peer, or found
	// none: only then may replies say the cache is complete.
	learnt bool
	// unsure is set for a channel created while the bus was up until its
	// first reconciliation ends: Joined does not claim it complete.
	unsure bool
	// peerLoss is set when the first reconciliation ended with a reply not
	// saying complete: the cache holds only what that peer held. A later
	// reconciliation whose every reply says complete clears it; a peer
	// still reconciling itself when it answered lost nothing, it only did
	// not know yet.
	peerLoss  bool
	stale     bool // the bus came back while it had no member: reconcile at the next join
	sync      *reconcile
	heldJoins []*member // Joined frames waiting for the first reconciliation
	holdUntil time.Time
	aeAt      time.Time      // next anti-entropy; zero when not armed
	outbox    []roster.Entry // to publish at the end of the event
	// late are peers' requests this relay answers BackboneLateAnswer
	// after they came, its cache not being complete: a complete peer's
	// reply, the first to arrive, then wins.
	late []lateAnswer
	// answers limits the peers' requests answered (BackboneAnswerRate);
	// nil until the first.
	answers *rate.Limiter
}

// lateAnswer is a peer's request waiting for its answer.
type lateAnswer struct {
	at          time.Time
	reply, data string
}

// BackboneLateAnswer is how long a relay whose cache of a channel is not
// complete (still reconciling it, or holding only what an incomplete peer
// held) waits before it answers a peer's request for it. The bus hands
// the requester the first reply; this lets a complete peer's be that one,
// else two relays that created the channel together learn only from each
// other and miss a third's entries until anti-entropy.
const BackboneLateAnswer = BackboneReplyWindow / 4

// maxLateAnswers bounds the requests of one channel waiting for a late
// answer; past it requests are answered at once.
const maxLateAnswers = 16

// reconcile is one reconciliation with peers, one request in flight.
type reconcile struct {
	id           uint64 // of the request in flight
	rounds       int
	partial      bool // a message of the exchange left something out
	peerComplete bool // every reply said its cache was complete
	askedAgain   bool // a first reconciliation ran again after a reply not complete
	// The replies to the request in flight are taken until windowEnd
	// (bbtrust.go): answered once the first came; exchanged once the
	// exchange ended, waiting for the window to end.
	answered  bool
	windowEnd time.Time
	exchanged bool
	claims    []claim // what the replies said of their caches
	learned   uint64  // new entries the replies gave
	storedAt  uint64  // the channel's stored count when it began
}

// bbLearn subscribes to a new channel's subjects and, with the bus up,
// reconciles its empty cache with peers before telling members it is
// complete.
func (r *Relay) bbLearn(ch *channel) {
	if r.cfg.Backbone == nil {
		return
	}
	ch.bb.subject = ChannelSubject(r.cfg.BackbonePrefix, ch.id)
	ch.bb.syncSubject = SyncSubject(r.cfg.BackbonePrefix, ch.id)
	r.cfg.Backbone.Subscribe(ch.bb.subject)
	r.cfg.Backbone.Subscribe(ch.bb.syncSubject)
	r.armAntiEntropy(ch)
	if !r.bbUp {
		return
	}
	ch.bb.unsure = true
	ch.bb.holdUntil = r.now.Add(backbone.RequestTimeout)
	r.bbTimers.Add(ch.bb.holdUntil, ch)
	r.startReconcile(ch)
	if ch.bb.sync == nil {
		ch.bb.unsure = false // nothing started: proceed as without a bus
	}
}

// bbJoined is called when a member joins an existing channel.
func (r *Relay) bbJoined(ch *channel) {
	if r.cfg.Backbone == nil {
		return
	}
	if ch.bb.aeAt.IsZero() {
		r.armAntiEntropy(ch)
	}
	if ch.bb.stale {
		ch.bb.stale = false
		r.startReconcile(ch)
	}
}

// bbHold reports whether m's Joined waits for ch's first reconciliation,
// queueing it if so. It waits at most backbone.RequestTimeout.
func (r *Relay) bbHold(ch *channel, m *member) bool {
	if !ch.bb.unsure || ch.bb.sync == nil || !r.now.Before(ch.bb.holdUntil) {
		return false
	}
	if _, ok := fault.Hit(r.cfg.Faults, FailNoBackboneHold); ok {
		return false
	}
	ch.bb.heldJoins = append(ch.bb.heldJoins, m)
	return true
}

// joinedFlags are the flags of a Joined for ch.
func (r *Relay) joinedFlags(ch *channel) uint8 {
	_, overclaim := fault.Hit(r.cfg.Faults, FailNoBackboneHold)
	if ch.complete && (!ch.bb.unsure && !ch.bb.peerLoss || overclaim) {
		return wire.JoinedComplete
	}
	return 0
}

// releaseJoins sends the Joined frames held for ch.
func (r *Relay) releaseJoins(ch *channel) {
	held := ch.bb.heldJoins
	ch.bb.heldJoins = nil
	for _, m := range held {
		if m.c.closed || !slices.Contains(m.c.members, m) {
			continue
		}
		r.send(m.c, &wire.Joined{Handle: m.handle, Cached: uint32(ch.cache.Len()), Flags: r.joinedFlags(ch)})
	}
}

func (r *Relay) armAntiEntropy(ch *channel) {
	ch.bb.aeAt = r.now.Add(r.cfg.BackboneAntiEntropy)
	r.bbTimers.Add(ch.bb.aeAt, ch)
}

// bbForget unsubscribes from a channel being forgotten.
func (r *Relay) bbForget(ch *channel) {
	if r.cfg.Backbone == nil {
		return
	}
	ch.bb.gone = true
	if ch.bb.sync != nil {
		delete(r.bbReqs, ch.bb.sync.id)
		ch.bb.sync = nil
	}
	ch.bb.outbox, ch.bb.heldJoins, ch.bb.late = nil, nil, nil
	r.cfg.Backbone.Unsubscribe(ch.bb.subject)
	r.cfg.Backbone.Unsubscribe(ch.bb.syncSubject)
}

// bbTick runs due anti-entropy and releases Joined frames held too long.
func (r *Relay) bbTick() {
	for {
		ch, ok := r.bbTimers.PopDue(r.now)
		if !ok {
			return
		}
		if ch.bb.gone {
			continue
		}
		if len(ch.bb.heldJoins) > 0 && !r.now.Before(ch.bb.holdUntil) {
			r.releaseJoins(ch)
		}
		if len(ch.bb.late) > 0 {
			r.answerLate(ch)
		}
		r.windowDue(ch)
		if at := ch.bb.aeAt; !at.IsZero() && !r.now.Before(at) {
			ch.bb.aeAt = time.Time{}
			if len(ch.members) > 0 {
				r.startReconcile(ch)
				r.armAntiEntropy(ch)
			}
		}
	}
}

// queuePublish keeps entries new from local members for the end of the
// event, so one event makes as few messages as the frame size allows.
func (r *Relay) queuePublish(ch *channel, fresh []roster.Entry) {
	if _, ok := fault.Hit(r.cfg.Faults, FailNoBackbonePublish); ok {
		return
	}
	if len(ch.bb.outbox) == 0 {
		r.bbDirty = append(r.bbDirty, ch)
	}
	ch.bb.outbox = append(ch.bb.outbox, fresh...)
}

// flushBackbone publishes what the event queued: per channel, Deliver
// frames with handle 0, one message each, split to fit MaxFrameSize.
// Every event method ends with it.
func (r *Relay) flushBackbone() {
	if len(r.bbDirty) == 0 {
		return
	}
	for i, ch := range r.bbDirty {
		r.bbDirty[i] = nil
		entries := ch.bb.outbox
		ch.bb.outbox = nil
		if ch.bb.gone || len(entries) == 0 {
			continue
		}
		if !r.bbUp {
			r.stats.BackboneDropped += uint64(len(entries))
			continue
		}
		for _, f := range r.encodeEntries(wire.TypeDeliver, r.bbID, 0, entries) {
			r.cfg.Backbone.Publish(ch.bb.subject, f)
			r.stats.BackbonePublished++
		}
		r.stats.BackbonePublishedEntries += uint64(len(entries))
	}
	r.bbDirty = r.bbDirty[:0]
}

// sortedChannels lists channels by ID, so output never follows map order.
func (r *Relay) sortedChannels() []*channel {
	list := make([]*channel, 0, len(r.channels))
	for _, ch := range r.channels { // sorted: below
		list = append(list, ch)
	}
	slices.SortFunc(list, func(a, b *channel) int { return strings.Compare(string(a.id[:]), string(b.id[:])) })
	return list
}

// BusState implements backbone.Handler. Down fails reconciliations in
// flight; up reconciles every channel with members, the others when a
// member next joins.
func (r *Relay) BusState(up bool, now time.Time) {
	r.at(now)
	defer r.flushBackbone()
	if r.cfg.Backbone == nil || up == r.bbUp {
		return
	}
	r.bbUp = up
	r.stats.BackboneUp = up
	if !up {
		r.stats.BackboneDowns++
		r.log.Warn("backbone down: entries from other relays wait for it to return")
	} else {
		r.log.Info("backbone up")
	}
	for _, ch := range r.sortedChannels() {
		switch {
		case !up && ch.bb.sync != nil:
			r.endReconcile(ch, backbone.ErrDown)
		case up && len(ch.members) > 0:
			r.startReconcile(ch)
		case up:
			ch.bb.stale = true
		}
	}
}

// Message implements backbone.Handler: entries on a channel subject, or a
// reconciliation request on a sync subject.
func (r *Relay) Message(m backbone.Msg, now time.Time) {
	r.at(now)
	defer r.flushBackbone()
	if r.cfg.Backbone == nil {
		return
	}
	ch, sync := r.subjectChannel(m.Subject)
	if ch == nil {
		return // unsubscribed since, or not ours
	}
	r.stats.BackboneReceived++
	if len(m.Data) > r.cfg.MaxFrameSize {
		r.badMessage("message of %d bytes over max frame size %d", len(m.Data), r.cfg.MaxFrameSize)
		return
	}
	if sync {
		r.answerPeer(ch, m)
		return
	}
	var fs [1]wire.RawFrame
	frames, ok := wire.SplitMessage(m.Data, fs[:0])
	if !ok || len(frames) != 1 || frames[0].Type != wire.TypeDeliver {
		r.badMessage("channel message is not one Deliver frame")
		return
	}
	f, err := r.decoded.Decode(wire.TypeDeliver, frames[0].Payload)
	if err != nil {
		r.badMessage("channel message: bad Deliver frame: %v", err)
		return
	}
	d := f.(*wire.Deliver)
	r.learnFromBus(ch, d.Handle, d.Entries, true)
}

// subjectChannel finds the channel a subject names, and whether it is
// its sync subject.
func (r *Relay) subjectChannel(subject string) (*channel, bool) {
	rest, ok := strings.CutPrefix(subject, r.cfg.BackbonePrefix+".")
	if !ok {
		return nil, false
	}
	var sync bool
	if h, ok := strings.CutPrefix(rest, "ch."); ok {
		rest = h
	} else if h, ok := strings.CutPrefix(rest, "sync."); ok {
		rest, sync = h, true
	} else {
		return nil, false
	}
	var id roster.ChannelID
	if len(rest) != 2*len(id) {
		return nil, false
	}
	if _, err := hex.Decode(id[:], []byte(rest)); err != nil {
		return nil, false
	}
	ch := r.channels[id]
	if ch == nil || ch.bb.gone {
		return nil, false
	}
	return ch, sync
}

func (r *Relay) badMessage(format string, args ...any) {
	r.stats.BackboneBad++
	r.logConn(logBackboneBad, "reason", fmt.Sprintf(format, args...))
}

// learnFromBus stores entries a peer relay sent, from the origin its
// message named, with the checks a client's get, and fans the new ones
// out to every local member (if fan) without publishing them again. It
// returns how many were new.
func (r *Relay) learnFromBus(ch *channel, origin uint32, sealed [][]byte, fan bool) uint64 {
	sealed = slices.DeleteFunc(sealed, func(e []byte) bool {
		return len(e) == 0 || len(e) > r.cfg.MaxEntrySize
	})
	if len(sealed) == 0 {
		return 0
	}
	_, republish := fault.Hit(r.cfg.Faults, FailRepublishBackbone)
	n := r.stats.EntriesIn
	r.store(ch, nil, sealed, fan, republish, r.originOf(ch, origin))
	r.stats.BackboneEntries += r.stats.EntriesIn - n
	return r.stats.EntriesIn - n
}

// answerPeer answers a peer's reconciliation request: [Delta] Sync, all
// with handle 0. The reply is Joined (handle 0, cached count, flags
// complete and BackbonePartial), [Delta], Sync.
func (r *Relay) answerPeer(ch *channel, m backbone.Msg) {
	if m.Reply == "" {
		r.badMessage("sync message without a reply address")
		return
	}
	if !r.cacheKnownComplete(ch) && len(ch.bb.late) < maxLateAnswers {
		if _, ok := fault.Hit(r.cfg.Faults, FailBackboneAnswerAtOnce); !ok {
			at := r.now.Add(BackboneLateAnswer)
			ch.bb.late = append(ch.bb.late, lateAnswer{at: at, reply: m.Reply, data: string(m.Data)})
			r.bbTimers.Add(at, ch)
			return
		}
	}
	r.answerNow(ch, m)
}

// cacheKnownComplete reports whether ch's cache holds everything announced
// in the channel since this relay's epoch began, as far as it knows: the
// complete flag its replies carry.
func (r *Relay) cacheKnownComplete(ch *channel) bool {
	return ch.complete && ch.bb.learnt && !ch.bb.unsure && !ch.bb.peerLoss
}

// answerLate answers ch's late requests that are due.
func (r *Relay) answerLate(ch *channel) {
	n := 0
	for n < len(ch.bb.late) && !r.now.Before(ch.bb.late[n].at) {
		la := ch.bb.late[n]
		r.answerNow(ch, backbone.Msg{Subject: ch.bb.syncSubject, Reply: la.reply, Data: []byte(la.data)})
		n++
	}
	ch.bb.late = slices.Delete(ch.bb.late, 0, n)
}

// answerNow answers a request at once.
// Its reply takes at most replyRoom of the request's size, and a channel
// answers at most BackboneAnswerRate requests a second.
func (r *Relay) answerNow(ch *channel, m backbone.Msg) {
	if !r.mayAnswer(ch) {
		return
	}
	push, msg, ok := r.decodeSyncMessage(m.Data, false)
	if !ok {
		return
	}
	r.learnFromBus(ch, push.origin, push.push.Entries, !ch.evictedAny)
	r.stats.BackboneSyncsAnswered++
	room := r.replyRoom(len(m.Data))
	var out roster.SyncMsg
	var give []roster.Entry
	if !msg.Msg.Empty() {
		out, give = ch.cache.ReplySyncLimit(&msg.Msg, r.replyEntries(ch, room))
	}
	joined := &wire.Joined{Handle: r.bbID, Cached: uint32(ch.cache.Len())}
	if r.cacheKnownComplete(ch) {
		joined.Flags |= wire.JoinedComplete
	}
	data, _ := r.encodeSyncMessage(joined, msg.Session, give, out, room)
	r.cfg.Backbone.Respond(m.Reply, data)
}

// startReconcile begins reconciling ch with peers unless one is in flight.
func (r *Relay) startReconcile(ch *channel) {
	if !r.bbUp || ch.bb.sync != nil || ch.bb.gone {
		return
	}
	if _, ok := fault.Hit(r.cfg.Faults, FailNoBackboneReconcile); ok {
		return
	}
	ch.bb.sync = &reconcile{peerComplete: true, storedAt: ch.stored}
	r.stats.BackboneReconciles++
	r.requestPeers(ch, nil, ch.cache.StartSync())
}

// requestPeers sends the next request of ch's reconciliation. Replies to
// the one before no longer count.
func (r *Relay) requestPeers(ch *channel, push []roster.Entry, msg roster.SyncMsg) {
	rc := ch.bb.sync
	rc.rounds++
	delete(r.bbReqs, rc.id)
	r.bbNextID++
	rc.id, rc.answered, rc.exchanged = r.bbNextID, false, false
	rc.windowEnd = r.replyWindowEnd()
	r.bbReqs[rc.id] = ch
	data, partial := r.encodeSyncMessage(nil, uint32(rc.id), push, msg, r.cfg.MaxFrameSize)
	rc.partial = rc.partial || partial
	r.cfg.Backbone.Request(ch.bb.syncSubject, data, rc.id)
}

// Response implements backbone.Handler: a peer's reply to a
// reconciliation request, or why there is none. The first reply to a
// request drives the exchange; further ones, within the reply window,
// are weighed (extraReply).
func (r *Relay) Response(id uint64, data []byte, err error, now time.Time) {
	r.at(now)
	defer r.flushBackbone()
	ch := r.bbReqs[id]
	if ch == nil {
		return // failed, superseded or forgotten since
	}
	rc := ch.bb.sync
	if rc == nil || rc.id != id {
		delete(r.bbReqs, id)
		return
	}
	if rc.answered {
		if err == nil && r.collecting(rc) {
			r.extraReply(ch, data)
		}
		return
	}
	rc.answered = true
	if err != nil {
		r.endReconcile(ch, err)
		return
	}
	if len(data) > r.cfg.MaxFrameSize {
		r.badMessage("reply of %d bytes over max frame size %d", len(data), r.cfg.MaxFrameSize)
		r.endReconcile(ch, errBadReply)
		return
	}
	reply, msg, ok := r.decodeSyncMessage(data, true)
	if !ok {
		r.endReconcile(ch, errBadReply)
		return
	}
	r.stepReconcile(ch, reply, msg)
}

// stepReconcile takes a reply that drives ch's exchange: stores its
// entries, then sends the next request, runs the exchange again, or ends
// it.
func (r *Relay) stepReconcile(ch *channel, reply syncParts, msg *wire.Sync) {
	rc := ch.bb.sync
	rc.learned += r.learnFromBus(ch, reply.origin, reply.push.Entries, !ch.evictedAny)
	rc.noteClaim(reply.origin, reply.flags, reply.cached)
	rc.peerComplete = rc.peerComplete && reply.flags&wire.JoinedComplete != 0
	rc.partial = rc.partial || reply.flags&BackbonePartial != 0
	var next roster.SyncMsg
	var push []roster.Entry
	if !msg.Msg.Empty() {
		next, push = ch.cache.ReplySyncLimit(&msg.Msg, r.cfg.SyncReplyEntries)
	}
	switch {
	case !next.Empty() || len(push) > 0:
		if rc.rounds >= backboneMaxRounds {
			r.endReconcile(ch, errTooManyRounds)
			return
		}
		r.requestPeers(ch, push, next)
	case rc.partial:
		// The exchange ended but left something out: run it again.
		if rc.rounds >= backboneMaxRounds {
			r.endReconcile(ch, errTooManyRounds)
			return
		}
		rc.partial = false
		r.requestPeers(ch, nil, ch.cache.StartSync())
	case ch.bb.unsure && !rc.peerComplete && !rc.askedAgain:
		// The peer may have answered while still in its own first
		// reconciliation: ask once more before telling members.
		if rc.rounds >= backboneMaxRounds {
			r.endReconcile(ch, errTooManyRounds)
			return
		}
		rc.askedAgain, rc.peerComplete = true, true
		r.requestPeers(ch, nil, ch.cache.StartSync())
	case r.collecting(rc):
		// The caches agree, but another reply may yet go on with the
		// exchange or refute what this one said (bbtrust.go).
		rc.exchanged = true
		r.bbTimers.Add(rc.windowEnd, ch)
	default:
		r.endReconcile(ch, nil)
	}
}

var (
	errBadReply      = errors.New("relay: undecodable reconciliation reply")
	errTooManyRounds = errors.New("relay: reconciliation round limit reached")
)

// endReconcile ends ch's reconciliation: err nil when the caches agree.
// No responders means no peer holds the channel, so what this relay holds
// is all there is; a timeout or a lost bus proceeds as without a bus.
func (r *Relay) endReconcile(ch *channel, err error) {
	rc := ch.bb.sync
	ch.bb.sync = nil
	delete(r.bbReqs, rc.id)
	switch {
	case err == nil:
		r.stats.BackboneReconciled++
		proven := r.provenComplete(ch, rc)
		if ch.bb.unsure || proven {
			ch.bb.peerLoss = !proven
		}
		if ch.bb.unsure && proven && !ch.evictedAny {
			// What the relay forgot of the channel before, a complete peer
			// held: the cache holds it again.
			ch.complete = true
		}
		ch.bb.learnt, ch.bb.unsure = true, false
	case errors.Is(err, backbone.ErrNoResponders):
		r.stats.BackboneReconciled++
		ch.bb.learnt, ch.bb.unsure = true, false
	case errors.Is(err, backbone.ErrTimeout), errors.Is(err, backbone.ErrDown):
		r.stats.BackboneReconcileFailed++
		ch.bb.unsure = false
	default:
		// Bad replies and the round limit: entries got so far stay, and
		// the next anti-entropy goes on; Joined does not claim more.
		r.stats.BackboneReconcileFailed++
	}
	r.releaseJoins(ch)
}

// syncParts is a decoded reconciliation message.
type syncParts struct {
	origin uint32 // the relay ID every frame's handle named
	flags  uint8  // of the reply's Joined
	cached uint32 // of the reply's Joined
	push   wire.Delta
}

// decodeSyncMessage decodes a request ([Delta] Sync) or, if reply, a
// reply (Joined [Delta] Sync), all frames with one handle, the sender's
// relay ID. Entries alias
// data; the Sync is the relay's decoded one, valid until the next decode.
func (r *Relay) decodeSyncMessage(data []byte, reply bool) (syncParts, *wire.Sync, bool) {
	var parts syncParts
	var fs [3]wire.RawFrame
	frames, ok := wire.SplitMessage(data, fs[:0])
	want := []wire.Type{wire.TypeDelta, wire.TypeSync}
	if reply {
		want = []wire.Type{wire.TypeJoined, wire.TypeDelta, wire.TypeSync}
	}
	if ok && len(frames) == len(want)-1 && frames[len(frames)-1].Type == wire.TypeSync {
		want = slices.Delete(want, len(want)-2, len(want)-1) // no Delta
	}
	if !ok || len(frames) != len(want) {
		r.badMessage("reconciliation message: %d frames, want %v", len(frames), want)
		return parts, nil, false
	}
	var sync *wire.Sync
	for i, rf := range frames {
		if rf.Type != want[i] {
			r.badMessage("reconciliation message: frame %d is %v, want %v", i, rf.Type, want[i])
			return parts, nil, false
		}
		f, err := r.decoded.Decode(rf.Type, rf.Payload)
		if err != nil {
			r.badMessage("reconciliation message: %v", err)
			return parts, nil, false
		}
		var handle uint32
		switch f := f.(type) {
		case *wire.Joined:
			handle, parts.flags, parts.cached = f.Handle, f.Flags, f.Cached
		case *wire.Delta:
			handle, parts.push = f.Handle, *f
		case *wire.Sync:
			handle, sync = f.Handle, f
		}
		if i == 0 {
			parts.origin = handle
		} else if handle != parts.origin {
			r.badMessage("reconciliation message: %v frame with handle %d, want %d as before", rf.Type, handle, parts.origin)
			return parts, nil, false
		}
	}
	return parts, sync, true
}

// encodeSyncMessage encodes a reconciliation message of at most room
// bytes, every frame's handle the relay's ID: joined (replies only), a
// Delta of as many of give as fit, then the Sync of msg, its ranges and
// wants cut to half the room when there are entries to give. It reports
// whether it left anything out, which a reply's Joined says too
// (BackbonePartial). The bytes are the relay's scratch, valid until the
// next call.
func (r *Relay) encodeSyncMessage(joined *wire.Joined, session uint32, give []roster.Entry, msg roster.SyncMsg, room int) ([]byte, bool) {
	buf := r.bbBuf[:0]
	if joined != nil {
		buf = wire.Append(buf, joined)
		room -= len(buf)
	}
	syncRoom := room
	if len(give) > 0 {
		syncRoom = room / 2
	}
	var partial bool
	r.bbSync, partial = wire.AppendSyncPart(r.bbSync[:0], &wire.Sync{Handle: r.bbID, Session: session, Msg: msg}, syncRoom)
	room -= len(r.bbSync)
	n := wire.EntriesFit(len(give), func(i int) int { return len(give[i].Sealed) }, room)
	if n == 1 && wire.EntriesFrameSize(1, len(give[0].Sealed)) > room {
		n = 0
	}
	partial = partial || n < len(give)
	if joined != nil && partial {
		// The Joined, first, is encoded again with the flag: its size is
		// the same, and nothing follows it yet.
		joined.Flags |= BackbonePartial
		buf = wire.Append(buf[:0], joined)
	}
	if n > 0 {
		r.sealedScratch = r.sealedScratch[:0]
		for _, e := range give[:n] {
			r.sealedScratch = append(r.sealedScratch, e.Sealed)
		}
		buf = wire.Append(buf, &wire.Delta{Handle: r.bbID, Session: session, Entries: r.sealedScratch})
	}
	buf = append(buf, r.bbSync...)
	r.bbBuf = buf
	return buf, partial
}
