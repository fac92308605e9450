package relay

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// errClosed stops a Feed after the connection was closed by a handler.
var errClosed = errors.New("relay: connection closed")

// Failpoint names, checked in this file (channel.go has the fan-out
// ones). The simulator turns them on to reach states the network alone
// cannot.
const (
	// FailDropAnnounce loses an Announce inside the relay after acking it.
	FailDropAnnounce = "relay/drop-announce"
	// FailEmptySyncReply answers every Sync as if the relay agreed: it breaks
	// catch-up after reconnect.
	FailEmptySyncReply = "relay/empty-sync-reply"
	// FailDecodeError makes the next frame fail to decode.
	FailDecodeError = "relay/decode-error"
	// FailAcceptBadProof admits joins whose channel proof does not verify.
	FailAcceptBadProof = "relay/accept-bad-proof"
	// FailStaleEpoch makes every relay start announce the same epoch.
	FailStaleEpoch = "relay/stale-epoch"
	// FailDropDelta ignores the entries of Delta frames (sync pushes).
	FailDropDelta = "relay/drop-delta"
	// FailDropSyncRange ignores the last range of every incoming sync message.
	FailDropSyncRange = "relay/drop-sync-range"
	// FailFirstFrameOnly sends only the first Delta frame of a sync reply.
	FailFirstFrameOnly = "relay/first-frame-only"
	// FailSpuriousResync tells an announcer to sync again after every
	// Announce, though it lost nothing.
	FailSpuriousResync = "relay/spurious-resync"
	// FailEmptyEntryNonFatal answers a malformed Announce (an empty entry,
	// say) with a non-fatal bad entry, as PROTOCOL §8 once said, instead of
	// the fatal protocol error of §3.6.
	FailEmptyEntryNonFatal = "relay/empty-entry-non-fatal"
	// FailJoinHandleZero accepts a Join on the reserved handle 0.
	FailJoinHandleZero = "relay/join-handle-zero"
	// FailJoinRateFirst checks the join rate, with a burst of only
	// max-channels, before the channel cap: joins past the cap were
	// closed with a fatal rate limit instead of the non-fatal Error 6.
	FailJoinRateFirst = "relay/join-rate-first"
)

// handleFrame checks a frame against the connection's limits and state,
// decodes it in the shared step and hands it to the handler of its type.
func (r *Relay) handleFrame(c *conn, t wire.Type, p []byte) error {
	r.stats.FramesIn[t]++
	r.stats.FrameBytesIn[t] += uint64(len(p) + wire.HeaderSize)
	if !c.frames.AllowN(r.now, 1) {
		r.rateLimited(c, "frame rate")
		return errClosed
	}
	if _, ok := fault.Hit(r.cfg.Faults, FailDecodeError); ok {
		return &wire.FrameError{Type: t, Reason: "injected decode error"}
	}
	if !c.hello && t != wire.TypeHello {
		r.stats.HandshakeFailures[wire.CodeNoHello]++
		r.closeWithError(c, wire.CodeNoHello, 0, fmt.Sprintf("%v frame before hello", t))
		return errClosed
	}
	f, err := r.decoded.Decode(t, p)
	switch {
	case errors.Is(err, wire.ErrUnknownType):
		// Skipped so newer clients can talk to this relay.
		r.stats.UnknownFrames++
		return nil
	case err != nil && t == wire.TypeAnnounce && fault.On(r.cfg.Faults, FailEmptyEntryNonFatal):
		r.sendError(c, wire.CodeBadEntry, 0, false, "bad entry (injected: malformed Announce taken as a bad entry)")
		return nil
	case err != nil:
		if !c.hello {
			r.stats.HandshakeFailures[wire.CodeProtocol]++
		}
		return err
	}
	if t != wire.TypeAnnounce {
		r.flushFanout()
	}
	switch f := f.(type) {
	case *wire.Hello:
		err = r.handleHello(c, f)
	case *wire.Join:
		err = r.handleJoin(c, f)
	case *wire.Leave:
		r.handleLeave(c, f)
	case *wire.Announce:
		r.handleAnnounce(c, f)
	case *wire.Delta:
		r.handleDelta(c, f)
	case *wire.Sync:
		r.handleSync(c, f)
	case *wire.Ping:
		r.send(c, &wire.Pong{Data: f.Data})
	case *wire.Pong:
		// Liveness only: Data already refreshed lastRecv.
	case *wire.Error:
		r.handleError(c, f)
	default:
		err = &wire.FrameError{Type: t, Reason: "frame not allowed from a client"}
	}
	if err != nil {
		return err
	}
	if c.closed {
		return errClosed
	}
	return nil
}

