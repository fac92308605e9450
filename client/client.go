package client

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

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

// Observer hears what the client learns. Calls come from the core's event
// context and must not block.
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

// Failpoint names.
const (
	// FailNoSyncOnJoin skips the catch-up sync after a join (and the
	// anti-entropy that would repair it): reconnects then miss entries.
	FailNoSyncOnJoin = "client/no-sync-on-join"
	// FailDropDeliver loses Deliver frames inside the client.
	FailDropDeliver = "client/drop-deliver"
)

// Client is the client core. It implements transport.Handler.
type Client struct {
	cfg    Config
	log    *slog.Logger
	rng    *rand.Rand
	dialer transport.Dialer
	obs    Observer

	state    State
	conn     transport.Conn
	gen      uint64 // bumped per connection attempt; stale timers carry old ones
	rd       wire.Reader
	attempt  int
	addrs    []string
	addrIdx  int
	lastRecv time.Time
	epoch    uint64
	hasEpoch bool
	hb, idle time.Duration // from Welcome, else config
	nonce    [roster.JoinNonceSize]byte

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

// channel is the client's state in one channel.
type channel struct {
	keys        *roster.Keys
	id          roster.ChannelID
	handle      uint32
	roster      roster.Set
	joined      bool
	session     uint32
	outstanding int    // sync messages sent and not yet answered
	pushed      bool   // this sync sent the relay entries it lacked
	barrier     uint64 // Ping data whose Pong ends the sync, if pushed
}

type timerKind uint8

const (
	tReconnect timerKind = iota
	tConnectDeadline
	tPing
	tIdle
	tAntiEntropy
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
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
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
	c.channels = append(c.channels, ch)
	c.byID[ch.id] = ch
	if c.state == Connected {
		c.sendJoin(ch)
	}
	c.timers.Add(now.Add(c.jitter(c.cfg.AntiEntropy)), timer{kind: tAntiEntropy, ch: ch})
	return nil
}

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
	if !ch.joined {
		return 0, nil
	}
	c.seq++
	c.send(&wire.Announce{Handle: ch.handle, Seq: c.seq, Entries: [][]byte{e.Sealed}})
	return c.seq, nil
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
