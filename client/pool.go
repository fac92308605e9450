package client

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cosnim/relays/internal/defaults"
	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
)

// DefaultHysteresis is PoolConfig.Hysteresis's default: how long a
// preferred relay must have stayed connected before channels move back to
// it, so that a flapping relay does not drag its channels along.
const DefaultHysteresis = 10 * time.Second

// MaxPoolRelays bounds the relays of one pool.
const MaxPoolRelays = 64

// FailPoolFirstHomeOnly sends announces to a channel's first home only,
// leaving its other homes to learn them from the backbone or a sync.
const FailPoolFirstHomeOnly = "client/pool-first-home-only"

// FailPoolNoFailover keeps a channel's first homes for good: a lost home
// is never replaced.
const FailPoolNoFailover = "client/pool-no-failover"

// maxPendingAcks bounds the announces a pool remembers per relay while
// waiting for their acks; the oldest are forgotten first (a catch-up
// carries them all the same).
const maxPendingAcks = 4096

// DefaultHomes is the number of homes a pool of n relays keeps per
// channel when PoolConfig.Homes is zero: 2 if it can, else 1.
func DefaultHomes(n int) int { return min(n, 2) }

// PoolRelay is one relay of a pool.
type PoolRelay struct {
	// Name orders the pool (see RendezvousWeight): every member of a
	// channel must use the same names for the same relays.
	Name string
	// Addrs are the relay's addresses, tried in turn by its Client.
	Addrs []string
	// Dialer, if not nil, dials this relay instead of the pool's dialer
	// (a relay with its own TLS settings).
	Dialer transport.Dialer
}

// PoolConfig configures a Pool.
type PoolConfig struct {
	Relays []PoolRelay
	// Homes is how many relays each channel is joined on (default
	// DefaultHomes(len(Relays))); between 1 and len(Relays).
	Homes int
	// Hysteresis is how long a preferred relay stays connected before
	// channels move back to it (default DefaultHysteresis).
	Hysteresis time.Duration
	// Client holds every relay's client settings; its Addrs is ignored
	// (each relay has its own).
	Client Config
	// Listing gives the thresholds by which a relay that asks for urgent
	// listings too often is marked (RelayStatus.Suspect); the instance's
	// ListConfig, zero fields taking its defaults.
	Listing ListConfig
}

// WithDefaults fills zero fields with defaults.
func (c PoolConfig) WithDefaults() PoolConfig {
	if c.Homes == 0 {
		c.Homes = DefaultHomes(len(c.Relays))
	}
	if c.Hysteresis == 0 {
		c.Hysteresis = DefaultHysteresis
	}
	c.Client = c.Client.WithDefaults()
	return c
}

// Validate reports settings that cannot work.
func (c PoolConfig) Validate() error {
	switch {
	case len(c.Relays) == 0:
		return errors.New("client: pool has no relay")
	case len(c.Relays) > MaxPoolRelays:
		return fmt.Errorf("client: pool has %d relays, at most %d", len(c.Relays), MaxPoolRelays)
	case c.Homes < 1 || c.Homes > len(c.Relays):
		return fmt.Errorf("client: homes %d must be between 1 and the pool's %d relays", c.Homes, len(c.Relays))
	case c.Hysteresis < 0:
		return errors.New("client: negative hysteresis")
	}
	for i, r := range c.Relays {
		if r.Name == "" {
			return fmt.Errorf("client: pool relay %d has no name", i)
		}
		if slices.ContainsFunc(c.Relays[:i], func(o PoolRelay) bool { return o.Name == r.Name }) {
			return fmt.Errorf("client: pool relay %q listed twice", r.Name)
		}
		cc := c.Client
		cc.Addrs = r.Addrs
		if err := cc.Validate(); err != nil {
			return fmt.Errorf("pool relay %q: %w", r.Name, err)
		}
	}
	return nil
}

