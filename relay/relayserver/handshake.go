package relayserver

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/transport/tcp"
)

// handshakeListener accepts TLS connections and completes their handshake
// before Accept returns them, off the accepting goroutine, so that the
// server can count and log failures by reason. The Loop then finds the
// handshake done.
//
// Admission comes before any handshake work: past the accept rate, the
// connection cap (counting connections handshaking and served) or
// MaxHandshakes in progress, a connection is closed at once and counted.
type handshakeListener struct {
	inner   net.Listener
	cfg     *tls.Config
	timeout time.Duration
	log     *slog.Logger
	fail    *tlsFailures

	accepts  *rate.Limiter
	slots    chan struct{} // one per handshake in progress
	maxConns int64
	live     atomic.Int64 // connections accepted and not yet closed

	ready    chan net.Conn
	done     chan struct{}
	acceptEr chan error
	once     sync.Once
	wg       sync.WaitGroup
}

func newHandshakeListener(inner net.Listener, cfg *tls.Config, limits relay.Config, log *slog.Logger, fail *tlsFailures) *handshakeListener {
	hl := &handshakeListener{
		inner: inner, cfg: cfg, timeout: limits.HandshakeTimeout, log: log, fail: fail,
		accepts:  rate.NewLimiter(rate.Limit(limits.AcceptRate), limits.AcceptRate),
		slots:    make(chan struct{}, limits.MaxHandshakes),
		maxConns: int64(limits.MaxConnections),
		ready:    make(chan net.Conn),
		done:     make(chan struct{}),
		acceptEr: make(chan error, 1),
	}
	hl.wg.Add(1)
	go hl.acceptLoop()
	return hl
}

func (hl *handshakeListener) acceptLoop() {
	defer hl.wg.Done()
	for {
		nc, err := hl.inner.Accept()
		if err != nil {
			hl.acceptEr <- err
			return
		}
		if reason := hl.admit(); reason != "" {
			hl.fail.add(reason)
			nc.Close()
			continue
		}
		hl.live.Add(1)
		hl.wg.Add(1)
		go hl.handshake(&countedConn{Conn: nc, live: &hl.live})
	}
}

// admit takes a handshake slot, or names why the connection is refused.
func (hl *handshakeListener) admit() string {
	switch {
	case hl.live.Load() >= hl.maxConns:
		return TLSFailFull
	case !hl.accepts.Allow():
		return TLSFailRateLimited
	}
	select {
	case hl.slots <- struct{}{}:
		return ""
	default:
		return TLSFailBusy
	}
}

// countedConn counts itself out of the live connections once closed.
type countedConn struct {
	net.Conn
	live *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.live.Add(-1) })
	return c.Conn.Close()
}

// NetConn returns the wrapped conn. countedConn buffers nothing, so the
// Loop may park it (see tcp.Loop.Serve).
func (c *countedConn) NetConn() net.Conn { return c.Conn }

func (hl *handshakeListener) handshake(nc net.Conn) {
	defer hl.wg.Done()
	defer func() { <-hl.slots }()
	tc := tls.Server(nc, hl.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), hl.timeout)
	defer cancel()
	go func() {
		select {
		case <-hl.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := tc.HandshakeContext(ctx); err != nil {
		reason := classifyTLS(err)
		hl.fail.add(reason)
		if a, ok := tcp.ReceivedAlert(err); ok && strings.HasPrefix(reason, "client_") {
			// The client refused us: say what it said, and what is wrong
			// with the relay's certificate when the relay can tell.
			args := []any{"remote", nc.RemoteAddr().String(), "reason", reason, "client_alert", a.Error()}
			if p := ownCertProblem(hl.cfg, time.Now()); p != "" {
				args = append(args, "relay_certificate", p)
			}
			hl.log.Warn("TLS handshake refused by the client: it did not accept the relay's certificate", args...)
		} else {
			hl.log.Warn("TLS handshake refused", "remote", nc.RemoteAddr().String(), "reason", reason, "err", err)
		}
		tc.Close()
		return
	}
	select {
	case hl.ready <- tc:
	case <-hl.done:
		tc.Close()
	}
}

func (hl *handshakeListener) Accept() (net.Conn, error) {
	select {
	case nc := <-hl.ready:
		return nc, nil
	case err := <-hl.acceptEr:
		hl.acceptEr <- err
		return nil, err
	case <-hl.done:
		return nil, net.ErrClosed
	}
}

func (hl *handshakeListener) Close() error {
	hl.once.Do(func() { close(hl.done) })
	err := hl.inner.Close()
	hl.wg.Wait()
	return err
}

func (hl *handshakeListener) Addr() net.Addr { return hl.inner.Addr() }

// ownCertProblem says what is wrong with the certificate the relay serves
// at now ("" when it is within its validity period or unknown).
func ownCertProblem(cfg *tls.Config, now time.Time) string {
	var cert *tls.Certificate
	switch {
	case cfg.GetCertificate != nil:
		cert, _ = cfg.GetCertificate(&tls.ClientHelloInfo{})
	case len(cfg.Certificates) > 0:
		cert = &cfg.Certificates[0]
	}
	if cert == nil || cert.Leaf == nil {
		return ""
	}
	const day = "2006-01-02 15:04 MST"
	switch l := cert.Leaf; {
	case now.After(l.NotAfter):
		return "expired on " + l.NotAfter.UTC().Format(day)
	case now.Before(l.NotBefore):
		return "not valid until " + l.NotBefore.UTC().Format(day)
	}
	return ""
}
