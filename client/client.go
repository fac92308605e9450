package client

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/cosnim/relays/internal/defaults"
	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/internal/timerq"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// State is the client's link to its relay.
type State int

const (
	Disconnected State = iota // waiting to reconnect
	Connecting                // dialing or handshaking
	Connected                 // handshake done
	Stopped                   // Stop was called
)

func (s State) String() string {
	switch s {
	case Disconnected:
		return "disconnected"
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Observer hears what the client learns. Calls run on the core's event
// context, inside the event that caused them: under the driver's loop lock
// (tcp.Loop) or on the simulator's one thread. An Observer must not block,
// must not call back into the core or its loop, and may take only locks
// that its driver never holds while calling into the loop; the Agent's
// observer takes its own mutex, which it never holds across a loop call.
type Observer interface {
	// Learned reports capsule references new to this client in a channel.
	Learned(ch roster.ChannelID, refs [][]byte, now time.Time)
	// StateChanged reports a change of link state.
	StateChanged(s State, now time.Time)
	// CaughtUp reports a finished sync: the client holds all the relay had,
	// and the relay has stored what the client had and it lacked.
	CaughtUp(ch roster.ChannelID, now time.Time)
	// EpochChanged reports a relay that forgot everything (restarted).
	EpochChanged(epoch uint64, now time.Time)
	// Acked reports the relay's ack of an announce.
	Acked(ch roster.ChannelID, seq uint32, now time.Time)
	// Problem reports an error frame, a relay asking for a rescan
	// (wire.CodeRescan) or a relay draining (wire.CodeShuttingDown).
	Problem(ch roster.ChannelID, code wire.Code, text string, now time.Time)
}

// Client is the client core. It implements transport.Handler.
type Client struct {
	cfg Config
	log *slog.Logger
	// lastFail is the reason the last attempt to connect failed, logged
	// once while it repeats ("" after a connection).
	lastFail string
	rng      *rand.Rand
	dialer   transport.Dialer
	obs      Observer

	state    State
	conn     transport.Conn
	gen      uint64 // bumped per connection attempt; stale timers carry old ones
	rd       wire.Reader
	attempt  int
	addrs    []string
	addrIdx  int
	lastRecv time.Time
	// drained is BytesOut minus what was still queued at the last idle
	// check (or Open): bytes that left since show our upload moving.
	drained  uint64
	epoch    uint64
	hasEpoch bool
	hb, idle time.Duration // from Welcome, else config
	maxEntry int           // from Welcome; 0 until then
	nonce    [roster.JoinNonceSize]byte
	// drainUntil is when the relay's last Drain lets us reconnect;
	// drainAlternates are the relays it named instead.
	drainUntil      time.Time
	drainAlternates []string

	channels []*channel // in Join order; handle = index+1
	byID     map[roster.ChannelID]*channel
	timers   timerq.Queue[timer]
	seq      uint32
	pings    uint64 // barrier pings sent
	out      []byte
	batch    [][]byte // scratch for sendEntries
	stats    Stats

	decoded wire.Frames // payloads decode into these, reused
}

type timerKind uint8

const (
	tReconnect timerKind = iota
	tConnectDeadline
	tPing
	tIdle
	tAntiEntropy
	tAnnounce // send held announces
)

type timer struct {
	kind timerKind
	gen  uint64
	ch   *channel
}

// New returns a client core. Call Start to connect.
func New(cfg Config, d transport.Dialer, rng *rand.Rand, obs Observer) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := defaults.Logger(cfg.Logger)
	if obs == nil {
		obs = NopObserver{}
	}
	return &Client{
		cfg: cfg, log: log, rng: rng, dialer: d, obs: obs,
		addrs: append([]string(nil), cfg.Addrs...),
		byID:  make(map[roster.ChannelID]*channel),
		hb:    cfg.Heartbeat, idle: cfg.IdleTimeout,
	}, nil
}

var _ transport.Handler = (*Client)(nil)

// State reports the link state.
func (c *Client) State() State { return c.state }

// Start begins connecting.
func (c *Client) Start(now time.Time) {
	if c.state == Disconnected && c.conn == nil {
		c.dial(now)
	}
}

// Stop closes the link and stops reconnecting.
func (c *Client) Stop(now time.Time) {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	c.gen++
	c.setState(Stopped, now)
}

// Join adds a channel. Entries previously known (from local storage) may be
// given in known; they are synced with the relay on every connection.
func (c *Client) Join(keys *roster.Keys, known []roster.Entry, now time.Time) error {
	if _, dup := c.byID[keys.ID()]; dup {
		return fmt.Errorf("client: channel %x joined twice", keys.ID().Short())
	}
	ch := &channel{keys: keys, id: keys.ID(), handle: uint32(len(c.channels) + 1)}
	for _, e := range known {
		ch.roster.Add(e)
	}
	if i := c.freeSlot(); i >= 0 {
		ch.handle = uint32(i + 1)
		c.channels[i] = ch
	} else {
		c.channels = append(c.channels, ch)
	}
	c.byID[ch.id] = ch
	if c.state == Connected {
		c.sendJoin(ch)
	}
	c.timers.Add(now.Add(c.jitter(c.cfg.AntiEntropy)), timer{kind: tAntiEntropy, ch: ch})
	return nil
}

// freeSlot returns the index of a left channel whose handle may be
// reused, or -1.
func (c *Client) freeSlot() int {
	for i, ch := range c.channels {
		if ch.free {
			return i
		}
	}
	return -1
}

// Leave gives up a channel: the relay is told (wire.Leave) if it has or is
// granting the join, and the client forgets the channel and its roster.
// The handle is reused by a later Join once the connection it was left on
// has ended, so a relay's late frames on it never reach another channel.
func (c *Client) Leave(id roster.ChannelID, now time.Time) error {
	ch := c.byID[id]
	if ch == nil {
		return fmt.Errorf("client: channel %x not joined", id.Short())
	}
	delete(c.byID, id)
	ch.left = true
	ch.held, ch.outstanding, ch.barrier, ch.pushed = nil, 0, 0, false
	switch {
	case c.state != Connected:
		ch.free = true
	case ch.joined:
		c.send(&wire.Leave{Handle: ch.handle})
		// Otherwise the Join is still being checked: handleJoined sends
		// the Leave when it is granted.
	}
	ch.joined = false
	return nil
}

// Merge adds entries (sealed with the channel's keys, e.g. learned over
// another relay of a pool) to the channel's roster without sending them
// and without telling the Observer; the next sync with the relay pushes
// those it lacks. It returns how many were new.
func (c *Client) Merge(id roster.ChannelID, entries []roster.Entry) (int, error) {
	ch := c.byID[id]
	if ch == nil {
		return 0, fmt.Errorf("client: channel %x not joined", id.Short())
	}
	n := 0
	for _, e := range entries {
		if ch.roster.Add(e) {
			n++
		}
	}
	return n, nil
}

// DrainUntil reports when the relay's last Drain frame allows
// reconnecting (zero if it never drained).
func (c *Client) DrainUntil() time.Time { return c.drainUntil }

// DrainAlternates returns the addresses the relay's last Drain named to
// reconnect to instead (nil if none); the caller must not modify them.
func (c *Client) DrainAlternates() []string { return c.drainAlternates }

// Announce seals ref, adds it to the roster at once and sends it to the
// relay if connected (else the next sync carries it). It returns the
// announce's sequence number, or 0 if nothing was sent.
func (c *Client) Announce(id roster.ChannelID, ref []byte, now time.Time) (uint32, error) {
	ch := c.byID[id]
	if ch == nil {
		return 0, fmt.Errorf("client: channel %x not joined", id.Short())
	}
	e, err := ch.keys.Seal(ref)
	if err != nil {
		return 0, err
	}
	if !ch.roster.Add(e) {
		return 0, nil
	}
	c.stats.Announced++
	if c.tooLarge(e) {
		return 0, fmt.Errorf("%w: %d sealed bytes, the relay takes %d", ErrEntryTooLarge, len(e.Sealed), c.maxEntry)
	}
	if !ch.joined {
		return 0, nil
	}
	if c.cfg.AnnounceDelay > 0 {
		return c.hold(ch, e, now), nil
	}
	c.seq++
	c.send(&wire.Announce{Handle: ch.handle, Seq: c.seq, Entries: [][]byte{e.Sealed}})
	return c.seq, nil
}

// hold keeps an announce for AnnounceDelay, to leave with the others made
// meanwhile; they share one seq, whose Ack acknowledges them all.
// One seq names one frame: announces that would overflow the frame leave
// at once, and the next ones start a seq of their own, so that the Ack of
// a seq acknowledges every entry that carried it.
func (c *Client) hold(ch *channel, e roster.Entry, now time.Time) uint32 {
	if n := len(ch.held); n > 0 && (wire.EntriesFrameSize(n+1, ch.heldBytes+len(e.Sealed)) > c.maxFrame() || n == 0xFFFF) {
		c.sendHeld(ch)
	}
	if len(ch.held) == 0 {
		c.seq++
		ch.heldSeq = c.seq
		c.timers.Add(now.Add(c.cfg.AnnounceDelay), timer{kind: tAnnounce, gen: c.gen, ch: ch})
	}
	ch.held = append(ch.held, e.Sealed)
	ch.heldBytes += len(e.Sealed)
	return ch.heldSeq
}

// sendHeld sends ch's held announces, in as few frames as fit.
func (c *Client) sendHeld(ch *channel) {
	for held := ch.held; len(held) > 0; {
		n := wire.EntriesFit(len(held), func(i int) int { return len(held[i]) }, c.maxFrame())
		c.send(&wire.Announce{Handle: ch.handle, Seq: ch.heldSeq, Entries: held[:n]})
		held = held[n:]
	}
	ch.held, ch.heldBytes = nil, 0
}

// Roster returns the channel's roster. The caller must not modify it.
func (c *Client) Roster(id roster.ChannelID) *roster.Set {
	if ch := c.byID[id]; ch != nil {
		return &ch.roster
	}
	return nil
}

// Epoch reports the epoch of the relay last connected to.
func (c *Client) Epoch() (uint64, bool) { return c.epoch, c.hasEpoch }

// Stats returns the client's counters.
func (c *Client) Stats() Stats { return c.stats }

// Stats counts what the client did.
type Stats struct {
	Announced  uint64 // entries announced locally
	Learned    uint64 // entries learned from the relay
	Forged     uint64 // entries refused because they did not open
	Syncs      uint64 // syncs started
	Reconnects uint64 // connection attempts after the first
	BytesOut   uint64
	BytesIn    uint64
}

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) Learned(roster.ChannelID, [][]byte, time.Time)          {}
func (NopObserver) StateChanged(State, time.Time)                          {}
func (NopObserver) CaughtUp(roster.ChannelID, time.Time)                   {}
func (NopObserver) EpochChanged(uint64, time.Time)                         {}
func (NopObserver) Acked(roster.ChannelID, uint32, time.Time)              {}
func (NopObserver) Problem(roster.ChannelID, wire.Code, string, time.Time) {}

