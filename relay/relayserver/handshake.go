package relayserver

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
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
// Admission comes before any handshake work: past max_connections (counting
// connections handshaking and served), a source's share of them
// (max_connections_per_source), its accept rate (accept_rate_per_source)
// or the relay's (accept_rate), a connection is closed at once and
// counted. An admitted connection then waits, at most client_hello_timeout
// and among at most max_pre_handshake others (the oldest is closed when
// the pool is full), for its first record; only a ClientHello's takes a
// handshake slot (max_handshakes, max_handshakes_per_source), so silent
// sockets hold no slot an honest client needs.
type handshakeListener struct {
	inner        net.Listener
	cfg          *tls.Config
	timeout      time.Duration // from accept to a completed handshake
	helloTimeout time.Duration // from accept to the first record
	log          *slog.Logger
	fail         *tlsFailures
	gate         *gate

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
	limits = limits.WithDefaults()
	hl := &handshakeListener{
		inner: inner, cfg: cfg, timeout: limits.HandshakeTimeout, log: log, fail: fail,
		helloTimeout: min(limits.ClientHelloTimeout, limits.HandshakeTimeout),
		gate:         newGate(limits, time.Now),
		accepts:      rate.NewLimiter(rate.Limit(limits.AcceptRate), limits.AcceptRate),
		slots:        make(chan struct{}, limits.MaxHandshakes),
		maxConns:     int64(limits.MaxConnections),
		ready:        make(chan net.Conn),
		done:         make(chan struct{}),
		acceptEr:     make(chan error, 1),
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
		accepted := time.Now()
		src, reason := hl.admit(nc)
		if reason != "" {
			hl.fail.add(reason)
			if src == nil {
				nc.Close()
				continue
			}
		}
		hl.live.Add(1)
		cc := &countedConn{Conn: nc, closed: func() {
			hl.live.Add(-1)
			hl.gate.release(src)
		}}
		if reason != "" {
			// Over a rate: held, unread, then closed; see refuseHold.
			time.AfterFunc(refuseHold, func() { cc.Close() })
			continue
		}
		w := hl.gate.wait(cc, src)
		hl.wg.Add(1)
		go hl.handshake(cc, w, accepted)
	}
}

// refuseHold is how long a connection refused over its source's accept
// rate is held, unread, before it is closed. A flood that waits for an
// answer before trying again then tries a few times a second per
// connection instead of spinning the accept loop (closing at once, 50
// connections replaying ClientHellos made 14,000 refusals a second and
// cost the relay a third of a core). Held connections count against the
// source's connections and max_connections, which bound them.
const refuseHold = time.Second

// admit counts nc in, or names why it is refused. A source's own limits
// come first, so that one source over them spends none of the relay's
// accept rate. A refusal over a rate still returns the source, with nc
// counted in it: the caller holds nc for refuseHold, then closes it.
func (hl *handshakeListener) admit(nc net.Conn) (*source, string) {
	if hl.live.Load() >= hl.maxConns {
		return nil, TLSFailFull
	}
	src, reason := hl.gate.admit(sourceOf(nc.RemoteAddr()))
	if reason == "" && !hl.accepts.Allow() {
		reason = TLSFailRateLimited
	}
	return src, reason
}

// countedConn runs closed once, at its first Close.
type countedConn struct {
	net.Conn
	closed func()
	once   sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(c.closed)
	return c.Conn.Close()
}

// NetConn returns the wrapped conn. countedConn buffers nothing, so the
// Loop may park it (see tcp.Loop.Serve).
func (c *countedConn) NetConn() net.Conn { return c.Conn }

// helloConn gives back the record header read to tell a ClientHello, then
// reads on. The handshake reads the whole first record, so once it is
// done helloConn holds nothing and may be parked through (NetConn).
type helloConn struct {
	net.Conn
	hdr []byte
}

func (c *helloConn) Read(b []byte) (int, error) {
	if len(c.hdr) > 0 {
		n := copy(b, c.hdr)
		c.hdr = c.hdr[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func (c *helloConn) NetConn() net.Conn { return c.Conn }

// recordHandshake is the TLS record content type of a ClientHello.
const recordHandshake = 22

// awaitHello reads nc's first TLS record header within the hello
// timeout, or names why there is none. nc is a sniffing conn, which
// answers a plaintext client with the "expects TLS" notice.
func (hl *handshakeListener) awaitHello(nc net.Conn, w *waiter, accepted time.Time) ([]byte, string) {
	hdr := make([]byte, 5)
	nc.SetReadDeadline(accepted.Add(hl.helloTimeout))
	_, err := io.ReadFull(nc, hdr)
	nc.SetReadDeadline(time.Time{})
	switch { // the first case takes w out of the pool whenever err is set
	case err != nil && hl.gate.leave(w):
		return nil, TLSFailEvicted
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		return nil, TLSFailHelloTimeout
	case err != nil:
		return nil, TLSFailHandshakeFailed
	case hdr[0] != recordHandshake:
		hl.gate.leave(w)
		return nil, TLSFailHandshakeFailed
	}
	return hdr, hl.gate.hello(w)
}

func (hl *handshakeListener) handshake(nc net.Conn, w *waiter, accepted time.Time) {
	defer hl.wg.Done()
	hdr, reason := hl.awaitHello(nc, w, accepted)
	if reason == "" {
		defer hl.gate.handshakeDone(w.src)
		select {
		case hl.slots <- struct{}{}:
			defer func() { <-hl.slots }()
		default:
			reason = TLSFailBusy
		}
	}
	if reason != "" {
		hl.fail.add(reason)
		nc.Close()
		return
	}
	tc := tls.Server(&helloConn{Conn: nc, hdr: hdr}, hl.cfg)
	ctx, cancel := context.WithDeadline(context.Background(), accepted.Add(hl.timeout))
	defer cancel()
	go func() {
		select {
		case <-hl.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := tc.HandshakeContext(ctx); err != nil {
		hl.refused(tc, nc, err)
		return
	}
	select {
	case hl.ready <- tc:
	case <-hl.done:
		tc.Close()
	}
}

// refused counts and logs a failed handshake and closes the connection.
func (hl *handshakeListener) refused(tc *tls.Conn, nc net.Conn, err error) {
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
