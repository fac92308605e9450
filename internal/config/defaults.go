package config

import (
	_ "embed"
	"time"
)

// Names Load uses when it is given no path.
const (
	EnvVar  = "COSNIM_CONFIG" // environment variable naming the file
	CwdFile = "cosnim.yaml"   // file looked for in the working directory
)

// defaultYAML is used when no file is found: one relay, "local", on
// 127.0.0.1:7420 without TLS.
//
//go:embed default.yaml
var defaultYAML []byte

// Defaults returns the settings every relay starts from; the keys a file
// sets replace these values. This is the one place defaults are defined;
// docs/CONFIG.md carries the same table (a test keeps them in step).
func Defaults() Relay {
	return Relay{
		Client: Client{
			ConnectTimeout: 5 * time.Second,
			BackoffMin:     100 * time.Millisecond,
			BackoffMax:     30 * time.Second,
		},
		Server: Server{
			DrainGrace: 10 * time.Second,
			Limits: Limits{
				MaxConnections:           10000,
				HandshakeTimeout:         5 * time.Second,
				HeartbeatInterval:        15 * time.Second,
				IdleTimeout:              45 * time.Second,
				MaxFrameSize:             64 << 10,
				MaxChannelsPerConnection: 64,
				MaxEntrySize:             1100,
				CacheEntries:             100000,
				ChannelIdleTimeout:       10 * time.Minute,
				PendingEntries:           10000,
				FrameRate:                10000,
				ByteRate:                 8 << 20,
				MemoryBudget:             1 << 30,
				AcceptRate:               10000,
			},
		},
	}
}
