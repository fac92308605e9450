package relayserver

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	natsbus "github.com/cosnim/relays/backbone/nats"
	"github.com/cosnim/relays/internal/buildinfo"
	"github.com/cosnim/relays/internal/defaults"
	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/internal/ratelog"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/transport/tcp"
)

// Defaults for Config.
const (
	DefaultDrainGrace  = 10 * time.Second
	DefaultDrainAfter  = time.Second
	DefaultDrainJitter = 4 * time.Second
)

// ErrServerClosed is returned by Run when Close stopped the server.
var ErrServerClosed = errors.New("relay: server closed")

// Config configures a Server.
type Config struct {
	// Relay holds the core's limits.
	Relay relay.Config
	// Addr is the HOST:PORT to listen on; port 0 picks a free port (see
	// Server.Addr).
	Addr string
	// TLS, when not nil, makes the listener speak TLS (tcps://); build it
	// with tcp.ServerTLSConfig. Plaintext and TLS clients that dial
	// the wrong kind of port get a clear error either way.
	TLS *tls.Config
	// Logger receives operator logs; nil discards them.
	Logger *slog.Logger
	// MetricsAddr, when not empty, is the HOST:PORT of the operations
	// listener (/metrics, /healthz, /readyz, /status). Loopback is
	// recommended: it has no authentication.
	MetricsAddr string
	// DrainGrace bounds how long a stopping server waits for clients to
	// leave after the Drain frame (default 10s).
	DrainGrace time.Duration
	// DrainAfter and DrainJitter are sent in the Drain frame: a client
	// reconnects after DrainAfter plus a random delay up to DrainJitter
	// (defaults 1s and 4s), so a restarted relay is not stampeded.
	DrainAfter, DrainJitter time.Duration
	// DrainAlternates are the URLs (tcp://HOST:PORT, tcps://HOST:PORT) of
	// relays the Drain frame names to reconnect to instead; a pool's
	// clients move there first. New refuses anything tcp.ParseURL does.
	DrainAlternates []string
	// Backbone, when not nil, links this relay to the other relays of its
	// pool over NATS: the server builds the driver, hands it to the core
	// and connects in the background at Run, so the relay serves its local
	// members while NATS is unreachable. Its Logger is the server's.
	Backbone *natsbus.Options
	// BackbonePrefix starts the backbone's subjects; "" is the core's
	// default.
	BackbonePrefix string
}

// Server runs a relay core on a real listener: the production driver.
//
// Every call into the core goes through the tcp.Loop, which
// serialises events; the Server itself only adds the listener, the
// operations listener and the shutdown sequence.
type Server struct {
	cfg     Config
	log     *slog.Logger
	core    *relay.Relay
	started time.Time
	tlsFail tlsFailures
	penalty *penaltyBox
	fanout  prometheus.Histogram
	bb      *backboneLink // nil without a backbone

	listening chan struct{} // closed once Addr is valid
	closeReq  chan struct{} // closed by Close
	closeOnce sync.Once
	draining  atomic.Bool

	mu          sync.Mutex // guards the following
	loop        *tcp.Loop
	gate        *gate // the TLS listener's; nil for plaintext
	addr        net.Addr
	metricsAddr net.Addr
	running     bool
}

