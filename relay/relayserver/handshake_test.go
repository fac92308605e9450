package relayserver

import (
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/transport/tcp"
)

// stalled dials n connections that send first (nothing, or a ClientHello)
// and then nothing more, and reports how many the listener closed at once.
func stalled(t *testing.T, addr string, n int, first []byte, within time.Duration) (closed int) {
	t.Helper()
	eof := make(chan bool, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(first); err != nil {
			t.Fatal(err)
		}
		go func() {
			c.SetReadDeadline(time.Now().Add(within))
			var b [1]byte
			_, err := c.Read(b[:])
			// EOF, or a reset when a ClientHello was left unread.
			var ne net.Error
			eof <- err != nil && !(errors.As(err, &ne) && ne.Timeout())
		}()
	}
	for range n {
		if <-eof {
			closed++
		}
	}
	return closed
}

// Connections past max_handshakes in progress (at their ClientHello), the
// accept rate or the connection cap are closed before any TLS work (over
// the rate, after refuseHold), and counted by reason.
func TestHandshakeAdmission(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir, "ca")
	cert, key, _ := ca.Issue(t, dir, "server", testpki.Leaf{CN: "relay", Server: true})
	cfg, _, err := tcp.ServerTLSConfig(cert, key, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	hello := clientHello(t)
	for _, tc := range []struct {
		name   string
		limits relay.Config
		first  []byte
		reason string
	}{
		{"busy", relay.Config{AcceptRate: 1000, MaxConnections: 100, MaxHandshakes: 2}, hello, TLSFailBusy},
		{"rate", relay.Config{AcceptRate: 2, MaxConnections: 100, MaxHandshakes: 100}, nil, TLSFailRateLimited},
		{"full", relay.Config{AcceptRate: 1000, MaxConnections: 2, MaxHandshakes: 100}, nil, TLSFailFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			fail := &tlsFailures{counts: map[string]uint64{}}
			tc.limits.HandshakeTimeout, tc.limits.ClientHelloTimeout = 10*time.Second, 10*time.Second
			within := 500 * time.Millisecond
			if tc.reason == TLSFailRateLimited {
				within += refuseHold // held, then closed
			}
			hl := newHandshakeListener(inner, cfg, tc.limits, slog.New(slog.DiscardHandler), fail)
			defer hl.Close()
			if closed := stalled(t, inner.Addr().String(), 5, tc.first, within); closed != 3 {
				t.Fatalf("%d of 5 stalled connections closed at once, want the 3 past the limit", closed)
			}
			if got := fail.snapshot()[tc.reason]; got != 3 {
				t.Fatalf("counted %d refusals as %q, want 3 (all: %v)", got, tc.reason, fail.snapshot())
			}
		})
	}
}
