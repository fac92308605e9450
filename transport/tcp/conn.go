package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cosnim/relays/transport"
)

// smallReadSize is the buffer an idle connection reads into. A read that
// fills it switches the connection to a pooled Loop buffer until a read
// comes back short, so an idle connection pins only this much.
const smallReadSize = 512

// maxPooledWrite caps the write buffers kept in the pool; larger ones
// (left by a burst) go to the garbage collector.
const maxPooledWrite = 256 << 10

// pinSlack is what a queue may hold beyond a quarter more than it queues
// before events' bytes are copied rather than queued in their buffers
// (pooled buffers keep the capacity of past bursts).
const pinSlack = 64 << 10

// writePool keeps write buffers for reuse, at most writePoolBytes of
// them: a sync.Pool holds what two collections' worth of fan-outs put
// back, counted by no budget (a writer at 4.6 MB/s into 300 members left
// some 40 MB there).
var writePool = bufPool{max: writePoolBytes}

// writePoolBytes bounds the capacity writePool keeps, for the process.
const writePoolBytes = 4 << 20

// bufPool is a free list of buffers bounded in bytes.
type bufPool struct {
	mu    sync.Mutex // guards the following
	bufs  []*[]byte
	bytes int
	max   int
}

// Get returns a buffer from the pool, or a new one of smallWrite bytes.
func (p *bufPool) Get() *[]byte {
	p.mu.Lock()
	if n := len(p.bufs); n > 0 {
		b := p.bufs[n-1]
		p.bufs[n-1] = nil
		p.bufs = p.bufs[:n-1]
		p.bytes -= cap(*b)
		p.mu.Unlock()
		return b
	}
	p.mu.Unlock()
	b := make([]byte, 0, smallWrite)
	return &b
}