// Pool is the client core for a pool of relays that behave as one. It
// runs one Client per relay it needs and implements transport.Handler,
// routing each event to the Client that owns the connection.
//
// Each channel orders the pool by rendezvous hashing and is joined on its
// homes: the first Homes relays of that order that are reachable. A relay
// is unreachable while its Client is not Connected and has failed (a dial,
// handshake or connection lost) since it last was, and until the
// reconnect-after of its last Drain. A drained home is replaced first by
// the reachable relays of the pool its Drain named as alternates (every
// member on that relay got the same list, so they move together; an
// alternate outside the pool is ignored), else by the next of its order.
// A lost home is replaced at once by the next reachable relay; a relay preferred over a current home takes its
// place only once it has stayed Connected for Hysteresis. Announces go to
// every home; what one home delivers is merged into the pool's roster and
// the other homes' (Client.Merge, never re-announced: their next sync
// pushes what their relay lacks) and reported to the Observer once.
//
// Relays a channel prefers over one of its homes (and, for a channel short
// of homes, every relay) are kept running, reconnecting with their
// backoff, so their return is noticed; other relays' Clients are stopped,
// so an instance holds connections only to relays it needs. With no
// channel joined, the pool keeps one relay connected: the first reachable
// in the order of the zero channel ID.
//
// The Observer hears, for the pool as a whole: Learned once per reference;
// StateChanged Connected while any home is connected, else Connecting
// while any relay is, else Disconnected (Stopped after Stop); CaughtUp when
// any home of the channel caught up; EpochChanged from every relay with
// Homes 1, else only while some channel has no connected home but that
// relay (one that restarted while other homes held every channel forgot
// nothing the pool needs); Problem from every relay; Acked with the pool's own sequence numbers (Pool.Announce's), once,
// on the first home's ack.
type Pool struct {
	cfg    PoolConfig
	log    *slog.Logger
	rng    *rand.Rand
	dialer transport.Dialer
	obs    Observer

	relays  []*poolRelay
	names   []string
	chans   []*poolChannel // join order
	byID    map[roster.ChannelID]*poolChannel
	idle    poolChannel // the order and home while no channel is joined
	state   State
	started bool
	seq     uint32
	wake    time.Time // next hysteresis or drain end to look at; zero if none
	dirty   bool      // a relay's state changed, or a channel came, since settle
	base    Stats     // counters of Clients since stopped
}

type poolChannel struct {
	keys  *roster.Keys // nil for Pool.idle
	id    roster.ChannelID
	order []int // relay indexes, preferred first
	homes []int // in order
	// deferred are homes chosen but not joined yet: they wait for the
	// Joined of waitOn, the last home joined, until waitUntil (rehome).
	deferred  []int
	waitOn    *poolRelay
	waitUntil time.Time
	view      roster.Set
}

// poolRelay is one relay of the pool: its Client while running, and what
// the pool knows of its reachability. It is the Client's Observer and
// Dialer, so that events carry the relay they concern.
type poolRelay struct {
	p          *Pool
	name       string
	addrs      []string
	dialer     transport.Dialer
	log        *slog.Logger
	cl         *Client        // nil while not running
	conn       transport.Conn // the connection cl dialed last
	state      State
	failed     bool      // failed since it was last connected
	since      time.Time // connected since
	drainUntil time.Time
	// alternates are the relays of the pool its last Drain named, in the
	// Drain's order; cleared once it is connected again.
	alternates []int
	acks       []poolAck
	asks       UrgentMeter // its rescans, resyncs, epochs and lost links
}

// poolAck maps a relay Client's announce seq to the pool's.
type poolAck struct{ relay, pool uint32 }

// NewPool returns a pool core. Join channels and call Start.
func NewPool(cfg PoolConfig, d transport.Dialer, rng *rand.Rand, obs Observer) (*Pool, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if obs == nil {
		obs = NopObserver{}
	}
	p := &Pool{
		cfg: cfg, log: defaults.Logger(cfg.Client.Logger), rng: rng, dialer: d, obs: obs,
		byID: make(map[roster.ChannelID]*poolChannel), state: Disconnected,
	}
	for _, r := range cfg.Relays {
		dl := r.Dialer
		if dl == nil {
			dl = d
		}
		p.names = append(p.names, r.Name)
		p.relays = append(p.relays, &poolRelay{
			p: p, name: r.Name, addrs: slices.Clone(r.Addrs), dialer: dl,
			log: p.log.With("relay", r.Name), state: Stopped, asks: NewUrgentMeter(cfg.Listing),
		})
	}
	p.idle.order = RendezvousOrder(roster.ChannelID{}, p.names)
	return p, nil
}

var _ transport.Handler = (*Pool)(nil)

// Start begins connecting to the relays the channels need.
func (p *Pool) Start(now time.Time) {
	if p.state == Stopped {
		return
	}
	p.started, p.dirty = true, true
	p.settle(now)
}

// Stop stops every relay's Client.
func (p *Pool) Stop(now time.Time) {
	for _, r := range p.relays {
		p.stopRelay(r, now)
	}
	p.started = false
	p.setState(Stopped, now)
}

