package client

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/roster"

	"github.com/cosnim/relays/wire"
)

// Failpoints checked in this file.
const (
	// FailDropDeliver loses Deliver frames inside the client.
	FailDropDeliver = "client/drop-deliver"
	// FailNoBackoffReset keeps the reconnect backoff growing across
	// successful connections.
	FailNoBackoffReset = "client/no-backoff-reset"
	// FailIdleBelowHeartbeat times the link out after half a heartbeat.
	FailIdleBelowHeartbeat = "client/idle-below-heartbeat"
	// FailRejoinFirstOnly rejoins only the first channel on a reconnect.
	FailRejoinFirstOnly = "client/rejoin-first-only"
	// FailIgnoreResync ignores a relay's request to sync again.
	FailIgnoreResync = "client/ignore-resync"
	// FailSyncOnAck starts a sync of the channel on every Ack: a catch-up
	// nothing asked for.
	FailSyncOnAck = "client/sync-on-ack"
	// FailAntiEntropyStorm runs anti-entropy ten times as often as set.
	FailAntiEntropyStorm = "client/anti-entropy-storm"
	// FailResyncNotSent starts the sync a Resync asks for but loses its
	// first message, so it never finishes.
	FailResyncNotSent = "client/resync-not-sent"
	// FailCaughtUpEarly reports a channel caught up at every reply of its
	// sync, before the reply is merged and the sync ends.
	FailCaughtUpEarly = "client/caught-up-early"
)

// handleFrame decodes a frame in the shared step and hands it to the
// handler of its type.
func (c *Client) handleFrame(t wire.Type, p []byte, now time.Time) error {
	if c.state != Connected && t != wire.TypeWelcome && t != wire.TypeError {
		return &wire.FrameError{Type: t, Reason: "frame before welcome"}
	}
	f, err := c.decoded.Decode(t, p)
	switch {
	case errors.Is(err, wire.ErrUnknownType):
		return nil // skipped: a newer relay may send them
	case err != nil:
		return err
	}
	switch f := f.(type) {
	case *wire.Welcome:
		c.handleWelcome(f, now)
	case *wire.Joined:
		c.handleJoined(f, now)
	case *wire.Ack:
		c.handleAck(f, now)
	case *wire.Deliver:
		c.handleDeliver(f, now)
	case *wire.Delta:
		c.handleDelta(f, now)
	case *wire.Sync:
		c.handleSync(f, now)
	case *wire.Ping:
		c.send(&wire.Pong{Data: f.Data})
	case *wire.Pong:
		c.handlePong(f, now)
	case *wire.Drain:
		c.handleDrain(f, now)
		return errStale
	case *wire.Error:
		return c.handleError(f, now)
	default:
		// Frames a relay has no reason to send are skipped like unknown
		// ones.
	}
	return nil
}

func (c *Client) handleJoined(f *wire.Joined, now time.Time) {
	if s := c.slot(f.Handle); s != nil && s.left {
		if !s.free { // left while the relay checked the join
			c.send(&wire.Leave{Handle: f.Handle})
		}
		return
	}
	ch := c.channelOf(f.Handle)
	if ch == nil || ch.joined {
		return
	}
	ch.joined = true
	c.startSync(ch)
	if f.Flags&wire.JoinedComplete == 0 {
		// The relay's cache lost entries: catching up from it is not
		// enough, storage must be listed.
		c.obs.Problem(ch.id, wire.CodeRescan, "relay holds only part of the channel: list storage", now)
	}
}

func (c *Client) handleAck(f *wire.Ack, now time.Time) {
	if ch := c.channelOf(f.Handle); ch != nil {
		c.obs.Acked(ch.id, f.Seq, now)
		if _, ok := fault.Hit(c.cfg.Faults, FailSyncOnAck); ok && ch.joined && ch.outstanding == 0 {
			c.startSync(ch)
		}
	}
}

func (c *Client) handleDeliver(f *wire.Deliver, now time.Time) {
	if _, ok := fault.Hit(c.cfg.Faults, FailDropDeliver); ok {
		return
	}
	if ch := c.channelOf(f.Handle); ch != nil {
		c.learn(ch, f.Entries, now)
	}
}

func (c *Client) handleDelta(f *wire.Delta, now time.Time) {
	if ch := c.channelOf(f.Handle); ch != nil {
		c.learn(ch, f.Entries, now)
	}
}

