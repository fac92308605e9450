package relay

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/backbone"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport/transporttest"
	"github.com/cosnim/relays/wire"
)

// The defences against a hostile bus publisher (bbtrust.go).

// peerReply encodes a reconciliation reply from origin: Joined (cached,
// flags), a Delta of entries if any, and an empty Sync (the exchange ends).
func peerReply(origin uint32, session uint32, flags uint8, cached int, entries [][]byte) []byte {
	data := wire.Append(nil, &wire.Joined{Handle: origin, Cached: uint32(cached), Flags: flags})
	if len(entries) > 0 {
		data = wire.Append(data, &wire.Delta{Handle: origin, Session: session, Entries: entries})
	}
	return wire.Append(data, &wire.Sync{Handle: origin, Session: session})
}

func sealedN(t *testing.T, k *roster.Keys, prefix string, n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, seal(t, k, fmt.Sprint(prefix, i)).Sealed)
	}
	return out
}

// firstJoin joins a member to a relay new to k's channel and answers its
// first request with replies, in order, each 10 ms after the last; then
// lets the reply window pass and returns the member's Joined.
func firstJoin(t *testing.T, cfg Config, k *roster.Keys, replies ...[]byte) (*harness, *wire.Joined) {
	h, bus := bbHarness(t, cfg)
	c := h.askJoin("a", k)
	if len(bus.reqs) != 1 {
		t.Fatalf("join sent %d requests, want 1", len(bus.reqs))
	}
	req := bus.reqs[0]
	for _, rep := range replies {
		h.r.Response(req.id, rep, nil, h.now)
		h.now = h.now.Add(10 * time.Millisecond)
	}
	h.now = h.now.Add(BackboneReplyWindow)
	h.r.Tick(h.now)
	return h, mustJoined(t, c)
}

// checkForgedComplete: a publisher answers first, "complete, empty",
// while a peer holding 20 entries answers too; and a lone "complete"
// reply. Neither may make the cache complete on an unauthenticated bus.
func checkForgedComplete(t *testing.T, fs faults) error {
	k := keys(t, "hub")
	held := sealedN(t, k, "held-", 20)
	forged := peerReply(0xF0, 1, wire.JoinedComplete, 0, nil)
	honest := peerReply(7, 1, 0, len(held), held)
	h, j := firstJoin(t, Config{Faults: fs}, k, forged, honest)
	if j.Flags&wire.JoinedComplete != 0 {
		return fmt.Errorf("joined %+v after a forged \"complete, empty\" and a peer holding %d: want not complete", j, len(held))
	}
	if j.Cached != uint32(len(held)) {
		return fmt.Errorf("joined %+v: want the %d entries the second reply gave", j, len(held))
	}
	if n := h.r.Stats().BackboneCompleteRefuted; n != 1 {
		return fmt.Errorf("refuted claims %d, want 1", n)
	}
	if _, j := firstJoin(t, Config{Faults: fs}, k, forged); j.Flags&wire.JoinedComplete != 0 {
		return fmt.Errorf("joined %+v on one reply's word: want not complete", j)
	}
	return nil
}

func TestBackboneForgedCompleteRefuted(t *testing.T) {
	if err := checkForgedComplete(t, nil); err != nil {
		t.Fatal(err)
	}
}

// What proves a cache complete: two origins that agree, or one on an
// authenticated bus.
func TestBackboneCompleteProven(t *testing.T) {
	k := keys(t, "hub")
	held := sealedN(t, k, "held-", 5)
	a := peerReply(7, 1, wire.JoinedComplete, len(held), held)
	b := peerReply(8, 1, wire.JoinedComplete, len(held), held)
	if _, j := firstJoin(t, Config{}, k, a, b); j.Flags&wire.JoinedComplete == 0 || j.Cached != 5 {
		t.Errorf("two origins agreeing: joined %+v, want 5 cached, complete", j)
	}
	if _, j := firstJoin(t, Config{}, k, a, a); j.Flags&wire.JoinedComplete != 0 {
		t.Errorf("one origin twice: joined %+v, want not complete", j)
	}
	if _, j := firstJoin(t, Config{BackboneAuthenticated: true}, k, a); j.Flags&wire.JoinedComplete == 0 {
		t.Errorf("one reply on an authenticated bus: joined %+v, want complete", j)
	}
	// A later reconciliation on one reply's word does not make a
	// channel left incomplete complete again either.
	h, j := firstJoin(t, Config{}, k, a)
	if j.Flags&wire.JoinedComplete != 0 {
		t.Fatalf("joined %+v, want not complete", j)
	}
	bus := h.r.cfg.Backbone.(*fakeBus)
	h.now = h.now.Add(DefaultBackboneAntiEntropy)
	h.r.Tick(h.now)
	h.r.Response(bus.reqs[len(bus.reqs)-1].id, peerReply(0xF0, 2, wire.JoinedComplete, 5, nil), nil, h.now)
	h.now = h.now.Add(BackboneReplyWindow)
	h.r.Tick(h.now)
	c := h.askJoin("b", k)
	if j := mustJoined(t, c); j.Flags&wire.JoinedComplete != 0 {
		t.Errorf("after an anti-entropy round answered by one reply: joined %+v, want not complete", j)
	}
}

