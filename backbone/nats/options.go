package nats

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/cosnim/relays/backbone"
	"github.com/cosnim/relays/internal/defaults"
	"github.com/cosnim/relays/internal/files"
	"github.com/cosnim/relays/wire"
)

// Defaults for Options.
const (
	DefaultRequestTimeout = backbone.RequestTimeout
	DefaultReconnectMin   = 100 * time.Millisecond
	DefaultReconnectMax   = 5 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	// DefaultPendingBytes caps what received messages that wait for the
	// core hold, over all subscriptions; past it they are dropped and
	// counted instead of stalling the connection.
	DefaultPendingBytes = 4 << 20
	// DefaultOutboxBytes caps what waits to be handed to nats.go.
	DefaultOutboxBytes = 4 << 20
	// DefaultMaxMessage is the largest message the Bus takes from NATS
	// (the relay's default max_frame_size); larger ones are dropped before
	// they are queued.
	DefaultMaxMessage = wire.DefaultMaxFrameSize
	// DefaultReconnectBuf caps what nats.go keeps while reconnecting.
	DefaultReconnectBuf = 1 << 20
	// DefaultMaxRequests caps requests awaiting a reply; more fail with
	// backbone.ErrDown.
	DefaultMaxRequests = 4096
)

// Options configures a Bus. The zero value of every field but URLs gives
// the documented default.
type Options struct {
	// URLs are the NATS servers, nats://HOST[:PORT] or tls://HOST[:PORT];
	// nats.go learns the rest of a cluster from the first it reaches.
	URLs []string
	// CACertFile verifies the servers (TLS); "" uses the system roots.
	// CertFile and KeyFile are this relay's certificate, for servers that
	// verify clients (both or neither). Setting any of them requires TLS.
	CACertFile, CertFile, KeyFile string
	// CredsFile is a NATS credentials file (JWT and nkey seed);
	// NKeySeedFile an nkey seed alone; User and Password plain
	// credentials. At most one of the three ways.
	CredsFile    string
	NKeySeedFile string
	User         string
	Password     string
	// Name is how NATS monitoring names this connection.
	Name string
	// RequestTimeout bounds a Request (default 2s).
	RequestTimeout time.Duration
	// ConnectTimeout bounds one dial and handshake (default 5s).
	ConnectTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the delay between attempts,
	// which doubles from min to max; attempts never stop (defaults 100ms
	// and 5s).
	ReconnectMin, ReconnectMax time.Duration
	// PendingBytes, OutboxBytes, ReconnectBuf, MaxRequests and
	// MaxMessage: see the Default constants. MaxMessage counts what the
	// core sends and takes: with a pool key, messages on NATS are
	// AuthOverhead bytes longer.
	PendingBytes int
	OutboxBytes  int
	ReconnectBuf int
	MaxRequests  int
	MaxMessage   int
	// PoolKeyFile holds the pool key: when set, every message is
	// authenticated (auth.go) and those that fail are dropped. Every
	// relay of the pool names the same key.
	PoolKeyFile string
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	o.RequestTimeout = defaults.Positive(o.RequestTimeout, DefaultRequestTimeout)
	o.ConnectTimeout = defaults.Positive(o.ConnectTimeout, DefaultConnectTimeout)
	o.ReconnectMin = defaults.Positive(o.ReconnectMin, DefaultReconnectMin)
	o.ReconnectMax = max(defaults.Positive(o.ReconnectMax, DefaultReconnectMax), o.ReconnectMin)
	o.PendingBytes = defaults.Positive(o.PendingBytes, DefaultPendingBytes)
	o.MaxMessage = defaults.Positive(o.MaxMessage, DefaultMaxMessage)
	o.OutboxBytes = defaults.Positive(o.OutboxBytes, DefaultOutboxBytes)
	o.ReconnectBuf = defaults.Positive(o.ReconnectBuf, DefaultReconnectBuf)
	o.MaxRequests = defaults.Positive(o.MaxRequests, DefaultMaxRequests)
	o.Logger = defaults.Logger(o.Logger)
}