func (c *Client) handleWelcome(f *wire.Welcome, now time.Time) {
	if c.state == Connected {
		return
	}
	c.nonce = f.Nonce
	c.hb, c.idle = c.cfg.Heartbeat, c.cfg.IdleTimeout
	for _, l := range f.Limits {
		switch l.Key {
		case wire.LimitHeartbeatMillis:
			if l.Value > 0 {
				c.hb = time.Duration(l.Value) * time.Millisecond
			}
		case wire.LimitIdleTimeoutMilli:
			if l.Value > 0 {
				c.idle = time.Duration(l.Value) * time.Millisecond
			}
		case wire.LimitMaxFrameSize:
			c.rd.Max = int(min(l.Value, 1<<24))
		case wire.LimitMaxEntrySize:
			c.maxEntry = int(min(l.Value, 1<<24))
		}
	}
	if _, ok := fault.Hit(c.cfg.Faults, FailNoBackoffReset); !ok {
		c.attempt = 0
	}
	if _, ok := fault.Hit(c.cfg.Faults, FailIdleBelowHeartbeat); ok {
		c.idle = c.hb / 2
	}
	c.setState(Connected, now)
	if !c.hasEpoch || c.epoch != f.Epoch {
		changed := c.hasEpoch
		c.epoch, c.hasEpoch = f.Epoch, true
		if changed {
			c.obs.EpochChanged(f.Epoch, now)
		}
	}
	c.timers.Add(now.Add(c.hb), timer{kind: tPing, gen: c.gen})
	c.timers.Add(now.Add(c.idle), timer{kind: tIdle, gen: c.gen})
	_, firstOnly := fault.Hit(c.cfg.Faults, FailRejoinFirstOnly)
	for i, ch := range c.channels {
		if ch.left {
			continue
		}
		if firstOnly && c.stats.Reconnects > 0 && i > 0 {
			break
		}
		c.sendJoin(ch)
	}
}

// handleSync answers a sync message. The relay only answers the client's
// messages, so a reply to the current session that needs no answer ends it.
func (c *Client) handleSync(f *wire.Sync, now time.Time) {
	ch := c.channelOf(f.Handle)
	if ch == nil || !ch.joined {
		return
	}
	current := f.Session == ch.session && ch.outstanding > 0
	if _, ok := fault.Hit(c.cfg.Faults, FailCaughtUpEarly); ok && current {
		c.obs.CaughtUp(ch.id, now)
	}
	if !f.Msg.Empty() {
		out, give := ch.roster.ReplySync(&f.Msg)
		out.Want = c.dropRejected(ch, out.Want)
		c.sendEntries(ch, f.Session, give)
		if current && len(give) > 0 {
			ch.pushed = true
		}
		var n int
		c.out, n = wire.AppendSyncSplit(c.out[:0], &wire.Sync{Handle: ch.handle, Session: f.Session, Msg: out}, c.maxFrame())
		c.sendRaw(c.out)
		// The relay answers each non-empty frame with one reply, whose
		// last frame lacks SyncMore.
		if current && !out.Empty() {
			ch.outstanding += n
		}
	}
	if current && f.Flags&wire.SyncMore == 0 {
		ch.outstanding--
		if ch.outstanding == 0 {
			c.finishSync(ch, now)
		}
	}
}

// finishSync reports a channel caught up. If the sync pushed entries to the
// relay, a Ping goes behind them first: its Pong proves they were stored.
func (c *Client) finishSync(ch *channel, now time.Time) {
	if !ch.pushed {
		c.obs.CaughtUp(ch.id, now)
		return
	}
	c.pings++
	ch.barrier = 1<<63 | c.pings
	c.send(&wire.Ping{Data: ch.barrier})
}

// handlePong ends the syncs that waited on a barrier Ping.
func (c *Client) handlePong(f *wire.Pong, now time.Time) {
	if f.Data&(1<<63) == 0 {
		return
	}
	for _, ch := range c.channels {
		if ch.barrier == f.Data {
			ch.barrier, ch.pushed = 0, false
			c.obs.CaughtUp(ch.id, now)
		}
	}
}

// maxFrame is the largest frame the relay accepts.
func (c *Client) maxFrame() int {
	if c.rd.Max > 0 {
		return c.rd.Max
	}
	return wire.DefaultMaxFrameSize
}