// checkInjection: a channel whose members announced 20 entries, then a
// publisher floods it with entries from one origin and from many: the
// local entries all stay, and no origin takes more than its quota.
func checkInjection(t *testing.T, fs faults) error {
	h, bus := bbHarness(t, Config{Faults: fs, CacheEntries: 40})
	k := keys(t, "hub")
	a := joinAlone(h, bus, "a", k)
	a.Discard = true
	local := sealedN(t, k, "local-", 20)
	h.send(a, &wire.Announce{Handle: 1, Entries: local})
	sub := ChannelSubject(DefaultBackbonePrefix, k.ID())
	flood := func(origin uint32, entries [][]byte) {
		for len(entries) > 0 {
			n := min(50, len(entries))
			h.r.Message(backbone.Msg{Subject: sub, Data: wire.Append(nil, &wire.Deliver{Handle: origin, Entries: entries[:n]})}, h.now)
			entries = entries[n:]
		}
	}
	flood(9, sealedN(t, k, "flood-", 300))
	for o := range 40 {
		flood(uint32(100+o), sealedN(t, k, fmt.Sprint("many-", o, "-"), 10))
	}
	cache, _, _ := h.r.Cached(k.ID())
	for i, e := range local {
		if !cache.Has(roster.NewEntry(e).ID) {
			return fmt.Errorf("local entry %d evicted by bus entries", i)
		}
	}
	ch := h.r.channels[k.ID()]
	for _, o := range ch.origins {
		if o.live() > h.r.originQuota() {
			return fmt.Errorf("origin %d holds %d entries, over its quota of %d", o.id, o.live(), h.r.originQuota())
		}
	}
	if cache.Len() > 40 {
		return fmt.Errorf("cache holds %d, over its cap", cache.Len())
	}
	if len(ch.origins) > backboneMaxOrigins+1 {
		return fmt.Errorf("%d origins tracked, want at most %d", len(ch.origins), backboneMaxOrigins+1)
	}
	if h.r.Stats().BackboneQuotaEvicted == 0 {
		return fmt.Errorf("no entry evicted over its origin's quota")
	}
	return nil
}

func TestBackboneInjectionNeverEvictsLocal(t *testing.T) {
	if err := checkInjection(t, nil); err != nil {
		t.Fatal(err)
	}
}

// Local pressure still evicts local entries, bus ones first.
func TestBackboneLocalPressureEvictsBusFirst(t *testing.T) {
	h, bus := bbHarness(t, Config{CacheEntries: 10})
	k := keys(t, "hub")
	a := joinAlone(h, bus, "a", k)
	a.Discard = true
	fromBus := sealedN(t, k, "bus-", 4)
	h.r.Message(backbone.Msg{Subject: ChannelSubject(DefaultBackbonePrefix, k.ID()), Data: wire.Append(nil, &wire.Deliver{Handle: 3, Entries: fromBus})}, h.now)
	h.send(a, &wire.Announce{Handle: 1, Entries: sealedN(t, k, "local-", 8)})
	cache, _, _ := h.r.Cached(k.ID())
	if cache.Len() != 10 {
		t.Fatalf("cache holds %d, want its cap of 10", cache.Len())
	}
	for i, e := range fromBus[:2] {
		if cache.Has(roster.NewEntry(e).ID) {
			t.Errorf("bus entry %d kept while local entries needed room", i)
		}
	}
	h.send(a, &wire.Announce{Handle: 1, Seq: 1, Entries: sealedN(t, k, "more-", 4)})
	if cache.Len() != 10 || h.r.channels[k.ID()].origins[0].live() != 0 {
		t.Errorf("cache %d entries, %d from the bus; want 10 and none", cache.Len(), h.r.channels[k.ID()].origins[0].live())
	}
}

