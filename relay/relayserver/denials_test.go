package relayserver_test

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// Through the join-check workers, a connection's max_denied_joins-th bad
// proof closes it with a fatal Error; the ones before do not.
func TestDeniedJoinsCloseConnection(t *testing.T) {
	s := testrelay.Start(t, relayserver.Config{Relay: relay.Config{MaxDeniedJoins: 3}})
	p, err := rawPeer(t, s.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := roster.DeriveKeys([]byte("secret"), "hub")
	if err != nil {
		t.Fatal(err)
	}
	var wrong [roster.JoinNonceSize]byte
	pub, sig := k.JoinProof(wrong)
	for h := uint32(1); h <= 3; h++ {
		if err := p.Send(&wire.Join{Handle: h, Channel: k.ID(), Pub: pub, Sig: sig}); err != nil {
			t.Fatal(err)
		}
		err := p.Expect(wire.TypeJoined, &wire.Joined{})
		var re *wirepeer.RemoteError
		if !errors.As(err, &re) || re.Frame.Code != wire.CodeJoinDenied {
			t.Fatalf("join %d: %v, want Error join denied", h, err)
		}
		if fatal := re.Frame.Flags&wire.ErrorFatal != 0; fatal != (h == 3) {
			t.Fatalf("join %d: fatal %v, want fatal only at the 3rd denial", h, fatal)
		}
	}
	if _, err := p.NextFrame(); err == nil {
		t.Fatal("the connection is still open after the fatal Error")
	}
	st, _, _, _ := s.Stats()
	if st.DeniedClosed != 1 {
		t.Errorf("DeniedClosed %d, want 1", st.DeniedClosed)
	}
}

// A source that had a connection closed at max_denied_joins is held: its
// new connections are accepted but never served, and its open ones have
// their joins denied without the proof checked (a right proof too), while
// other sources are served as before.
func TestDeniedSourceHeld(t *testing.T) {
	s := testrelay.Start(t, relayserver.Config{Relay: relay.Config{MaxDeniedJoins: 3}})
	addr := s.Addr().String()
	from := func(src string, within time.Duration) (*wirepeer.Peer, *wire.Welcome, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Second}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(within))
		p := wirepeer.New(nc, 0)
		w, err := p.Handshake("test")
		return p, w, err
	}
	k, err := roster.DeriveKeys([]byte("secret"), "hub")
	if err != nil {
		t.Fatal(err)
	}
	other, ow, err := from("127.0.0.2", 5*time.Second) // open before the source is held
	if err != nil {
		t.Fatal(err)
	}
	bad, _, err := from("127.0.0.2", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var wrong [roster.JoinNonceSize]byte
	for h := uint32(1); h <= 3; h++ {
		kh, err := roster.DeriveKeys([]byte("secret"), fmt.Sprint("bad", h))
		if err != nil {
			t.Fatal(err)
		}
		pub, sig := kh.JoinProof(wrong)
		if err := bad.Send(&wire.Join{Handle: h, Channel: kh.ID(), Pub: pub, Sig: sig}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		if _, err := bad.NextFrame(); err != nil {
			break // closed at the 3rd denial
		}
	}
	// Well under handshake_timeout, so a Welcome would come in time.
	if _, _, err := from("127.0.0.2", 500*time.Millisecond); err == nil {
		t.Fatal("a held source's new connection was served")
	}
	var re *wirepeer.RemoteError
	if _, err := other.Join(ow, k, 1); !errors.As(err, &re) || re.Frame.Code != wire.CodeJoinDenied {
		t.Fatalf("a right proof from a held source: %v, want Error join denied", err)
	}
	honest, hw, err := from("127.0.0.1", 5*time.Second)
	if err != nil {
		t.Fatalf("another source: %v", err)
	}
	if _, err := honest.Join(hw, k, 1); err != nil {
		t.Fatalf("another source's join: %v", err)
	}
}
