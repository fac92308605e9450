package agent

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/internal/secret"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/transport/tcp"
	"github.com/cosnim/relays/wire"
)

// Errors of the Agent API.
var (
	// ErrClosed is returned by an Agent's methods after Close.
	ErrClosed = errors.New("client: agent closed")
	// ErrNotJoined is returned for a hub that Join was not called for.
	ErrNotJoined = errors.New("client: hub not joined")
)

// DefaultAnnounceDelay is Options.AnnounceDelay's default: announces made
// within it leave in one frame, which costs awareness at most this much.
const DefaultAnnounceDelay = 500 * time.Microsecond

// DefaultEntriesBuffer is the capacity of Agent.Entries by default.
const DefaultEntriesBuffer = 1024

// Options configures an Agent: the values of a relay's client section and
// the continuum secret.
type Options struct {
	// Addrs are the relay's HOST:PORT addresses, tried in turn.
	Addrs []string
	// TLS, when not nil, makes the Agent dial TLS (tcps://); build it with
	// tcp.ClientTLSConfig.
	TLS *tls.Config
	// Pool, when not empty, names the relays of a pool (see client.Pool),
	// and Addrs and TLS are unused: each hub is joined on its Homes
	// relays of the pool, in its rendezvous order, over one connection
	// per relay the Agent needs.
	Pool []Relay
	// Homes is how many relays of the pool each hub is joined on (default
	// client.DefaultHomes of the pool's size).
	Homes int
	// Hysteresis is how long a preferred relay must stay connected before
	// hubs move back to it (default client.DefaultHysteresis).
	Hysteresis time.Duration
	// Secret is the continuum secret; channel keys derive from it after
	// secret.Stretch (once per process and secret).
	Secret []byte
	// Agent names this client in Hello (default "cosnim").
	Agent string
	// ConnectTimeout, BackoffMin and BackoffMax: see client.Config.
	ConnectTimeout, BackoffMin, BackoffMax time.Duration
	// AnnounceDelay is how long announces wait for others to share their
	// Announce frame (client.Config.AnnounceDelay, at most
	// client.MaxAnnounceDelay). Zero means DefaultAnnounceDelay; a
	// negative value sends each announce at once.
	AnnounceDelay time.Duration
	// EntriesBuffer is the capacity of the Entries channel (default
	// DefaultEntriesBuffer).
	EntriesBuffer int
	// Logger receives connection logs; nil discards them. Nothing secret
	// is logged.
	Logger *slog.Logger
	// Listing schedules each hub's storage listings (see ListPolicy and
	// Agent.NextListing); zero fields take ListConfig's defaults.
	Listing client.ListConfig
}

// Relay is one relay of a pool.
type Relay struct {
	// Name orders the pool: every instance must name a relay alike.
	Name string
	// Addrs are its HOST:PORT addresses, tried in turn.
	Addrs []string
	// TLS, when not nil, dials it with TLS (see Options.TLS).
	TLS *tls.Config
}

// core is what the Agent needs of its core: a client.Client for one
// relay, a client.Pool for a pool.
type core interface {
	transport.Handler
	Start(now time.Time)
	Stop(now time.Time)
	Join(keys *roster.Keys, known []roster.Entry, now time.Time) error
	Announce(id roster.ChannelID, ref []byte, now time.Time) (uint32, error)
	Roster(id roster.ChannelID) *roster.Set
	Epoch() (uint64, bool)
	Stats() client.Stats
}

var (
	_ core = (*client.Client)(nil)
	_ core = (*client.Pool)(nil)
)

// Learned is one capsule reference received from the relay.
type Learned struct {
	Hub  string
	Ref  []byte
	Time time.Time
}