// failConn answers a framing or decoding error and closes the connection.
func (r *Relay) failConn(c *conn, err error) {
	if errors.Is(err, errClosed) {
		return
	}
	code := wire.CodeProtocol
	if errors.Is(err, wire.ErrFrameTooLarge) {
		code = wire.CodeFrameTooLarge
	}
	r.stats.ProtocolErrors++
	r.closeWithError(c, code, 0, err.Error())
}

func (r *Relay) handleHello(c *conn, f *wire.Hello) error {
	if c.hello {
		return &wire.FrameError{Type: wire.TypeHello, Reason: "second hello"}
	}
	if f.MinVersion > wire.Version || f.MaxVersion < 1 || f.MinVersion > f.MaxVersion {
		r.stats.HandshakeFailures[wire.CodeVersion]++
		r.closeWithError(c, wire.CodeVersion, 0,
			fmt.Sprintf("no common protocol version: client speaks %d..%d, relay speaks 1..%d", f.MinVersion, f.MaxVersion, wire.Version))
		return errClosed
	}
	if r.draining {
		r.stats.Refused++
		r.closeWithError(c, wire.CodeShuttingDown, 0, errShuttingDown)
		return errClosed
	}
	c.hello = true
	c.rd.Max = r.cfg.MaxFrameSize
	epoch := r.epoch
	if _, ok := fault.Hit(r.cfg.Faults, FailStaleEpoch); ok {
		epoch = 1
	}
	r.send(c, &wire.Welcome{Version: wire.Version, Epoch: epoch, Nonce: c.nonce, Limits: r.cfg.limits()})
	r.timers.Add(r.now.Add(r.cfg.IdleTimeout), c)
	return nil
}

// handleJoin checks a Join in the order of PROTOCOL §6.3: the reserved
// handle, a handle in use, the channel cap, then the join rate (which pays
// for the signature check), so that joins past the cap get the non-fatal
// Error the spec promises and an instance joining all its hubs at
// connect is never rate limited.
func (r *Relay) handleJoin(c *conn, f *wire.Join) error {
	_, rateFirst := fault.Hit(r.cfg.Faults, FailJoinRateFirst)
	if rateFirst && !c.joins.AllowN(r.now, 1) {
		r.rateLimited(c, "join rate")
		return errClosed
	}
	if _, ok := fault.Hit(r.cfg.Faults, FailJoinHandleZero); !ok && f.Handle == 0 {
		r.stats.JoinsDenied++
		return r.denyJoin(c, wire.CodeJoinDenied, 0, "handle 0 is reserved for the whole connection")
	}
	if r.member(c, f.Handle) != nil || slices.Contains(c.verifying, f.Handle) {
		return &wire.FrameError{Type: wire.TypeJoin, Reason: "handle already joined"}
	}
	if slices.Contains(c.verifyingIDs, f.Channel) || slices.ContainsFunc(c.members, func(m *member) bool { return m.ch.id == f.Channel }) {
		// A second membership would only send the connection each entry
		// twice (PROTOCOL §6.6).
		return r.denyJoin(c, wire.CodeJoinDenied, f.Handle, "channel already joined on this connection under another handle")
	}
	if len(c.members)+len(c.verifying) >= r.cfg.MaxChannels {
		// Not fatal even when suspect: an honest instance with more hubs
		// than that meets it.
		r.sendError(c, wire.CodeTooManyChannels, f.Handle, false, fmt.Sprintf("at most %d channels per connection", r.cfg.MaxChannels))
		return nil
	}
	if !rateFirst && !c.joins.AllowN(r.now, 1) {
		r.rateLimited(c, "join rate")
		return errClosed
	}
	if r.cfg.AsyncJoinChecks {
		c.verifying = append(c.verifying, f.Handle)
		c.verifyingIDs = append(c.verifyingIDs, f.Channel)
		r.joinChecks = append(r.joinChecks, JoinCheck{Conn: c.tc, Join: *f, Nonce: c.nonce, Denied: c.denials()})
		return nil
	}
	r.finishJoin(c, f, roster.VerifyJoin(f.Channel, c.nonce, f.Pub, f.Sig))
	return nil
}

// JoinCheck is a join proof the driver verifies off the event loop when
// Config.AsyncJoinChecks is set; see Ready and JoinChecked.
type JoinCheck struct {
	Conn  transport.Conn
	Join  wire.Join
	Nonce [roster.JoinNonceSize]byte
	// Denied counts the joins of Conn denied before this one was queued
	// (at least 1 once Suspect), so a driver can check connections that
	// never sent a bad proof first.
	Denied int
}

// Verify checks the proof. It is safe to call from any goroutine.
func (j *JoinCheck) Verify() bool {
	return roster.VerifyJoin(j.Join.Channel, j.Nonce, j.Join.Pub, j.Join.Sig)
}