// Open reports the relay connection is up: the handshake starts.
func (c *Client) Open(tc transport.Conn, now time.Time) {
	if tc != c.conn {
		return
	}
	c.lastRecv = now
	c.snapshotDrained()
	c.send(&wire.Hello{MinVersion: 1, MaxVersion: wire.Version, Agent: c.cfg.Agent})
}

// Data handles bytes from the relay.
func (c *Client) Data(tc transport.Conn, b []byte, now time.Time) {
	if tc != c.conn {
		return
	}
	c.lastRecv = now
	c.stats.BytesIn += uint64(len(b))
	gen := c.gen
	err := c.rd.Feed(b, func(t wire.Type, p []byte) error {
		if c.gen != gen {
			return errStale
		}
		return c.handleFrame(t, p, now)
	})
	if err != nil && !errors.Is(err, errStale) && c.gen == gen {
		c.log.Warn("relay sent a bad frame", "err", err)
		c.fail(wire.CodeProtocol, err.Error(), now)
	}
}

var errStale = errors.New("client: connection replaced")

// ErrEntryTooLarge reports an announce that entered the roster but is over
// the relay's max entry size, so the relay will not carry it; instances
// still learn it from storage.
var ErrEntryTooLarge = errors.New("client: entry over the relay's max entry size")

