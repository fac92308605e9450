package relay

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/cosnim/relays/internal/defaults"
	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/internal/timerq"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// FailNoIdleTimeout keeps silent connections open past IdleTimeout.
const FailNoIdleTimeout = "relay/no-idle-timeout"

// Relay is the relay core. It implements transport.Handler; a driver calls
// its methods one at a time. It starts no goroutines and reads no clock.
type Relay struct {
	cfg   Config
	log   *slog.Logger
	rng   *rand.Rand
	epoch uint64

	conns    map[transport.Conn]*conn // lookups only; never ranged for output
	nextConn uint64
	channels map[roster.ChannelID]*channel
	timers   timerq.Queue[*conn]
	draining bool
	accepts  *rate.Limiter
	// joinChecks are proofs queued for the driver (Config.AsyncJoinChecks).
	joinChecks []JoinCheck
	// top is the view TopChannels last computed, at topAt.
	top       []ChannelTop
	topAt     time.Time
	fannedOut uint64    // entries fanned out since the last Ready
	now       time.Time // of the event being handled; set by at, read by everything below the event methods
	sweepAt   time.Time // when idle channels are next looked at; zero if none
	// held lists members with pending entries, in the order they got
	// them; flushAt is when Tick next tries to flush them (zero if none).
	held    []*member
	waiting []*conn // connections with deferred syncs, retried with held
	flushAt time.Time
	// forgotten records the channels forgotten this epoch (forgotten.go):
	// one created again may have had entries dropped, so its cache cannot
	// claim to hold everything since the epoch began.
	forgotten forgottenSet

	// Memory estimate, for the budget (memory.go): bytes of cached
	// entries, entries held for slow members, and the last sample of send
	// queues and read buffers.
	cachedBytes   int64
	pendingCount  int64
	pendingBytes  int64
	memberCount   int64
	queuedBytes   int64
	bufferedBytes int64
	unsampled     int64 // bytes sent since the last sample
	sampledAt     time.Time
	// shedQuietUntil is when shed may try again after connections alone
	// held more than the budget and none was worth closing.
	shedQuietUntil time.Time

	out           []byte // scratch for encoding frames
	frameBuf      []byte // scratch for encodeEntries
	frames        [][]byte
	sealedScratch [][]byte
	freshScratch  []roster.Entry
	batch         fanBatch
	stats         Stats
	logGates      [numLogKinds]logGate

	// decoded holds the frames payloads decode into, reused so decoding
	// does not allocate.
	decoded wire.Frames

	// Backbone (backbone.go): whether the bus is up, reconciliations in
	// flight by request id (lookups only), anti-entropy and Joined-hold
	// timers, channels with entries to publish at the end of the event,
	// and scratch for encoding.
	bbUp     bool
	bbID     uint32 // names this relay in its backbone messages: from the epoch, never 0
	bbNextID uint64
	bbReqs   map[uint64]*channel
	bbTimers timerq.Queue[*channel]
	bbDirty  []*channel
	bbBuf    []byte
	bbSync   []byte

	// Frames of the per-frame path, kept here so that handing them to
	// wire.Append as a wire.Frame does not allocate.
	ack     wire.Ack
	deliver wire.Deliver
	delta   wire.Delta
}

// conn is one client connection.
type conn struct {
	tc       transport.Conn
	frames   *rate.Limiter
	bytes    *rate.Limiter
	id       uint64
	rd       wire.Reader
	nonce    [roster.JoinNonceSize]byte
	hello    bool
	closed   bool
	opened   time.Time
	lastRecv time.Time
	members  []*member // in join order
	// verifying holds handles whose join proofs the driver is checking,
	// verifyingIDs their channels.
	verifying    []uint32
	verifyingIDs []roster.ChannelID
	joins        *rate.Limiter
	denied       int  // joins denied for a bad proof (denials.go)
	suspect      bool // see Suspect
	// deferred holds sync messages that arrived while the send queue was
	// over HighWater, answered in order once it drains; deferredBytes is
	// their size, bounded by maxDeferred.
	deferred      [][]byte
	deferredBytes int
	waiting       bool // listed in Relay.waiting
	closing       bool // the final Error may pass SendQueue
}

