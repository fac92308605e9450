package wire

import "strconv"

// String returns the frame type's name, e.g. "Announce", or "Type(0x2a)"
// for an unknown type.
func (t Type) String() string {
	if known(t) {
		return frameTypes[t].name
	}
	return "Type(0x" + strconv.FormatUint(uint64(t), 16) + ")"
}

// CodeHandshakeTimeout is CodeHandshakeTimout, correctly spelled.
const CodeHandshakeTimeout = CodeHandshakeTimout

var codeNames = [...]string{
	CodeProtocol:         "protocol",
	CodeVersion:          "version",
	CodeFrameTooLarge:    "frame too large",
	CodeNoHello:          "no hello",
	CodeJoinDenied:       "join denied",
	CodeTooManyChannels:  "too many channels",
	CodeUnknownHandle:    "unknown handle",
	CodeRateLimited:      "rate limited",
	CodeRelayFull:        "relay full",
	CodeResync:           "resync",
	CodeIdle:             "idle",
	CodeShuttingDown:     "shutting down",
	CodeUnauthorized:     "unauthorized",
	CodeInternal:         "internal",
	CodeRescan:           "rescan",
	CodeHandshakeTimeout: "handshake timeout",
	CodeBadEntry:         "bad entry",
	CodeQueueFull:        "send queue full",
}

// String returns the code's meaning in a few words, e.g. "join denied", or
// "Code(99)" for an unknown code.
func (c Code) String() string {
	if int(c) < len(codeNames) && codeNames[c] != "" {
		return codeNames[c]
	}
	return "Code(" + strconv.FormatUint(uint64(c), 10) + ")"
}

var limitNames = [...]string{
	LimitMaxFrameSize:        "max-frame-size",
	LimitMaxChannels:         "max-channels",
	LimitMaxEntrySize:        "max-entry-size",
	LimitCacheEntries:        "cache-entries",
	LimitHeartbeatMillis:     "heartbeat-ms",
	LimitIdleTimeoutMilli:    "idle-timeout-ms",
	LimitFrameRate:           "frame-rate",
	LimitByteRate:            "byte-rate",
	LimitPendingEntries:      "pending-entries",
	LimitMaxConnections:      "max-connections",
	LimitHandshakeMillis:     "handshake-timeout-ms",
	LimitAcceptRate:          "accept-rate",
	LimitMemoryBudget:        "memory-budget",
	LimitChannelIdleMillis:   "channel-idle-timeout-ms",
	LimitSendQueue:           "send-queue",
	LimitSyncReplyEntries:    "sync-reply-entries",
	LimitMaxHandshakes:       "max-handshakes",
	LimitJoinRate:            "join-rate",
	LimitClientHelloMillis:   "client-hello-timeout-ms",
	LimitMaxPreHandshake:     "max-pre-handshake",
	LimitMaxConnsPerSource:   "max-connections-per-source",
	LimitMaxHandshakesSource: "max-handshakes-per-source",
	LimitAcceptRateSource:    "accept-rate-per-source",
	LimitMaxDeniedJoins:      "max-denied-joins",
}

// String returns the limit's name, e.g. "max-frame-size", or "Limit(99)" for
// an unknown key.
func (k LimitKey) String() string {
	if int(k) < len(limitNames) && limitNames[k] != "" {
		return limitNames[k]
	}
	return "Limit(" + strconv.FormatUint(uint64(k), 10) + ")"
}

// Default values of the limits, as advertised by a relay with no
// configuration.
const (
	DefaultMaxChannels     = 64
	DefaultMaxEntrySize    = 1100
	DefaultCacheEntries    = 100000
	DefaultHeartbeatMillis = 15000
	DefaultIdleTimeoutMs   = 45000
	DefaultFrameRate       = 10000
	DefaultByteRate        = 8 << 20
	DefaultPendingEntries  = 10000
)

// DefaultLimits returns every limit at its default, in key order.
func DefaultLimits() []Limit {
	return []Limit{
		{LimitMaxFrameSize, DefaultMaxFrameSize},
		{LimitMaxChannels, DefaultMaxChannels},
		{LimitMaxEntrySize, DefaultMaxEntrySize},
		{LimitCacheEntries, DefaultCacheEntries},
		{LimitHeartbeatMillis, DefaultHeartbeatMillis},
		{LimitIdleTimeoutMilli, DefaultIdleTimeoutMs},
		{LimitFrameRate, DefaultFrameRate},
		{LimitByteRate, DefaultByteRate},
		{LimitPendingEntries, DefaultPendingEntries},
	}
}
