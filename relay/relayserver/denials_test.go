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
// new connections are served at heldAcceptRate, each closed at its first
// denied join, while a right proof from it still joins and other sources
// are served as before.
func TestDeniedSourceHeld(t *testing.T) {
	s := testrelay.Start(t, relayserver.Config{Relay: relay.Config{MaxDeniedJoins: 3}})
	addr := s.Addr().String()
	from := func(src string) (*wirepeer.Peer, *wire.Welcome) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: time.Second}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		p := wirepeer.New(nc, 0)
		w, err := p.Handshake("test")
		if err != nil {
			t.Fatalf("from %s: %v", src, err)
		}
		return p, w
	}
	denied := func(p *wirepeer.Peer, j *wire.Join) (fatal bool) {
		t.Helper()
		if err := p.Send(j); err != nil {
			t.Fatal(err)
		}
		err := p.Expect(wire.TypeJoined, &wire.Joined{})
		var re *wirepeer.RemoteError
		if !errors.As(err, &re) || re.Frame.Code != wire.CodeJoinDenied {
			t.Fatalf("%v, want Error join denied", err)
		}
		return re.Frame.Flags&wire.ErrorFatal != 0
	}
	k, err := roster.DeriveKeys([]byte("secret"), "hub")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := from("127.0.0.2")
	if denied(before, &wire.Join{Handle: 0, Channel: k.ID()}) {
		t.Fatal("a handle-0 join closed a connection of a source not held")
	}
	bad, _ := from("127.0.0.2")
	var wrong [roster.JoinNonceSize]byte
	for h := uint32(1); h <= 3; h++ {
		kh, err := roster.DeriveKeys([]byte("secret"), fmt.Sprint("bad", h))
		if err != nil {
			t.Fatal(err)
		}
		pub, sig := kh.JoinProof(wrong)
		denied(bad, &wire.Join{Handle: h, Channel: kh.ID(), Pub: pub, Sig: sig})
	}
	start := time.Now()
	const n = 6
	for range n {
		p, _ := from("127.0.0.2")
		if !denied(p, &wire.Join{Handle: 0, Channel: k.ID()}) {
			t.Fatal("a held source's connection survived a denied join")
		}
	}
	if took, least := time.Since(start), (n-1)*time.Second/relayserver.HeldAcceptRate; took < least*3/4 {
		t.Fatalf("%d connections from a held source served in %v, want about %v", n, took, least)
	}
	p, w := from("127.0.0.2")
	if _, err := p.Join(w, k, 1); err != nil {
		t.Fatalf("a right proof from a held source: %v", err)
	}
	for range n {
		p, w := from("127.0.0.1")
		if denied(p, &wire.Join{Handle: 0, Channel: k.ID()}) {
			t.Fatal("another source's connection closed at a denied join")
		}
		if _, err := p.Join(w, k, 1); err != nil {
			t.Fatalf("another source's join: %v", err)
		}
	}
}
