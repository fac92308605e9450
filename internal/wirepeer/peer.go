package wirepeer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// DefaultReadBuffer is the read buffer of a Peer made with a size of 0.
const DefaultReadBuffer = 16 << 10

// Peer is one blocking connection to a relay. Next is for one goroutine at
// a time; Send and Write may be called from others meanwhile (a reader
// answering pings while a sender announces).
type Peer struct {
	rw      io.ReadWriter
	bufSize int
	max     int // the relay's frame limit, from its Welcome

	// Read side, used by Next only.
	rd    wire.Reader
	buf   []byte   // read buffer
	arena []byte   // payloads of the frames in queue, copied out of buf
	queue []queued // frames read and not yet returned
	head  int      // next frame of queue to return
	err   error    // read error to return once queue is drained
	began bool     // bytes have arrived (the first are sniffed)
	keep  func(wire.Type, []byte) error

	wmu sync.Mutex // guards out and the writes
	out []byte     // encoding scratch
}

type queued struct {
	t        wire.Type
	off, end int
}

// New returns a Peer over rw that reads bufSize bytes at a time
// (DefaultReadBuffer when 0). Buffers are allocated when first needed.
func New(rw io.ReadWriter, bufSize int) *Peer {
	if bufSize <= 0 {
		bufSize = DefaultReadBuffer
	}
	p := &Peer{rw: rw, bufSize: bufSize, max: wire.DefaultMaxFrameSize}
	p.keep = p.enqueue
	return p
}

// MaxFrame is the largest frame the relay accepts, header included: the
// limit its Welcome advertised, else wire.DefaultMaxFrameSize.
func (p *Peer) MaxFrame() int { return p.max }

// Send encodes f and writes it.
func (p *Peer) Send(f wire.Frame) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.out = wire.Append(p.out[:0], f)
	_, err := p.rw.Write(p.out)
	return err
}

// Write writes frames the caller encoded (for example with
// wire.AppendSyncSplit).
func (p *Peer) Write(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, err := p.rw.Write(b)
	return err
}

// Next returns the next frame's type and payload. The payload is valid
// until the next call to Next. A stream that ends between frames gives
// io.EOF, one that ends inside a frame io.ErrUnexpectedEOF; framing errors
// (wire.ErrFrameTooLarge, wire.ErrEmptyFrame) come from wire.Reader. A
// peer whose first bytes cannot start the relay protocol (an HTTP server,
// a TLS port) gives a *wire.ForeignError (see wire.SniffFirst).
func (p *Peer) Next() (wire.Type, []byte, error) {
	for p.head == len(p.queue) {
		if err := p.fill(); err != nil {
			return 0, nil, err
		}
	}
	q := p.queue[p.head]
	p.head++
	return q.t, p.arena[q.off:q.end:q.end], nil
}

// fill reads once and queues the whole frames that arrived.
func (p *Peer) fill() error {
	if p.err != nil {
		return p.err
	}
	p.queue, p.head, p.arena = p.queue[:0], 0, p.arena[:0]
	if p.buf == nil {
		p.buf = make([]byte, p.bufSize)
	}
	n, err := p.rw.Read(p.buf)
	if n > 0 && !p.began {
		p.began = true
		if serr := wire.SniffFirst(p.buf[:n]); serr != nil {
			p.err = serr
			return serr
		}
	}
	if n > 0 {
		if ferr := p.rd.Feed(p.buf[:n], p.keep); ferr != nil {
			err = ferr
		}
	}
	if err == io.EOF && p.rd.Buffered() > 0 {
		err = io.ErrUnexpectedEOF
	}
	p.err = err
	if len(p.queue) > 0 {
		return nil // frames first; the error comes after them
	}
	return err
}

// enqueue copies a payload out of the read buffer: wire.Reader's payloads
// are valid only during its callback.
func (p *Peer) enqueue(t wire.Type, payload []byte) error {
	off := len(p.arena)
	p.arena = append(p.arena, payload...)
	p.queue = append(p.queue, queued{t: t, off: off, end: len(p.arena)})
	return nil
}

// NextFrame returns the next frame of a type this build knows, decoded into
// memory of its own. Frames of unknown types are skipped, as the protocol
// asks.
func (p *Peer) NextFrame() (wire.Frame, error) {
	for {
		t, payload, err := p.Next()
		if err != nil {
			return nil, err
		}
		f, err := wire.Decode(t, bytes.Clone(payload))
		if errors.Is(err, wire.ErrUnknownType) {
			continue
		}
		return f, err
	}
}

// Expect reads frames until one of type t and decodes it into f. It answers
// Pings meanwhile, skips other frames and fails with a *RemoteError on an
// Error frame. f's byte slices alias the payload (see Next).
func (p *Peer) Expect(t wire.Type, f wire.Frame) error {
	for {
		ft, payload, err := p.Next()
		if err != nil {
			return err
		}
		switch ft {
		case t:
			return f.DecodePayload(payload)
		case wire.TypeError:
			re := &RemoteError{}
			if err := re.Frame.DecodePayload(payload); err != nil {
				return err
			}
			return re
		case wire.TypePing:
			pong, err := PongFor(payload)
			if err != nil {
				return err
			}
			if err := p.Send(pong); err != nil {
				return err
			}
		}
	}
}

// Handshake sends Hello as agent and returns the relay's Welcome, whose
// frame limit MaxFrame reports from then on.
func (p *Peer) Handshake(agent string) (*wire.Welcome, error) {
	if err := p.Send(HelloFrame(agent)); err != nil {
		return nil, err
	}
	w := &wire.Welcome{}
	if err := p.Expect(wire.TypeWelcome, w); err != nil {
		return nil, err
	}
	w.Limits = append([]wire.Limit(nil), w.Limits...) // outlives the read buffer
	p.max = maxFrameOf(w)
	return w, nil
}

// Join joins k's channel under handle, with the nonce of w, and waits for
// the relay's Joined.
func (p *Peer) Join(w *wire.Welcome, k *roster.Keys, handle uint32) (*wire.Joined, error) {
	if err := p.Send(JoinFrame(k, handle, w.Nonce)); err != nil {
		return nil, err
	}
	j := &wire.Joined{}
	return j, p.Expect(wire.TypeJoined, j)
}

// deadliner is what a stream needs for Bound; net.Conn has it.
type deadliner interface{ SetDeadline(time.Time) error }

// Bound makes reads and writes fail once ctx ends: at its deadline, if it
// has one, or as soon as it is cancelled. lift removes the bound. On a
// stream without SetDeadline, Bound does nothing.
func (p *Peer) Bound(ctx context.Context) (lift func()) {
	d, ok := p.rw.(deadliner)
	if !ok {
		return func() {}
	}
	if dl, ok := ctx.Deadline(); ok {
		d.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { d.SetDeadline(time.Unix(1, 0)) })
	return func() {
		if stop() {
			d.SetDeadline(time.Time{})
		}
	}
}

// Close closes the stream, if it can be closed.
func (p *Peer) Close() error {
	if c, ok := p.rw.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Release drops the buffers of a Peer that will stay silent for a while,
// so an idle connection holds little more than its socket; they are made
// again when needed. Frames read and not yet returned are kept.
func (p *Peer) Release() {
	p.buf = nil
	if p.head == len(p.queue) {
		p.arena, p.queue, p.head = nil, nil, 0
	}
	p.wmu.Lock()
	p.out = nil
	p.wmu.Unlock()
}