// New checks cfg and builds the relay core, whose epoch and join nonces
// come from a CSPRNG (cryptoSource).
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		return nil, errors.New("relay: no listen address")
	}
	cfg.DrainGrace = defaults.Positive(cfg.DrainGrace, DefaultDrainGrace)
	cfg.DrainAfter = defaults.Positive(cfg.DrainAfter, DefaultDrainAfter)
	cfg.DrainJitter = defaults.Positive(cfg.DrainJitter, DefaultDrainJitter)
	for _, u := range cfg.DrainAlternates {
		if _, _, err := tcp.ParseURL(u); err != nil {
			return nil, fmt.Errorf("relay: drain alternate: %w", err)
		}
	}
	// A flood of refused handshakes or mismatched clients writes a few
	// lines and a count, not a line each.
	log := slog.New(ratelog.New(defaults.Logger(cfg.Logger).Handler(), nil))
	if cfg.Relay.Logger == nil {
		cfg.Relay.Logger = log
	}
	cfg.Relay.AsyncJoinChecks = true // verified by a joinPool, off the loop
	cfg.Relay.ConnBytes = plainConnBytes
	if cfg.TLS != nil {
		cfg.Relay.ConnBytes = tlsConnBytes
	}
	var bb *backboneLink
	if cfg.Backbone != nil {
		var err error
		if bb, err = newBackbone(*cfg.Backbone, cfg.BackbonePrefix, &cfg.Relay, log); err != nil {
			return nil, err
		}
	}
	core, err := relay.New(cfg.Relay, rand.New(cryptoSource()))
	if err != nil {
		return nil, err
	}
	if bb != nil {
		if bb.h, err = backboneHandler(core); err != nil {
			return nil, err
		}
	}
	s := &Server{
		bb:        bb,
		cfg:       cfg,
		log:       log,
		core:      core,
		listening: make(chan struct{}),
		closeReq:  make(chan struct{}),
		penalty:   newPenaltyBox(time.Now),
	}
	s.tlsFail.counts = make(map[string]uint64)
	s.fanout = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    metricsNamespace + "_fanout_seconds",
		Help:    "Time from reading bytes that carried new entries to queueing their fan-out to every member.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
	})
	return s, nil
}

// What a joined connection costs this driver, for the core's memory
// budget: one that has not parked, since a peer can keep its connection
// awake with a byte a second, so it keeps its reader goroutine (measured
// by `cosnim relay bench --scenario idle` before idle connections parked,
// 7.7 KiB RSS plaintext and 20.4 KiB with TLS; parked ones cost less,
// BENCHMARKS.md).
const (
	plainConnBytes = 8 << 10
	tlsConnBytes   = 21 << 10
)

// cryptoSource is the core's randomness in production: ChaCha8, a CSPRNG,
// seeded from crypto/rand, so join nonces and epochs cannot be predicted
// from earlier ones. The simulator hands the core a seeded source instead.
func cryptoSource() *rand.ChaCha8 {
	var seed [32]byte
	crand.Read(seed[:])
	return rand.NewChaCha8(seed)
}

// Epoch returns the relay core's epoch.
func (s *Server) Epoch() uint64 { return s.core.Epoch() }

// Addr returns the address the relay listens on, nil before Run listens.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// MetricsAddr returns the operations listener's address, nil when off or
// before Run listens.
func (s *Server) MetricsAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metricsAddr
}

// TLSFailures returns refused TLS handshakes counted by reason (the
// TLSFail constants). They are also in /metrics, as handshake failures
// with reasons prefixed "tls_".
func (s *Server) TLSFailures() map[string]uint64 { return s.tlsFail.snapshot() }

// Listening is closed once Run listens (Addr is then valid).
func (s *Server) Listening() <-chan struct{} { return s.listening }

// Draining reports whether the server is shutting down.
func (s *Server) Draining() bool { return s.draining.Load() }

// Close stops the server at once, without a drain: connections are cut as
// if the process had been killed. Run then returns ErrServerClosed.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closeReq) })
}

// do runs f in the core's event context; it reports false when the core
// is not running.
func (s *Server) do(f func(r *relay.Relay)) bool {
	s.mu.Lock()
	loop := s.loop
	s.mu.Unlock()
	if loop == nil {
		return false
	}
	ran := false
	loop.Do(func() { f(s.core); ran = true })
	return ran
}

// ParkStats reports the transport's parked idle connections (zero when
// the server is not running).
func (s *Server) ParkStats() tcp.ParkStats {
	s.mu.Lock()
	loop := s.loop
	s.mu.Unlock()
	if loop == nil {
		return tcp.ParkStats{}
	}
	return loop.ParkStats()
}

