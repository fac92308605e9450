package tcp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/cosnim/relays/internal/defaults"
	"github.com/cosnim/relays/transport"
)

// ErrLoopClosed is returned by Serve once the Loop is closed.
var ErrLoopClosed = errors.New("transport: loop closed")

// Defaults for LoopOptions.
const (
	DefaultHighWater        = transport.DefaultHighWater
	DefaultLowWater         = 64 << 10
	DefaultReadBuffer       = 16 << 10
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDialTimeout      = 10 * time.Second
	DefaultCloseFlush       = 5 * time.Second
	// DefaultParkAfter is longer than the gaps between a busy
	// connection's reads, so those never park, and far shorter than the
	// 15 s heartbeat, so an idle member spends most of its life parked.
	DefaultParkAfter = time.Second
)

// LoopOptions configures a Loop. The zero value gives the documented
// defaults.
type LoopOptions struct {
	// HighWater is the queued byte count at which a connection counts as
	// slow; Writable fires once it drains to LowWater. Default 256 KiB.
	HighWater int
	// LowWater, default 64 KiB; clamped to at most HighWater.
	LowWater int
	// ReadBuffer is the size of the pooled buffer used while a connection
	// is busy. Default 16 KiB.
	ReadBuffer int
	// HandshakeTimeout bounds a TLS handshake, in and out. Default 10 s.
	HandshakeTimeout time.Duration
	// DialTimeout bounds a Dial including its TLS handshake. Default 10 s.
	DialTimeout time.Duration
	// CloseFlush bounds how long Conn.Close keeps writing queued bytes.
	// Default 5 s.
	CloseFlush time.Duration
	// ParkAfter is how long a connection may have nothing to read before
	// its reader goroutine ends and the Loop's parker watches the socket
	// instead (see Goroutines). Default DefaultParkAfter; negative never
	// parks. Parking happens on Linux only.
	ParkAfter time.Duration
	// WriteTimeout, when positive, fails a connection whose peer takes no
	// bytes for this long, however much is queued (Closed with a timeout).
	WriteTimeout time.Duration
	// Logger receives accept, handshake and protocol errors. Default: a
	// logger that discards.
	Logger *slog.Logger
	// Now is the clock handed to the Handler. Default time.Now.
	Now func() time.Time
}