// Join adds a channel; known entries are synced with its homes.
func (p *Pool) Join(keys *roster.Keys, known []roster.Entry, now time.Time) error {
	if _, dup := p.byID[keys.ID()]; dup {
		return fmt.Errorf("client: channel %x joined twice", keys.ID().Short())
	}
	pc := &poolChannel{keys: keys, id: keys.ID(), order: RendezvousOrder(keys.ID(), p.names)}
	for _, e := range known {
		pc.view.Add(e)
	}
	p.chans = append(p.chans, pc)
	p.byID[pc.id] = pc
	p.dirty = true
	p.settle(now)
	return nil
}

// Announce seals ref, adds it to the pool's roster at once and announces
// it to every home (those not joined yet get it with their catch-up). It
// returns the pool's sequence number for the announce, acked once any home
// acks it, or 0 if no home sent it. ErrEntryTooLarge from a home is
// returned after the others were given the entry.
func (p *Pool) Announce(id roster.ChannelID, ref []byte, now time.Time) (uint32, error) {
	pc := p.byID[id]
	if pc == nil {
		return 0, fmt.Errorf("client: channel %x not joined", id.Short())
	}
	e, err := pc.keys.Seal(ref)
	if err != nil {
		return 0, err
	}
	if !pc.view.Add(e) {
		return 0, nil
	}
	p.seq++
	sent := false
	var first error
	homes := pc.homes
	if _, ok := fault.Hit(p.cfg.Client.Faults, FailPoolFirstHomeOnly); ok {
		homes = homes[:min(len(homes), 1)]
	}
	for _, i := range homes {
		r := p.relays[i]
		s, err := r.cl.Announce(id, ref, now)
		if err != nil && first == nil {
			first = err
		}
		if s != 0 {
			if len(r.acks) == maxPendingAcks {
				r.acks = slices.Delete(r.acks, 0, 1)
			}
			r.acks = append(r.acks, poolAck{relay: s, pool: p.seq})
			sent = true
		}
	}
	if !sent {
		return 0, first
	}
	return p.seq, first
}

// Roster returns the pool's roster of a channel: the union of what was
// announced here, given as known, and learned from any relay. The caller
// must not modify it.
func (p *Pool) Roster(id roster.ChannelID) *roster.Set {
	if pc := p.byID[id]; pc != nil {
		return &pc.view
	}
	return nil
}

// State reports the pool's link state (see Pool).
func (p *Pool) State() State { return p.state }

// Epoch reports the epoch of the first relay, in configuration order,
// that is connected, else of the first that ever was.
func (p *Pool) Epoch() (uint64, bool) {
	var epoch uint64
	var ok bool
	for _, r := range p.relays {
		if r.cl == nil {
			continue
		}
		if e, has := r.cl.Epoch(); has {
			if r.state == Connected {
				return e, true
			}
			if !ok {
				epoch, ok = e, true
			}
		}
	}
	return epoch, ok
}

// Stats sums the counters of every relay's Client, those since stopped
// included: an announce sent to two homes counts twice.
func (p *Pool) Stats() Stats {
	s := p.base
	for _, r := range p.relays {
		if r.cl != nil {
			s = s.plus(r.cl.Stats())
		}
	}
	return s
}

func (s Stats) plus(o Stats) Stats {
	return Stats{
		Announced: s.Announced + o.Announced, Learned: s.Learned + o.Learned,
		Forged: s.Forged + o.Forged, Syncs: s.Syncs + o.Syncs, Reconnects: s.Reconnects + o.Reconnects,
		BytesOut: s.BytesOut + o.BytesOut, BytesIn: s.BytesIn + o.BytesIn,
	}
}

// RelayStatus is what a pool knows about one of its relays.
type RelayStatus struct {
	Name    string
	State   State // Stopped while the pool does not need the relay
	Failed  bool  // failed since it was last connected: not a home candidate
	Running bool  // its Client runs (connected or reconnecting)
	// ConnectedSince is when the current connection came up (zero if none).
	ConnectedSince time.Time
	// DrainUntil is the reconnect-after of its last Drain (zero if none).
	DrainUntil time.Time
	// Channels are those homed on it, in join order.
	Channels []roster.ChannelID
	// Asks counts its asks for urgent listings (rescans, resyncs, new
	// epochs, lost links); see Suspects.
	Asks uint64
}