// member is one connection's membership of one channel.
type member struct {
	c       *conn
	ch      *channel
	handle  uint32
	pending []roster.Entry // merged entries held back while the member is slow
	// pendingBytes is what the budget charges for pending (pendCost).
	pendingBytes int64
	held         bool // listed in Relay.held
	// overflows counts times pending overflowed (the member lost entries
	// and should sync again), for checkers (Overflows).
	overflows uint64
}

// New returns a relay core. Its epoch is drawn from rng, so a restarted relay
// announces a new one.
func New(cfg Config, rng *rand.Rand) (*Relay, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := defaults.Logger(cfg.Logger)
	r := &Relay{
		cfg:      cfg,
		log:      log,
		rng:      rng,
		epoch:    rng.Uint64(),
		conns:    make(map[transport.Conn]*conn),
		stats:    Stats{ErrorsSent: map[wire.Code]uint64{}, HandshakeFailures: map[wire.Code]uint64{}},
		channels: make(map[roster.ChannelID]*channel),
		accepts:  rate.NewLimiter(rate.Limit(cfg.AcceptRate), cfg.AcceptRate),
		bbReqs:   make(map[uint64]*channel),
	}
	r.bbID = max(1, uint32(r.epoch))
	return r, nil
}

// admit decides whether a new connection may stay, and why not.
func (r *Relay) admit() (wire.Code, string) {
	_, oldDrain := fault.Hit(r.cfg.Faults, FailOldDrain)
	switch {
	case r.draining && oldDrain:
		return wire.CodeShuttingDown, "relay shutting down"
	case len(r.conns) >= r.cfg.MaxConnections:
		return wire.CodeRelayFull, "relay full: connection limit reached"
	case !r.roomFor(0) && !r.shedCostliestConn():
		// Caches can be evicted to make room; only what cannot refuses.
		r.stats.Shed++
		return wire.CodeRelayFull, "relay full: memory budget reached"
	case !r.accepts.AllowN(r.now, 1):
		return wire.CodeRateLimited, "too many new connections: retry later"
	}
	return 0, ""
}

// rateLimited closes a connection over its frame or byte rate.
func (r *Relay) rateLimited(c *conn, what string) {
	r.stats.RateLimited++
	r.closeWithError(c, wire.CodeRateLimited, 0, what+" limit exceeded")
}

// at is the one way time reaches the core: every entry point calls it
// first with the driver's clock, and nothing below reads time otherwise.
func (r *Relay) at(now time.Time) { r.now = now }

// Epoch returns the value this relay drew at start.
func (r *Relay) Epoch() uint64 { return r.epoch }

var _ transport.Handler = (*Relay)(nil)

// Open accepts a connection.
func (r *Relay) Open(tc transport.Conn, now time.Time) {
	r.at(now)
	r.nextConn++
	c := &conn{tc: tc, id: r.nextConn, opened: now, lastRecv: now}
	c.rd.Max = wire.DefaultMaxFrameSize // until Welcome (PROTOCOL §11)
	if code, text := r.admit(); code != 0 {
		r.stats.Refused++
		r.logConn(logRefused, "remote", tc.RemoteAddr(), "code", code, "reason", text)
		r.sendError(c, code, 0, true, text)
		tc.Close()
		return
	}
	c.frames = rate.NewLimiter(rate.Limit(r.cfg.FrameRate), r.cfg.FrameRate)
	burst := r.cfg.JoinBurst()
	if _, ok := fault.Hit(r.cfg.Faults, FailJoinRateFirst); ok {
		burst = r.cfg.MaxChannels
	}
	c.joins = rate.NewLimiter(rate.Limit(r.cfg.JoinRate), burst)
	c.bytes = rate.NewLimiter(rate.Limit(r.cfg.ByteRate), r.cfg.ByteRate)
	for i := range c.nonce {
		c.nonce[i] = byte(r.rng.Uint32())
	}
	r.conns[tc] = c
	r.stats.Conns++
	r.timers.Add(now.Add(r.cfg.HandshakeTimeout), c)
}