// Agent is the client API that instances embed. It runs the client core in
// a tcp.Loop: it connects at once, reconnects with backoff and
// jitter, honours the relay's Drain, and catches up after every reconnect.
// Given Options.Pool it runs client.Pool instead, in the same one loop:
// one connection per relay its hubs need, each hub on its homes.
// No method blocks on a slow or absent relay except the Wait ones, which
// take a context and return at once, with an error wrapping ErrPermanent,
// when the relay cannot be used as configured (see Permanent).
//
// Received entries arrive on Entries, a bounded channel that the core
// never blocks on: when it is full, further entries are kept only in the
// roster (see Known) and counted by Overflow. The roster is the truth;
// Entries is a convenience feed.
//
// Agent is safe for concurrent use.
type Agent struct {
	loop      *tcp.Loop
	core      core
	pool      *client.Pool // the core, if a pool
	secret    []byte
	entries   chan Learned
	closeOnce sync.Once

	mu       sync.Mutex // guards the following; never held while calling into the loop
	closed   bool
	state    client.State
	hubs     map[string]*hubState
	byID     map[roster.ChannelID]*hubState
	listings client.Listings // the hubs' policies, as the core's events route to them
	acked    map[uint32]bool // seqs waited for that the relay acked
	waiting  map[uint32]bool // seqs being waited for
	overflow uint64
	problems []string      // latest problems from the relay, newest last (bounded)
	lastErr  error         // why the last connection ended or dial failed
	refusal  *RefusedError // the relay refused this client since it last connected
	changed  chan struct{}
	listing  client.ListConfig
	listRand *rand.Rand // jitter for the listing policies
}

// hubState is what the Agent tracks for one joined hub.
type hubState struct {
	name    string
	keys    *roster.Keys
	synced  bool   // caught up since the current connection came up
	syncGen uint64 // catch-ups completed
	policy  *client.ListPolicy
}

// handlerRef lets the Loop be built before the core it feeds.
// It also keeps why the last connection ended or dial failed (LastError).
type handlerRef struct {
	transport.Handler
	a *Agent
}

// Closed records the reason, then hands the event to the core.
func (h *handlerRef) Closed(c transport.Conn, err error, now time.Time) {
	if err != nil {
		h.a.mu.Lock()
		h.a.lastErr = err
		h.a.mu.Unlock()
	}
	h.Handler.Closed(c, err, now)
}

// New starts an Agent; it begins connecting at once and returns
// without waiting.
func New(opts Options) (*Agent, error) {
	if len(opts.Secret) == 0 {
		return nil, roster.ErrNoSecret
	}
	if opts.EntriesBuffer <= 0 {
		opts.EntriesBuffer = DefaultEntriesBuffer
	}
	if err := opts.Listing.WithDefaults().Validate(); err != nil {
		return nil, err
	}
	// A passphrase must not be guessable at HKDF's speed (PROTOCOL.md §7.1).
	secret, err := secret.Stretch(opts.Secret)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		listing: opts.Listing,
		secret:  secret,
		entries: make(chan Learned, opts.EntriesBuffer),
		hubs:    make(map[string]*hubState),
		byID:    make(map[roster.ChannelID]*hubState),
		acked:   make(map[uint32]bool),
		waiting: make(map[uint32]bool),
		changed: make(chan struct{}),
	}
	ref := &handlerRef{a: a}
	loop := tcp.NewLoop(ref, tcp.LoopOptions{
		Logger:      opts.Logger,
		DialTimeout: opts.ConnectTimeout,
	})
	var seed [16]byte
	crand.Read(seed[:])
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	a.listRand = rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
	cfg := client.Config{
		Addrs:          opts.Addrs,
		Agent:          opts.Agent,
		BackoffMin:     opts.BackoffMin,
		BackoffMax:     opts.BackoffMax,
		ConnectTimeout: opts.ConnectTimeout,
		AnnounceDelay:  announceDelay(opts.AnnounceDelay),
		Logger:         opts.Logger,
	}
	var c core
	if len(opts.Pool) > 0 {
		a.pool, err = newPool(opts, cfg, loop, rng, (*agentObserver)(a))
		c = a.pool
	} else {
		c, err = client.New(cfg, loop.Dialer(tcp.NetDialer(opts.TLS)), rng, (*agentObserver)(a))
	}
	if err != nil {
		loop.Close()
		return nil, err
	}
	ref.Handler = c
	a.loop, a.core = loop, c
	loop.Do(func() { c.Start(time.Now()) })
	return a, nil
}

