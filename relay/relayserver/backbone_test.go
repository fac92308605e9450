package relayserver_test

import (
	"testing"
	"time"

	natsbus "github.com/cosnim/relays/backbone/nats"
	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/testnats"
	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/relay/relayserver"
)

// TestPoolOverBackbone: two relays on one NATS server; an entry announced
// by a client of relay A reaches a client of relay B, which shares no
// relay with it, through the backbone.
func TestPoolOverBackbone(t *testing.T) {
	srv := testnats.Start(t, testnats.Options(t))
	bb := func() *natsbus.Options {
		return &natsbus.Options{URLs: []string{srv.URL()}, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}
	}
	ra := testrelay.Start(t, relayserver.Config{Backbone: bb()})
	rb := testrelay.Start(t, relayserver.Config{Backbone: bb()})
	a := newAgent(t, ra.Addr().String(), nil)
	b := newAgent(t, rb.Addr().String(), nil)
	for _, ag := range []*agent.Agent{a, b} {
		if err := ag.Join("hub"); err != nil {
			t.Fatal(err)
		}
		if err := ag.WaitCaughtUp(ctxT(t), "hub"); err != nil {
			t.Fatal(err)
		}
	}
	want := refs("pool", 0, 5)
	announceAll(t, a, "hub", want)
	waitUnion(t, "hub", want, a, b)
	// Through the bus, not a shared relay: A published them, B learnt them.
	sa, _, _, _ := ra.Stats()
	sb, _, _, _ := rb.Stats()
	if sa.BackbonePublishedEntries < uint64(len(want)) || sb.BackboneEntries < uint64(len(want)) {
		t.Errorf("relay A published %d entries, relay B learnt %d from the bus; want %d each",
			sa.BackbonePublishedEntries, sb.BackboneEntries, len(want))
	}
}