// attackRequest is 16 empty ID ranges: "I have nothing under any of
// these", a few bytes that ask for everything.
func attackRequest() []byte {
	var msg roster.SyncMsg
	for i := range 16 {
		msg.Ranges = append(msg.Ranges, roster.Range{Node: roster.Node{Depth: 1, Prefix: uint64(i)}, Mode: roster.ModeIDs})
	}
	return wire.Append(nil, &wire.Sync{Handle: 5, Session: 1, Msg: msg})
}

// checkReplyBound sends a relay holding 2,000 entries the 16-range
// request, then a flood of it, and reports a reply over its bound or
// answers past the channel's rate.
func checkReplyBound(t *testing.T, fs faults) error {
	h, bus := bbHarness(t, Config{Faults: fs})
	k := keys(t, "hub")
	a := joinAlone(h, bus, "a", k)
	a.Discard = true
	for i := range 100 {
		h.send(a, &wire.Announce{Handle: 1, Seq: uint32(i), Entries: sealedN(t, k, fmt.Sprint("e", i, "-"), 20)})
	}
	h.now = h.now.Add(time.Second) // past the anti-entropy burst
	req := attackRequest()
	sub := SyncSubject(DefaultBackbonePrefix, k.ID())
	n := len(bus.resps)
	h.r.Message(backbone.Msg{Subject: sub, Reply: "_INBOX.x", Data: req}, h.now)
	if len(bus.resps) != n+1 {
		return fmt.Errorf("%d replies to one request, want 1", len(bus.resps)-n)
	}
	bound := max(BackboneReplyFloor, BackboneReplyFactor*len(req))
	t.Logf("a %d-byte request got a %d-byte reply (%.0f×; bound %d)", len(req), len(bus.resps[n].data), float64(len(bus.resps[n].data))/float64(len(req)), bound)
	if got := len(bus.resps[n].data); got > bound {
		return fmt.Errorf("%d-byte request got a %d-byte reply, over its bound of %d", len(req), got, bound)
	}
	if fs := decodeFrames(t, bus.resps[n].data); fs[0].(*wire.Joined).Flags&BackbonePartial == 0 {
		return fmt.Errorf("a reply cut to its bound does not say partial")
	}
	for range 1000 {
		h.r.Message(backbone.Msg{Subject: sub, Reply: "_INBOX.x", Data: req}, h.now)
	}
	replied := 0
	for _, r := range bus.resps[n+1:] {
		replied += len(r.data)
	}
	t.Logf("1,000 such requests at once (%d bytes): %d answered, %d reply bytes, %d limited", 1000*len(req), len(bus.resps)-n-1, replied, h.r.Stats().BackboneLimited)
	if got := len(bus.resps) - n - 1; got > BackboneAnswerBurst {
		return fmt.Errorf("1,000 requests at once got %d answers, over the burst of %d", got, BackboneAnswerBurst)
	}
	if s := h.r.Stats(); s.BackboneLimited == 0 {
		return fmt.Errorf("no request counted as limited")
	}
	before := len(bus.resps)
	h.now = h.now.Add(time.Second)
	for range 1000 {
		h.r.Message(backbone.Msg{Subject: sub, Reply: "_INBOX.x", Data: req}, h.now)
	}
	if got := len(bus.resps) - before; got > BackboneAnswerRate {
		return fmt.Errorf("a second later: %d answers, over the rate of %d", got, BackboneAnswerRate)
	}
	return nil
}

func TestBackboneReplyBoundedAndRateLimited(t *testing.T) {
	if err := checkReplyBound(t, nil); err != nil {
		t.Fatal(err)
	}
}

// An honest newcomer still learns a large cache over a few
// reconciliations with bounded replies.
func TestBackboneBoundedRepliesStillConverge(t *testing.T) {
	hb, hs := newHub(t, 2, Config{BackboneAuthenticated: true})
	k := keys(t, "hub")
	hb.lossy = true
	var refs []string
	for i := range 3000 {
		refs = append(refs, fmt.Sprint("r", i))
	}
	announceAll(t, hb, hs[0], "m0", k, refs)
	var c *transporttest.Conn = hs[1].askJoin("m1", k)
	c.Discard = true
	hb.run(t)
	if err := converge(t, hb, hs, k, len(refs), 3); err != nil {
		t.Fatal(err)
	}
}

