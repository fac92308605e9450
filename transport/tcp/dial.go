package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/cosnim/relays/transport"
)

// DialFunc opens one connection; Loop.Dialer runs it in a goroutine.
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// NetDialer returns a DialFunc for TCP, or TLS over TCP when cfg is not
// nil. TLS handshake errors are passed through ExplainDialError.
func NetDialer(cfg *tls.Config) DialFunc {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil || cfg == nil {
			return nc, err
		}
		c := cfg
		if c.ServerName == "" {
			c = cfg.Clone()
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			c.ServerName = host
		}
		tc := tls.Client(nc, c)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, ExplainDialError(fmt.Errorf("dial %s: %w", addr, err))
		}
		return tc, nil
	}
}

// loopDialer is the Loop's Dialer.
type loopDialer struct {
	l *Loop
	d DialFunc
}

// Dialer returns a Dialer whose Dial runs d in a goroutine, bounded by
// DialTimeout. A *tls.Conn that d returns is handshaken before Open. On
// failure the Handler sees Closed(c, err), err wrapping ErrRefused or
// ErrTimeout where they apply. Dial must be called in the core's event
// context.
func (l *Loop) Dialer(d DialFunc) transport.Dialer { return &loopDialer{l: l, d: d} }

// Dial starts connecting to addr and returns at once.
func (ld *loopDialer) Dial(addr string) transport.Conn {
	l := ld.l
	c := newConn(l, nil, addr)
	c.dialed = true
	if l.closed {
		c.dead = true
		c.stopped = true
		return c
	}
	l.conns[c] = struct{}{}
	l.wg.Add(1)
	go ld.run(c)
	return c
}

func (ld *loopDialer) run(c *conn) {
	l := ld.l
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(l.ctx, l.opt.DialTimeout)
	nc, err := ld.d(ctx, c.addr)
	if err == nil {
		if tc, ok := nc.(*tls.Conn); ok {
			if herr := tc.HandshakeContext(ctx); herr != nil {
				nc.Close()
				nc, err = nil, ExplainDialError(fmt.Errorf("dial %s: %w", c.addr, herr))
			}
		}
	}
	if err != nil && ctx.Err() == context.DeadlineExceeded && !errors.Is(err, transport.ErrTimeout) {
		err = fmt.Errorf("%w: dial %s: %w", transport.ErrTimeout, c.addr, err)
	}
	cancel()
	if err != nil {
		c.fail(err)
		return
	}

	l.mu.Lock()
	c.wmu.Lock()
	c.nc = nc
	aborted := l.closed || c.stopped
	start := !aborted && (c.queuedLocked() > 0 || c.closeReq) && c.startWriterLocked()
	c.wmu.Unlock()
	open := !aborted && !c.dead
	if open {
		l.h.Open(c, l.opt.Now())
		l.afterEventLocked()
	}
	l.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	switch {
	case aborted:
		nc.Close()
	case open:
		c.readLoop()
	}
}

// classify wraps err with the package sentinel that names its kind.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case err == io.EOF:
		return io.EOF
	case errors.Is(err, transport.ErrClosed), errors.Is(err, transport.ErrRefused), errors.Is(err, transport.ErrReset),
		errors.Is(err, transport.ErrTimeout), errors.Is(err, ErrProtocolMismatch):
		return err
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w: %w", transport.ErrRefused, err)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %w", transport.ErrReset, err)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", transport.ErrTimeout, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %w", transport.ErrTimeout, err)
	}
	return err
}
