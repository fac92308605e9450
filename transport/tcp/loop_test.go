package tcp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitLong = 10 * time.Second

// funcHandler is a Handler made of optional functions.
type funcHandler struct {
	open     func(c transport.Conn)
	data     func(c transport.Conn, b []byte)
	writable func(c transport.Conn)
	closed   func(c transport.Conn, err error)
	tick     func(now time.Time)
	deadline func() (time.Time, bool)
}

func (h *funcHandler) Open(c transport.Conn, _ time.Time) {
	if h.open != nil {
		h.open(c)
	}
}
func (h *funcHandler) Data(c transport.Conn, b []byte, _ time.Time) {
	if h.data != nil {
		h.data(c, b)
	}
}
func (h *funcHandler) Writable(c transport.Conn, _ time.Time) {
	if h.writable != nil {
		h.writable(c)
	}
}
func (h *funcHandler) Closed(c transport.Conn, err error, _ time.Time) {
	if h.closed != nil {
		h.closed(c, err)
	}
}
func (h *funcHandler) Tick(now time.Time) {
	if h.tick != nil {
		h.tick(now)
	}
}
func (h *funcHandler) Deadline() (time.Time, bool) {
	if h.deadline != nil {
		return h.deadline()
	}
	return time.Time{}, false
}

// logBuf collects log output for assertions.
type logBuf struct{ testutil.SyncBuffer }

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// countingListener counts Write calls on accepted connections.
type countingListener struct {
	net.Listener
	writes    atomic.Int64
	sndBuffer int
}

func (l *countingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok && l.sndBuffer > 0 {
		tc.SetWriteBuffer(l.sndBuffer)
	}
	return &countingConn{Conn: nc, n: &l.writes}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(b)
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// dialSlowPeer serves l on a listener whose sockets have small kernel
// buffers and dials it with a small receive buffer, so that a peer that
// does not read soon leaves bytes queued in the Loop.
func dialSlowPeer(t *testing.T, l *Loop) net.Conn {
	t.Helper()
	cl := &countingListener{Listener: listen(t), sndBuffer: 4096}
	serve(t, l, cl)
	nc, err := net.Dial("tcp", cl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.(*net.TCPConn).SetReadBuffer(4096)
	return nc
}

// serve runs l.Serve(ln) and closes l when the test ends.
func serve(t testing.TB, l *Loop, ln net.Listener) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); l.Serve(ln) }()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
}