// sendEntries sends entries as Delta frames that fit the frame limit,
// leaving out those over the relay's max entry size.
func (c *Client) sendEntries(ch *channel, session uint32, entries []roster.Entry) {
	if slices.ContainsFunc(entries, c.tooLarge) {
		entries = slices.DeleteFunc(slices.Clone(entries), c.tooLarge)
	}
	for len(entries) > 0 {
		n := wire.EntriesFit(len(entries), func(i int) int { return len(entries[i].Sealed) }, c.maxFrame())
		c.batch = c.batch[:0]
		for _, e := range entries[:n] {
			c.batch = append(c.batch, e.Sealed)
		}
		c.send(&wire.Delta{Handle: ch.handle, Session: session, Entries: c.batch})
		entries = entries[n:]
	}
}

// handleDrain leaves a relay that is going away, reconnecting after its
// delay.
func (c *Client) handleDrain(f *wire.Drain, now time.Time) {
	c.drainAlternates = c.drainAlternates[:0]
	for _, a := range f.Alternates {
		if addr, ok := alternateAddr(a); ok {
			c.drainAlternates = append(c.drainAlternates, addr)
		}
	}
	alternates := c.drainAlternates
	if c.cfg.NoAlternates {
		alternates = nil
	}
	c.addrs, c.addrIdx = drainOrder(c.addrs, c.addrs[c.addrIdx], alternates), 0
	delay := time.Duration(f.AfterMillis) * time.Millisecond
	if f.JitterMillis > 0 {
		delay += time.Duration(c.rng.Int64N(int64(f.JitterMillis)*int64(time.Millisecond) + 1))
	}
	c.drainUntil = now.Add(max(delay, time.Millisecond))
	c.log.Info("relay draining", "addr", c.addrs[len(c.addrs)-1], "reconnect_in", delay)
	c.obs.Problem(roster.ChannelID{}, wire.CodeShuttingDown, fmt.Sprintf("relay draining: reconnecting in %v", delay.Round(time.Millisecond)), now)
	if c.conn != nil {
		c.conn.Close()
	}
	c.lost(now, max(delay, time.Millisecond))
}

func (c *Client) handleError(f *wire.Error, now time.Time) error {
	var id roster.ChannelID
	ch := c.channelOf(f.Handle)
	if ch != nil {
		id = ch.id
	}
	c.obs.Problem(id, f.Code, f.Text, now)
	if f.Flags&wire.ErrorFatal != 0 {
		c.log.Warn("relay closed the connection", "code", f.Code, "text", f.Text)
		if c.conn != nil {
			c.conn.Close()
		}
		c.lost(now, 0)
		return errStale
	}
	if _, ok := fault.Hit(c.cfg.Faults, FailIgnoreResync); ok && f.Code == wire.CodeResync {
		return nil
	}
	if f.Code == wire.CodeResync && ch != nil && ch.joined {
		if _, ok := fault.Hit(c.cfg.Faults, FailResyncNotSent); ok {
			ch.session++
			ch.outstanding = 1
			c.stats.Syncs++
			return nil
		}
		c.startSync(ch)
	}
	return nil
}

// alternateAddr turns a Drain alternate into the HOST:PORT a client
// dials: a relay URL (tcp://HOST[:PORT], tcps://HOST[:PORT], as PROTOCOL
// §4.13 says relays send; the port defaults to wire.DefaultPort) or, from
// relays before it, a bare address, taken as it is. Anything else is
// skipped.
func alternateAddr(s string) (string, bool) {
	i := strings.Index(s, "://")
	if i >= 0 {
		switch strings.ToLower(s[:i]) {
		case "tcp", "tcps":
			s = strings.TrimSuffix(s[i+3:], "/")
		default:
			return "", false
		}
	}
	if s == "" || strings.ContainsAny(s, "/?#@ ") {
		return "", false
	}
	if colon, bracket := strings.LastIndexByte(s, ':'), strings.LastIndexByte(s, ']'); i >= 0 && (colon < 0 || colon < bracket) {
		return s + ":" + strconv.Itoa(wire.DefaultPort), true
	}
	return s, true
}

// drainOrder is the address order after a Drain from draining: its
// alternates first, in their order, then the other known addresses, and
// the draining relay last.
func drainOrder(addrs []string, draining string, alternates []string) []string {
	out := make([]string, 0, len(addrs)+len(alternates))
	for _, a := range alternates {
		if a != draining && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, a := range addrs {
		if a != draining && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return append(out, draining)
}