// Ready is what the core leaves for its driver, pulled with Ready after
// events, in the style of etcd-io/raft's Ready: the driver acts on it and
// never reads the core's fields.
type Ready struct {
	// JoinChecks are join proofs to verify off the event loop
	// (Config.AsyncJoinChecks); report each result with JoinChecked.
	JoinChecks []JoinCheck
	// FannedOut counts entries handed to members (queued, or merged for a
	// slow one) since the last Ready; drivers time the events that do it.
	FannedOut uint64
}

// Ready returns what accumulated since the last call and clears it.
func (r *Relay) Ready() Ready {
	rd := Ready{JoinChecks: r.joinChecks, FannedOut: r.fannedOut}
	r.joinChecks, r.fannedOut = nil, 0
	return rd
}

// JoinChecked completes a join handed out by Ready: ok reports whether
// its proof verified. A check for a connection gone since is ignored.
func (r *Relay) JoinChecked(j JoinCheck, ok bool, now time.Time) {
	r.at(now)
	c := r.conns[j.Conn]
	if c == nil || c.closed {
		return
	}
	i := slices.Index(c.verifying, j.Join.Handle)
	if i < 0 {
		return
	}
	c.verifying = slices.Delete(c.verifying, i, i+1)
	c.verifyingIDs = slices.Delete(c.verifyingIDs, i, i+1)
	r.finishJoin(c, &j.Join, ok)
	r.flushBackbone()
}

// finishJoin adds the membership of a join whose proof was checked.
func (r *Relay) finishJoin(c *conn, f *wire.Join, verified bool) {
	if _, ok := fault.Hit(r.cfg.Faults, FailAcceptBadProof); ok {
		verified = true
	}
	if !verified {
		r.stats.JoinsDenied++
		r.logConn(logJoinDenied, "conn", c.id, "remote", c.tc.RemoteAddr())
		if r.closeOverDenials(c, f.Handle) {
			return
		}
		r.sendError(c, wire.CodeJoinDenied, f.Handle, false, "channel proof does not verify")
		return
	}
	ch := r.channels[f.Channel]
	if ch == nil && !r.roomFor(channelCost+memberCost) {
		r.stats.Shed++
		r.sendError(c, wire.CodeRelayFull, f.Handle, false, "relay full: memory budget reached")
		return
	}
	if ch == nil {
		ch = &channel{id: f.Channel, complete: r.newChannelComplete(f.Channel)}
		r.channels[f.Channel] = ch
		r.stats.Channels++
		r.bbLearn(ch)
	} else {
		r.bbJoined(ch)
	}
	ch.emptySince = time.Time{}
	m := &member{c: c, ch: ch, handle: f.Handle}
	c.members = append(c.members, m)
	ch.members = append(ch.members, m)
	r.memberCount++
	if r.bbHold(ch, m) {
		return // Joined when the first reconciliation ends (backbone.go)
	}
	r.send(c, &wire.Joined{Handle: f.Handle, Cached: uint32(ch.cache.Len()), Flags: r.joinedFlags(ch)})
}

// member finds c's membership for handle, or tells the peer it has none.
func (r *Relay) member(c *conn, handle uint32) *member {
	for _, m := range c.members {
		if m.handle == handle {
			return m
		}
	}
	return nil
}

func (r *Relay) memberOrError(c *conn, handle uint32) *member {
	m := r.member(c, handle)
	if m == nil {
		r.sendError(c, wire.CodeUnknownHandle, handle, false, "channel handle not joined")
	}
	return m
}

func (r *Relay) handleAnnounce(c *conn, f *wire.Announce) {
	m := r.memberOrError(c, f.Handle)
	if m == nil {
		return
	}
	entries := r.goodEntries(c, f.Handle, f.Entries)
	if _, ok := fault.Hit(r.cfg.Faults, FailDropAnnounce); !ok {
		r.accept(m, entries, true)
	}
	r.ack = wire.Ack{Handle: f.Handle, Seq: f.Seq}
	r.send(c, &r.ack)
	if _, ok := fault.Hit(r.cfg.Faults, FailSpuriousResync); ok {
		r.sendError(c, wire.CodeResync, f.Handle, false, "sync again")
	}
}

func (r *Relay) handleDelta(c *conn, f *wire.Delta) {
	m := r.memberOrError(c, f.Handle)
	if m == nil {
		return
	}
	entries := r.goodEntries(c, f.Handle, f.Entries)
	if _, ok := fault.Hit(r.cfg.Faults, FailDropDelta); ok {
		return
	}
	// Once the cache has evicted, a sync pushes back entries the members
	// already had: fanning them out again tipped slow members into resyncs
	// whose pushes did the same, forever.
	r.accept(m, entries, !m.ch.evictedAny)
}