// newPool builds the pool core: one loop carries every relay's
// connection, the pool routing each event to the relay that dialed it.
func newPool(opts Options, cfg client.Config, loop *tcp.Loop, rng *rand.Rand, obs client.Observer) (*client.Pool, error) {
	pc := client.PoolConfig{Homes: opts.Homes, Hysteresis: opts.Hysteresis, Client: cfg, Listing: opts.Listing}
	for _, r := range opts.Pool {
		pc.Relays = append(pc.Relays, client.PoolRelay{Name: r.Name, Addrs: r.Addrs, Dialer: loop.Dialer(tcp.NetDialer(r.TLS))})
	}
	return client.NewPool(pc, nil, rng, obs)
}

// announceDelay maps Options.AnnounceDelay to the core's setting.
func announceDelay(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultAnnounceDelay
	case d < 0:
		return 0
	}
	return d
}

// Join joins the channel of hub, deriving its keys from the continuum
// secret. Joining a hub twice is a no-op.
func (a *Agent) Join(hub string) error {
	keys, err := roster.DeriveKeys(a.secret, hub)
	if err != nil {
		return err
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	if _, ok := a.hubs[hub]; ok {
		a.mu.Unlock()
		return nil
	}
	policy, err := client.NewListPolicy(a.listing, a.listRand, time.Now())
	if err != nil {
		a.mu.Unlock()
		return err
	}
	if a.state == client.Connected {
		policy.RelayConnected(time.Now())
	}
	h := &hubState{name: hub, keys: keys, policy: policy}
	a.listings.Add(keys.ID(), policy)
	a.hubs[hub] = h
	a.byID[keys.ID()] = h
	a.mu.Unlock()
	return a.do(func(c core, now time.Time) error { return c.Join(keys, nil, now) })
}

// do runs f in the core's event context.
func (a *Agent) do(f func(c core, now time.Time) error) error {
	err := ErrClosed
	a.loop.Do(func() { err = f(a.core, time.Now()) })
	return err
}

func (a *Agent) hub(name string) (*hubState, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	h := a.hubs[name]
	if h == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotJoined, name)
	}
	return h, nil
}

// Announce adds ref to hub's roster at once and sends it to the relay if
// connected (otherwise the catch-up after the next connection carries
// it). It never waits for the network.
func (a *Agent) Announce(hub string, ref []byte) error {
	h, err := a.hub(hub)
	if err != nil {
		return err
	}
	return a.do(func(c core, now time.Time) error {
		_, err := c.Announce(h.keys.ID(), ref, now)
		return err
	})
}

// AnnounceAndWait announces ref and waits until the relay has
// acknowledged it. While the link to the relay is down or not caught up
// it waits for it first, and only then adds ref to the roster and sends
// it; a caller that wants the entry in the roster at once calls Announce
// first. If ref is already in the roster once the link is caught up,
// AnnounceAndWait returns at once: the catch-up carried it. If the link
// drops before the ack, the catch-up after the reconnect carries the
// entry and ends the wait.
func (a *Agent) AnnounceAndWait(ctx context.Context, hub string, ref []byte) error {
	h, err := a.hub(hub)
	if err != nil {
		return err
	}
	ready := func() bool { return h.synced && a.state == client.Connected }
	for {
		var seq uint32
		var gen uint64
		sent := false
		err := a.do(func(c core, now time.Time) error {
			a.mu.Lock()
			ok := ready()
			gen = h.syncGen
			a.mu.Unlock()
			if !ok {
				return nil
			}
			var err error
			seq, err = c.Announce(h.keys.ID(), ref, now)
			sent = err == nil
			if seq != 0 {
				a.mu.Lock()
				a.waiting[seq] = true
				a.mu.Unlock()
			}
			return err
		})
		if err != nil {
			return err
		}
		if !sent {
			if err := a.wait(ctx, ready); err != nil {
				return err
			}
			continue
		}
		if seq == 0 {
			return nil
		}
		defer func() {
			a.mu.Lock()
			delete(a.waiting, seq)
			delete(a.acked, seq)
			a.mu.Unlock()
		}()
		return a.wait(ctx, func() bool { return a.acked[seq] || h.syncGen > gen })
	}
}

