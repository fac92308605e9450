package config

import (
	"time"

	"github.com/cosnim/relays/relay"
)

// File is a loaded, validated configuration.
type File struct {
	// Path is the file that was read; "" for the embedded default.
	Path string
	// Source tells how Path was found.
	Source Source
	// Relays maps each relay name to its settings (Name filled in).
	Relays map[string]*Relay
	// Continuum is the continuum section.
	Continuum Continuum
	// CapsuleHubs maps each hub name to its section.
	CapsuleHubs map[string]CapsuleHub

	lines map[string]int // key path → line, for errors found after Load
}

// Source says where a configuration came from.
type Source int

// The places Load looks, in order.
const (
	SourceFlag     Source = iota + 1 // the path given to Load (the --config flag)
	SourceEnv                        // $COSNIM_CONFIG
	SourceCwd                        // ./cosnim.yaml
	SourceEmbedded                   // the built-in default
)

func (s Source) String() string {
	switch s {
	case SourceFlag:
		return "--config"
	case SourceEnv:
		return "$" + EnvVar
	case SourceCwd:
		return "./" + CwdFile
	case SourceEmbedded:
		return "embedded default"
	}
	return "unknown"
}

// Continuum is the continuum section. Only its relay parameter concerns relays.
type Continuum struct {
	// Relay names the relay or pool the continuum uses; none if empty.
	Relay RelayRef `mapstructure:"relay"`
}

// CapsuleHub is one capsule hub section. Only its relay parameter concerns relays.
type CapsuleHub struct {
	// Relay names the relay or pool the hub uses; if empty, the continuum's.
	Relay RelayRef `mapstructure:"relay"`
}

// Relay is one entry of the relays section.
type Relay struct {
	// Name is the relay's key in the relays section.
	Name   string `mapstructure:"-"`
	Client Client `mapstructure:"client"`
	Server Server `mapstructure:"server"`
}

// Client is how instances reach a relay.
type Client struct {
	// URL is tcp://HOST[:PORT] or tcps://HOST[:PORT] (TLS); the port defaults to 7420.
	URL string `mapstructure:"url"`
	// CACertFile verifies the server (tcps only); "" uses the system roots.
	CACertFile string `mapstructure:"ca_cert_file"`
	// CertFile and KeyFile are the client's certificate and key, for
	// relays that authorize clients (tcps only; both or neither).
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ServerName overrides the name checked in the server's certificate (tcps only).
	ServerName string `mapstructure:"server_name"`
	// ConnectTimeout bounds one connection attempt, TLS handshake included.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	// BackoffMin and BackoffMax bound the delay between reconnection attempts.
	BackoffMin time.Duration `mapstructure:"backoff_min"`
	BackoffMax time.Duration `mapstructure:"backoff_max"`

	// Address is HOST:PORT taken from URL (port defaulted). Set by Load.
	Address string `mapstructure:"-"`
	// TLS is true for tcps://. Set by Load.
	TLS bool `mapstructure:"-"`
}

// Server is how a relay listens.
type Server struct {
	// URL is tcp://[HOST][:PORT] or tcps://[HOST][:PORT]; an empty host listens on all addresses.
	URL string `mapstructure:"url"`
	// SSLCertFile is the server certificate, followed by any intermediates
	// (a bundle); PrivateKeyFile its key. Both required for tcps, refused for tcp.
	SSLCertFile    string `mapstructure:"ssl_cert_file"`
	PrivateKeyFile string `mapstructure:"private_key_file"`
	// ClientCAFile, when set, makes the relay require client certificates
	// signed by these CAs (tcps only).
	ClientCAFile string `mapstructure:"client_ca_file"`
	// AuthorizedClients, when not empty, admits only client certificates
	// matching an entry: a subject ("CN=instance-1" or a full subject such as
	// "CN=instance-1,O=Example") or "sha256:HEX" (the SHA-256 of the
	// certificate's DER). Requires ClientCAFile.
	AuthorizedClients []string `mapstructure:"authorized_clients"`
	// TLSPostQuantum adds the hybrid post-quantum key exchanges
	// (X25519MLKEM768 and friends) to a tcps:// relay's TLS handshakes. Off
	// by default: entries are already sealed with AES-256 under keys only
	// instances hold, and the hybrid exchange costs the relay twice the CPU
	// per handshake, which matters in a reconnect storm.
	TLSPostQuantum bool `mapstructure:"tls_post_quantum"`
	// MetricsURL is where Prometheus metrics are served (http://HOST:PORT); "" for off.
	MetricsURL string `mapstructure:"metrics_url"`
	// DrainGrace is how long a stopping relay lets connections finish.
	DrainGrace time.Duration `mapstructure:"drain_grace"`
	// DrainAlternates names relays (of the relays section) that a stopping
	// relay's Drain frame tells clients to use instead; DrainURLs are
	// their client URLs with the port made explicit
	// ("tcps://h2:7420"), filled in by Load: PROTOCOL §4.13 sends URLs.
	DrainAlternates []string `mapstructure:"drain_alternates"`
	DrainURLs       []string `mapstructure:"-"`
	// Limits caps what the relay accepts; each limit is advertised to
	// clients. Its keys (server.limits), defaults and rules are relay.Limits;
	// Load validates it with relay.Config.Validate, as relay.New does.
	Limits relay.Config `mapstructure:"limits"`
	// Backbone links this relay to the other relays of its pool over NATS
	// (server.backbone; see Backbone).
	Backbone Backbone `mapstructure:"backbone"`

	// Address is HOST:PORT taken from URL (port defaulted). Set by Load.
	Address string `mapstructure:"-"`
	// TLS is true for tcps://. Set by Load.
	TLS bool `mapstructure:"-"`
}