// Data handles bytes from a connection.
func (r *Relay) Data(tc transport.Conn, b []byte, now time.Time) {
	r.at(now)
	c := r.conns[tc]
	if c == nil || c.closed {
		return
	}
	c.lastRecv = now
	r.stats.BytesIn += uint64(len(b))
	if !c.bytes.AllowN(now, min(len(b), r.cfg.ByteRate)) {
		r.rateLimited(c, "byte rate")
		return
	}
	r.batch.on = true
	err := c.rd.Feed(b, func(t wire.Type, p []byte) error {
		return r.handleFrame(c, t, p)
	})
	r.batch.on = false
	r.flushFanout()
	if err != nil && !c.closed {
		r.failConn(c, err)
	}
	r.flushBackbone()
	if r.overBudget() {
		r.shed() // what the event queued: stores check before their fan-out
	}
}

// Writable flushes entries held back for a member that was slow.
func (r *Relay) Writable(tc transport.Conn, now time.Time) {
	r.at(now)
	c := r.conns[tc]
	if c == nil || c.closed {
		return
	}
	for _, m := range c.members {
		r.flushPending(m)
	}
	r.answerDeferred(c)
	r.flushBackbone()
}

// Closed forgets a connection that died.
func (r *Relay) Closed(tc transport.Conn, err error, now time.Time) {
	r.at(now)
	c := r.conns[tc]
	if c == nil {
		return
	}
	r.log.Debug("connection closed", "conn", c.id, "remote", tc.RemoteAddr(), "err", err)
	r.dropConn(c)
}

// Tick enforces handshake and idle timeouts.
func (r *Relay) Tick(now time.Time) {
	r.at(now)
	r.flushLogs()
	if !r.sweepAt.IsZero() && !now.Before(r.sweepAt) {
		r.sweep()
	}
	if !r.flushAt.IsZero() && !now.Before(r.flushAt) {
		r.retryHeld()
	}
	if r.cfg.Backbone != nil {
		r.bbTick()
	}
	defer r.flushBackbone()
	for {
		c, ok := r.timers.PopDue(now)
		if !ok {
			return
		}
		if c.closed {
			continue
		}
		if !c.hello {
			r.stats.HandshakeFailures[wire.CodeHandshakeTimout]++
			r.closeWithError(c, wire.CodeHandshakeTimout, 0, "no hello within the handshake timeout")
			continue
		}
		due := c.lastRecv.Add(r.cfg.IdleTimeout)
		if _, ok := fault.Hit(r.cfg.Faults, FailNoIdleTimeout); ok {
			due = now.Add(r.cfg.IdleTimeout)
		}
		if !now.Before(due) {
			r.closeWithError(c, wire.CodeIdle, 0, "idle timeout")
			continue
		}
		r.timers.Add(due, c)
	}
}

// Deadline reports when Tick is next due.
func (r *Relay) Deadline() (time.Time, bool) {
	t, ok := r.timers.Next()
	bbAt, _ := r.bbTimers.Next()
	for _, at := range [...]time.Time{r.sweepAt, r.flushAt, bbAt} {
		if !at.IsZero() && (!ok || at.Before(t)) {
			t, ok = at, true
		}
	}
	return t, ok
}

// FailOldDrain brings back the shutdown of before PROTOCOL §12.2 was made
// precise: connections arriving during a drain are refused before Hello
// (the driver stops listening at once), and those left at the end are cut
// without Error 12.
const FailOldDrain = "relay/old-drain"

// errShuttingDown is the text of Error 12.
const errShuttingDown = "relay shutting down: reconnect later, or to another relay"

// Drain tells every client at once to reconnect elsewhere or later
// (PROTOCOL §12.2). The relay keeps serving; a connection that arrives
// meanwhile is answered Error 12 after its Hello. The driver calls
// CloseAll when every client has left or its grace has passed.
func (r *Relay) Drain(now time.Time, after, jitter time.Duration, alternates []string) {
	r.at(now)
	r.draining = true
	f := &wire.Drain{
		AfterMillis:  uint32(after.Milliseconds()),
		JitterMillis: uint32(jitter.Milliseconds()),
		Alternates:   alternates,
	}
	for _, c := range r.sortedConns() {
		r.send(c, f)
	}
}

