package wire

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// ErrNotRelay reports a peer whose first bytes cannot start the relay
// protocol: an HTTP server, a TLS port dialed without TLS, something
// else. It is permanent: dialing again reaches the same thing.
var ErrNotRelay = errors.New("wire: not a relay")

// TLSRequiredNotice is the line a relay's TLS port sends a client that
// spoke plaintext to it, before it closes (see transport/tcp).
const TLSRequiredNotice = "cosnim relay: this port expects TLS (tcps://)\n"

// Foreign is what a non-relay peer was recognised as.
type Foreign int

// The kinds of peer SniffFirst recognises.
const (
	ForeignOther       Foreign = iota + 1 // not the relay protocol; nothing more known
	ForeignTLSRequired                    // a relay's TLS port, which sent TLSRequiredNotice
	ForeignTLS                            // a TLS record: a TLS server dialed without TLS
	ForeignHTTP                           // an HTTP response
)

// ForeignError is the error SniffFirst returns; it wraps ErrNotRelay.
type ForeignError struct {
	Kind Foreign
	Line string // the peer's first line, quoted, when it is printable text
}

func (e *ForeignError) Error() string {
	switch e.Kind {
	case ForeignTLSRequired:
		return "wire: not a relay: this is a relay's TLS port; use tcps://"
	case ForeignTLS:
		return "wire: not a relay: the peer answered with TLS; use tcps://"
	case ForeignHTTP:
		return "wire: not a relay: this is an HTTP server (an operations or metrics port?), not a relay's client port: " + e.Line
	}
	if e.Line != "" {
		return "wire: not a relay: the peer said " + e.Line
	}
	return "wire: not a relay: the peer's first bytes are not the relay protocol"
}

func (e *ForeignError) Unwrap() error { return ErrNotRelay }

// SniffFirst looks at the first bytes a relay sent on a new connection
// and returns a *ForeignError if they cannot start its first frame, nil
// otherwise. A relay's first frame (Welcome or Error) is under
// DefaultMaxFrameSize, so its length prefix starts 0x00 0x00 or 0x00 0x01;
// a text line, a TLS record or an HTTP status line cannot. One byte is
// enough to decide; more bytes name the peer better.
func SniffFirst(b []byte) error {
	if len(b) == 0 || b[0] == 0 && (len(b) == 1 || b[1] <= byte(DefaultMaxFrameSize>>16)) {
		return nil
	}
	e := &ForeignError{Kind: ForeignOther}
	switch {
	case bytes.HasPrefix(b, []byte(TLSRequiredNotice)) || len(b) >= 16 && strings.HasPrefix(TLSRequiredNotice, string(b)):
		e.Kind = ForeignTLSRequired
	case len(b) >= 2 && b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 0x03:
		// A TLS record: change_cipher_spec, alert, handshake or data.
		e.Kind = ForeignTLS
	case bytes.HasPrefix(b, []byte("HTTP/")):
		e.Kind = ForeignHTTP
		e.Line = firstLine(b)
	default:
		e.Line = firstLine(b)
	}
	return e
}

// firstLine quotes b's first line, at most 80 bytes, if it is printable
// text; "" otherwise.
func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	b = bytes.TrimRight(b, "\r")
	if len(b) > 80 {
		b = b[:80]
	}
	for _, r := range string(b) {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) && r != '\t' {
			return ""
		}
	}
	if len(b) == 0 {
		return ""
	}
	return fmt.Sprintf("%q", b)
}
