package wire

import "fmt"

// Frames holds one frame of each type for a peer to decode into, so that
// reading a stream allocates nothing once each type has been seen. Both
// cores decode every payload through one Frames: that is their shared
// decode step, and each then hands the typed frame to its handler.
//
// A frame returned by Decode, and every byte slice in it, is valid until
// the next Decode of the same type and no longer than the payload it
// aliases. The zero value is ready to use; a Frames is not safe for
// concurrent use.
type Frames struct {
	f [len(frameTypes)]Frame // made on first use, from frameTypes
}

// frame returns the set's frame of type t, or nil if t is unknown.
func (s *Frames) frame(t Type) Frame {
	if !known(t) {
		return nil
	}
	if s.f[t] == nil {
		s.f[t] = frameTypes[t].new()
	}
	return s.f[t]
}

// Decode decodes payload into the set's frame of type t and returns it. It
// returns an error wrapping ErrUnknownType for an unknown t (peers skip
// those and count them) and a *FrameError for a malformed payload.
func (s *Frames) Decode(t Type, payload []byte) (Frame, error) {
	f := s.frame(t)
	if f == nil {
		return nil, fmt.Errorf("%w 0x%02x", ErrUnknownType, uint8(t))
	}
	if err := f.DecodePayload(payload); err != nil {
		return nil, err
	}
	return f, nil
}
