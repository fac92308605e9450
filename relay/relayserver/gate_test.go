package relayserver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/transport/tcp"
)

// clientHello returns the first record a TLS client sends: a ClientHello,
// good for replaying without doing any crypto.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		tls.Client(a, &tls.Config{InsecureSkipVerify: true}).Handshake()
		a.Close()
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, 5+int(binary.BigEndian.Uint16(hdr[3:])))
	copy(rec, hdr)
	if _, err := io.ReadFull(b, rec[5:]); err != nil {
		t.Fatal(err)
	}
	return rec
}

// gated runs a handshake listener with limits on 127.0.0.1 and returns
// its address, its failure counts, and a TLS client configuration that
// trusts it.
func gated(t *testing.T, limits relay.Config) (addr string, hl *handshakeListener, fail *tlsFailures, client *tls.Config) {
	t.Helper()
	p := testpki.NewPKI(t)
	cfg, _, err := tcp.ServerTLSConfig(p.ServerCert, p.ServerKey, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fail = &tlsFailures{counts: map[string]uint64{}}
	hl = newHandshakeListener(tcp.SniffListener(inner, true, nil), cfg, limits, slog.New(slog.DiscardHandler), fail)
	t.Cleanup(func() { hl.Close() })
	go func() { // the Loop's part: take what is handshaken
		for {
			c, err := hl.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(p.CA.Cert)
	return inner.Addr().String(), hl, fail, &tls.Config{RootCAs: roots, ServerName: "localhost"}
}

// dialFrom opens a TCP connection to addr from the loopback address src
// (127.0.0.0/8 is all loopback on Linux) and sends first.
func dialFrom(t *testing.T, src, addr string, first []byte) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(first); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedWithin reports whether the relay closed c within d, reading and
// dropping what it sends first.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false
		}
		if err != nil {
			return true
		}
	}
}

// tlsConnect dials a full TLS handshake from src.
func tlsConnect(t *testing.T, src, addr string, cfg *tls.Config) error {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err == nil {
		c.Close()
	}
	return err
}

// Silent connections take no handshake slot: with every slot's worth of
// them open, a client that sends its ClientHello is served; ClientHellos
// past max_handshakes are still refused.
func TestSlotTakenAtClientHello(t *testing.T) {
	addr, _, fail, client := gated(t, relay.Config{MaxHandshakes: 2, HandshakeTimeout: 10 * time.Second, ClientHelloTimeout: 10 * time.Second})
	var silent []net.Conn
	for range 8 {
		silent = append(silent, dialFrom(t, "127.0.0.2", addr, nil))
	}
	if err := tlsConnect(t, "127.0.0.1", addr, client); err != nil {
		t.Fatalf("honest handshake with 8 silent connections and 2 slots: %v", err)
	}
	for i, c := range silent {
		if closedWithin(c, 10*time.Millisecond) {
			t.Fatalf("silent connection %d closed", i)
		}
	}
	hello := clientHello(t)
	stuck := []net.Conn{dialFrom(t, "127.0.0.3", addr, hello), dialFrom(t, "127.0.0.3", addr, hello)}
	time.Sleep(100 * time.Millisecond) // both hold their slots
	third := dialFrom(t, "127.0.0.4", addr, hello)
	if !closedWithin(third, 2*time.Second) {
		t.Fatal("a ClientHello past max_handshakes was not refused")
	}
	if closedWithin(stuck[0], 10*time.Millisecond) || closedWithin(stuck[1], 10*time.Millisecond) {
		t.Fatal("a handshake in progress was cut")
	}
	if n := fail.snapshot()[TLSFailBusy]; n != 1 {
		t.Errorf("counted %d busy, want 1 (%v)", n, fail.snapshot())
	}
}

// A connection silent past client_hello_timeout is closed, long before the
// handshake timeout.
func TestClientHelloTimeout(t *testing.T) {
	addr, hl, fail, _ := gated(t, relay.Config{ClientHelloTimeout: 200 * time.Millisecond, HandshakeTimeout: 10 * time.Second})
	start := time.Now()
	c := dialFrom(t, "127.0.0.2", addr, nil)
	if !closedWithin(c, 3*time.Second) {
		t.Fatal("a silent connection outlived client_hello_timeout by seconds")
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("closed after %v, before client_hello_timeout", took)
	}
	if n := fail.snapshot()[TLSFailHelloTimeout]; n != 1 {
		t.Errorf("counted %d hello timeouts, want 1 (%v)", n, fail.snapshot())
	}
	if w := hl.gate.stats().Waiting; w != 0 {
		t.Errorf("%d connections still waiting", w)
	}
}

