package relay

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/wire"
)

// Config holds the relay core's limits. Every limit that a client must
// respect is advertised in Welcome. Zero fields take the defaults of
// DefaultConfig when passed through WithDefaults.
type Config struct {
	MaxConnections    int           // live connections; more get CodeRelayFull (default 10000)
	HandshakeTimeout  time.Duration // Hello must arrive within this (default 5s)
	HeartbeatInterval time.Duration // clients ping this often (default 15s)
	IdleTimeout       time.Duration // silence after which a connection is closed (default 45s)
	MaxFrameSize      int           // bytes, header included (default 64 KiB)
	MaxChannels       int           // channels per connection (default 64)
	MaxEntrySize      int           // sealed bytes per entry (default 1100)
	CacheEntries      int           // entries kept per channel (default 100000)
	// ChannelIdleTimeout is how long a channel no member has joined keeps
	// its cache for members coming back, before the relay forgets it
	// (default 10m).
	ChannelIdleTimeout time.Duration
	PendingEntries     int // entries merged for one slow member of one channel (default 10000)
	HighWater          int // queued bytes past which a member counts as slow (default 256 KiB)
	FrameRate          int // frames per second per connection, burst one second's worth (default 10000)
	ByteRate           int // bytes per second per connection, burst one second's worth (default 8 MiB)
	AcceptRate         int // new connections per second, burst one second's worth (default 10000)
	// SendQueue bounds the bytes queued to one connection: the relay
	// stops answering a connection that lets its queue pass HighWater and
	// closes it (CodeQueueFull) past this (default 4 MiB).
	SendQueue int
	// SyncReplyEntries bounds the entries given in answer to the ranges
	// of one sync message (wants are bounded by the peer's frame); a peer
	// that lacks more gets them in later rounds (default 4096).
	SyncReplyEntries int
	// MaxHandshakes bounds TLS handshakes in progress at once; the driver
	// closes connections past it before any handshake work (default 256).
	MaxHandshakes int
	// JoinRate bounds joins per second per connection, burst MaxChannels;
	// each costs a signature check (default 64).
	JoinRate int
	// MemoryBudget bounds what the relay holds (cached entries, pending
	// entries, connections, by estimate). Past it the relay refuses new
	// connections and channels and evicts from the cache it is adding to,
	// before the process is at risk (default 1 GiB).
	MemoryBudget int64

	// ConnBytes is what the driver holds per connection beyond the core's
	// own estimate (reader and writer goroutines, buffers, TLS state),
	// counted in the memory budget. Drivers set it; 0 in the simulator.
	ConnBytes int

	// AsyncJoinChecks makes the core queue join proofs (Ready.JoinChecks)
	// for the driver to verify off the event loop, reporting back with
	// JoinChecked; an Ed25519 check is the dearest step of a (re)connect.
	// Off, the core verifies inline, as a deterministic simulation needs.
	AsyncJoinChecks bool

	// Logger receives operator logs; nil discards them.
	Logger *slog.Logger
	// Faults turns on failpoints by name; nil in production.
	Faults fault.Set
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		MaxConnections:     10000,
		HandshakeTimeout:   5 * time.Second,
		HeartbeatInterval:  15 * time.Second,
		IdleTimeout:        45 * time.Second,
		MaxFrameSize:       wire.DefaultMaxFrameSize,
		MaxChannels:        64,
		MaxEntrySize:       1100,
		CacheEntries:       100000,
		ChannelIdleTimeout: 10 * time.Minute,
		PendingEntries:     10000,
		HighWater:          256 << 10,
		FrameRate:          wire.DefaultFrameRate,
		ByteRate:           wire.DefaultByteRate,
		AcceptRate:         10000,
		MemoryBudget:       1 << 30,
		SendQueue:          4 << 20,
		SyncReplyEntries:   4096,
		MaxHandshakes:      256,
		JoinRate:           64,
	}
}

