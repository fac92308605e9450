package relayserver_test

import (
	"math/rand/v2"
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
	held := refs("held", 0, 500)
	h := startNATSHub(t, relay.Config{}, held)
	nc := h.nc
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

	rb := testrelay.Start(t, relayserver.Config{Backbone: h.backbone()})
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
	if err := p.Send(wirepeer.JoinFrame(h.keys, 1, w.Nonce)); err != nil {
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

// TestInjectionFloodOverNATS: relay A's members announced 1,000 entries
// of a channel whose cache holds 4,000; a NATS user floods the channel's
// subject with 20,000 random entries. A member joining later still gets
// every entry A's members announced.
func TestInjectionFloodOverNATS(t *testing.T) {
	held := refs("local", 0, 1000)
	h := startNATSHub(t, relay.Config{CacheEntries: 4000}, held)
	ra, k, nc := h.relay, h.keys, h.nc
	rng := rand.New(rand.NewPCG(1, 2))
	const flood = 20000
	for sent := 0; sent < flood; {
		var batch [][]byte
		for ; len(batch) < 200 && sent < flood; sent++ {
			e := make([]byte, 100)
			for i := range e {
				e[i] = byte(rng.Uint32())
			}
			batch = append(batch, e)
		}
		if err := nc.Publish(relay.ChannelSubject(relay.DefaultBackbonePrefix, k.ID()), wire.Append(nil, &wire.Deliver{Handle: 0xBAD, Entries: batch})); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout)
	for st, _, _, _ := ra.Stats(); st.BackboneEntries < flood/2; st, _, _, _ = ra.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("relay A stored %d of the %d injected entries", st.BackboneEntries, flood)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the rest of the flood
	st, _, _, _ := ra.Stats()
	t.Logf("relay A: %d bus entries stored, %d evicted, %d over the origin's quota", st.BackboneEntries, st.Evicted, st.BackboneQuotaEvicted)
	b := newAgent(t, ra.Addr().String(), nil)
	if err := b.Join("hub"); err != nil {
		t.Fatal(err)
	}
	waitUnion(t, "hub", held, b)
}

// TestReplyFloodOverNATS: a NATS user sends a relay holding 2,000 entries
// 1,000 requests of 16 empty ID ranges (81 bytes each). Each reply is
// within the bound, and the relay answers at most its burst.
func TestReplyFloodOverNATS(t *testing.T) {
	h := startNATSHub(t, relay.Config{}, refs("held", 0, 2000))
	ra, k, nc := h.relay, h.keys, h.nc
	replies := make(chan int, 2000)
	inbox := natsgo.NewInbox()
	if _, err := nc.Subscribe(inbox, func(m *natsgo.Msg) { replies <- len(m.Data) }); err != nil {
		t.Fatal(err)
	}
	var msg roster.SyncMsg
	for i := range 16 {
		msg.Ranges = append(msg.Ranges, roster.Range{Node: roster.Node{Depth: 1, Prefix: uint64(i)}, Mode: roster.ModeIDs})
	}
	req := wire.Append(nil, &wire.Sync{Handle: 0xBAD, Session: 1, Msg: msg})
	start := time.Now()
	for i := range 1000 {
		if err := nc.PublishRequest(relay.SyncSubject(relay.DefaultBackbonePrefix, k.ID()), inbox, req); err != nil {
			t.Fatal(err)
		}
		if i%16 == 15 { // paced within the driver's hand-off, so the core sees them all
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	n, bytes, largest := 0, 0, 0
	for quiet := time.After(time.Second); ; {
		select {
		case size := <-replies:
			n, bytes, largest = n+1, bytes+size, max(largest, size)
			continue
		case <-quiet:
		}
		break
	}
	elapsed := time.Since(start)
	st, _, _, _ := ra.Stats()
	t.Logf("%d requests of %d bytes: %d replies in %v, %d bytes, the largest %d; %d limited; received %d answered %d bad %d", 1000, len(req), n, elapsed.Round(time.Millisecond), bytes, largest, st.BackboneLimited, st.BackboneReceived, st.BackboneSyncsAnswered, st.BackboneBad)
	if bound := max(relay.BackboneReplyFloor, relay.BackboneReplyFactor*len(req)); largest > bound {
		t.Errorf("largest reply %d bytes, over the bound %d", largest, bound)
	}
	if limit := relay.BackboneAnswerBurst + int(elapsed.Seconds()*relay.BackboneAnswerRate) + 1; n > limit {
		t.Errorf("%d answers in %v, over the burst and rate (%d)", n, elapsed, limit)
	}
	// Paced, the requests reach the core: what goes unanswered, the core's
	// limiter refused.
	if st.BackboneReceived < 900 {
		t.Fatalf("the core received %d of 1000 requests: the driver dropped the rest, so the limiter is not what this run shows", st.BackboneReceived)
	}
	if st.BackboneLimited == 0 {
		t.Errorf("%d of 1000 requests answered, none limited by the core", n)
	}
}

// natsHub is a relay on an in-process NATS backbone whose member has
// announced held on channel "hub", with the channel's keys and a plain
// NATS connection that is no relay.
type natsHub struct {
	srv   *testnats.Server
	relay *testrelay.Server
	keys  *roster.Keys
	nc    *natsgo.Conn
}

// backbone is fresh options for another relay on h's NATS server.
func (h *natsHub) backbone() *natsbus.Options {
	return &natsbus.Options{URLs: []string{h.srv.URL()}, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond}
}

func startNATSHub(t *testing.T, rc relay.Config, held [][]byte) *natsHub {
	t.Helper()
	h := &natsHub{srv: testnats.Start(t, testnats.Options(t))}
	h.relay = testrelay.Start(t, relayserver.Config{Backbone: h.backbone(), Relay: rc})
	a := newAgent(t, h.relay.Addr().String(), nil)
	if err := a.Join("hub"); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitCaughtUp(ctxT(t), "hub"); err != nil {
		t.Fatal(err)
	}
	announceAll(t, a, "hub", held)
	waitUnion(t, "hub", held, a)
	stretched, err := secret.Stretch([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	if h.keys, err = roster.DeriveKeys(stretched, "hub"); err != nil {
		t.Fatal(err)
	}
	if h.nc, err = natsgo.Connect(h.srv.URL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.nc.Close)
	return h
}
