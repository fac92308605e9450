package conformance_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/cosnim/relays/cmd/cosnim/internal/conformance"
	"github.com/cosnim/relays/internal/fault/registry"
	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/transport/tcp"
)

// runAgainst runs the checks of ids against an in-process relay with the
// failpoints points on, draining it when the kit asks.
func runAgainst(t *testing.T, ids []string, points ...string) *conformance.Report {
	t.Helper()
	fs := registry.New()
	for _, p := range points {
		if err := fs.Enable(p, "return(true)"); err != nil {
			t.Fatal(err)
		}
	}
	s := testrelay.Start(t, relayserver.Config{
		// One join a second: the burst alone decides §6.3 however slowly
		// a loaded machine serves the kit's joins.
		Relay:      relay.Config{Faults: fs, ChannelIdleTimeout: time.Second, JoinRate: 1},
		DrainAfter: time.Second, DrainGrace: time.Second,
		DrainAlternates: []string{"tcps://relay-2.example:7420"},
	})
	addr := s.Addr().String()
	dial := tcp.NetDialer(nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return conformance.Run(ctx, conformance.Options{
		Dial:    func(ctx context.Context) (net.Conn, error) { return dial(ctx, addr) },
		DialRaw: func(ctx context.Context) (net.Conn, error) { return dial(ctx, addr) },
		Only:    ids,
		Drain:   func() { s.Stop() },
	})
}

// Each disagreement between PROTOCOL.md and the relay, brought back by its
// failpoint, is caught by the check of the requirement it breaks; without
// the failpoint the same checks pass.
func TestKitCatchesEachDisagreement(t *testing.T) {
	for _, tc := range []struct {
		point string
		ids   []string
	}{
		{relay.FailRelayWideForgot, []string{"§4.4"}},
		{relayserver.FailBareAlternates, []string{"§4.13"}},
		{relay.FailOldDrain, []string{"§12.2", "§12.3"}},
		{relay.FailEmptyEntryNonFatal, []string{"§3.6"}},
		{relay.FailJoinHandleZero, []string{"§4.3"}},
		{relay.FailJoinRateFirst, []string{"§6.3"}},
	} {
		t.Run(tc.point, func(t *testing.T) {
			t.Parallel()
			good := runAgainst(t, tc.ids)
			bad := runAgainst(t, tc.ids, tc.point)
			for _, id := range tc.ids {
				if r, _ := good.Result(id); r.Status != conformance.Pass {
					t.Errorf("without the failpoint: %s", r)
				}
				if r, _ := bad.Result(id); r.Status != conformance.Fail {
					t.Errorf("with %s: %s, want FAIL", tc.point, r)
				} else {
					t.Logf("with %s: %s", tc.point, r)
				}
			}
		})
	}
}