// WithDefaults returns c with every zero limit set to its default.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&c.MaxConnections, d.MaxConnections)
	setDur(&c.HandshakeTimeout, d.HandshakeTimeout)
	setDur(&c.HeartbeatInterval, d.HeartbeatInterval)
	setDur(&c.IdleTimeout, d.IdleTimeout)
	setInt(&c.MaxFrameSize, d.MaxFrameSize)
	setInt(&c.MaxChannels, d.MaxChannels)
	setInt(&c.MaxEntrySize, d.MaxEntrySize)
	setInt(&c.CacheEntries, d.CacheEntries)
	setDur(&c.ChannelIdleTimeout, d.ChannelIdleTimeout)
	setInt(&c.PendingEntries, d.PendingEntries)
	setInt(&c.HighWater, d.HighWater)
	setInt(&c.FrameRate, d.FrameRate)
	setInt(&c.ByteRate, d.ByteRate)
	setInt(&c.AcceptRate, d.AcceptRate)
	setInt(&c.SendQueue, d.SendQueue)
	setInt(&c.SyncReplyEntries, d.SyncReplyEntries)
	setInt(&c.MaxHandshakes, d.MaxHandshakes)
	setInt(&c.JoinRate, d.JoinRate)
	if c.MemoryBudget == 0 {
		c.MemoryBudget = d.MemoryBudget
	}
	return c
}

// Validate reports a limit that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MaxFrameSize < 1024:
		return fmt.Errorf("relay: max frame size %d below 1024 bytes", c.MaxFrameSize)
	case c.MaxEntrySize < 1 || c.MaxEntrySize > c.MaxFrameSize-64:
		return fmt.Errorf("relay: max entry size %d must be between 1 and max frame size minus 64", c.MaxEntrySize)
	case c.IdleTimeout <= c.HeartbeatInterval:
		return fmt.Errorf("relay: idle timeout %v must exceed heartbeat interval %v", c.IdleTimeout, c.HeartbeatInterval)
	case c.ByteRate < c.MaxFrameSize:
		return fmt.Errorf("relay: byte rate %d below max frame size %d: a full frame could never pass", c.ByteRate, c.MaxFrameSize)
	case c.SendQueue < c.HighWater+2*c.MaxFrameSize:
		return fmt.Errorf("relay: send queue %d below high water %d plus two max frames: members would be closed before they count as slow", c.SendQueue, c.HighWater)
	case c.MaxConnections < 1, c.MaxChannels < 1, c.SyncReplyEntries < 1, c.MaxHandshakes < 1, c.JoinRate < 1, c.CacheEntries < 1, c.PendingEntries < 1, c.HighWater < 1,
		c.FrameRate < 1, c.AcceptRate < 1, c.MemoryBudget < 1:
		return fmt.Errorf("relay: limits must be positive")
	}
	return nil
}

// limits is what Welcome advertises.
func (c Config) limits() []wire.Limit {
	return []wire.Limit{
		{Key: wire.LimitMaxFrameSize, Value: uint64(c.MaxFrameSize)},
		{Key: wire.LimitMaxChannels, Value: uint64(c.MaxChannels)},
		{Key: wire.LimitMaxEntrySize, Value: uint64(c.MaxEntrySize)},
		{Key: wire.LimitCacheEntries, Value: uint64(c.CacheEntries)},
		{Key: wire.LimitHeartbeatMillis, Value: uint64(c.HeartbeatInterval.Milliseconds())},
		{Key: wire.LimitIdleTimeoutMilli, Value: uint64(c.IdleTimeout.Milliseconds())},
		{Key: wire.LimitPendingEntries, Value: uint64(c.PendingEntries)},
		{Key: wire.LimitFrameRate, Value: uint64(c.FrameRate)},
		{Key: wire.LimitByteRate, Value: uint64(c.ByteRate)},
		{Key: wire.LimitMaxConnections, Value: uint64(c.MaxConnections)},
		{Key: wire.LimitHandshakeMillis, Value: uint64(c.HandshakeTimeout.Milliseconds())},
		{Key: wire.LimitAcceptRate, Value: uint64(c.AcceptRate)},
		{Key: wire.LimitMemoryBudget, Value: uint64(c.MemoryBudget)},
		{Key: wire.LimitChannelIdleMillis, Value: uint64(c.ChannelIdleTimeout.Milliseconds())},
		{Key: wire.LimitSendQueue, Value: uint64(c.SendQueue)},
		{Key: wire.LimitSyncReplyEntries, Value: uint64(c.SyncReplyEntries)},
		{Key: wire.LimitMaxHandshakes, Value: uint64(c.MaxHandshakes)},
		{Key: wire.LimitJoinRate, Value: uint64(c.JoinRate)},
	}
}