// ChannelStatus is a channel's place in the pool.
type ChannelStatus struct {
	ID    roster.ChannelID
	Order []string // the rendezvous order, preferred first
	Homes []string // the relays it is joined on, in that order
	// Joined are the homes whose relay has confirmed the join (Joined
	// received on the current connection), in that order.
	Joined []string
}

// Suspects names the relays that ask for urgent listings too often at
// now, by the thresholds of ListPolicy (see UrgentMeter), in
// configuration order.
func (p *Pool) Suspects(now time.Time) []string {
	var out []string
	for _, r := range p.relays {
		if r.asks.Suspect(now) {
			out = append(out, r.name)
		}
	}
	return out
}

// Relays reports every relay, in configuration order.
func (p *Pool) Relays() []RelayStatus {
	out := make([]RelayStatus, len(p.relays))
	for i, r := range p.relays {
		st := RelayStatus{Name: r.name, State: r.state, Failed: r.failed, Running: r.cl != nil, DrainUntil: r.drainUntil,
			Asks: r.asks.Asks()}
		if r.state == Connected {
			st.ConnectedSince = r.since
		}
		for _, pc := range p.chans {
			if slices.Contains(pc.homes, i) {
				st.Channels = append(st.Channels, pc.id)
			}
		}
		out[i] = st
	}
	return out
}

// Channels reports every joined channel, in join order.
func (p *Pool) Channels() []ChannelStatus {
	out := make([]ChannelStatus, len(p.chans))
	for i, pc := range p.chans {
		out[i] = ChannelStatus{ID: pc.id, Order: p.namesOf(pc.order), Homes: p.namesOf(pc.homes)}
		for _, h := range pc.homes {
			if p.joinedOn(pc, p.relays[h]) {
				out[i].Joined = append(out[i].Joined, p.names[h])
			}
		}
	}
	return out
}

// Homes reports the relays channel id is joined on, preferred first.
func (p *Pool) Homes(id roster.ChannelID) []string {
	if pc := p.byID[id]; pc != nil {
		return p.namesOf(pc.homes)
	}
	return nil
}

// Client returns the running Client of the named relay, or nil. Callers
// may read it; changing it bypasses the pool.
func (p *Pool) Client(name string) *Client {
	if i := slices.Index(p.names, name); i >= 0 {
		return p.relays[i].cl
	}
	return nil
}

func (p *Pool) namesOf(idx []int) []string {
	out := make([]string, len(idx))
	for i, x := range idx {
		out[i] = p.names[x]
	}
	return out
}

// Open routes the event to the relay that dialed tc.
func (p *Pool) Open(tc transport.Conn, now time.Time) {
	if r := p.owner(tc); r != nil {
		r.cl.Open(tc, now)
		p.settle(now)
	}
}

// Data routes the event to the relay that dialed tc.
func (p *Pool) Data(tc transport.Conn, b []byte, now time.Time) {
	if r := p.owner(tc); r != nil {
		r.cl.Data(tc, b, now)
		for _, pc := range p.chans {
			if pc.waitOn == r && len(pc.deferred) > 0 && p.joinedOn(pc, r) {
				p.dirty = true // its deferred homes may join now
			}
		}
		p.settle(now)
	}
}

// Writable routes the event to the relay that dialed tc.
func (p *Pool) Writable(tc transport.Conn, now time.Time) {
	if r := p.owner(tc); r != nil {
		r.cl.Writable(tc, now)
	}
}

// Closed routes the event to the relay that dialed tc.
func (p *Pool) Closed(tc transport.Conn, err error, now time.Time) {
	if r := p.owner(tc); r != nil {
		r.cl.Closed(tc, err, now)
		p.settle(now)
	}
}

// Tick fires the relays' due timers, then the pool's.
func (p *Pool) Tick(now time.Time) {
	for _, r := range p.relays {
		if r.cl != nil {
			r.cl.Tick(now)
		}
	}
	p.settle(now)
}

// Deadline reports the earliest timer of the relays and the pool.
func (p *Pool) Deadline() (time.Time, bool) {
	t, ok := p.wake, !p.wake.IsZero()
	for _, r := range p.relays {
		if r.cl == nil {
			continue
		}
		if d, has := r.cl.Deadline(); has && (!ok || d.Before(t)) {
			t, ok = d, true
		}
	}
	return t, ok
}

// owner is the running relay whose Client dialed tc.
func (p *Pool) owner(tc transport.Conn) *poolRelay {
	for _, r := range p.relays {
		if r.cl != nil && r.conn == tc {
			return r
		}
	}
	return nil
}
