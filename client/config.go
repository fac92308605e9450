package client

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/wire"
)

// Config holds the client core's settings. Zero fields take the defaults
// of DefaultConfig through WithDefaults.
type Config struct {
	// Addrs are relay addresses, tried in turn; alternates a relay names in
	// a Drain frame are added after them.
	Addrs []string
	// Agent names this client in Hello, for the relay's logs.
	Agent string

	BackoffMin     time.Duration // first reconnect delay (default 100ms)
	BackoffMax     time.Duration // reconnect delay cap (default 30s)
	ConnectTimeout time.Duration // dial and handshake must finish within this (default 5s)
	AntiEntropy    time.Duration // each joined channel syncs this often (default 30s)
	// Heartbeat is used until the relay advertises its own (default 15s).
	Heartbeat time.Duration
	// IdleTimeout is used until the relay advertises its own (default 45s).
	IdleTimeout time.Duration
	// AnnounceDelay, when positive, holds announces for up to this long
	// so that those made close together leave in one Announce frame (the
	// relay then pays per frame, not per entry); 0 sends each at once.
	AnnounceDelay time.Duration
	// NoAlternates keeps the alternates of a relay's Drain out of the
	// address list: a Pool sets it and places channels on the alternates
	// that are relays of the pool itself.
	NoAlternates bool

	Logger *slog.Logger
	Faults fault.Set
}

// MaxAnnounceDelay bounds AnnounceDelay: coalescing must not cost
// awareness more than this.
const MaxAnnounceDelay = time.Millisecond

// DefaultConfig returns the documented defaults (with no addresses).
func DefaultConfig() Config {
	return Config{
		Agent:          "cosnim",
		BackoffMin:     100 * time.Millisecond,
		BackoffMax:     30 * time.Second,
		ConnectTimeout: 5 * time.Second,
		AntiEntropy:    30 * time.Second,
		Heartbeat:      wire.DefaultHeartbeatMillis * time.Millisecond,
		IdleTimeout:    wire.DefaultIdleTimeoutMs * time.Millisecond,
	}
}

// WithDefaults fills zero fields with defaults.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.Agent == "" {
		c.Agent = d.Agent
	}
	for _, p := range []struct{ v, def *time.Duration }{
		{&c.BackoffMin, &d.BackoffMin}, {&c.BackoffMax, &d.BackoffMax},
		{&c.ConnectTimeout, &d.ConnectTimeout}, {&c.AntiEntropy, &d.AntiEntropy},
		{&c.Heartbeat, &d.Heartbeat}, {&c.IdleTimeout, &d.IdleTimeout},
	} {
		if *p.v == 0 {
			*p.v = *p.def
		}
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	switch {
	case len(c.Addrs) == 0:
		return errors.New("client: no relay address")
	case c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin:
		return errors.New("client: backoff must satisfy 0 < min <= max")
	case c.IdleTimeout <= c.Heartbeat:
		return errors.New("client: idle timeout must exceed heartbeat")
	case c.AnnounceDelay < 0 || c.AnnounceDelay > MaxAnnounceDelay:
		return fmt.Errorf("client: announce delay %v must be between 0 and %v", c.AnnounceDelay, MaxAnnounceDelay)
	}
	return nil
}