// tooLarge reports an entry the connected relay would refuse.
func (c *Client) tooLarge(e roster.Entry) bool {
	return c.maxEntry > 0 && len(e.Sealed) > c.maxEntry
}

// Writable is not needed by the client: it sends little.
func (c *Client) Writable(transport.Conn, time.Time) {}

// Closed reports the link died or the dial failed.
func (c *Client) Closed(tc transport.Conn, err error, now time.Time) {
	if tc != c.conn {
		return
	}
	c.logClosed(err)
	c.lost(now, 0)
}

// logClosed logs why the link ended: a lost connection always, a failed
// attempt only when its reason differs from the last one's, so that
// retries against a relay that cannot be reached say why once.
func (c *Client) logClosed(err error) {
	addr := c.addrs[c.addrIdx]
	if c.state == Connected {
		c.lastFail = ""
		c.log.Info("relay connection lost", "addr", addr, "err", err)
		return
	}
	reason := fmt.Sprint(err)
	if reason == c.lastFail {
		c.log.Debug("could not connect to the relay", "addr", addr, "err", err)
		return
	}
	c.lastFail = reason
	c.log.Info("could not connect to the relay", "addr", addr, "err", err)
}

// Tick fires due timers.
func (c *Client) Tick(now time.Time) {
	for {
		t, ok := c.timers.PopDue(now)
		if !ok {
			return
		}
		switch t.kind {
		case tAntiEntropy:
			if c.state != Stopped && !t.ch.left {
				if t.ch.joined && t.ch.outstanding == 0 {
					c.startSync(t.ch)
				}
				next := c.jitter(c.cfg.AntiEntropy)
				if _, ok := fault.Hit(c.cfg.Faults, FailAntiEntropyStorm); ok {
					next /= 10
				}
				c.timers.Add(now.Add(next), t)
			}
			continue
		}
		if t.gen != c.gen {
			continue
		}
		switch t.kind {
		case tAnnounce:
			c.sendHeld(t.ch)
		case tReconnect:
			c.dial(now)
		case tConnectDeadline:
			if c.state == Connecting {
				c.log.Info("relay connection timed out", "addr", c.addrs[c.addrIdx])
				c.drop(now)
			}
		case tPing:
			c.send(&wire.Ping{Data: uint64(now.UnixNano())})
			c.timers.Add(now.Add(c.hb), timer{kind: tPing, gen: c.gen})
		case tIdle:
			due := c.lastRecv.Add(c.idle)
			if !now.Before(due) && now.Before(due.Add(c.idle)) && c.uploading() {
				// Our Ping waits behind our own upload (a big sync push on a
				// slow link): the relay's silence says nothing yet. Bytes
				// still leave, so look again a heartbeat later, for at most
				// one more idle period: bytes may leave into a dead link
				// too (found by the simulator's churn check, seed 4013).
				next := now.Add(c.hb)
				if last := due.Add(c.idle); last.Before(next) {
					next = last
				}
				c.timers.Add(next, timer{kind: tIdle, gen: c.gen})
				continue
			}
			if !now.Before(due) {
				c.log.Info("relay went silent", "addr", c.addrs[c.addrIdx])
				c.drop(now)
			} else {
				c.snapshotDrained()
				c.timers.Add(due, timer{kind: tIdle, gen: c.gen})
			}
		}
	}
}