// tlsGate returns the TLS listener's gate, nil for plaintext or before Run.
func (s *Server) tlsGate() *gate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gate
}

// Stats returns the core's counters, read in its event context. ok is
// false when the server is not running.
func (s *Server) Stats() (st relay.Stats, conns, channels int, ok bool) {
	ok = s.do(func(r *relay.Relay) {
		st, conns, channels = r.Stats(), r.Conns(), r.ChannelCount()
	})
	return st, conns, channels, ok
}

// Run listens, serves until ctx is cancelled, then drains: it sends every
// client a Drain frame, serves on until they have gone or DrainGrace has
// passed (newcomers get Error 12 after their Hello), stops listening,
// closes what is left with Error 12 and returns nil. It
// returns an error if it cannot listen or the listener fails, and
// ErrServerClosed after Close. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("relay: Run called twice")
	}
	s.running = true
	s.mu.Unlock()

	if s.bb != nil {
		defer s.bb.close() // no-op once closed below; covers the early returns
	}
	raw, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("relay: listen: %w", err)
	}
	var ops *opsServer
	if s.cfg.MetricsAddr != "" {
		ops, err = s.startOps(s.cfg.MetricsAddr)
		if err != nil {
			raw.Close()
			return err
		}
	}
	pl := newPenaltyListener(raw, s.penalty, s.cfg.Relay.WithDefaults().HandshakeTimeout)
	ln := tcp.SniffListener(sendBufferListener{pl}, s.cfg.TLS != nil, s.log)
	if s.cfg.TLS != nil {
		hl := newHandshakeListener(ln, s.cfg.TLS, s.cfg.Relay.WithDefaults(), s.log, &s.tlsFail)
		s.mu.Lock()
		s.gate = hl.gate
		s.mu.Unlock()
		ln = hl
	}
	core := &timedCore{Relay: s.core, fanout: s.fanout, held: s.penalty.heldConn}
	loop := tcp.NewLoop(core, tcp.LoopOptions{
		HighWater:        s.cfg.Relay.WithDefaults().HighWater,
		HandshakeTimeout: s.cfg.Relay.WithDefaults().HandshakeTimeout,
		// A peer that takes no bytes for as long as the relay lets a
		// connection stay silent is as good as gone.
		WriteTimeout: s.cfg.Relay.WithDefaults().IdleTimeout,
		Logger:       s.log,
	})
	joins := newJoinPool(0, func(rs []joinResult) (gone []transport.Conn) {
		loop.Do(func() {
			now := time.Now()
			for _, r := range rs {
				was := s.core.Serving(r.jc.Conn)
				s.core.JoinChecked(r.jc, r.ok, now)
				if !s.core.Serving(r.jc.Conn) {
					if was && !r.ok { // closed at max_denied_joins
						s.penalty.holdConn(r.jc.Conn)
					}
					gone = append(gone, r.jc.Conn)
				}
			}
		})
		return gone
	})
	core.checkJoins = joins.add
	if s.bb != nil {
		// Backbone events enter the core like transport events: one
		// event under the loop, then what the core left in Ready.
		s.bb.start(func(f func()) { loop.Do(func() { core.event(f) }) })
	}
	s.started = time.Now()
	s.mu.Lock()
	s.loop = loop
	s.addr = raw.Addr()
	s.mu.Unlock()

	served := make(chan error, 1)
	go func() { served <- loop.Serve(ln) }()
	s.log.Info("relay listening", "addr", raw.Addr().String(), "tls", s.cfg.TLS != nil,
		"client_auth", s.cfg.TLS != nil && s.cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert,
		"epoch", fmt.Sprintf("%016x", s.core.Epoch()), "version", buildinfo.Get().String())
	close(s.listening)

	var result error
	select {
	case <-ctx.Done():
		s.drain(ln, served)
	case <-s.closeReq:
		s.draining.Store(true)
		ln.Close()
		<-served
		result = ErrServerClosed
	case err := <-served:
		s.draining.Store(true)
		result = fmt.Errorf("relay: accept: %w", err)
	}
	if s.bb != nil {
		s.bb.close() // before the loop: deliveries in flight need it
	}
	loop.Close()
	joins.close()
	if ops != nil {
		ops.shutdown()
	}
	s.log.Info("relay stopped")
	return result
}