func TestEndToEnd(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[useTLS], func(t *testing.T) {
			const nGreeting = 10000
			var (
				mu      sync.Mutex
				got     bytes.Buffer // bytes echoed, in order
				closed  []error
				opened  int
				greeted bytes.Buffer
			)
			for i := range nGreeting {
				fmt.Fprintf(&greeted, "g%05d;", i)
			}
			h := &funcHandler{
				open: func(c transport.Conn) {
					opened++
					// Many small Sends in one event: they must be batched.
					for i := range nGreeting {
						if err := c.Send(fmt.Appendf(nil, "g%05d;", i)); err != nil {
							t.Errorf("Send: %v", err)
						}
					}
				},
				data: func(c transport.Conn, b []byte) {
					mu.Lock()
					got.Write(b)
					mu.Unlock()
					c.Send(b)
				},
				closed: func(c transport.Conn, err error) {
					mu.Lock()
					closed = append(closed, err)
					mu.Unlock()
				},
			}
			l := NewLoop(h, LoopOptions{})
			cl := &countingListener{Listener: listen(t)}
			var ln net.Listener = cl
			var clientCfg *tls.Config
			if useTLS {
				p := testpki.NewPKI(t)
				cfg, _, err := ServerTLSConfig(p.ServerCert, p.ServerKey, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				ln = tls.NewListener(SniffListener(cl, true, nil), cfg)
				clientCfg = clientConfig(t, p, "", "")
			}
			serve(t, l, ln)

			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			defer cancel()
			nc, err := NetDialer(clientCfg)(ctx, cl.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			nc.SetDeadline(time.Now().Add(waitLong))

			buf := make([]byte, greeted.Len())
			if _, err := io.ReadFull(nc, buf); err != nil {
				t.Fatalf("reading greeting: %v", err)
			}
			if !bytes.Equal(buf, greeted.Bytes()) {
				t.Fatalf("greeting arrived out of order or damaged")
			}
			if w := cl.writes.Load(); w > nGreeting/20 {
				t.Errorf("got %d socket writes for %d Sends, want batching (at most %d)", w, nGreeting, nGreeting/20)
			}

			// Echo: frames written one by one come back in order.
			var sent bytes.Buffer
			go func() {
				for i := range 2000 {
					if _, err := fmt.Fprintf(nc, "frame %04d\n", i); err != nil {
						return
					}
				}
			}()
			for i := range 2000 {
				fmt.Fprintf(&sent, "frame %04d\n", i)
			}
			echo := make([]byte, sent.Len())
			if _, err := io.ReadFull(nc, echo); err != nil {
				t.Fatalf("reading echo: %v", err)
			}
			if !bytes.Equal(echo, sent.Bytes()) {
				t.Fatalf("echo differs from what was sent")
			}
			mu.Lock()
			if !bytes.Equal(got.Bytes(), sent.Bytes()) {
				t.Errorf("Data saw %d bytes differing from the %d sent", got.Len(), sent.Len())
			}
			mu.Unlock()

			nc.Close()
			testutil.WaitFor(t, waitLong, "Closed", func() bool { mu.Lock(); defer mu.Unlock(); return len(closed) > 0 })
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			if len(closed) != 1 || closed[0] != io.EOF {
				t.Errorf("Closed calls = %v, want exactly one with io.EOF", closed)
			}
			if opened != 1 {
				t.Errorf("Open calls = %d, want 1", opened)
			}
		})
	}
}

func TestWritableAfterHighWater(t *testing.T) {
	const high, low = 64 << 10, 16 << 10
	var (
		mu       sync.Mutex
		conn     transport.Conn
		writable int
	)
	h := &funcHandler{
		open:     func(c transport.Conn) { mu.Lock(); conn = c; mu.Unlock() },
		writable: func(c transport.Conn) { mu.Lock(); writable++; mu.Unlock() },
	}
	l := NewLoop(h, LoopOptions{HighWater: high, LowWater: low})
	nc := dialSlowPeer(t, l)
	testutil.WaitFor(t, waitLong, "Open", func() bool { mu.Lock(); defer mu.Unlock(); return conn != nil })

	// The peer does not read: keep sending until the queue passes high
	// water (the kernel buffers take some first).
	chunk := make([]byte, 32<<10)
	reached := false
	for range 2048 { // at most 64 MiB
		l.Do(func() {
			conn.Send(chunk)
			reached = conn.Queued() >= high
		})
		if reached {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !reached {
		t.Fatal("queue never reached high water")
	}
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	if writable != 0 {
		t.Fatalf("Writable fired %d times while the peer was not reading", writable)
	}
	mu.Unlock()

	go io.Copy(io.Discard, nc)
	testutil.WaitFor(t, waitLong, "Writable", func() bool { mu.Lock(); defer mu.Unlock(); return writable > 0 })
	var q int
	l.Do(func() { q = conn.Queued() })
	if q > low {
		// Writable fires at or under low water; the queue only shrinks
		// afterwards as nothing more is sent.
		t.Errorf("Queued = %d after Writable, want <= %d", q, low)
	}
}

func TestTickFiresAtDeadline(t *testing.T) {
	var (
		mu    sync.Mutex
		due   time.Time
		armed bool
		ticks int
	)
	h := &funcHandler{
		tick: func(now time.Time) {
			mu.Lock()
			defer mu.Unlock()
			if armed && !now.Before(due) {
				ticks++
				armed = false
			}
		},
		deadline: func() (time.Time, bool) { mu.Lock(); defer mu.Unlock(); return due, armed },
	}
	l := NewLoop(h, LoopOptions{})
	defer l.Close()
	for i := range 2 {
		// Arm from outside through Do: the Loop must ask Deadline after it.
		l.Do(func() {
			mu.Lock()
			due, armed = time.Now().Add(20*time.Millisecond), true
			mu.Unlock()
		})
		testutil.WaitFor(t, waitLong, fmt.Sprintf("tick %d", i+1), func() bool { mu.Lock(); defer mu.Unlock(); return ticks == i+1 })
	}
}

func TestCloseFlushesWithoutEvent(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	var closedEvents atomic.Int32
	h := &funcHandler{
		open: func(c transport.Conn) {
			c.Send(payload)
			c.Close()
			if err := c.Send([]byte("x")); !errors.Is(err, transport.ErrClosed) {
				t.Errorf("Send after Close = %v, want transport.ErrClosed", err)
			}
		},
		closed: func(transport.Conn, error) { closedEvents.Add(1) },
	}
	l := NewLoop(h, LoopOptions{})
	ln := listen(t)
	serve(t, l, ln)
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(waitLong))
	got, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("got %d bytes, want the %d queued before Close", len(got), len(payload))
	}
	time.Sleep(20 * time.Millisecond)
	if n := closedEvents.Load(); n != 0 {
		t.Errorf("Closed fired %d times for the core's own Close, want 0", n)
	}
}