// When max_pre_handshake connections wait for their ClientHello, a new one
// closes the oldest, and an honest client is served.
func TestOldestSilentEvicted(t *testing.T) {
	addr, hl, fail, client := gated(t, relay.Config{MaxPreHandshake: 3, HandshakeTimeout: 10 * time.Second, ClientHelloTimeout: 10 * time.Second})
	var silent []net.Conn
	for range 3 {
		silent = append(silent, dialFrom(t, "127.0.0.2", addr, nil))
		time.Sleep(20 * time.Millisecond) // accepted in this order
	}
	if err := tlsConnect(t, "127.0.0.1", addr, client); err != nil {
		t.Fatalf("honest handshake with the pool full: %v", err)
	}
	if !closedWithin(silent[0], 2*time.Second) {
		t.Fatal("the oldest silent connection was not evicted")
	}
	for i, c := range silent[1:] {
		if closedWithin(c, 10*time.Millisecond) {
			t.Fatalf("silent connection %d, not the oldest, was closed", i+1)
		}
	}
	if n := fail.snapshot()[TLSFailEvicted]; n != 1 {
		t.Errorf("counted %d evicted, want 1 (%v)", n, fail.snapshot())
	}
	if st := hl.gate.stats(); st.Evictions != 1 || st.Waiting != 2 {
		t.Errorf("gate: %+v, want 1 eviction and 2 waiting", st)
	}
}

// One source's connections, handshakes and accept rate are capped (a
// connection over the rate is held for refuseHold, then closed); another
// source is not held back by them.
func TestPerSourceCaps(t *testing.T) {
	hello := clientHello(t)
	for _, tc := range []struct {
		name   string
		limits relay.Config
		first  []byte
		reason string
	}{
		{"connections", relay.Config{MaxConnsPerSource: 2}, nil, TLSFailSourceFull},
		{"handshakes", relay.Config{MaxHandshakesPerSource: 2}, hello, TLSFailSourceBusy},
		{"rate", relay.Config{AcceptRatePerSource: 2}, nil, TLSFailSourceRate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.limits.HandshakeTimeout, tc.limits.ClientHelloTimeout = 10*time.Second, 10*time.Second
			addr, _, fail, client := gated(t, tc.limits)
			var conns []net.Conn
			for range 3 {
				conns = append(conns, dialFrom(t, "127.0.0.2", addr, tc.first))
				time.Sleep(20 * time.Millisecond)
			}
			if tc.reason == TLSFailSourceRate && closedWithin(conns[2], refuseHold/2) {
				t.Fatal("a connection over the source's rate was closed at once, not held")
			}
			if !closedWithin(conns[2], refuseHold+time.Second) {
				t.Fatal("the source's third connection was not refused")
			}
			if closedWithin(conns[0], 10*time.Millisecond) || closedWithin(conns[1], 10*time.Millisecond) {
				t.Fatal("a connection within the source's limit was closed")
			}
			if err := tlsConnect(t, "127.0.0.1", addr, client); err != nil {
				t.Fatalf("another source: %v", err)
			}
			if n := fail.snapshot()[tc.reason]; n != 1 {
				t.Errorf("counted %d %s, want 1 (%v)", n, tc.reason, fail.snapshot())
			}
		})
	}
}

func TestSourceOf(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::"},
		{"2001:db8:1:2:bbbb::9", "2001:db8:1:2::"},
		{"2001:db8:1:3::1", "2001:db8:1:3::"},
	} {
		got := sourceOf(&net.TCPAddr{IP: net.ParseIP(tc.addr), Port: 1})
		if got != netip.MustParseAddr(tc.want) {
			t.Errorf("sourceOf(%s) = %v, want %s", tc.addr, got, tc.want)
		}
	}
}