// maxUnacked bounds the announce seqs AnnounceAllAndWait waits for at
// once; a pool remembers a few thousand per relay (it has one seq per
// entry), a single relay needs one per frame.
const maxUnacked = 1024

// AnnounceAllAndWait announces refs and waits until the relay has
// acknowledged them all, as AnnounceAndWait does for one, without a round
// trip per reference: they leave in as few frames as the relay's frame
// limit allows, and the wait is for all their acks at once (at most
// maxUnacked seqs at a time). It returns how many refs are acknowledged
// (or carried by a catch-up), all of them when err is nil.
func (a *Agent) AnnounceAllAndWait(ctx context.Context, hub string, refs [][]byte) (acked int, err error) {
	h, err := a.hub(hub)
	if err != nil {
		return 0, err
	}
	ready := func() bool { return h.synced && a.state == client.Connected }
	for acked < len(refs) {
		if err := a.wait(ctx, ready); err != nil {
			return acked, err
		}
		var seqs []uint32
		var gen uint64
		next := acked
		err := a.do(func(c core, now time.Time) error {
			a.mu.Lock()
			defer a.mu.Unlock()
			if !ready() {
				return nil
			}
			gen = h.syncGen
			for next < len(refs) && len(seqs) < maxUnacked {
				a.mu.Unlock()
				seq, err := c.Announce(h.keys.ID(), refs[next], now)
				a.mu.Lock()
				if err != nil {
					return err
				}
				next++
				if seq != 0 && !a.waiting[seq] {
					a.waiting[seq] = true
					seqs = append(seqs, seq)
				}
			}
			return nil
		})
		if err == nil && next > acked {
			err = a.wait(ctx, func() bool {
				if h.syncGen > gen {
					return true
				}
				for _, s := range seqs {
					if !a.acked[s] {
						return false
					}
				}
				return true
			})
		}
		a.mu.Lock()
		for _, s := range seqs {
			delete(a.waiting, s)
			delete(a.acked, s)
		}
		a.mu.Unlock()
		if err != nil {
			return acked, err
		}
		acked = next
	}
	return acked, nil
}

