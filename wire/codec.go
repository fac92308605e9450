package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Framing errors. They are connection errors: after one the byte stream can
// no longer be split into frames and the connection must be closed (after an
// Error frame with CodeFrameTooLarge or CodeProtocol, if possible).
var (
	// ErrFrameTooLarge reports a length prefix over the Reader's Max.
	ErrFrameTooLarge = errors.New("wire: frame too large")
	// ErrEmptyFrame reports a length prefix of 0 (a frame has at least a
	// type byte).
	ErrEmptyFrame = errors.New("wire: zero-length frame")
	// ErrUnknownType reports a frame type this package does not know.
	// Peers skip such frames (and count them); only Decode returns it.
	ErrUnknownType = errors.New("wire: unknown frame type")
)

// FrameError reports a malformed payload of a known frame type. It is a
// protocol violation by the peer (answer with CodeProtocol); the stream
// itself stays in step, since the frame's length was valid.
type FrameError struct {
	Type   Type
	Reason string
}

func (e *FrameError) Error() string {
	return "wire: malformed " + e.Type.String() + " frame: " + e.Reason
}

// Frame is implemented by a pointer to every frame struct.
type Frame interface {
	// FrameType returns the frame's type byte.
	FrameType() Type
	// AppendPayload appends the payload (no header) to b.
	AppendPayload(b []byte) []byte
	// DecodePayload parses p into the frame, reusing the frame's slices.
	// Byte slices in the result alias p.
	DecodePayload(p []byte) error
}

// Append appends f, header included, to b. It allocates only when b lacks
// capacity. Append does not check f: text fields over their limits are
// clamped (see the frame types), and frames that fail Validate encode to
// bytes the peer rejects.
func Append(b []byte, f Frame) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, byte(f.FrameType()))
	b = f.AppendPayload(b)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// frameTypes is the one table of frame types: each type's name, a
// constructor of its zero frame, and whether its payload starts with a
// channel handle (SetHandle). New, Frames, Type.String and SetHandle read
// it, so a new type is a constant, a struct with its methods, and a row
// here.
var frameTypes = [...]struct {
	name        string
	new         func() Frame
	handleFirst bool
}{
	TypeHello:    {"Hello", func() Frame { return new(Hello) }, false},
	TypeWelcome:  {"Welcome", func() Frame { return new(Welcome) }, false},
	TypeJoin:     {"Join", func() Frame { return new(Join) }, true},
	TypeJoined:   {"Joined", func() Frame { return new(Joined) }, true},
	TypeLeave:    {"Leave", func() Frame { return new(Leave) }, true},
	TypeAnnounce: {"Announce", func() Frame { return new(Announce) }, true},
	TypeAck:      {"Ack", func() Frame { return new(Ack) }, true},
	TypeDeliver:  {"Deliver", func() Frame { return new(Deliver) }, true},
	TypeSync:     {"Sync", func() Frame { return new(Sync) }, true},
	TypeDelta:    {"Delta", func() Frame { return new(Delta) }, true},
	TypePing:     {"Ping", func() Frame { return new(Ping) }, false},
	TypePong:     {"Pong", func() Frame { return new(Pong) }, false},
	TypeDrain:    {"Drain", func() Frame { return new(Drain) }, false},
	TypeError:    {"Error", func() Frame { return new(Error) }, false},
}

// known reports whether t has a row in frameTypes.
func known(t Type) bool { return int(t) < len(frameTypes) && frameTypes[t].new != nil }

// Known reports whether t is a frame type of this version of the
// protocol; peers skip the others and count them.
func Known(t Type) bool { return known(t) }

// New returns a new zero frame of type t, or nil if t is unknown.
func New(t Type) Frame {
	if !known(t) {
		return nil
	}
	return frameTypes[t].new()
}

// Decode allocates a frame of type t and decodes payload into it. Byte
// slices in the result alias payload. It returns an error wrapping
// ErrUnknownType for an unknown t, and a *FrameError for a malformed
// payload. Hot paths should keep one frame per type and call DecodePayload,
// which reuses the frame's slices.
func Decode(t Type, payload []byte) (Frame, error) {
	f := New(t)
	if f == nil {
		return nil, fmt.Errorf("%w 0x%02x", ErrUnknownType, uint8(t))
	}
	if err := f.DecodePayload(payload); err != nil {
		return nil, err
	}
	return f, nil
}