// drain is the graceful half of shutdown (PROTOCOL §12.2): every client
// gets a Drain at once; the relay keeps listening and serving, answering
// newcomers Error 12 after their Hello, until every client has left or
// DrainGrace has passed; then it stops listening and closes what is left
// with Error 12.
func (s *Server) drain(ln net.Listener, served <-chan error) {
	s.draining.Store(true)
	_, old := fault.Hit(s.cfg.Relay.Faults, relay.FailOldDrain)
	stopListening := sync.OnceFunc(func() {
		ln.Close()
		<-served
	})
	defer stopListening()
	if old {
		stopListening()
	}
	var left int
	s.do(func(r *relay.Relay) {
		r.Drain(time.Now(), s.cfg.DrainAfter, s.cfg.DrainJitter, s.drainAlternates())
		left = r.Conns()
	})
	s.log.Info("relay draining", "connections", left, "grace", s.cfg.DrainGrace)
	deadline := time.NewTimer(s.cfg.DrainGrace)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for left > 0 {
		select {
		case <-deadline.C:
			s.log.Warn("drain grace over; closing remaining connections", "connections", left)
			left = 0
		case <-s.closeReq:
			return
		case <-tick.C:
			s.do(func(r *relay.Relay) { left = r.Conns() })
		}
	}
	stopListening()
	s.do(func(r *relay.Relay) { r.CloseAll(time.Now()) })
}

// FailBareAlternates sends the Drain's alternates as bare HOST:PORT, as
// before PROTOCOL §4.13 was followed, losing their scheme.
const FailBareAlternates = "relayserver/bare-alternates"

// drainAlternates are the Drain frame's relay URLs.
func (s *Server) drainAlternates() []string {
	if _, ok := fault.Hit(s.cfg.Relay.Faults, FailBareAlternates); !ok {
		return s.cfg.DrainAlternates
	}
	out := make([]string, 0, len(s.cfg.DrainAlternates))
	for _, u := range s.cfg.DrainAlternates {
		_, hostport, _ := tcp.ParseURL(u)
		out = append(out, hostport)
	}
	return out
}

// tlsFailures counts refused TLS handshakes by reason.
type tlsFailures struct {
	mu     sync.Mutex // guards counts
	counts map[string]uint64
}

func (f *tlsFailures) add(reason string) {
	f.mu.Lock()
	f.counts[reason]++
	f.mu.Unlock()
}

func (f *tlsFailures) snapshot() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string]uint64, len(f.counts))
	for k, v := range f.counts { // sorted: copy only
		m[k] = v
	}
	return m
}

