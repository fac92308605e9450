package wire

// A message is whole frames back to back, as on a connection, sent in
// one piece: the relays' backbone carries its Deliver and reconciliation
// exchanges so (PROTOCOL.md, "Relay-to-relay backbone").

// RawFrame is one frame of a message, undecoded. Payload aliases the
// message.
type RawFrame struct {
	Type    Type
	Payload []byte
}

// Cut cuts the first frame off b: its type, its payload (aliasing b) and
// the bytes after it. It reports false when b does not start with a
// whole frame (too short, or a length prefix of 0 or past b's end). It
// does not check a maximum frame size: bound the message before.
func Cut(b []byte) (t Type, payload, rest []byte, ok bool) {
	if len(b) < HeaderSize {
		return 0, nil, b, false
	}
	n := be.Uint32(b)
	if n < 1 || uint64(n) > uint64(len(b)-4) {
		return 0, nil, b, false
	}
	end := 4 + int(n)
	return Type(b[4]), b[HeaderSize:end:end], b[end:], true
}

// SplitMessage appends the frames of message b to dst and returns it. It
// reports false for a message that does not end on a frame boundary or
// holds more frames than dst has room for (cap(dst)), so a caller bounds
// the work and allocates nothing by passing an array's slice.
func SplitMessage(b []byte, dst []RawFrame) ([]RawFrame, bool) {
	for len(b) > 0 {
		if len(dst) == cap(dst) {
			return dst, false
		}
		t, p, rest, ok := Cut(b)
		if !ok {
			return dst, false
		}
		dst = append(dst, RawFrame{Type: t, Payload: p})
		b = rest
	}
	return dst, true
}

// SetHandle writes h as the handle of the encoded frame that starts
// frame, so that one encoding serves many members. It reports false,
// changing nothing, when frame is not a whole frame of a type whose
// payload starts with a handle (handleFirst in frameTypes).
func SetHandle(frame []byte, h uint32) bool {
	t, p, _, ok := Cut(frame)
	if !ok || !known(t) || !frameTypes[t].handleFirst || len(p) < 4 {
		return false
	}
	be.PutUint32(p, h)
	return true
}