// uploading reports whether bytes are queued on the connection and some
// left it since the last look.
func (c *Client) uploading() bool {
	before := c.drained
	c.snapshotDrained()
	return c.conn != nil && c.conn.Queued() > 0 && c.drained > before
}

// snapshotDrained notes how many of the bytes sent have left the queue.
func (c *Client) snapshotDrained() {
	if c.conn != nil {
		c.drained = c.stats.BytesOut - min(c.stats.BytesOut, uint64(c.conn.Queued()))
	}
}

// Deadline reports the next timer.
func (c *Client) Deadline() (time.Time, bool) { return c.timers.Next() }

func (c *Client) dial(now time.Time) {
	c.gen++
	c.rd = wire.Reader{}
	c.setState(Connecting, now)
	c.conn = c.dialer.Dial(c.addrs[c.addrIdx])
	c.timers.Add(now.Add(c.cfg.ConnectTimeout), timer{kind: tConnectDeadline, gen: c.gen})
}

// drop closes the current connection and schedules a reconnect.
func (c *Client) drop(now time.Time) {
	if c.conn != nil {
		c.conn.Close()
	}
	c.lost(now, 0)
}

// fail tells the relay why, then drops the connection.
func (c *Client) fail(code wire.Code, text string, now time.Time) {
	c.send(&wire.Error{Code: code, Flags: wire.ErrorFatal, Text: text})
	c.drop(now)
}

// lost forgets the connection and schedules the next attempt: after delay
// if given (a drain), else after an exponential, jittered backoff.
func (c *Client) lost(now time.Time, delay time.Duration) {
	c.conn = nil
	c.gen++
	for _, ch := range c.channels {
		ch.free = ch.free || ch.left
		ch.joined = false
		ch.outstanding = 0
		ch.pushed, ch.barrier = false, 0
		ch.held, ch.heldBytes = nil, 0 // in the roster: the next catch-up carries them
	}
	if c.state == Stopped {
		return
	}
	if delay == 0 {
		base := c.cfg.BackoffMin << min(c.attempt, 30)
		if base > c.cfg.BackoffMax || base <= 0 {
			base = c.cfg.BackoffMax
		}
		delay = base/2 + time.Duration(c.rng.Int64N(int64(base/2)+1))
		c.attempt++
		c.addrIdx = (c.addrIdx + 1) % len(c.addrs)
	}
	c.stats.Reconnects++
	c.setState(Disconnected, now)
	c.timers.Add(now.Add(delay), timer{kind: tReconnect, gen: c.gen})
}

func (c *Client) setState(s State, now time.Time) {
	if c.state != s {
		c.state = s
		c.obs.StateChanged(s, now)
	}
}

// jitter spreads a period by ±10% so that clients do not move in step.
func (c *Client) jitter(d time.Duration) time.Duration {
	spread := int64(d) / 5
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread/2) + time.Duration(c.rng.Int64N(spread))
}

func (c *Client) send(f wire.Frame) {
	if c.conn == nil {
		return
	}
	c.out = wire.Append(c.out[:0], f)
	c.sendRaw(c.out)
}

func (c *Client) sendRaw(b []byte) {
	if c.conn != nil && c.conn.Send(b) == nil {
		c.stats.BytesOut += uint64(len(b))
	}
}