func (o *LoopOptions) setDefaults() {
	o.HighWater = defaults.Positive(o.HighWater, DefaultHighWater)
	o.LowWater = min(defaults.Positive(o.LowWater, DefaultLowWater), o.HighWater)
	o.ReadBuffer = defaults.Positive(o.ReadBuffer, DefaultReadBuffer)
	o.HandshakeTimeout = defaults.Positive(o.HandshakeTimeout, DefaultHandshakeTimeout)
	o.DialTimeout = defaults.Positive(o.DialTimeout, DefaultDialTimeout)
	o.CloseFlush = defaults.Positive(o.CloseFlush, DefaultCloseFlush)
	if o.ParkAfter == 0 {
		o.ParkAfter = DefaultParkAfter
	}
	if o.ParkAfter < 0 || !canPark {
		o.ParkAfter = 0
	}
	o.Logger = defaults.Logger(o.Logger)
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Loop is the real driver: it turns sockets (TCP, or TLS over TCP) and one
// timer into events for a single-threaded core.
//
// # Events
//
// Every Handler call happens with the Loop's mutex held, so a core sees one
// event at a time; inside an event it may call Conn.Send, Conn.Queued,
// Conn.Close and Dialer.Dial freely (they never block and never call back
// into the Handler). After each event the Loop asks Handler.Deadline and
// re-arms its single timer; when the timer fires the Loop calls Tick.
//
// # Goroutines
//
// Each connection has one reader goroutine, which reads into a small buffer
// while the connection is idle and a pooled ReadBuffer-sized one while
// bytes keep coming, then locks the Loop and calls Data. A writer goroutine
// exists only while a connection has bytes queued: Send appends to a
// buffer of the event, without a lock; when the event ends (one read's
// worth of frames, say) each connection's buffer joins its queue under one
// lock, without a copy, and its writer starts if none runs; the writer
// takes everything queued and hands it to one system call (a vectored
// write on plain TCP; one Write of the joined buffers for TLS), so many
// small frames leave together, and nothing waits for a later event. When
// the queue empties the writer returns its buffers to a pool and ends.
//
// A connection with nothing to read for ParkAfter parks: its reader
// goroutine and small buffer go, and one parker goroutine per Loop (started
// at the first park) waits in epoll for any parked socket to become
// readable or hang up, then starts a fresh reader for it. So an idle
// connection pins no buffers and no goroutine. The reader notices
// idleness with a read deadline set once per ParkAfter, not per read.
//
// # Flow control
//
// Queued reports bytes accepted by Send and not yet written. Once Queued
// reaches HighWater, Writable fires when it has drained to LowWater. Send
// never blocks and never drops: a core that ignores Queued can grow a
// queue without bound, so cores watch it.
//
// # Closing
//
// A peer's close or a read or write error produces exactly one Closed
// (io.EOF for an orderly close; otherwise an error wrapping ErrReset or
// ErrTimeout where they apply). Conn.Close, asked by the core, produces no
// event: the writer flushes what is queued for up to CloseFlush and closes
// the socket. Loop.Close stops everything without events and waits for
// every goroutine the Loop started. Loop.Close must not be called from
// inside an event.
type Loop struct {
	h   transport.Handler
	opt LoopOptions
	log *slog.Logger

	ctx    context.Context // cancelled by Close; bounds dials
	cancel context.CancelFunc
	done   chan struct{} // closed by Close; stops the timer goroutine
	wg     sync.WaitGroup
	rpool  sync.Pool // *[]byte of opt.ReadBuffer bytes

	pmu         sync.Mutex // guards the parker and every conn's park fields; l.mu and wmu are never taken under it
	pk          *parker    // nil until the first park
	parkStopped bool       // no more parks or epoll_ctl: Loop.Close, or the parker could not start or failed

	mu      sync.Mutex // the core lock: held for every transport.Handler call; guards the following
	closed  bool
	conns   map[*conn]struct{}
	lns     map[net.Listener]struct{}
	wake    []*conn // conns whose writer starts when the event ends
	timer   *time.Timer
	armed   bool
	armedAt time.Time
}

// NewLoop returns a Loop that feeds h. It starts one goroutine for the
// timer; Close stops it.
func NewLoop(h transport.Handler, opt LoopOptions) *Loop {
	opt.setDefaults()
	l := &Loop{
		h:     h,
		opt:   opt,
		log:   opt.Logger,
		done:  make(chan struct{}),
		conns: make(map[*conn]struct{}),
		lns:   make(map[net.Listener]struct{}),
	}
	size := opt.ReadBuffer
	l.rpool.New = func() any { b := make([]byte, size); return &b }
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.timer = time.NewTimer(time.Hour)
	l.timer.Stop()
	l.wg.Add(1)
	go l.runTimer()
	return l
}

// Do runs f in the core's event context, one event like the others, and
// returns when f has returned. It does nothing once the Loop is closed.
// Do must not be called from inside an event (it would deadlock).
func (l *Loop) Do(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	f()
	l.afterEventLocked()
}

// Serve accepts connections on ln until ln fails or the Loop closes. Each
// accepted connection is handed to the Handler through Open once it is
// ready (for a TLS listener, after its handshake). Serve closes ln when it
// returns. After Loop.Close it returns ErrLoopClosed.
//
// ln's conns may wrap the socket. The Loop parks an idle one only through
// wrappers it knows (*tls.Conn, SniffListener's) or ones with a method
// NetConn() net.Conn returning the inner conn, which promise to hold no
// bytes they have read and not returned; through any other it never
// parks.
func (l *Loop) Serve(ln net.Listener) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		ln.Close()
		return ErrLoopClosed
	}
	l.lns[ln] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.lns, ln)
		l.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if l.isClosed() {
				return ErrLoopClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Temporary trouble such as EMFILE: back off briefly.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				l.log.Warn("transport: accept failed; retrying", "addr", ln.Addr().String(), "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
				case <-l.done:
					return ErrLoopClosed
				}
				continue
			}
			return err
		}
		backoff = 0
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			nc.Close()
			return ErrLoopClosed
		}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.runAccepted(nc)
	}
}

func (l *Loop) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close stops accepting, closes every connection without events, stops
// the timer and waits for every goroutine the Loop started.
func (l *Loop) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.wg.Wait()
		return nil
	}
	l.closed = true
	lns := make([]net.Listener, 0, len(l.lns))
	for ln := range l.lns {
		lns = append(lns, ln)
	}
	conns := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		c.dead = true
		conns = append(conns, c)
	}
	clear(l.conns)
	l.timer.Stop()
	l.armed = false
	l.mu.Unlock()

	l.cancel()
	close(l.done)
	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range conns {
		c.abort()
	}
	l.stopParker()
	l.wg.Wait()
	return nil
}

// runTimer calls Tick whenever the armed timer fires.
func (l *Loop) runTimer() {
	defer l.wg.Done()
	for {
		select {
		case <-l.done:
			return
		case <-l.timer.C:
			l.mu.Lock()
			if l.closed {
				l.mu.Unlock()
				return
			}
			l.armed = false
			l.h.Tick(l.opt.Now())
			l.afterEventLocked()
			l.mu.Unlock()
		}
	}
}

// afterEventLocked starts the writers the event needs and re-arms the
// timer for the Handler's next deadline.
func (l *Loop) afterEventLocked() {
	for i, c := range l.wake {
		l.wake[i] = nil
		c.wakeQueued = false
		c.wmu.Lock()
		c.handOffLocked()
		start := !c.stopped && c.queuedLocked() > 0 && c.startWriterLocked()
		c.wmu.Unlock()
		if start {
			go c.writeLoop()
		}
	}
	l.wake = l.wake[:0]
	if l.closed {
		return
	}
	at, ok := l.h.Deadline()
	if !ok {
		if l.armed {
			l.timer.Stop()
			l.armed = false
		}
		return
	}
	if l.armed && at.Equal(l.armedAt) {
		return
	}
	l.timer.Reset(at.Sub(l.opt.Now()))
	l.armed = true
	l.armedAt = at
}

// getReadBuf and putReadBuf manage the pooled read buffers.
func (l *Loop) getReadBuf() *[]byte  { return l.rpool.Get().(*[]byte) }
func (l *Loop) putReadBuf(b *[]byte) { l.rpool.Put(b) }