// goodEntries drops, in place, entries empty or over the size limit
// (PROTOCOL §8: the bad entry is dropped, not its frame) and tells the
// peer once per frame.
func (r *Relay) goodEntries(c *conn, handle uint32, entries [][]byte) [][]byte {
	n := len(entries)
	var bad int
	entries = slices.DeleteFunc(entries, func(e []byte) bool {
		if len(e) == 0 || len(e) > r.cfg.MaxEntrySize {
			bad = len(e)
			return true
		}
		return false
	})
	if dropped := n - len(entries); dropped > 0 {
		r.stats.BadEntries += uint64(dropped)
		r.sendError(c, wire.CodeBadEntry, handle, false,
			fmt.Sprintf("%d of %d entries dropped (one of %d bytes): entries are 1..%d bytes", dropped, n, bad, r.cfg.MaxEntrySize))
	}
	return entries
}

// handleSync answers a sync message, at most SyncReplyEntries entries at a
// time. A connection whose send queue is over HighWater is not answered
// now: the message waits, in order, until the queue drains (Writable), so
// a peer that asks and does not read cannot make the relay queue replies.
func (r *Relay) handleSync(c *conn, f *wire.Sync) {
	if len(c.deferred) > 0 || c.tc.Queued() > r.highWater() {
		r.deferSync(c, f)
		return
	}
	r.answerSync(c, f)
}

// deferSync holds a sync message until the connection's queue drains.
// What waits counts against the connection's send queue cap: a peer that
// asks and does not read is closed once both together pass it.
func (r *Relay) deferSync(c *conn, f *wire.Sync) {
	p := f.AppendPayload(nil)
	if c.deferredBytes+len(p)+c.tc.Queued() > r.cfg.SendQueue {
		r.stats.QueueFull++
		r.closeWithError(c, wire.CodeQueueFull, 0, fmt.Sprintf("sync messages waiting and queued replies over %d bytes on a connection that does not read", r.cfg.SendQueue))
		return
	}
	r.stats.SyncsDeferred++
	if !c.waiting {
		c.waiting = true
		r.waiting = append(r.waiting, c)
		r.armRetry()
	}
	c.deferred = append(c.deferred, p)
	c.deferredBytes += len(p)
}

// answerDeferred answers waiting sync messages while the queue has room.
func (r *Relay) answerDeferred(c *conn) {
	for len(c.deferred) > 0 && !c.closed && c.tc.Queued() <= r.highWater() {
		p := c.deferred[0]
		c.deferred[0] = nil
		c.deferred = c.deferred[1:]
		c.deferredBytes -= len(p)
		f, err := r.decoded.Decode(wire.TypeSync, p)
		if err != nil {
			continue // encoded by us from a decoded frame: cannot fail
		}
		r.answerSync(c, f.(*wire.Sync))
	}
	if len(c.deferred) == 0 {
		c.deferred = nil
	}
}

func (r *Relay) answerSync(c *conn, f *wire.Sync) {
	m := r.memberOrError(c, f.Handle)
	if m == nil || f.Msg.Empty() {
		return
	}
	r.stats.SyncRounds++
	var out roster.SyncMsg
	var give []roster.Entry
	if _, ok := fault.Hit(r.cfg.Faults, FailDropSyncRange); ok && len(f.Msg.Ranges) > 0 {
		f.Msg.Ranges = f.Msg.Ranges[:len(f.Msg.Ranges)-1]
	}
	if _, ok := fault.Hit(r.cfg.Faults, FailEmptySyncReply); !ok {
		out, give = m.ch.cache.ReplySyncLimit(&f.Msg, r.cfg.SyncReplyEntries)
	}
	if _, ok := fault.Hit(r.cfg.Faults, FailFirstFrameOnly); ok && len(give) > 0 {
		give = give[:r.entriesPerFrame(give)]
	}
	r.sendEntries(c, wire.TypeDelta, f.Handle, f.Session, give)
	var n int
	r.out, n = wire.AppendSyncSplit(r.out[:0], &wire.Sync{Handle: f.Handle, Session: f.Session, Msg: out}, r.cfg.MaxFrameSize)
	r.sendRaw(c, r.out, wire.TypeSync)
	r.stats.FramesOut[wire.TypeSync] += uint64(n - 1)
}

func (r *Relay) handleLeave(c *conn, f *wire.Leave) {
	if m := r.memberOrError(c, f.Handle); m != nil {
		r.leave(m)
	}
}

// handleError logs a client's report; a fatal one ends the connection.
func (r *Relay) handleError(c *conn, f *wire.Error) {
	r.logConn(logClientError, "conn", c.id, "code", f.Code, "text", f.Text)
	if f.Flags&wire.ErrorFatal != 0 {
		c.tc.Close()
		r.dropConn(c)
	}
}