// Put keeps b for reuse if the pool has room for it.
func (p *bufPool) Put(b *[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bytes+cap(*b) > p.max {
		return // the garbage collector takes it
	}
	p.bufs = append(p.bufs, b)
	p.bytes += cap(*b)
}

func putWriteBuf(b *[]byte) {
	if cap(*b) > maxPooledWrite {
		return
	}
	*b = (*b)[:0]
	writePool.Put(b)
}

// conn is the Loop's Conn.
type conn struct {
	l    *Loop
	addr string
	// dialed is set for outbound connections; it enables the check for a
	// TLS-only relay answering a plaintext client.
	dialed bool
	// first is true until the first Data; used with dialed. Reader only.
	first bool

	// Guarded by l.mu (the core lock).
	dead       bool    // Closed was delivered, or the core or the Loop closed c
	wakeQueued bool    // c is in l.wake
	obuf       *[]byte // sent during the current event; handed to the writer when it ends

	wmu sync.Mutex // guards the following; taken after l.mu, never before
	nc  net.Conn   // nil while dialing
	// pend holds, in order, the buffers of events whose bytes the writer
	// has not taken: an event's buffer joins the queue as it is, so a
	// frame is copied once, into the event's buffer, however busy the
	// writer is (see copyIntoLast for when bytes are copied instead, and
	// why a peer that stops reading pins at most about twice what is
	// queued).
	pend        []*[]byte
	pinned      int         // the capacity of pend's buffers
	taken       []*[]byte   // the writer's batch, swapped with pend
	vec         net.Buffers // the writer's scratch for a vectored write
	inflight    int         // bytes in the writer's current Write
	inflightCap int         // the memory its buffers hold, a TLS join included
	writing     bool        // a writer goroutine runs
	high        bool        // Queued reached HighWater; Writable due at LowWater
	closeReq    bool        // the core closed c: flush, then close the socket
	stopped     bool        // no more writes: drop whatever is queued

	// Guarded by l.pmu.
	parkID     uint64 // the parker's key while parked, else 0
	epollAdded bool   // the socket is in the parker's epoll set (maybe disabled)
	noPark     bool   // the socket is closing: never park it again

	// queued is inflight plus the bytes in pend: written under wmu, read
	// without it, since the core asks for every member it fans out to;
	// held is pinned plus inflightCap, the same way.
	queued atomic.Int64
	held   atomic.Int64
}

var _ transport.Conn = (*conn)(nil)

func newConn(l *Loop, nc net.Conn, addr string) *conn {
	return &conn{l: l, nc: nc, addr: addr, first: true}
}

// Send queues a copy of b. It never blocks. Inside an event it takes no
// lock: the bytes collect in obuf and reach the writer when the event
// ends, so a fan-out of many small frames costs one hand-off per member.
func (c *conn) Send(b []byte) error {
	if c.dead {
		return transport.ErrClosed
	}
	if c.obuf == nil {
		c.obuf = writePool.Get()
	}
	*c.obuf = append(*c.obuf, b...)
	if !c.wakeQueued {
		c.wakeQueued = true
		c.l.wake = append(c.l.wake, c)
	}
	return nil
}

// handOffLocked moves what the event sent to the writer's queue. The
// caller holds l.mu and c.wmu.
func (c *conn) handOffLocked() {
	ob := c.obuf
	if ob == nil {
		return
	}
	c.obuf = nil
	n := len(*ob)
	if c.stopped || n == 0 {
		putWriteBuf(ob)
		return
	}
	if k := len(c.pend); k > 0 && c.copyIntoLast(n, cap(*ob)) {
		last := c.pend[k-1]
		before := cap(*last)
		if m := len(*last); cap(*last)-m < n {
			// Grow by a quarter, not append's double, to stay within
			// copyIntoLast's bound.
			grown := make([]byte, m, m+n+max(m/4, smallWrite))
			copy(grown, *last)
			*last = grown
		}
		*last = append(*last, *ob...)
		c.pinned += cap(*last) - before
		putWriteBuf(ob)
	} else {
		if cap(*ob) > 4*n && cap(*ob) > smallWrite {
			// A burst's pooled buffer holding a few bytes: queue a copy
			// its size instead.
			b := make([]byte, n, max(n, smallWrite))
			copy(b, *ob)
			putWriteBuf(ob)
			ob = &b
		}
		c.pend = append(c.pend, ob)
		c.pinned += cap(*ob)
	}
	c.heldLocked()
	if c.queued.Add(int64(n)) >= int64(c.l.opt.HighWater) {
		c.high = true
	}
}

// smallWrite is the capacity of a new write buffer.
const smallWrite = 4096

// heldLocked publishes what the queue holds for Held. The caller holds
// c.wmu.
func (c *conn) heldLocked() { c.held.Store(int64(c.pinned + c.inflightCap)) }

// Held reports the memory the queue holds: the capacity of its buffers,
// those being written included, at least Queued (transport.Holder).
func (c *conn) Held() int {
	n := int(c.held.Load())
	if c.obuf != nil {
		n += cap(*c.obuf)
	}
	return max(n, c.Queued())
}

// smallCopy is the largest event's worth of bytes copied into the last
// queued buffer's spare room rather than queued as a buffer of its own.
const smallCopy = 1 << 10

// copyIntoLast reports whether n bytes, in a buffer of capacity c, should
// be copied into the last queued buffer: when they are few and fit, or
// when queuing the buffer would pin more than a quarter more than what is
// queued, plus pinSlack.
func (c *conn) copyIntoLast(n, capacity int) bool {
	last := c.pend[len(c.pend)-1]
	if n <= smallCopy && cap(*last)-len(*last) >= n {
		return true
	}
	queued := int(c.queued.Load()) - c.inflight + n
	return c.pinned+capacity > queued+queued/4+pinSlack
}

// startWriterLocked reports whether the caller must start a writer, and
// counts it in the Loop's WaitGroup.
func (c *conn) startWriterLocked() bool {
	if c.writing || c.nc == nil {
		return false
	}
	c.writing = true
	c.l.wg.Add(1)
	return true
}

// Queued reports bytes accepted by Send and not yet written. Like Send, it
// is called inside events.
func (c *conn) Queued() int {
	n := int(c.queued.Load())
	if c.obuf != nil {
		n += len(*c.obuf)
	}
	return n
}

func (c *conn) queuedLocked() int { return int(c.queued.Load()) }

// Close flushes what is queued, for at most CloseFlush, and closes the
// socket; a queue that was over HighWater before the current event is
// dropped instead. It produces no Closed event.
func (c *conn) Close() { c.close(false) }

// Abort closes c at once, dropping what is queued (transport.Aborter).
func (c *conn) Abort() { c.close(true) }

func (c *conn) close(drop bool) {
	if c.dead {
		return
	}
	c.dead = true
	delete(c.l.conns, c)
	c.wmu.Lock()
	if drop || c.queuedLocked() > c.l.opt.HighWater {
		// A peer this far behind before this event reads neither the
		// rest nor a final frame: drop it all rather than hold it for
		// CloseFlush, counted by nobody once the core let it go.
		if c.obuf != nil {
			putWriteBuf(c.obuf)
			c.obuf = nil
		}
		c.stopped = true
		c.releaseLocked()
		nc := c.nc
		c.wmu.Unlock()
		if nc != nil {
			c.stopParking()
			nc.Close()
		}
		return
	}
	c.handOffLocked()
	c.closeReq = true
	if c.nc != nil {
		c.nc.SetWriteDeadline(time.Now().Add(c.l.opt.CloseFlush))
	}
	start := c.startWriterLocked()
	c.wmu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// RemoteAddr names the peer.
func (c *conn) RemoteAddr() string { return c.addr }

// abort drops the queue and closes the socket; used by Loop.Close.
func (c *conn) abort() {
	c.wmu.Lock()
	c.stopped = true
	nc := c.nc
	c.wmu.Unlock()
	if nc != nil {
		c.stopParking()
		nc.Close()
	}
}

// releaseLocked returns the queued buffers to the pool.
func (c *conn) releaseLocked() {
	for i, b := range c.pend {
		c.queued.Add(-int64(len(*b)))
		putWriteBuf(b)
		c.pend[i] = nil
	}
	c.pend = nil
	c.pinned = 0
	c.taken = nil
	c.vec = nil
	c.heldLocked()
}

// write hands the batch to the socket in one system call: a vectored
// write on a plain TCP socket; crypto/tls writes a record per Write, so
// for TLS the batch is first joined into its first buffer (on the
// writer's goroutine, not the core's).
func (c *conn) write(batch []*[]byte) error {
	if raw := plainTCP(c.nc); raw != nil && len(batch) > 1 {
		c.vec = c.vec[:0]
		for _, b := range batch {
			c.vec = append(c.vec, *b)
		}
		v := c.vec
		_, err := v.WriteTo(raw)
		clear(c.vec)
		return err
	}
	first := batch[0]
	for _, b := range batch[1:] {
		*first = append(*first, *b...)
	}
	_, err := c.nc.Write(*first)
	return err
}

// plainTCP returns the TCP socket under nc when nothing but a sniffer
// (whose writes pass through) sits between them.
func plainTCP(nc net.Conn) *net.TCPConn {
	if s, ok := nc.(*sniffConn); ok {
		nc = s.Conn
	}
	tc, _ := nc.(*net.TCPConn)
	return tc
}

// writeLoop writes batches until the queue is empty, then ends.
func (c *conn) writeLoop() {
	defer c.l.wg.Done()
	yielded := false
	for {
		c.wmu.Lock()
		if c.stopped {
			c.endLocked()
			return
		}
		if len(c.pend) == 0 {
			if c.closeReq {
				c.stopped = true
				c.endLocked()
				c.stopParking()
				c.nc.Close()
				return
			}
			if !yielded {
				// A sender often has more on the way: give it a moment
				// before paying for a new goroutine.
				yielded = true
				c.wmu.Unlock()
				runtime.Gosched()
				continue
			}
			c.endLocked()
			return
		}
		yielded = false
		batch := c.takeLocked()
		closing := c.closeReq
		c.wmu.Unlock()

		if c.l.opt.WriteTimeout > 0 && !closing {
			c.nc.SetWriteDeadline(time.Now().Add(c.l.opt.WriteTimeout))
		}
		err := c.write(batch)
		writable, closing := c.wrote(batch, err, closing)
		if err != nil {
			if !closing {
				c.fail(err)
			}
			c.stopParking()
			c.nc.Close()
			return
		}
		if writable {
			c.l.mu.Lock()
			if !c.dead {
				c.l.h.Writable(c, c.l.opt.Now())
				c.l.afterEventLocked()
			}
			c.l.mu.Unlock()
		}
	}
}

// endLocked ends the writer: called with wmu held, it releases it.
func (c *conn) endLocked() {
	c.releaseLocked()
	c.writing = false
	c.wmu.Unlock()
}

// takeLocked hands what is pending to the writer as one batch, counting
// what the batch holds while it is in flight.
func (c *conn) takeLocked() []*[]byte {
	batch := c.pend
	c.pend, c.taken = c.taken[:0], nil
	c.pinned = 0
	c.inflight, c.inflightCap = 0, 0
	for _, b := range batch {
		c.inflight += len(*b)
		c.inflightCap += cap(*b)
	}
	if len(batch) > 1 && plainTCP(c.nc) == nil {
		c.inflightCap += c.inflight // write joins the batch into one buffer
	}
	c.heldLocked()
	return batch
}

// wrote settles a written batch: its buffers go back to the pool, and it
// reports whether the queue fell to LowWater from above (Writable is due)
// and whether c is closing, after err stopped the writer or a close came.
func (c *conn) wrote(batch []*[]byte, err error, closing bool) (writable, closed bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.queued.Add(-int64(c.inflight))
	c.inflight, c.inflightCap = 0, 0
	c.heldLocked()
	for i, b := range batch {
		putWriteBuf(b)
		batch[i] = nil
	}
	if c.taken == nil && !c.stopped {
		c.taken = batch[:0]
	}
	if err == nil && c.high && c.queuedLocked() <= c.l.opt.LowWater {
		c.high = false
		writable = true
	}
	if err != nil {
		c.stopped = true
		c.releaseLocked()
		c.writing = false
		closing = closing || c.closeReq
	}
	return writable, closing
}

// fail delivers Closed once, unless the core or the Loop closed c first.
func (c *conn) fail(err error) {
	l := c.l
	l.mu.Lock()
	if !c.dead {
		c.dead = true
		delete(l.conns, c)
		c.wmu.Lock()
		c.stopped = true
		c.wmu.Unlock()
		l.h.Closed(c, classify(err), l.opt.Now())
		l.afterEventLocked()
	}
	l.mu.Unlock()
}

// deliver hands b to the core; it reports false once c is dead.
func (c *conn) deliver(b []byte) bool {
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.dead {
		return false
	}
	if c.first {
		c.first = false
		var err error
		if c.dialed {
			err = sniffDialed(c.addr, b)
		}
		if err != nil {
			c.dead = true
			delete(l.conns, c)
			c.wmu.Lock()
			c.stopped = true
			c.wmu.Unlock()
			l.h.Closed(c, err, l.opt.Now())
			l.afterEventLocked()
			return false
		}
	}
	l.h.Data(c, b, l.opt.Now())
	l.afterEventLocked()
	return true
}

// readLoop reads until an error or until c is dead, then closes the
// socket, or until c parks.
func (c *conn) readLoop() {
	l := c.l
	small := make([]byte, smallReadSize)
	var big *[]byte
	defer func() {
		if big != nil {
			l.putReadBuf(big)
		}
	}()
	parkAfter := l.opt.ParkAfter
	got := false // bytes arrived since the deadline was set
	var armed time.Time
	if parkAfter > 0 {
		// Also clears the deadline that parked c, if it did.
		armed = time.Now()
		c.nc.SetReadDeadline(armed.Add(parkAfter))
	}
	for {
		buf := small
		if big != nil {
			buf = *big
		}
		n, err := c.nc.Read(buf)
		if n > 0 {
			got = true
			if !c.deliver(buf[:n]) {
				c.closeIfAborted()
				return
			}
		}
		if err != nil && parkAfter > 0 && errors.Is(err, os.ErrDeadlineExceeded) &&
			time.Since(armed) >= parkAfter/2 {
			// Our idle deadline, never a failure. Park only if nothing
			// came for a whole period and only from the small buffer.
			// (A timeout long before the deadline is a wrapper's
			// recorded error: the failure below, not a busy loop.)
			if big != nil {
				l.putReadBuf(big)
				big = nil
			} else if !got && c.park() {
				return
			}
			got = false
			armed = time.Now()
			c.nc.SetReadDeadline(armed.Add(parkAfter))
			continue
		}
		if err != nil {
			c.fail(err)
			c.closeIfAborted()
			return
		}
		switch {
		case big == nil && n == len(small):
			big = l.getReadBuf()
		case big != nil && n < len(buf):
			l.putReadBuf(big)
			big = nil
		}
	}
}

// closeIfAborted closes the socket unless a writer is still flushing it
// for the core's Close (the writer closes it when done).
func (c *conn) closeIfAborted() {
	c.wmu.Lock()
	flushing := c.closeReq && !c.stopped
	c.wmu.Unlock()
	if !flushing {
		c.nc.Close()
	}
}

// runAccepted handshakes (for TLS), opens and reads one accepted conn.
func (l *Loop) runAccepted(nc net.Conn) {
	defer l.wg.Done()
	if tc, ok := nc.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(l.ctx, l.opt.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			l.log.Warn("transport: TLS handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
			nc.Close()
			return
		}
	}
	c := newConn(l, nc, nc.RemoteAddr().String())
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		nc.Close()
		return
	}
	l.conns[c] = struct{}{}
	l.h.Open(c, l.opt.Now())
	l.afterEventLocked()
	l.mu.Unlock()
	c.readLoop()
}
