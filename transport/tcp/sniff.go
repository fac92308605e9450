package tcp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/cosnim/relays/internal/defaults"
	"github.com/cosnim/relays/wire"
)

// ErrProtocolMismatch reports a TLS peer on a plaintext port or a
// plaintext peer on a TLS port.
var ErrProtocolMismatch = errors.New("transport: protocol mismatch")

// tlsAlertHandshakeFailure is the record a plaintext port sends to a TLS
// client: a fatal handshake_failure alert, record version TLS 1.0.
var tlsAlertHandshakeFailure = []byte{0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28}

// tlsRequiredNotice is the line a TLS port sends to a plaintext client. A
// dialed Conn whose first bytes are not the relay protocol (this notice
// among them, see wire.SniffFirst) reports Closed with an error saying
// what it reached instead of handing the bytes to the core as data.
var tlsRequiredNotice = []byte(wire.TLSRequiredNotice)

// sniffWriteTimeout bounds writing the alert or the notice.
const sniffWriteTimeout = time.Second

// SniffListener wraps a raw TCP listener so that a client speaking the
// wrong protocol gets a clear answer. It looks at the first bytes each
// connection sends (a TLS ClientHello starts 0x16 0x03):
//   - wantTLS false, TLS seen: it writes a TLS handshake_failure alert,
//     which a TLS client reports as a handshake failure (see
//     ExplainDialError), logs "TLS client on plaintext port" and closes;
//   - wantTLS true, anything else seen: it writes a one-line ASCII notice,
//     logs "plaintext client on TLS port" and closes.
//
// Either way the connection's first Read fails with ErrProtocolMismatch.
// For a TLS port wrap the result: tls.NewListener(SniffListener(ln, true,
// log), cfg). The sniffing happens in the first Read, never in Accept.
func SniffListener(ln net.Listener, wantTLS bool, log *slog.Logger) net.Listener {
	return &sniffListener{Listener: ln, wantTLS: wantTLS, log: defaults.Logger(log)}
}

type sniffListener struct {
	net.Listener
	wantTLS bool
	log     *slog.Logger
}

func (s *sniffListener) Accept() (net.Conn, error) {
	nc, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: nc, ln: s}, nil
}

// sniffConn peeks at the first bytes. Read is not safe for concurrent use
// (a connection has one reader).
type sniffConn struct {
	net.Conn
	ln      *sniffListener
	hdr     [2]byte
	nhdr    int // bytes of hdr read while sniffing
	sniffed bool
	peeked  []byte
	err     error // returned once peeked is drained
}

func (s *sniffConn) Read(b []byte) (int, error) {
	if !s.sniffed {
		if err := s.sniff(); err != nil {
			return 0, err
		}
	}
	if len(s.peeked) > 0 {
		n := copy(b, s.peeked)
		s.peeked = s.peeked[n:]
		return n, nil
	}
	if s.err != nil {
		return 0, s.err
	}
	return s.Conn.Read(b)
}

// holding reports whether s holds bytes or an error that the socket no
// longer shows, so that Read must be called without waiting for it.
func (s *sniffConn) holding() bool {
	return s.nhdr > 0 && !s.sniffed || len(s.peeked) > 0 || s.err != nil
}

// sniff reads the first byte, and a second after 0x16, then decides. A
// read deadline's timeout (the Loop's idle deadline, before a silent
// client's first byte) keeps what was read for the next call: it is
// returned, never recorded.
func (s *sniffConn) sniff() error {
	var err error
	for s.nhdr == 0 || s.nhdr == 1 && s.hdr[0] == 0x16 {
		var m int
		m, err = s.Conn.Read(s.hdr[s.nhdr:])
		s.nhdr += m
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			break
		}
	}
	s.sniffed = true
	n, hdr := s.nhdr, s.hdr
	s.peeked = s.hdr[:n:n]
	s.err = err
	if n == 0 {
		return nil
	}
	isTLS := n == 2 && hdr[0] == 0x16 && hdr[1] == 0x03
	remote := s.RemoteAddr().String()
	switch {
	case isTLS && !s.ln.wantTLS:
		s.ln.log.Warn("transport: TLS client on plaintext port; it should dial tcp://", "remote", remote)
		s.refuse(tlsAlertHandshakeFailure)
		s.err = fmt.Errorf("%w: TLS client %s on plaintext port (it should dial tcp://)", ErrProtocolMismatch, remote)
	case !isTLS && s.ln.wantTLS:
		s.ln.log.Warn("transport: plaintext client on TLS port; it should dial tcps://", "remote", remote)
		s.refuse(tlsRequiredNotice)
		s.err = fmt.Errorf("%w: plaintext client %s on TLS port (it should dial tcps://)", ErrProtocolMismatch, remote)
	default:
		return nil
	}
	s.peeked = nil
	return nil
}

func (s *sniffConn) refuse(msg []byte) {
	s.Conn.SetWriteDeadline(time.Now().Add(sniffWriteTimeout))
	s.Conn.Write(msg)
	if tc, ok := s.Conn.(*net.TCPConn); ok {
		// Let the client read the message before it sees the close;
		// a close with unread input would send a reset instead.
		tc.CloseWrite()
		tc.SetReadDeadline(time.Now().Add(sniffWriteTimeout))
		io.Copy(io.Discard, io.LimitReader(tc, 64<<10))
	}
	s.Conn.Close()
}

// sniffDialed returns why a dialed connection whose first bytes are b
// reached no relay, or nil: a TLS port (the relay's notice, or any TLS
// record) is ErrProtocolMismatch; anything else wraps wire.ErrNotRelay.
func sniffDialed(addr string, b []byte) error {
	err := wire.SniffFirst(b)
	var fe *wire.ForeignError
	if !errors.As(err, &fe) {
		return err
	}
	switch fe.Kind {
	case wire.ForeignTLSRequired:
		return fmt.Errorf("%w: relay at %s expects TLS; use tcps:// (%w)", ErrProtocolMismatch, addr, err)
	case wire.ForeignTLS:
		return fmt.Errorf("%w: %s speaks TLS; use tcps:// (%w)", ErrProtocolMismatch, addr, err)
	}
	return fmt.Errorf("%s: %w", addr, err)
}

// ExplainDialError turns the TLS errors a client sees when it dials the
// wrong kind of port into clear ones wrapping ErrProtocolMismatch: a
// first record that is not TLS means the relay speaks plaintext; a
// handshake_failure alert as the answer to the ClientHello is what a
// plaintext port running SniffListener sends. Other errors are returned
// unchanged.
func ExplainDialError(err error) error {
	if err == nil || errors.Is(err, ErrProtocolMismatch) {
		return err
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		where := "relay"
		if rh.Conn != nil {
			where = "relay at " + rh.Conn.RemoteAddr().String()
		}
		return fmt.Errorf("%w: %s speaks plaintext; use tcp:// (%w)", ErrProtocolMismatch, where, err)
	}
	// crypto/tls reports a received alert as a *net.OpError with Op
	// "remote error" wrapping an unexported alert type; its text is the
	// only handle on which alert it was.
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil &&
		oe.Err.Error() == "tls: handshake failure" {
		return fmt.Errorf("%w: the relay refused the TLS handshake; it is probably a plaintext port: use tcp:// (%w)", ErrProtocolMismatch, err)
	}
	return err
}