// wait blocks until cond (called with a.mu held) holds, ctx is done, the
// Agent closes or the relay cannot be used (see Permanent).
func (a *Agent) wait(ctx context.Context, cond func() bool) error {
	for {
		a.mu.Lock()
		if cond() {
			a.mu.Unlock()
			return nil
		}
		if a.closed {
			a.mu.Unlock()
			return ErrClosed
		}
		if err := a.permanentLocked(); err != nil {
			a.mu.Unlock()
			return err
		}
		ch := a.changed
		a.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// notifyLocked wakes every waiter.
func (a *Agent) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// WaitConnected waits until the Agent has finished a handshake with the
// relay.
func (a *Agent) WaitConnected(ctx context.Context) error {
	return a.wait(ctx, func() bool { return a.state == client.Connected })
}

// WaitCaughtUp waits until hub's roster holds everything the relay had
// on the current connection. With a pool: everything one of hub's homes
// had, since the pool last had a home connected.
func (a *Agent) WaitCaughtUp(ctx context.Context, hub string) error {
	h, err := a.hub(hub)
	if err != nil {
		return err
	}
	return a.wait(ctx, func() bool { return h.synced && a.state == client.Connected })
}

// Entries returns the feed of references learned from the relay. It is
// closed by Close.
func (a *Agent) Entries() <-chan Learned { return a.entries }

// Overflow reports how many learned references did not fit in Entries;
// they are in the roster all the same.
func (a *Agent) Overflow() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.overflow
}

// Known returns every reference in hub's roster (announced here or
// learned), in roster order.
func (a *Agent) Known(hub string) ([][]byte, error) {
	h, err := a.hub(hub)
	if err != nil {
		return nil, err
	}
	var refs [][]byte
	err = a.do(func(c core, _ time.Time) error {
		set := c.Roster(h.keys.ID())
		if set == nil {
			return nil
		}
		for _, e := range set.Entries() {
			ref, err := h.keys.Open(e)
			if err != nil {
				return err
			}
			refs = append(refs, ref)
		}
		return nil
	})
	return refs, err
}

// Relays reports the pool's relays (see client.Pool.Relays); nil without
// a pool.
func (a *Agent) Relays() []client.RelayStatus {
	if a.pool == nil {
		return nil
	}
	var st []client.RelayStatus
	a.loop.Do(func() { st = a.pool.Relays() })
	return st
}

// Channels reports each hub's channel in the pool: its rendezvous order,
// homes and confirmed joins (see client.Pool.Channels); nil without a pool.
func (a *Agent) Channels() []client.ChannelStatus {
	if a.pool == nil {
		return nil
	}
	var st []client.ChannelStatus
	a.loop.Do(func() { st = a.pool.Channels() })
	return st
}

// State reports the link state; with a pool, Connected while any hub's
// home is.
func (a *Agent) State() client.State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// Epoch reports the epoch of the relay last connected to.
func (a *Agent) Epoch() (epoch uint64, ok bool) {
	a.do(func(c core, _ time.Time) error { epoch, ok = c.Epoch(); return nil })
	return epoch, ok
}

// Stats returns the core's counters.
func (a *Agent) Stats() (st client.Stats) {
	a.do(func(c core, _ time.Time) error { st = c.Stats(); return nil })
	return st
}

// LastError reports why the relay connection last ended or a dial last
// failed (a TLS verification error, a refused dial, ...); nil if none has.
func (a *Agent) LastError() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastErr
}

// Problems returns what is wrong with the relay now, then its latest error
// reports (at most 16), oldest first, as "code: text". What is wrong now:
// each hub whose relay asks for urgent listings too often (see
// client.ListPolicy.Suspect; the hub is then listed as without a relay),
// and with a pool each relay that does (client.Pool.Suspects).
func (a *Agent) Problems() []string {
	now := time.Now()
	var suspects []string
	if a.pool != nil {
		a.loop.Do(func() { suspects = a.pool.Suspects(now) })
	}
	var out []string
	for _, name := range suspects {
		out = append(out, fmt.Sprintf("listing: relay %s asks for urgent listings too often", name))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	interval := a.listing.WithDefaults().ListInterval
	for _, name := range slices.Sorted(maps.Keys(a.hubs)) {
		if p := a.hubs[name].policy; p.Suspect(now) {
			out = append(out, fmt.Sprintf("listing: hub %q: the relay asks for urgent listings too often (%d held back); listing every %v, as without a relay",
				name, p.Held(), interval))
		}
	}
	return append(out, a.problems...)
}

// NextListing reports when the instance should next list hub's storage.
// While the relay link is healthy and caught up that is rarely (ListConfig
// HealthyInterval); without a relay, or when it lags, restarted or asks for
// a rescan, sooner. Call ListingStarted and ListingDone around each listing.
func (a *Agent) NextListing(hub string) (time.Time, error) {
	h, err := a.hub(hub)
	if err != nil {
		return time.Time{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return h.policy.Next(), nil
}

// ListingStarted records that the instance began listing hub's storage.
func (a *Agent) ListingStarted(hub string) error {
	return a.withPolicy(hub, func(p *client.ListPolicy, now time.Time) { p.ListingStarted(now) })
}

// ListingDone records that a listing of hub's storage finished.
func (a *Agent) ListingDone(hub string) error {
	return a.withPolicy(hub, func(p *client.ListPolicy, now time.Time) { p.ListingDone(now) })
}

func (a *Agent) withPolicy(hub string, f func(p *client.ListPolicy, now time.Time)) error {
	h, err := a.hub(hub)
	if err != nil {
		return err
	}
	a.mu.Lock()
	f(h.policy, time.Now())
	a.notifyLocked()
	a.mu.Unlock()
	return nil
}

// Close stops the Agent: it closes the link, stops reconnecting, waits for
// its goroutines and closes Entries. It is safe to call more than once.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.loop.Do(func() { a.core.Stop(time.Now()) })
		a.loop.Close()
		a.mu.Lock()
		a.closed = true
		a.notifyLocked()
		a.mu.Unlock()
		close(a.entries)
	})
	return nil
}

