package relay

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cosnim/relays/wire"
)

// Unit says how a limit's value is counted, written and advertised.
type Unit int

// The units of limits.
const (
	Count    Unit = iota + 1 // a plain number
	Bytes                    // a number of bytes
	Duration                 // a time.Duration in nanoseconds; advertised in milliseconds
)

// Format writes v as the configuration documentation does: "64KiB",
// "15s", "10000".
func (u Unit) Format(v int64) string {
	switch u {
	case Duration:
		return time.Duration(v).String()
	case Bytes:
		for _, b := range []struct {
			suffix string
			mult   int64
		}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
			if v != 0 && v%b.mult == 0 {
				return strconv.FormatInt(v/b.mult, 10) + b.suffix
			}
		}
	}
	return strconv.FormatInt(v, 10)
}

// Op compares a limit with another one in a Bound.
type Op int

// The comparisons a Bound may make.
const (
	AtMost  Op = iota + 1 // value <= other - Less
	Above                 // value > other - Less
	AtLeast               // value >= other - Less
)

func (o Op) holds(v, w int64) bool {
	switch o {
	case AtMost:
		return v <= w
	case Above:
		return v > w
	case AtLeast:
		return v >= w
	}
	return false
}

func (o Op) String() string {
	switch o {
	case AtMost:
		return "at most"
	case Above:
		return "greater than"
	case AtLeast:
		return "at least"
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Bound ties a limit to another limit: value Op (Other's value - Less).
type Bound struct {
	Op    Op
	Other string // Key of the other limit
	Less  int64  // room taken off the other's value
	Why   string // what breaks otherwise; "" when it goes without saying
}

// lessText is the room in words: " minus 64", " plus 256KiB".
func (b *Bound) lessText() string {
	switch {
	case b.Less > 0:
		return " minus " + strconv.FormatInt(b.Less, 10)
	case b.Less < 0:
		return " plus " + Bytes.Format(-b.Less)
	}
	return ""
}

// Limit describes one configurable limit of the relay, once: its key in
// the configuration file (server.limits), its key in Welcome, its default,
// the rule it must meet and its line in docs/CONFIG.md. DefaultConfig,
// WithDefaults, Validate, the Welcome limits, the configuration loader and
// the documentation all follow this table.
type Limit struct {
	Key     string        // key under server.limits, e.g. "max_frame_size"
	Wire    wire.LimitKey // key under which Welcome advertises it
	Unit    Unit
	Default int64  // in Unit (nanoseconds for Duration)
	Min     int64  // smallest value that works
	Bound   *Bound // a rule against another limit; nil for none
	Doc     string // what it bounds, one line

	field field
}

// field reads and writes one Config field as an int64.
type field struct {
	get func(*Config) int64
	set func(*Config, int64)
}

func intField(p func(*Config) *int) field {
	return field{
		get: func(c *Config) int64 { return int64(*p(c)) },
		set: func(c *Config, v int64) { *p(c) = int(v) },
	}
}

func int64Field(p func(*Config) *int64) field {
	return field{
		get: func(c *Config) int64 { return *p(c) },
		set: func(c *Config, v int64) { *p(c) = v },
	}
}

func durationField(p func(*Config) *time.Duration) field {
	return field{
		get: func(c *Config) int64 { return int64(*p(c)) },
		set: func(c *Config, v int64) { *p(c) = time.Duration(v) },
	}
}

// limitTable is the one table of limits, in the order of docs/CONFIG.md.
// Defaults a client also assumes come from wire.
var limitTable = []Limit{
	{Key: "max_connections", Wire: wire.LimitMaxConnections, Unit: Count, Default: 10000, Min: 1,
		Doc:   "open connections",
		field: intField(func(c *Config) *int { return &c.MaxConnections })},
	{Key: "handshake_timeout", Wire: wire.LimitHandshakeMillis, Unit: Duration, Default: int64(5 * time.Second), Min: 1,
		Doc:   "from accept to a completed handshake",
		field: durationField(func(c *Config) *time.Duration { return &c.HandshakeTimeout })},
	{Key: "heartbeat_interval", Wire: wire.LimitHeartbeatMillis, Unit: Duration,
		Default: int64(wire.DefaultHeartbeatMillis * time.Millisecond), Min: 1,
		Doc:   "between heartbeats on a quiet connection",
		field: durationField(func(c *Config) *time.Duration { return &c.HeartbeatInterval })},
	{Key: "idle_timeout", Wire: wire.LimitIdleTimeoutMilli, Unit: Duration,
		Default: int64(wire.DefaultIdleTimeoutMs * time.Millisecond), Min: 1,
		Bound: &Bound{Op: Above, Other: "heartbeat_interval", Why: "a quiet but healthy connection would be closed"},
		Doc:   "silence after which a connection is closed",
		field: durationField(func(c *Config) *time.Duration { return &c.IdleTimeout })},
	{Key: "max_frame_size", Wire: wire.LimitMaxFrameSize, Unit: Bytes, Default: wire.DefaultMaxFrameSize, Min: 1024,
		Doc:   "one frame, header included",
		field: intField(func(c *Config) *int { return &c.MaxFrameSize })},
	{Key: "max_channels_per_connection", Wire: wire.LimitMaxChannels, Unit: Count, Default: wire.DefaultMaxChannels, Min: 1,
		Doc:   "channels one connection may join",
		field: intField(func(c *Config) *int { return &c.MaxChannels })},
	{Key: "max_entry_size", Wire: wire.LimitMaxEntrySize, Unit: Bytes, Default: wire.DefaultMaxEntrySize, Min: 1,
		// 64 bytes leave room for the header and fields of the frame that carries one entry.
		Bound: &Bound{Op: AtMost, Other: "max_frame_size", Less: 64, Why: "an entry must fit in a frame with its header"},
		Doc:   "one sealed roster entry, in bytes",
		field: intField(func(c *Config) *int { return &c.MaxEntrySize })},
	{Key: "cache_entries", Wire: wire.LimitCacheEntries, Unit: Count, Default: wire.DefaultCacheEntries, Min: 1,
		Doc:   "entries kept per channel",
		field: intField(func(c *Config) *int { return &c.CacheEntries })},
	{Key: "channel_idle_timeout", Wire: wire.LimitChannelIdleMillis, Unit: Duration, Default: int64(10 * time.Minute), Min: 1,
		Doc:   "how long a channel without members keeps its cache for members coming back; then the relay forgets it",
		field: durationField(func(c *Config) *time.Duration { return &c.ChannelIdleTimeout })},
	{Key: "pending_entries", Wire: wire.LimitPendingEntries, Unit: Count, Default: wire.DefaultPendingEntries, Min: 1,
		Doc:   "entries queued per slow member per channel",
		field: intField(func(c *Config) *int { return &c.PendingEntries })},
	{Key: "frame_rate", Wire: wire.LimitFrameRate, Unit: Count, Default: wire.DefaultFrameRate, Min: 1,
		Doc:   "frames per second per connection",
		field: intField(func(c *Config) *int { return &c.FrameRate })},
	{Key: "byte_rate", Wire: wire.LimitByteRate, Unit: Bytes, Default: wire.DefaultByteRate, Min: 1,
		Bound: &Bound{Op: AtLeast, Other: "max_frame_size", Why: "a full frame could never pass"},
		Doc:   "bytes per second per connection",
		field: intField(func(c *Config) *int { return &c.ByteRate })},
	{Key: "memory_budget", Wire: wire.LimitMemoryBudget, Unit: Bytes, Default: 1 << 30, Min: 1,
		Doc:   "memory for the whole relay",
		field: int64Field(func(c *Config) *int64 { return &c.MemoryBudget })},
	{Key: "accept_rate", Wire: wire.LimitAcceptRate, Unit: Count, Default: 10000, Min: 1,
		Doc:   "new connections per second (burst one second's worth); sized so 10,000 clients can reconnect at once after a restart",
		field: intField(func(c *Config) *int { return &c.AcceptRate })},
	{Key: "max_handshakes", Wire: wire.LimitMaxHandshakes, Unit: Count, Default: 256, Min: 1,
		Doc:   "TLS handshakes in progress at once, counted from the ClientHello; past it, and past accept_rate or max_connections, connections are closed before any handshake work",
		field: intField(func(c *Config) *int { return &c.MaxHandshakes })},
	{Key: "send_queue", Wire: wire.LimitSendQueue, Unit: Bytes, Default: 4 << 20, Min: 1,
		// Past high water a member only gets merged entries, so the queue
		// needs room for that much and one more frame.
		Bound: &Bound{Op: AtLeast, Other: "max_frame_size", Less: -DefaultHighWater, Why: "a member would be closed before it counts as slow"},
		Doc:   "bytes queued to one connection; past it the connection is closed (send queue full)",
		field: intField(func(c *Config) *int { return &c.SendQueue })},
	{Key: "sync_reply_entries", Wire: wire.LimitSyncReplyEntries, Unit: Count, Default: 4096, Min: 1,
		Doc:   "entries given in answer to one sync message; a peer lacking more gets them in later rounds",
		field: intField(func(c *Config) *int { return &c.SyncReplyEntries })},
	{Key: "join_rate", Wire: wire.LimitJoinRate, Unit: Count, Default: 64, Min: 1,
		Doc:   "joins per second per connection, burst twice max_channels_per_connection; each costs a signature check",
		field: intField(func(c *Config) *int { return &c.JoinRate })},
	{Key: "max_denied_joins", Wire: wire.LimitMaxDeniedJoins, Unit: Count, Default: 3, Min: 1,
		Doc:   "joins one connection may have denied for a bad channel proof; at this many the relay closes it (Error join denied, fatal)",
		field: intField(func(c *Config) *int { return &c.MaxDeniedJoins })},
	{Key: "client_hello_timeout", Wire: wire.LimitClientHelloMillis, Unit: Duration, Default: int64(2 * time.Second), Min: 1,
		Doc:   "TLS: from accept to the first record, which must be a ClientHello; a silent connection is closed before it takes a handshake slot (handshake_timeout still bounds the whole)",
		field: durationField(func(c *Config) *time.Duration { return &c.ClientHelloTimeout })},
	{Key: "max_pre_handshake", Wire: wire.LimitMaxPreHandshake, Unit: Count, Default: 1024, Min: 1,
		Doc:   "TLS connections accepted and waiting for their ClientHello; past it the oldest is closed",
		field: intField(func(c *Config) *int { return &c.MaxPreHandshake })},
	{Key: "max_connections_per_source", Wire: wire.LimitMaxConnsPerSource, Unit: Count, Default: 1000, Min: 1,
		Doc:   "TLS connections open from one source (an IPv4 address or an IPv6 /64), handshaking or served (max_connections still bounds them all)",
		field: intField(func(c *Config) *int { return &c.MaxConnsPerSource })},
	{Key: "max_handshakes_per_source", Wire: wire.LimitMaxHandshakesSource, Unit: Count, Default: 32, Min: 1,
		Doc:   "TLS handshakes in progress from one source",
		field: intField(func(c *Config) *int { return &c.MaxHandshakesPerSource })},
	{Key: "accept_rate_per_source", Wire: wire.LimitAcceptRateSource, Unit: Count, Default: 100, Min: 1,
		Doc:   "new TLS connections per second from one source (burst one second's worth); a connection does one handshake, so this bounds handshakes too",
		field: intField(func(c *Config) *int { return &c.AcceptRatePerSource })},
}

// Limits returns the table of configurable limits, in documentation order.
func Limits() []Limit { return append([]Limit(nil), limitTable...) }

// LimitByKey returns the limit whose Key is key.
func LimitByKey(key string) (Limit, bool) {
	for _, l := range limitTable {
		if l.Key == key {
			return l, true
		}
	}
	return Limit{}, false
}

// Get returns l's value in c.
func (l Limit) Get(c Config) int64 { return l.field.get(&c) }

// Set sets l's value in c.
func (l Limit) Set(c *Config, v int64) { l.field.set(c, v) }

// Rule says in words what Validate demands of l, e.g. "greater than 0,
// at most max_frame_size minus 64".
func (l Limit) Rule() string {
	rule := l.minRule()
	if b := l.Bound; b != nil {
		rule += ", " + b.Op.String() + " " + b.Other + b.lessText()
	}
	return rule
}

// ErrBadLimit is wrapped by every error Validate returns.
var ErrBadLimit = errors.New("relay: limit cannot work")

// LimitError is one limit that breaks its rule.
type LimitError struct {
	Key string // Key of the limit, as in the table; "" for one outside it
	Msg string // the rule broken, naming the values
}

func (e *LimitError) Error() string { return "relay: " + e.Msg }

// Unwrap makes errors.Is(err, ErrBadLimit) hold.
func (e *LimitError) Unwrap() error { return ErrBadLimit }

// check returns l's problems in c: below its minimum, or out of its bound
// (checked only when both values meet their minimum, to report one cause).
func (l Limit) check(c Config) *LimitError {
	v := l.Get(c)
	if v < l.Min {
		return &LimitError{Key: l.Key, Msg: fmt.Sprintf("%s (%s) must be %s", l.Key, l.Unit.Format(v), l.minRule())}
	}
	b := l.Bound
	if b == nil {
		return nil
	}
	o, _ := LimitByKey(b.Other)
	w := o.Get(c)
	if w < o.Min || b.Op.holds(v, w-b.Less) {
		return nil
	}
	var msg strings.Builder
	fmt.Fprintf(&msg, "%s (%s) must be %s %s (%s)%s", l.Key, l.Unit.Format(v), b.Op, b.Other, o.Unit.Format(w), b.lessText())
	if b.Why != "" {
		msg.WriteString(": " + b.Why)
	}
	return &LimitError{Key: l.Key, Msg: msg.String()}
}

func (l Limit) minRule() string {
	if l.Min == 1 {
		return "greater than 0"
	}
	return "at least " + l.Unit.Format(l.Min)
}

// wireValue is v as Welcome advertises it.
func (l Limit) wireValue(v int64) uint64 {
	if l.Unit == Duration {
		return uint64(time.Duration(v).Milliseconds())
	}
	return uint64(v)
}