// Each defence's failpoint breaks its check.
func TestBackboneTrustFailpointsCaught(t *testing.T) {
	for _, tc := range []struct {
		point string
		check func(*testing.T, faults) error
	}{
		{FailTrustSingleComplete, checkForgedComplete},
		{FailTrustSingleComplete, checkForgedAgreement},
		{FailBusEvictsLocal, checkInjection},
		{FailUnboundedReply, checkReplyBound},
	} {
		if err := tc.check(t, faults{tc.point: true}); err == nil {
			t.Errorf("%s: the check passed with it on", tc.point)
		}
	}
}

// PROTOCOL.md §14 and docs/POOLS.md state the defences' figures; they
// are the constants'.
func TestBackboneTrustDocumented(t *testing.T) {
	for file, want := range map[string][]string{
		"../PROTOCOL.md": {
			fmt.Sprintf("`backbone.ReplyWindow` (%d ms)", BackboneReplyWindow.Milliseconds()),
			fmt.Sprintf("`relay.BackboneCompleteQuorum` (%d)", BackboneCompleteQuorum),
			fmt.Sprintf("`%d` origins", backboneMaxOrigins),
			fmt.Sprintf("(factor %d;", BackboneReplyFactor),
			fmt.Sprintf("× `n`, %s)", thousands(BackboneReplyFloor)),
			fmt.Sprintf("`relay.BackboneAnswerRate` (%d)", BackboneAnswerRate),
			fmt.Sprintf("burst of %d", BackboneAnswerBurst),
			fmt.Sprintf("`relay.BackboneLateAnswer` (%d ms", BackboneLateAnswer.Milliseconds()),
		},
		"../docs/POOLS.md": {
			fmt.Sprintf("for %d ms (`backbone.ReplyWindow`)", BackboneReplyWindow.Milliseconds()),
			fmt.Sprintf("at most %d times its request, or\n  %d KiB", BackboneReplyFactor, BackboneReplyFloor>>10),
			fmt.Sprintf("at most %d requests a\n  second per channel (burst %d)", BackboneAnswerRate, BackboneAnswerBurst),
		},
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s does not say %q", file, w)
			}
		}
	}
	if backboneOriginShare != 2 {
		t.Errorf("the docs say one origin takes at most half a cache; the share is 1/%d", backboneOriginShare)
	}
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	if len(s) > 3 {
		s = s[:len(s)-3] + "," + s[len(s)-3:]
	}
	return s
}

// checkForgedAgreement: a publisher answers every request first, "complete,
// and we agree", as two relay IDs, while relay 0 holds 300 entries, more
// than one bounded reply carries. Relay 1, new to the channel, must still
// learn them all in its first reconciliation, and not say complete.
func checkForgedAgreement(t *testing.T, fs faults) error {
	hb, hs := newHub(t, 2, Config{Faults: fs})
	forger := &hubPort{h: hb, subs: map[string]bool{}}
	k := keys(t, "hub")
	forger.subs[SyncSubject(DefaultBackbonePrefix, k.ID())] = true
	forger.onMsg = func(m backbone.Msg) {
		for _, origin := range []uint32{0xF0, 0xF1} {
			forger.Respond(m.Reply, peerReply(origin, 0, wire.JoinedComplete, 0, nil))
		}
	}
	hb.ports = append([]*hubPort{forger}, hb.ports...) // answered first
	var refs []string
	for i := range 300 {
		refs = append(refs, fmt.Sprint("held-", i))
	}
	announceAll(t, hb, hs[0], "m0", k, refs)
	c := hs[1].askJoin("m1", k)
	hb.settle(t, hs)
	j, err := lastJoined(c.Frames(t))
	if err != nil {
		return err
	}
	if cache, _, _ := hs[1].r.Cached(k.ID()); cache.Len() != len(refs) {
		return fmt.Errorf("relay 1 holds %d of the %d entries its peer held after its first reconciliation", cache.Len(), len(refs))
	}
	if j.Flags&wire.JoinedComplete != 0 {
		return fmt.Errorf("joined %+v: complete on a forger's word and one peer's", j)
	}
	return nil
}

func TestBackboneForgedAgreementDoesNotEndExchange(t *testing.T) {
	if err := checkForgedAgreement(t, nil); err != nil {
		t.Fatal(err)
	}
}