func TestDialOutcomes(t *testing.T) {
	type result struct {
		opened bool
		err    error
	}
	res := make(chan result, 4)
	var payload atomic.Value
	h := &funcHandler{
		open: func(c transport.Conn) { res <- result{opened: true} },
		data: func(c transport.Conn, b []byte) { payload.Store(string(b)) },
		closed: func(c transport.Conn, err error) {
			res <- result{err: err}
		},
	}
	l := NewLoop(h, LoopOptions{DialTimeout: 100 * time.Millisecond})
	defer l.Close()

	// Refused: a port that nobody listens on.
	ln := listen(t)
	deadAddr := ln.Addr().String()
	ln.Close()
	l.Do(func() { l.Dialer(NetDialer(nil)).Dial(deadAddr) })
	if r := <-res; r.opened || !errors.Is(r.err, transport.ErrRefused) {
		t.Errorf("dial to closed port: got %+v, want Closed with transport.ErrRefused", r)
	}

	// Timeout: a dial that never completes.
	hang := func(ctx context.Context, addr string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	l.Do(func() { l.Dialer(hang).Dial("192.0.2.1:7420") })
	if r := <-res; r.opened || !errors.Is(r.err, transport.ErrTimeout) {
		t.Errorf("hanging dial: got %+v, want Closed with transport.ErrTimeout", r)
	}

	// Success: bytes sent before Open are delivered once connected.
	ln = listen(t)
	defer ln.Close()
	accepted := make(chan []byte, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(waitLong))
		b := make([]byte, 5)
		io.ReadFull(nc, b)
		accepted <- b
	}()
	l.Do(func() {
		c := l.Dialer(NetDialer(nil)).Dial(ln.Addr().String())
		c.Send([]byte("early"))
	})
	if r := <-res; !r.opened {
		t.Errorf("dial to listener: got %+v, want Open", r)
	}
	if b := <-accepted; string(b) != "early" {
		t.Errorf("peer got %q, want %q", b, "early")
	}
}

func TestLoopCloseStopsEverything(t *testing.T) {
	h := &funcHandler{
		open: func(c transport.Conn) { c.Send(make([]byte, 1<<20)) },
		deadline: func() (time.Time, bool) {
			return time.Now().Add(time.Hour), true
		},
	}
	l := NewLoop(h, LoopOptions{})
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- l.Serve(ln) }()
	var conns []net.Conn
	for range 20 {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
	}
	l.Do(func() { l.Dialer(NetDialer(nil)).Dial(ln.Addr().String()) })
	time.Sleep(20 * time.Millisecond)
	l.Close()
	if err := <-served; !errors.Is(err, ErrLoopClosed) {
		t.Errorf("Serve = %v, want ErrLoopClosed", err)
	}
	for _, nc := range conns {
		nc.Close()
	}
	if err := goleak.Find(); err != nil {
		t.Error(err)
	}
}
