package config

import (
	_ "embed"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/relay/relayserver"

	"github.com/cosnim/relays/relay"
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
// sets replace these values. This is the one place the client and server
// defaults are defined, and the limits come from relay.Limits;
// docs/CONFIG.md carries the same tables (tests keep them in step).
func Defaults() Relay {
	cc := client.DefaultConfig()
	return Relay{
		Client: Client{
			ConnectTimeout: cc.ConnectTimeout,
			BackoffMin:     cc.BackoffMin,
			BackoffMax:     cc.BackoffMax,
		},
		Server: Server{
			DrainGrace: relayserver.DefaultDrainGrace,
			Limits:     relay.DefaultConfig(),
			Backbone:   defaultBackbone(),
		},
	}
}