// TLS handshake failure reasons, as counted and logged.
const (
	TLSFailNoCertificate   = "no_certificate"
	TLSFailUnknownCA       = "unknown_authority"
	TLSFailExpired         = "expired"
	TLSFailNotYetValid     = "not_yet_valid" // before its NotBefore: often a clock
	TLSFailSeveralCN       = "several_cn"    // several common names (tcp.ErrSeveralCommonNames)
	TLSFailNotAuthorized   = "not_authorized"
	TLSFailBadCertificate  = "bad_certificate"
	TLSFailTimeout         = "timeout"
	TLSFailHandshakeFailed = "handshake"
	// The client refused the relay's certificate, by the alert it sent.
	TLSFailClientBadCertificate = "client_bad_certificate" // bad, unsupported, revoked or unknown certificate
	TLSFailClientExpired        = "client_says_expired"    // certificate expired
	TLSFailClientUnknownCA      = "client_unknown_ca"      // unknown certificate authority
	// Refused before any handshake work.
	TLSFailFull        = "full"         // connection cap reached
	TLSFailRateLimited = "rate_limited" // over the accept rate
	TLSFailBusy        = "busy"         // max_handshakes in progress at the ClientHello
	TLSFailSourceFull  = "source_full"  // max_connections_per_source open
	TLSFailSourceRate  = "source_rate_limited"
	TLSFailSourceBusy  = "source_busy" // max_handshakes_per_source in progress at the ClientHello
	// Closed before a ClientHello.
	TLSFailHelloTimeout = "hello_timeout" // silent past client_hello_timeout
	TLSFailEvicted      = "evicted"       // the oldest waiting when max_pre_handshake were
)

// classifyTLS names why a server-side handshake failed.
func classifyTLS(err error) string {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var cv *tls.CertificateVerificationError
	if a, ok := tcp.ReceivedAlert(err); ok {
		switch a {
		case tcp.AlertCertificateExpired:
			return TLSFailClientExpired
		case tcp.AlertUnknownCA:
			return TLSFailClientUnknownCA
		case tcp.AlertBadCertificate, tcp.AlertUnsupportedCertificate, tcp.AlertCertificateRevoked, tcp.AlertCertificateUnknown:
			return TLSFailClientBadCertificate
		}
	}
	switch {
	case errors.Is(err, tcp.ErrNotAllowed):
		return TLSFailNotAuthorized
	case errors.Is(err, tcp.ErrSeveralCommonNames):
		return TLSFailSeveralCN
	case errors.As(err, &ua):
		return TLSFailUnknownCA
	case errors.As(err, &ci) && ci.Reason == x509.Expired && ci.Cert != nil && time.Now().Before(ci.Cert.NotBefore):
		return TLSFailNotYetValid // x509 says Expired for both ends
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return TLSFailExpired
	case errors.As(err, &cv):
		return TLSFailBadCertificate
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, transport.ErrTimeout):
		return TLSFailTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return TLSFailTimeout
	}
	// crypto/tls has no typed error for a client that sent no certificate.
	if err != nil && err.Error() == "tls: client didn't provide a certificate" {
		return TLSFailNoCertificate
	}
	return TLSFailHandshakeFailed
}

// timedCore times the Data events that fan entries out, and hands the join
// proofs an event queued to checkJoins. The driver may read the clock and
// start goroutines; the core may not.
type timedCore struct {
	*relay.Relay
	fanout     prometheus.Histogram
	checkJoins func([]relay.JoinCheck)
	held       func(transport.Conn) bool // penaltyBox.heldConn
}

// Open opens tc in the core, suspect when its source is held.
func (t *timedCore) Open(c transport.Conn, now time.Time) {
	t.Relay.Open(c, now)
	if t.held(c) {
		t.Suspect(c)
	}
}

func (t *timedCore) Data(c transport.Conn, b []byte, now time.Time) {
	// Called directly, not through event: the per-read path stays
	// without a closure (an allocation per read).
	start := time.Now()
	t.Relay.Data(c, b, now)
	t.afterEvent(start)
}

// event runs f, an event of the core (backbone messages), and acts on
// what it left in Ready.
func (t *timedCore) event(f func()) {
	start := time.Now()
	f()
	t.afterEvent(start)
}

// afterEvent acts on what an event that began at start left in Ready.
func (t *timedCore) afterEvent(start time.Time) {
	rd := t.Ready()
	if rd.FannedOut > 0 {
		t.fanout.Observe(time.Since(start).Seconds())
	}
	if len(rd.JoinChecks) > 0 {
		t.checkJoins(rd.JoinChecks)
	}
}
