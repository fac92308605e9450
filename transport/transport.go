// Package transport is the seam between the relay and client cores and the
// network that carries their bytes. It holds only interfaces and sentinel
// errors, so a core that imports it pulls in no network stack. The real
// implementation (TCP and TLS) is transport/tcp; the deterministic in-memory
// one is netsim.
//
// A Conn gives TCP's promise: bytes handed to Send arrive at the peer once,
// whole and in order, or the connection dies and both ends are told. Nothing
// is promised across connections.
//
// Cores are single-threaded: a driver calls a Handler's methods one at a time
// (under a lock or from one goroutine) and never concurrently for one core.
package transport

import (
	"errors"
	"time"
)

// Sentinel errors for expected conditions.
var (
	// ErrClosed is returned by Send on a connection that is closed.
	ErrClosed = errors.New("transport: connection closed")
	// ErrRefused reports a dial that the peer or network refused.
	ErrRefused = errors.New("transport: connection refused")
	// ErrReset reports a connection the network tore down.
	ErrReset = errors.New("transport: connection reset")
	// ErrTimeout reports a connection that went silent past its deadline.
	ErrTimeout = errors.New("transport: timeout")
)

// DefaultHighWater is the queued bytes (Conn.Queued) past which a
// connection counts as backed up: the relay core counts its member slow,
// and drivers tell the core Writable once the queue drains below their low
// water. One figure, so the two agree.
const DefaultHighWater = 256 << 10

// Conn is one connection as a core sees it. Its methods never block and are
// called only from the core's event context.
type Conn interface {
	// Send queues b for writing. It copies b, so the caller may reuse it at
	// once. It returns ErrClosed after Close or after the peer went away.
	Send(b []byte) error
	// Queued reports bytes accepted by Send that the network has not yet
	// taken; a core uses it to spot a slow peer.
	Queued() int
	// Close flushes what is queued (best effort: a driver may drop a queue
	// its peer stopped reading) and closes the connection.
	// The Handler's Closed is not called for a Close the core asked for.
	Close()
	// RemoteAddr names the peer for logs.
	RemoteAddr() string
}

// Holder is a Conn whose queue may hold more memory than the bytes it
// queues (buffers with spare room): Held reports that memory, at least
// Queued, so that a core's memory budget counts what is really held.
// Like Queued, it is called only from the core's event context.
type Holder interface {
	Held() int
}

// Aborter is a Conn that can close at once, dropping what is queued: a
// core shedding memory aborts, since a flush would keep the queue (no
// longer counted once the core let the connection go) until a peer that
// stopped reading reads it. Like Close, it produces no Closed event.
type Aborter interface {
	Abort()
}

// Dialer opens outbound connections for a client core.
type Dialer interface {
	// Dial starts connecting to addr and returns at once. The outcome arrives
	// later as Handler.Open (connected) or Handler.Closed (failed).
	Dial(addr string) Conn
}

// Handler is what a driver calls to feed a core. now is the driver's clock
// (virtual in netsim); cores read time nowhere else.
type Handler interface {
	// Open reports a connection ready for use: accepted, or dialed and up.
	Open(c Conn, now time.Time)
	// Data hands over bytes read from c. b is valid only during the call.
	Data(c Conn, b []byte, now time.Time)
	// Writable reports that c's queue drained below its low-water mark after
	// it had been above it.
	Writable(c Conn, now time.Time)
	// Closed reports that c died or that a dial failed, with the reason.
	Closed(c Conn, err error, now time.Time)
	// Tick fires timers due at or before now.
	Tick(now time.Time)
	// Deadline reports when Tick next needs calling; ok is false when no
	// timer is pending.
	Deadline() (t time.Time, ok bool)
}
