package wire

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

// Append appends f, header included, to b.
func Append(b []byte, f Frame) []byte { panic("unimplemented") }

// Reader splits a byte stream into frames, enforcing a maximum frame size
// before buffering anything.
type Reader struct {
	// Max is the largest frame accepted, header included; 0 means
	// DefaultMaxFrameSize.
	Max int
}

// Feed consumes b and calls fn for each whole frame, in order. payload is
// valid only during the call. A partial frame at the end is kept for the
// next Feed. Feed stops at the first error, from fn or from framing.
func (r *Reader) Feed(b []byte, fn func(t Type, payload []byte) error) error {
	panic("unimplemented")
}

// Buffered reports the bytes held of a partial frame.
func (r *Reader) Buffered() int { panic("unimplemented") }
