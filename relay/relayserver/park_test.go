//go:build linux

package relayserver_test

import (
	"slices"
	"testing"

	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/relay/relayserver"
)

// Joined TLS members that fall silent park on the relay (through the
// handshake listener's wrapper); one wakes to announce, the other still
// receives.
func TestIdleTLSMembersPark(t *testing.T) {
	p := testpki.NewPKI(t)
	s := testrelay.Start(t, relayserver.Config{TLS: serverConfig(t, p, false, nil)})
	addr := s.Addr().String()
	a := newAgent(t, addr, clientConfig(t, p, "", ""))
	b := newAgent(t, addr, clientConfig(t, p, "", ""))
	for _, ag := range []interface{ Join(string) error }{a, b} {
		if err := ag.Join("h"); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, waitTimeout, "both members parked", func() bool { return s.ParkStats().Parked == 2 })
	if err := a.AnnounceAndWait(ctxT(t), "h", []byte("capsule-1")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, waitTimeout, "b to learn the entry", func() bool {
		return slices.Contains(known(t, b, "h"), "capsule-1")
	})
	// a's announce woke its parked socket; b only received.
	if st := s.ParkStats(); st.Wakes < 1 {
		t.Errorf("ParkStats %+v: want a's connection woken", st)
	}
}