// MaxHeld is the most a Bus built with o holds in memory at once, for
// the relay's memory budget: the receive queue, the outbox, nats.go's
// reconnect buffer, and the hand-off of at most handoffMsgs messages
// (of MaxMessage when the NATS max_payload is no larger, as POOLS.md
// advises; the Bus warns at connect when it is larger).
func (o Options) MaxHeld() int64 {
	o.setDefaults()
	return int64(o.PendingBytes) + int64(o.OutboxBytes) + int64(o.ReconnectBuf) + handoffMsgs*int64(o.MaxMessage)
}

// URL schemes a backbone URL may use.
const (
	SchemeNATS = "nats"
	SchemeTLS  = "tls"
)

// CheckURL checks one backbone URL: nats:// or tls://, a host, an
// optional port, nothing else (credentials have keys of their own, so
// they never show in logs or /status).
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL", raw)
	case u.Scheme != SchemeNATS && u.Scheme != SchemeTLS:
		return fmt.Errorf("%q: the scheme must be nats:// or tls://", raw)
	case u.User != nil:
		return fmt.Errorf("%q: put credentials in user and password or creds_file, not in the URL", raw)
	case u.Hostname() == "":
		return fmt.Errorf("%q has no host", raw)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return fmt.Errorf("%q: only nats://HOST[:PORT] or tls://HOST[:PORT]", raw)
	}
	return nil
}

// CheckKeyFile checks that a creds or nkey seed file holds a user's
// nkey seed, as nats.go will need at each connect.
func CheckKeyFile(name string) error {
	data, err := files.Read(name, files.MaxPEM)
	if err != nil {
		return err
	}
	if _, err := nkeys.ParseDecoratedUserNKey(data); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// natsOptions turns o into nats.go's options, loading every file now so
// that a bad one fails New, not a later reconnect.
func (b *Bus) natsOptions() (natsgo.Options, error) {
	o := b.opt
	no := natsgo.GetDefaultOptions()
	no.Servers = o.URLs
	opts := []natsgo.Option{
		natsgo.Name(o.Name),
		natsgo.NoEcho(),
		natsgo.Timeout(o.ConnectTimeout),
		natsgo.MaxReconnects(-1),
		natsgo.RetryOnFailedConnect(true),
		natsgo.IgnoreAuthErrorAbort(), // a fixed password on the server side is picked up
		natsgo.CustomReconnectDelay(b.reconnectDelay),
		natsgo.ReconnectBufSize(o.ReconnectBuf),
		natsgo.ConnectHandler(b.onConnect),
		natsgo.ReconnectHandler(b.onReconnect),
		natsgo.DisconnectErrHandler(b.onDisconnect),
		natsgo.ReconnectErrHandler(b.onAttemptFailed),
		natsgo.ErrorHandler(b.onError),
	}
	if o.CACertFile != "" {
		opts = append(opts, natsgo.RootCAs(o.CACertFile))
	}
	if o.CertFile != "" || o.KeyFile != "" {
		opts = append(opts, natsgo.ClientCert(o.CertFile, o.KeyFile))
	}
	switch {
	case o.CredsFile != "":
		opts = append(opts, natsgo.UserCredentials(o.CredsFile))
	case o.NKeySeedFile != "":
		nk, err := natsgo.NkeyOptionFromSeed(o.NKeySeedFile)
		if err != nil {
			return no, fmt.Errorf("backbone: nkey seed: %w", err)
		}
		opts = append(opts, nk)
	case o.User != "":
		opts = append(opts, natsgo.UserInfo(o.User, o.Password))
	}
	for _, opt := range opts {
		if err := opt(&no); err != nil {
			return no, fmt.Errorf("backbone: %w", err)
		}
	}
	return no, nil
}

// reconnectDelay doubles from ReconnectMin to ReconnectMax with attempts
// (nats.go counts attempts over the whole server pool).
func (b *Bus) reconnectDelay(attempts int) time.Duration {
	d := b.opt.ReconnectMin
	for i := 1; i < attempts && d < b.opt.ReconnectMax; i++ {
		d *= 2
	}
	return min(d, b.opt.ReconnectMax)
}

// redact returns raw without credentials, for logs and /status.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.User = nil
	return u.String()
}
