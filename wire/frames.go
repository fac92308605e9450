package wire

import "github.com/cosnim/relays/roster"

// Version is the protocol version this package speaks.
//
// Changelog:
//   - 1: first version.
const Version = 1

// HeaderSize is the size of a frame header: a big-endian uint32 length of
// what follows it (type byte plus payload), then the type byte.
const HeaderSize = 5

// DefaultMaxFrameSize is the largest frame (header included) a peer accepts
// unless the handshake advertises otherwise.
const DefaultMaxFrameSize = 64 << 10

// Type is a frame type. The payload layout of each is in PROTOCOL.md.
// Integers are big-endian; a string is a u16 length and UTF-8 bytes; entries
// are a u16 count, then per entry a u16 length (≥ 1) and sealed bytes.
type Type uint8

const (
	TypeHello    Type = 0x01 // client→relay: magic "CSNM", min u16, max u16 version, agent (u8 length + bytes)
	TypeWelcome  Type = 0x02 // relay→client: version u16, epoch u64, join nonce [16], limits (u8 count, each key u16 + value uvarint)
	TypeJoin     Type = 0x03 // client→relay: handle u32, channel [32], pubkey [32], sig [64]
	TypeJoined   Type = 0x04 // relay→client: handle u32, cached u32, flags u8
	TypeLeave    Type = 0x05 // client→relay: handle u32
	TypeAnnounce Type = 0x06 // client→relay: handle u32, seq u32, entries
	TypeAck      Type = 0x07 // relay→client: handle u32, seq u32
	TypeDeliver  Type = 0x08 // relay→client: handle u32, entries (fan-out)
	TypeSync     Type = 0x09 // both: handle u32, session u32, flags u8, sync message (u16 ranges: depth u8, prefix, mode u8, fp or IDs; want)
	TypeDelta    Type = 0x0A // both: handle u32, session u32, entries (answer to a sync)
	TypePing     Type = 0x0B // both: data u64
	TypePong     Type = 0x0C // both: data u64 echoed
	TypeDrain    Type = 0x0D // relay→client: after ms u32, jitter ms u32, alternates (u8 count ≤ 16, each string ≤ 512)
	TypeError    Type = 0x0E // both: code u16, handle u32, flags u8, text string (≤ 1024)
)

// Hello opens a connection (client to relay).
type Hello struct {
	MinVersion, MaxVersion uint16
	Agent                  string // free text, at most 255 bytes
}

// Limit keys advertised in Welcome. Unknown keys are ignored by old peers.
type LimitKey uint16

const (
	LimitMaxFrameSize     LimitKey = 1 // bytes, header included
	LimitMaxChannels      LimitKey = 2 // channels per connection
	LimitMaxEntrySize     LimitKey = 3 // sealed bytes per entry
	LimitCacheEntries     LimitKey = 4 // entries the relay keeps per channel
	LimitHeartbeatMillis  LimitKey = 5 // clients ping this often
	LimitIdleTimeoutMilli LimitKey = 6 // silence after which the relay closes
	LimitFrameRate        LimitKey = 7 // frames per second per connection
	LimitByteRate         LimitKey = 8 // bytes per second per connection
	LimitPendingEntries   LimitKey = 9 // merged entries held for a slow member
	// Relay-wide limits, advertised so clients and operators can see them.
	LimitMaxConnections    LimitKey = 10 // connections the relay serves
	LimitHandshakeMillis   LimitKey = 11 // Hello must arrive within this
	LimitAcceptRate        LimitKey = 12 // new connections per second
	LimitMemoryBudget      LimitKey = 13 // bytes the relay may hold
	LimitChannelIdleMillis LimitKey = 14 // a channel without members is forgotten after this
	LimitSendQueue         LimitKey = 15 // bytes queued to one connection; past it the relay closes it
	LimitSyncReplyEntries  LimitKey = 16 // entries given in answer to one sync message; the rest in later rounds
	LimitMaxHandshakes     LimitKey = 17 // TLS handshakes in progress at once
	LimitJoinRate          LimitKey = 18 // joins per second per connection, burst 2 × max-channels
	// Gates before a TLS handshake and against a source (an IPv4 address
	// or an IPv6 /64), and the joins a connection may have denied.
	LimitClientHelloMillis   LimitKey = 19 // the first TLS record must arrive within this
	LimitMaxPreHandshake     LimitKey = 20 // TLS connections waiting for their ClientHello
	LimitMaxConnsPerSource   LimitKey = 21 // open TLS connections from one source
	LimitMaxHandshakesSource LimitKey = 22 // TLS handshakes in progress from one source
	LimitAcceptRateSource    LimitKey = 23 // new TLS connections per second from one source
	LimitMaxDeniedJoins      LimitKey = 24 // joins denied for a bad proof before the relay closes the connection
)

