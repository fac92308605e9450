package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cosnim/relays/backbone"
	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// Config holds the relay core's limits. Each limit's configuration key,
// default and rule are in one table (Limits), and Welcome advertises them
// all. Zero fields take their defaults when passed through WithDefaults.
type Config struct {
	MaxConnections    int           // live connections; more get CodeRelayFull
	HandshakeTimeout  time.Duration // Hello must arrive within this
	HeartbeatInterval time.Duration // clients ping this often
	IdleTimeout       time.Duration // silence after which a connection is closed
	MaxFrameSize      int           // bytes, header included
	MaxChannels       int           // channels per connection
	MaxEntrySize      int           // sealed bytes per entry
	CacheEntries      int           // entries kept per channel
	// ChannelIdleTimeout is how long a channel no member has joined keeps
	// its cache for members coming back, before the relay forgets it.
	ChannelIdleTimeout time.Duration
	PendingEntries     int // entries merged for one slow member of one channel
	HighWater          int // queued bytes past which a member counts as slow (DefaultHighWater; not configurable)
	FrameRate          int // frames per second per connection, burst one second's worth
	ByteRate           int // bytes per second per connection, burst one second's worth
	AcceptRate         int // new connections per second, burst one second's worth
	SendQueue          int // bytes queued to one connection; past it the relay closes it (CodeQueueFull)
	SyncReplyEntries   int // entries given in answer to the ranges of one sync message; more in later rounds
	MaxHandshakes      int // TLS handshakes in progress at once; the driver closes connections past it
	JoinRate           int // joins per second per connection, burst JoinBurst; each costs a signature check
	// The TLS driver's gates before a handshake (relay/relayserver): a
	// source is an IPv4 address or an IPv6 /64.
	ClientHelloTimeout     time.Duration // from accept to the first TLS record, a ClientHello
	MaxPreHandshake        int           // connections waiting for their ClientHello; past it the oldest is closed
	MaxConnsPerSource      int           // open TLS connections from one source
	MaxHandshakesPerSource int           // TLS handshakes in progress from one source
	AcceptRatePerSource    int           // new TLS connections per second from one source, burst one second's worth
	MaxDeniedJoins         int           // joins denied for a bad proof; at this many the connection is closed
	// MemoryBudget bounds what the relay holds, by estimate (MemoryUsage).
	// Past it the relay evicts by the policy of memory.go and, when what
	// eviction cannot free passes it, refuses new connections and channels.
	MemoryBudget int64

	// ConnBytes is what the driver holds per connection beyond the core's
	// own estimate (reader and writer goroutines, buffers, TLS state),
	// counted in the memory budget. Drivers set it; 0 in the simulator.
	ConnBytes int
	// BackboneBytes is the most the backbone driver holds (its receive
	// queue, outbox and buffers), counted in the memory budget as a
	// fixed part. Drivers set it; 0 in the simulator.
	BackboneBytes int64

	// AsyncJoinChecks makes the core queue join proofs (Ready.JoinChecks)
	// for the driver to verify off the event loop, reporting back with
	// JoinChecked; an Ed25519 check is the dearest step of a (re)connect.
	// Off, the core verifies inline, as a deterministic simulation needs.
	AsyncJoinChecks bool

	// Backbone links this relay to the others of its pool (backbone.go);
	// nil for none, and then nothing below changes anything.
	Backbone backbone.Bus
	// BackbonePrefix starts every backbone subject (ChannelSubject,
	// SyncSubject); DefaultBackbonePrefix unless set. CheckBackbonePrefix
	// gives its rule.
	BackbonePrefix string
	// BackboneAntiEntropy is how often each channel with members is
	// reconciled with the pool's other relays; DefaultBackboneAntiEntropy
	// unless set. Not advertised: clients need not know it.
	BackboneAntiEntropy time.Duration
	// BackboneAuthenticated says every backbone message is authenticated
	// as a relay's of the pool (the driver's pool key): then one reply
	// saying complete suffices, else BackboneCompleteQuorum distinct
	// origins must say it, none refuted (bbtrust.go).
	BackboneAuthenticated bool

	// Logger receives operator logs; nil discards them.
	Logger *slog.Logger
	// Faults turns on failpoints by name; nil in production.
	Faults fault.Set
}

// DefaultHighWater is HighWater's default: the one threshold that is not
// in the configuration file and not advertised, as clients need not know it.
const DefaultHighWater = transport.DefaultHighWater

// DefaultConfig returns the documented defaults (Limits).
func DefaultConfig() Config {
	c := Config{HighWater: DefaultHighWater, BackbonePrefix: DefaultBackbonePrefix, BackboneAntiEntropy: DefaultBackboneAntiEntropy}
	for _, l := range limitTable {
		l.Set(&c, l.Default)
	}
	return c
}

// WithDefaults returns c with every zero limit set to its default.
func (c Config) WithDefaults() Config {
	for _, l := range limitTable {
		if l.Get(c) == 0 {
			l.Set(&c, l.Default)
		}
	}
	if c.HighWater == 0 {
		c.HighWater = DefaultHighWater
	}
	if c.BackbonePrefix == "" {
		c.BackbonePrefix = DefaultBackbonePrefix
	}
	if c.BackboneAntiEntropy == 0 {
		c.BackboneAntiEntropy = DefaultBackboneAntiEntropy
	}
	return c
}

// Validate reports every limit that breaks its rule (Limits, Limit.Rule),
// each a *LimitError joined by errors.Join. It does not apply defaults:
// a zero limit is refused, as relay.New refuses it after WithDefaults.
func (c Config) Validate() error {
	var errs []error
	for _, l := range limitTable {
		if e := l.check(c); e != nil {
			errs = append(errs, e)
		}
	}
	if c.HighWater < 1 {
		errs = append(errs, &LimitError{Msg: fmt.Sprintf("high water (%d) must be greater than 0", c.HighWater)})
	}
	if err := CheckBackbonePrefix(c.BackbonePrefix); err != nil {
		errs = append(errs, err)
	}
	if c.BackboneAntiEntropy <= 0 {
		errs = append(errs, &LimitError{Msg: fmt.Sprintf("backbone anti-entropy interval (%v) must be greater than 0", c.BackboneAntiEntropy)})
	}
	return errors.Join(errs...)
}

// JoinBurst is the join-rate limiter's burst: twice MaxChannels, so that
// a connection can join every channel it may hold and, after Leaves or
// denials, do it once more without waiting (PROTOCOL §11, join-rate).
func (c Config) JoinBurst() int { return 2 * c.MaxChannels }

// limits is what Welcome advertises: every limit of the table.
func (c Config) limits() []wire.Limit {
	ls := make([]wire.Limit, 0, len(limitTable))
	for _, l := range limitTable {
		ls = append(ls, wire.Limit{Key: l.Wire, Value: l.wireValue(l.Get(c))})
	}
	return ls
}