// Draining reports whether Drain was called.
func (r *Relay) Draining() bool { return r.draining }

// CloseAll closes every connection, in connection order, with a fatal
// Error 12 (shutting down).
func (r *Relay) CloseAll(now time.Time) {
	r.at(now)
	_, bare := fault.Hit(r.cfg.Faults, FailOldDrain)
	for _, c := range r.sortedConns() {
		if bare {
			c.tc.Close()
			r.dropConn(c)
			continue
		}
		r.closeWithError(c, wire.CodeShuttingDown, 0, errShuttingDown)
	}
}

// sortedConns lists live connections by id, so output never follows map order.
func (r *Relay) sortedConns() []*conn {
	list := make([]*conn, 0, len(r.conns))
	for _, c := range r.conns { // sorted: below
		list = append(list, c)
	}
	slices.SortFunc(list, func(a, b *conn) int { return cmpUint64(a.id, b.id) })
	return list
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// send encodes f and queues it on c.
func (r *Relay) send(c *conn, f wire.Frame) {
	r.out = wire.Append(r.out[:0], f)
	r.sendRaw(c, r.out, f.FrameType())
}

func (r *Relay) sendRaw(c *conn, b []byte, t wire.Type) {
	if c.closed {
		return
	}
	if !c.closing && c.tc.Queued()+len(b) > r.cfg.SendQueue {
		r.stats.QueueFull++
		r.abortWithError(c, wire.CodeQueueFull, fmt.Sprintf("send queue over %d bytes: the connection stopped reading", r.cfg.SendQueue))
		return
	}
	if err := c.tc.Send(b); err != nil {
		return
	}
	r.queuedBytes += int64(len(b)) // until the next sample sees it drain
	r.unsampled += int64(len(b))
	r.stats.FramesOut[t]++
	r.stats.FrameBytesOut[t] += uint64(len(b))
	r.stats.BytesOut += uint64(len(b))
}

func (r *Relay) sendError(c *conn, code wire.Code, handle uint32, fatal bool, text string) {
	f := &wire.Error{Code: code, Handle: handle, Text: text}
	if fatal {
		f.Flags = wire.ErrorFatal
	}
	r.stats.ErrorsSent[code]++
	r.send(c, f)
}

// closeWithError tells the peer why and closes the connection.
func (r *Relay) closeWithError(c *conn, code wire.Code, handle uint32, text string) {
	c.closing = true
	r.logConn(logClosing, "conn", c.id, "remote", c.tc.RemoteAddr(), "code", code, "reason", text)
	r.sendError(c, code, handle, true, text)
	c.tc.Close()
	r.dropConn(c)
}

// abortWithError closes a connection for what its queue holds: at once,
// dropping the queue, where the driver can (transport.Aborter); the
// error, sent first, reaches the peer only where it cannot.
func (r *Relay) abortWithError(c *conn, code wire.Code, text string) {
	a, ok := c.tc.(transport.Aborter)
	if !ok {
		r.closeWithError(c, code, 0, text)
		return
	}
	c.closing = true
	r.logConn(logClosing, "conn", c.id, "remote", c.tc.RemoteAddr(), "code", code, "reason", text)
	r.sendError(c, code, 0, true, text)
	a.Abort()
	r.dropConn(c)
}

func (r *Relay) dropConn(c *conn) {
	if c.closed {
		return
	}
	c.closed = true
	delete(r.conns, c.tc)
	for _, m := range slices.Clone(c.members) { // leave edits c.members
		r.leave(m)
	}
	// The timer queue keeps c until its deadline: let go of the rest now.
	c.members, c.tc, c.frames, c.bytes, c.joins = nil, nil, nil, nil, nil
	c.deferred, c.deferredBytes = nil, 0
	c.rd.Reset()
}
