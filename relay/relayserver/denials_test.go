package relayserver_test

import (
	"errors"
	"testing"

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