// agentObserver receives the core's callbacks, in its event context with
// the loop's lock held. It takes a.mu briefly and never blocks; the lock
// order is always loop, then a.mu (see Agent.mu), so it cannot deadlock.
type agentObserver Agent

func (o *agentObserver) Learned(id roster.ChannelID, refs [][]byte, now time.Time) {
	a := (*Agent)(o)
	a.mu.Lock()
	h := a.byID[id]
	a.mu.Unlock()
	if h == nil {
		return
	}
	for i, ref := range refs {
		select {
		case a.entries <- Learned{Hub: h.name, Ref: append([]byte(nil), ref...), Time: now}:
		default:
			a.mu.Lock()
			a.overflow += uint64(len(refs) - i)
			a.mu.Unlock()
			return
		}
	}
}

func (o *agentObserver) StateChanged(s client.State, now time.Time) {
	a := (*Agent)(o)
	a.mu.Lock()
	a.state = s
	if s == client.Connected {
		a.refusal = nil
	}
	a.listings.StateChanged(s, now)
	if s != client.Connected {
		for _, h := range a.hubs { // sorted: order-free flag reset
			h.synced = false
		}
	}
	a.notifyLocked()
	a.mu.Unlock()
}

func (o *agentObserver) CaughtUp(id roster.ChannelID, now time.Time) {
	a := (*Agent)(o)
	a.mu.Lock()
	if h := a.byID[id]; h != nil {
		h.synced = true
		h.syncGen++
	}
	a.listings.CaughtUp(id, now)
	a.notifyLocked()
	a.mu.Unlock()
}

func (o *agentObserver) EpochChanged(epoch uint64, now time.Time) {
	a := (*Agent)(o)
	a.mu.Lock()
	a.listings.EpochChanged(epoch, now)
	a.notifyLocked()
	a.mu.Unlock()
}

func (o *agentObserver) Acked(_ roster.ChannelID, seq uint32, _ time.Time) {
	a := (*Agent)(o)
	a.mu.Lock()
	if a.waiting[seq] {
		a.acked[seq] = true
		a.notifyLocked()
	}
	a.mu.Unlock()
}

func (o *agentObserver) Problem(id roster.ChannelID, code wire.Code, text string, now time.Time) {
	a := (*Agent)(o)
	a.mu.Lock()
	a.listings.Problem(id, code, text, now)
	if RefusalCode(code) {
		a.refusal = &RefusedError{Code: code, Text: text}
	}
	a.problems = append(a.problems, code.String()+": "+text)
	if len(a.problems) > 16 {
		a.problems = a.problems[len(a.problems)-16:]
	}
	a.notifyLocked()
	a.mu.Unlock()
}