// Limit is one advertised limit.
type Limit struct {
	Key   LimitKey
	Value uint64
}

// Welcome answers Hello (relay to client).
type Welcome struct {
	Version uint16
	Epoch   uint64 // random at each relay start
	Nonce   [roster.JoinNonceSize]byte
	Limits  []Limit
}

// Join asks to join a channel under a client-chosen handle.
type Join struct {
	Handle  uint32
	Channel roster.ChannelID
	Pub     [roster.PublicKeySize]byte
	Sig     [roster.SignatureSize]byte
}

// JoinedComplete is set in Joined.Flags when the relay's cache for the
// channel holds everything announced since the relay's epoch began.
const JoinedComplete = 1

// Joined confirms a Join.
type Joined struct {
	Handle uint32
	Cached uint32 // entries the relay holds for the channel
	Flags  uint8
}

// Leave leaves a channel.
type Leave struct{ Handle uint32 }

// Announce carries new entries from a client; the relay answers with Ack.
// Entries alias the decoded buffer (see Reader).
type Announce struct {
	Handle  uint32
	Seq     uint32
	Entries [][]byte // sealed bytes, each 1..65535 bytes
}

// Ack confirms an Announce.
type Ack struct{ Handle, Seq uint32 }

// Deliver carries entries fanned out by the relay.
type Deliver struct {
	Handle  uint32
	Entries [][]byte
}

// SyncMore is set in Sync.Flags on every frame of a reply but the last:
// a reply too large for one frame is split by ranges and wants, and each
// part is a sync message of its own.
const SyncMore = 1

// Sync carries one round of reconciliation.
type Sync struct {
	Handle  uint32
	Session uint32
	Flags   uint8
	Msg     roster.SyncMsg
}

// Delta carries entries a sync found the receiver lacks.
type Delta struct {
	Handle  uint32
	Session uint32
	Entries [][]byte
}

// Ping asks for a Pong with the same data.
type Ping struct{ Data uint64 }

// Pong answers Ping.
type Pong struct{ Data uint64 }

// Drain tells a client the relay is going away.
type Drain struct {
	AfterMillis  uint32 // reconnect no sooner than this
	JitterMillis uint32 // plus a random delay up to this
	Alternates   []string
}

// Code is an error code carried by an Error frame.
type Code uint16

const (
	CodeProtocol        Code = 1  // malformed frame
	CodeVersion         Code = 2  // no common protocol version
	CodeFrameTooLarge   Code = 3  // frame over the advertised limit
	CodeNoHello         Code = 4  // a frame before the handshake
	CodeJoinDenied      Code = 5  // bad channel proof
	CodeTooManyChannels Code = 6  // over the per-connection channel limit
	CodeUnknownHandle   Code = 7  // a handle that is not joined
	CodeRateLimited     Code = 8  // over the frame or byte rate
	CodeRelayFull       Code = 9  // over the connection limit
	CodeResync          Code = 10 // slow member: pending entries dropped, sync again
	CodeIdle            Code = 11 // silent past the idle timeout
	CodeShuttingDown    Code = 12 // relay stopping
	CodeUnauthorized    Code = 13 // client certificate refused
	CodeInternal        Code = 14 // relay fault
	CodeRescan          Code = 15 // relay cache incomplete: list storage
	CodeHandshakeTimout Code = 16 // no Hello in time
	CodeBadEntry        Code = 17 // entry empty or over the entry size limit
	CodeQueueFull       Code = 18 // the peer let its send queue pass the limit
)

// ErrorFatal is set in Error.Flags when the sender closes the connection after it.
const ErrorFatal = 1

// Error reports a problem to the peer. Handle is 0 for the whole connection.
type Error struct {
	Code   Code
	Handle uint32
	Flags  uint8
	Text   string // at most 1024 bytes
}
