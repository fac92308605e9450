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
	case err != nil:
		if !c.hello {
			r.stats.HandshakeFailures[wire.CodeProtocol]++
		}
		return err
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
	c.hello = true
	epoch := r.epoch
	if _, ok := fault.Hit(r.cfg.Faults, FailStaleEpoch); ok {
		epoch = 1
	}
	r.send(c, &wire.Welcome{Version: wire.Version, Epoch: epoch, Nonce: c.nonce, Limits: r.cfg.limits()})
	r.timers.Add(r.now.Add(r.cfg.IdleTimeout), c)
	return nil
}

func (r *Relay) handleJoin(c *conn, f *wire.Join) error {
	if r.member(c, f.Handle) != nil || slices.Contains(c.verifying, f.Handle) {
		return &wire.FrameError{Type: wire.TypeJoin, Reason: "handle already joined"}
	}
	if len(c.members)+len(c.verifying) >= r.cfg.MaxChannels {
		r.sendError(c, wire.CodeTooManyChannels, f.Handle, false, fmt.Sprintf("at most %d channels per connection", r.cfg.MaxChannels))
		return nil
	}
	if r.cfg.AsyncJoinChecks {
		c.verifying = append(c.verifying, f.Handle)
		r.joinChecks = append(r.joinChecks, JoinCheck{Conn: c.tc, Join: *f, Nonce: c.nonce})
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
	r.finishJoin(c, &j.Join, ok)
}

// finishJoin adds the membership of a join whose proof was checked.
func (r *Relay) finishJoin(c *conn, f *wire.Join, verified bool) {
	if _, ok := fault.Hit(r.cfg.Faults, FailAcceptBadProof); ok {
		verified = true
	}
	if !verified {
		r.stats.JoinsDenied++
		r.log.Info("join denied: bad channel proof", "conn", c.id, "remote", c.tc.RemoteAddr())
		r.sendError(c, wire.CodeJoinDenied, f.Handle, false, "channel proof does not verify")
		return
	}
	ch := r.channels[f.Channel]
	if ch == nil && r.memory() > r.cfg.MemoryBudget {
		r.stats.Shed++
		r.sendError(c, wire.CodeRelayFull, f.Handle, false, "relay full: memory budget reached")
		return
	}
	if ch == nil {
		ch = &channel{id: f.Channel, complete: !r.forgot}
		r.channels[f.Channel] = ch
		r.stats.Channels++
	}
	ch.emptySince = time.Time{}
	m := &member{c: c, ch: ch, handle: f.Handle}
	c.members = append(c.members, m)
	ch.members = append(ch.members, m)
	var flags uint8
	if ch.complete {
		flags |= wire.JoinedComplete
	}
	r.send(c, &wire.Joined{Handle: f.Handle, Cached: uint32(ch.cache.Len()), Flags: flags})
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
	if m == nil || !r.checkEntries(c, f.Handle, f.Entries) {
		return
	}
	if _, ok := fault.Hit(r.cfg.Faults, FailDropAnnounce); !ok {
		r.accept(m, f.Entries, true)
	}
	r.send(c, &wire.Ack{Handle: f.Handle, Seq: f.Seq})
}

func (r *Relay) handleDelta(c *conn, f *wire.Delta) {
	m := r.memberOrError(c, f.Handle)
	if m == nil || !r.checkEntries(c, f.Handle, f.Entries) {
		return
	}
	if _, ok := fault.Hit(r.cfg.Faults, FailDropDelta); ok {
		return
	}
	// Once the cache has evicted, a sync pushes back entries the members
	// already had: fanning them out again tipped slow members into resyncs
	// whose pushes did the same, forever.
	r.accept(m, f.Entries, !m.ch.evictedAny)
}

// checkEntries refuses a batch holding an entry over the size limit.
func (r *Relay) checkEntries(c *conn, handle uint32, entries [][]byte) bool {
	for _, e := range entries {
		if len(e) == 0 || len(e) > r.cfg.MaxEntrySize {
			r.stats.BadEntries++
			r.sendError(c, wire.CodeBadEntry, handle, false, fmt.Sprintf("entry of %d bytes: entries are 1..%d bytes", len(e), r.cfg.MaxEntrySize))
			return false
		}
	}
	return true
}

func (r *Relay) handleSync(c *conn, f *wire.Sync) {
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
		out, give = m.ch.cache.ReplySync(&f.Msg)
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
	if m := r.member(c, f.Handle); m != nil {
		r.leave(m)
	}
}

// handleError logs a client's report; a fatal one ends the connection.
func (r *Relay) handleError(c *conn, f *wire.Error) {
	r.log.Info("client reported error", "conn", c.id, "code", f.Code, "text", f.Text)
	if f.Flags&wire.ErrorFatal != 0 {
		c.tc.Close()
		r.dropConn(c)
	}
}
