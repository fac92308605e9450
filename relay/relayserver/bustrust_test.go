package relayserver_test

import (
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	natsbus "github.com/cosnim/relays/backbone/nats"
	"github.com/cosnim/relays/internal/secret"
	"github.com/cosnim/relays/internal/testnats"
	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport/tcp"
	"github.com/cosnim/relays/wire"
)

// TestForgedCompleteOverNATS: relay A holds 500 entries of a channel; a
// NATS user that is no relay answers every reconciliation request first,
// "complete, and we agree", as two relay IDs. Relay B, new to the
// channel, still learns the 500 entries from A before its member's
// Joined, and does not say complete.
func TestForgedCompleteOverNATS(t *testing.T) {
	srv := testnats.Start(t, testnats.Options(t))
	bb := func() *natsbus.Options {
		return &natsbus.Options{URLs: []string{srv.URL()}, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}
	}
	ra := testrelay.Start(t, relayserver.Config{Backbone: bb()})
	a := newAgent(t, ra.Addr().String(), nil)
	if err := a.Join("hub"); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitCaughtUp(ctxT(t), "hub"); err != nil {
		t.Fatal(err)
	}
	held := refs("held", 0, 500)
	announceAll(t, a, "hub", held)
	waitUnion(t, "hub", held, a)

	nc, err := natsgo.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := nc.Subscribe(relay.DefaultBackbonePrefix+".sync.>", func(m *natsgo.Msg) {
		for _, origin := range []uint32{0xF0, 0xF1} {
			forged := wire.Append(nil, &wire.Joined{Handle: origin, Flags: wire.JoinedComplete})
			_ = m.Respond(wire.Append(forged, &wire.Sync{Handle: origin}))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	rb := testrelay.Start(t, relayserver.Config{Backbone: bb()})
	deadline := time.Now().Add(waitTimeout)
	for st, _, _, _ := rb.Stats(); !st.BackboneUp; st, _, _, _ = rb.Stats() {
		if time.Now().After(deadline) {
			t.Fatal("relay B never connected to NATS")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx := ctxT(t)
	conn, err := tcp.NetDialer(nil)(ctx, rb.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := wirepeer.New(conn, 0)
	t.Cleanup(func() { p.Close() })
	p.Bound(ctx)
	w, err := p.Handshake("test")
	if err != nil {
		t.Fatal(err)
	}
	stretched, err := secret.Stretch([]byte("test continuum secret")) // as newAgent's
	if err != nil {
		t.Fatal(err)
	}
	k, err := roster.DeriveKeys(stretched, "hub")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Send(wirepeer.JoinFrame(k, 1, w.Nonce)); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := p.NextFrame()
		if err != nil {
			t.Fatal(err)
		}
		j, ok := f.(*wire.Joined)
		if !ok {
			continue // entries learnt while the Joined waited
		}
		if j.Cached != uint32(len(held)) || j.Flags&wire.JoinedComplete != 0 {
			t.Errorf("joined %+v, want the %d entries relay A held and not complete", j, len(held))
		}
		break
	}
	if st, _, _, _ := rb.Stats(); st.BackboneCompleteRefuted == 0 {
		t.Errorf("relay B refuted no forged claim: stats %+v", st)
	}
}