// Reader splits a byte stream into frames, enforcing a maximum frame size
// before buffering anything.
//
// Aliasing: payloads passed to fn point either into the b given to Feed (for
// frames wholly inside it, no copy) or into the Reader's own buffer (for a
// frame that spanned Feed calls). Either way a payload, and every byte slice
// decoded from it, is valid only until fn returns; copy what must outlive
// the call. The Reader holds at most one partial frame, never more than Max
// bytes, and releases its buffer as soon as that frame is complete, so an
// idle connection holds nothing.
//
// The Reader does not look at frame types: unknown types reach fn like any
// other (peers skip them and count them). A Reader is not safe for
// concurrent use.
type Reader struct {
	// Max is the largest frame accepted, header included; 0 means
	// DefaultMaxFrameSize.
	Max int

	hdr  [4]byte // partial length prefix, until all 4 bytes are known
	nhdr int     // bytes of hdr in use
	buf  []byte  // partial frame, header included, once its length is known
	size int     // size of the partial frame in buf
	err  error   // sticky error from a previous Feed
}

// Feed consumes b and calls fn for each whole frame, in order. payload is
// valid only during the call. A partial frame at the end is kept for the
// next Feed. Feed stops at the first error, from fn or from framing.
//
// A length prefix is checked against Max as soon as its 4 bytes are known,
// before anything is buffered or allocated. Errors are sticky: after one,
// Feed returns it again until Reset, and the Reader holds nothing.
func (r *Reader) Feed(b []byte, fn func(t Type, payload []byte) error) error {
	if r.err != nil {
		return r.err
	}
	if err := r.feed(b, fn); err != nil {
		r.err = err
		r.nhdr, r.buf = 0, nil
		return err
	}
	return nil
}

func (r *Reader) feed(b []byte, fn func(t Type, payload []byte) error) error {
	max := r.max()
	if r.nhdr > 0 || r.buf != nil {
		if r.buf == nil {
			k := copy(r.hdr[r.nhdr:], b)
			r.nhdr += k
			b = b[k:]
			if r.nhdr < len(r.hdr) {
				return nil
			}
			size, err := frameSize(r.hdr[:], max)
			if err != nil {
				return err
			}
			r.nhdr = 0
			r.hold(r.hdr[:], size)
		}
		k := min(r.size-len(r.buf), len(b))
		r.hold(b[:k], r.size)
		b = b[k:]
		if len(r.buf) < r.size {
			return nil
		}
		f := r.buf
		r.buf = nil // released: the frame is complete
		if err := fn(Type(f[4]), f[HeaderSize:]); err != nil {
			return err
		}
	}
	for len(b) >= 4 {
		size, err := frameSize(b, max)
		if err != nil {
			return err
		}
		if len(b) < size {
			r.hold(b, size)
			return nil
		}
		if err := fn(Type(b[4]), b[HeaderSize:size:size]); err != nil {
			return err
		}
		b = b[size:]
	}
	r.nhdr = copy(r.hdr[:], b)
	return nil
}

// hold appends p to the partial frame of size bytes. The buffer grows with
// what arrives (at most doubling), never past size, so a peer that
// announces a large frame and stalls costs only what it sent.
func (r *Reader) hold(p []byte, size int) {
	r.size = size
	if need := len(r.buf) + len(p); need > cap(r.buf) {
		nb := make([]byte, len(r.buf), min(size, max(need, 2*cap(r.buf), 512)))
		copy(nb, r.buf)
		r.buf = nb
	}
	r.buf = append(r.buf, p...)
}

// frameSize returns the size, header included, of the frame whose length
// prefix starts p (len(p) >= 4), or an error if it is 0 or over max.
func frameSize(p []byte, max int) (int, error) {
	l := binary.BigEndian.Uint32(p)
	if l == 0 {
		return 0, ErrEmptyFrame
	}
	if size := uint64(l) + 4; size > uint64(max) {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, size, max)
	}
	return int(l) + 4, nil
}

func (r *Reader) max() int {
	if r.Max <= 0 {
		return DefaultMaxFrameSize
	}
	return r.Max
}

// Buffered reports the bytes held of a partial frame.
func (r *Reader) Buffered() int { return r.nhdr + len(r.buf) }

// Reset discards any partial frame and a sticky error, making r ready for a
// new stream. Max is kept.
func (r *Reader) Reset() {
	r.nhdr, r.buf, r.err = 0, nil, nil
}
