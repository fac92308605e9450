package relay

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/cosnim/relays/backbone"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport/transporttest"
	"github.com/cosnim/relays/wire"
)

// faults is a fault.Set of the points named, for tests.
type faults map[string]bool

func (f faults) Hit(name string) (any, bool) { return nil, f[name] }

type fakeMsg struct {
	subject string
	data    []byte
}

type fakeReq struct {
	subject string
	data    []byte
	id      uint64
}

// fakeBus records what the core asks of the bus.
type fakeBus struct {
	subs  map[string]bool
	pubs  []fakeMsg
	reqs  []fakeReq
	resps []fakeMsg // reply address, data
}

func newFakeBus() *fakeBus { return &fakeBus{subs: map[string]bool{}} }

func (b *fakeBus) Subscribe(s string)   { b.subs[s] = true }
func (b *fakeBus) Unsubscribe(s string) { delete(b.subs, s) }
func (b *fakeBus) Publish(s string, d []byte) {
	b.pubs = append(b.pubs, fakeMsg{s, bytes.Clone(d)})
}
func (b *fakeBus) Request(s string, d []byte, id uint64) {
	b.reqs = append(b.reqs, fakeReq{s, bytes.Clone(d), id})
}
func (b *fakeBus) Respond(reply string, d []byte) {
	b.resps = append(b.resps, fakeMsg{reply, bytes.Clone(d)})
}

// decodeFrames splits a backbone message into its frames.
func decodeFrames(t *testing.T, data []byte) []wire.Frame {
	t.Helper()
	var got []wire.Frame
	rd := wire.Reader{Max: 1 << 20}
	err := rd.Feed(data, func(ty wire.Type, p []byte) error {
		f, err := wire.Decode(ty, bytes.Clone(p))
		got = append(got, f)
		return err
	})
	if err != nil || rd.Buffered() != 0 {
		t.Fatalf("undecodable backbone message: %v", err)
	}
	return got
}

// bbHarness is a relay on a fakeBus that is up.
func bbHarness(t *testing.T, cfg Config) (*harness, *fakeBus) {
	bus := newFakeBus()
	cfg.Backbone = bus
	h := newHarness(t, cfg)
	h.r.BusState(true, h.now)
	return h, bus
}

// askJoin connects name and sends its Join of k's channel (handle 1),
// without waiting for the Joined a relay on a backbone may hold back.
func (h *harness) askJoin(name string, k *roster.Keys) *transporttest.Conn {
	c, w := h.connect(name)
	pub, sig := k.JoinProof(w.Nonce)
	h.send(c, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig})
	return c
}

// joinAlone joins name to k's channel on a relay whose reconciliation
// finds no peer, returning the connection.
func joinAlone(h *harness, bus *fakeBus, name string, k *roster.Keys) *transporttest.Conn {
	h.t.Helper()
	n := len(bus.reqs)
	c := h.askJoin(name, k)
	if len(bus.reqs) > n {
		h.r.Response(bus.reqs[len(bus.reqs)-1].id, nil, backbone.ErrNoResponders, h.now)
	}
	fs := c.Frames(h.t)
	if len(fs) != 1 {
		h.t.Fatalf("join: got %+v, want one Joined", fs)
	}
	return c
}

func deliveredEntries(fs []wire.Frame) [][]byte {
	var got [][]byte
	for _, f := range fs {
		if d, ok := f.(*wire.Deliver); ok {
			got = append(got, d.Entries...)
		}
	}
	return got
}

// checkPublish announces entries from one member in one event and
// reports what is wrong with what reached the bus.
func checkPublish(t *testing.T, fs faults) error {
	h, bus := bbHarness(t, Config{MaxFrameSize: 1024, MaxEntrySize: 900, Faults: fs})
	k := keys(t, "hub")
	a := joinAlone(h, bus, "a", k)
	if !bus.subs[ChannelSubject(DefaultBackbonePrefix, k.ID())] || !bus.subs[SyncSubject(DefaultBackbonePrefix, k.ID())] {
		return fmt.Errorf("subscriptions %v lack the channel's subjects", bus.subs)
	}
	var data []byte
	var want [][]byte
	for i := range 4 {
		var sealed [][]byte
		for j := range 10 {
			e := seal(t, k, fmt.Sprintf("capsule-%d-%d", i, j))
			sealed = append(sealed, e.Sealed)
			want = append(want, e.Sealed)
		}
		data = wire.Append(data, &wire.Announce{Handle: 1, Seq: uint32(i), Entries: sealed})
	}
	h.r.Data(a, data, h.now)
	var got [][]byte
	for _, p := range bus.pubs {
		if p.subject != ChannelSubject(DefaultBackbonePrefix, k.ID()) {
			return fmt.Errorf("published on %q", p.subject)
		}
		if len(p.data) > 1024 {
			return fmt.Errorf("message of %d bytes over max frame size", len(p.data))
		}
		fs := decodeFrames(t, p.data)
		if d, ok := fs[0].(*wire.Deliver); len(fs) != 1 || !ok || d.Handle != h.r.bbID || d.Handle == 0 {
			return fmt.Errorf("message %+v, want one Deliver with handle the relay's ID %d", fs, h.r.bbID)
		}
		got = append(got, deliveredEntries(fs)...)
	}
	if !slices.EqualFunc(got, want, bytes.Equal) {
		return fmt.Errorf("published %d entries, want the %d announced, in order", len(got), len(want))
	}
	// 4 frames of 10 entries over 1 KiB messages: split by size, not by
	// frame or entry.
	if n := len(bus.pubs); n < 2 || n >= 40 {
		return fmt.Errorf("%d messages for one event, want them batched and split to fit", n)
	}
	if s := h.r.Stats(); s.BackbonePublished != uint64(len(bus.pubs)) || s.BackbonePublishedEntries != 40 {
		return fmt.Errorf("stats published %d/%d, want %d/40", s.BackbonePublished, s.BackbonePublishedEntries, len(bus.pubs))
	}
	return nil
}

func TestBackbonePublishesBatchedPerEvent(t *testing.T) {
	if err := checkPublish(t, nil); err != nil {
		t.Fatal(err)
	}
}

// checkFromBus feeds entries from the bus and reports what is wrong with
// their fan-out and publishing.
func checkFromBus(t *testing.T, fs faults) error {
	h, bus := bbHarness(t, Config{Faults: fs})
	k := keys(t, "hub")
	a := joinAlone(h, bus, "a", k)
	var sealed [][]byte
	for i := range 5 {
		sealed = append(sealed, seal(t, k, fmt.Sprint("peer-", i)).Sealed)
	}
	msg := backbone.Msg{Subject: ChannelSubject(DefaultBackbonePrefix, k.ID()), Data: wire.Append(nil, &wire.Deliver{Entries: sealed})}
	h.r.Message(msg, h.now)
	h.r.Message(msg, h.now) // duplicates: nothing new
	if got := deliveredEntries(a.Frames(t)); !slices.EqualFunc(got, sealed, bytes.Equal) {
		return fmt.Errorf("member got %d entries from the bus, want the 5 once", len(got))
	}
	if len(bus.pubs) != 0 {
		return fmt.Errorf("entries from the bus published again (%d messages)", len(bus.pubs))
	}
	if s := h.r.Stats(); s.BackboneEntries != 5 || s.BackboneReceived != 2 {
		return fmt.Errorf("stats entries %d received %d, want 5 and 2", s.BackboneEntries, s.BackboneReceived)
	}
	return nil
}

func TestBackboneEntriesFannedOutNeverRepublished(t *testing.T) {
	if err := checkFromBus(t, nil); err != nil {
		t.Fatal(err)
	}
}

func TestBackboneBadMessagesDropped(t *testing.T) {
	h, bus := bbHarness(t, Config{CacheEntries: 8})
	k := keys(t, "hub")
	a := joinAlone(h, bus, "a", k)
	sub := ChannelSubject(DefaultBackbonePrefix, k.ID())
	good := seal(t, k, "good").Sealed
	bad := map[string][]byte{
		"oversized": wire.Append(nil, &wire.Deliver{Entries: [][]byte{bytes.Repeat([]byte{1}, 1000), make([]byte, 64<<10)}}),
		"garbage":   []byte{0, 0, 0, 9, 8, 1},
		"two":       wire.Append(wire.Append(nil, &wire.Deliver{Entries: [][]byte{good}}), &wire.Deliver{Entries: [][]byte{good}}),
		"type":      wire.Append(nil, &wire.Announce{Entries: [][]byte{good}}),
		"truncated": wire.Append(nil, &wire.Deliver{Entries: [][]byte{good}})[:20],
	}
	n := uint64(0)
	for _, name := range []string{"oversized", "garbage", "two", "type", "truncated"} {
		h.r.Message(backbone.Msg{Subject: sub, Data: bad[name]}, h.now)
		n++
		if got := h.r.Stats().BackboneBad; got != n {
			t.Errorf("%s: BackboneBad = %d, want %d", name, got, n)
		}
	}
	if cache, _, _ := h.r.Cached(k.ID()); cache.Len() != 0 {
		t.Errorf("bad messages stored %d entries", cache.Len())
	}
	// A sync message that asks for no reply is bad too.
	h.r.Message(backbone.Msg{Subject: SyncSubject(DefaultBackbonePrefix, k.ID()), Data: wire.Append(nil, &wire.Sync{})}, h.now)
	if got := h.r.Stats().BackboneBad; got != n+1 {
		t.Errorf("sync without reply: BackboneBad = %d, want %d", got, n+1)
	}
	// Bad entries go alone (an empty one makes the frame malformed); one
	// origin's quota of the cache holds against the bus too.
	var many [][]byte
	for i := range 20 {
		many = append(many, seal(t, k, fmt.Sprint("e", i)).Sealed)
	}
	many = append(many, make([]byte, DefaultConfig().MaxEntrySize+1))
	h.r.Message(backbone.Msg{Subject: sub, Data: wire.Append(nil, &wire.Deliver{Entries: many})}, h.now)
	if cache, _, _ := h.r.Cached(k.ID()); cache.Len() != h.r.originQuota() {
		t.Errorf("cache holds %d entries from one origin, want its quota of %d", cache.Len(), h.r.originQuota())
	}
	if got := len(deliveredEntries(a.Frames(t))); got != 20 {
		t.Errorf("member got %d entries, want the 20 good ones", got)
	}
	// A bad reply fails the reconciliation.
	h.r.Tick(h.now.Add(DefaultBackboneAntiEntropy))
	if len(bus.reqs) != 2 {
		t.Fatalf("anti-entropy sent %d requests in all, want 2", len(bus.reqs))
	}
	h.r.Response(bus.reqs[1].id, []byte("junk"), nil, h.now)
	if s := h.r.Stats(); s.BackboneBad != n+2 || s.BackboneReconcileFailed != 1 {
		t.Errorf("bad reply: BackboneBad %d, failed %d; want %d, 1", s.BackboneBad, s.BackboneReconcileFailed, n+2)
	}
}

// hub is an in-test bus linking relay cores: operations queue and run in
// order, so no core is entered from inside another.
type hub struct {
	ports   []*hubPort
	queue   []func()
	lossy   bool // publishes are lost
	now     time.Time
	replies map[string]func([]byte) // by reply address
}

type hubPort struct {
	h    *hub
	r    *Relay
	subs map[string]bool
	down bool
	// lateRequests makes requests leave one hub step after the call, as
	// on a bus whose subscriptions arrive before a request sent at once.
	lateRequests bool
	// onMsg, if set, takes the port's messages instead of a relay: a
	// publisher that is no relay.
	onMsg func(backbone.Msg)
}

func (p *hubPort) Subscribe(s string)   { p.subs[s] = true }
func (p *hubPort) Unsubscribe(s string) { delete(p.subs, s) }
func (p *hubPort) Publish(s string, d []byte) {
	if p.h.lossy {
		return
	}
	p.send(backbone.Msg{Subject: s, Data: bytes.Clone(d)})
}

func (p *hubPort) send(m backbone.Msg) int {
	n := 0
	for _, q := range p.h.ports {
		if q != p && !q.down && q.subs[m.Subject] {
			n++
			if q.onMsg != nil {
				p.h.queue = append(p.h.queue, func() { q.onMsg(m) })
				continue
			}
			p.h.queue = append(p.h.queue, func() { q.r.Message(m, p.h.now) })
		}
	}
	return n
}

func (p *hubPort) Request(s string, d []byte, id uint64) {
	if p.lateRequests {
		d = bytes.Clone(d)
		p.h.queue = append(p.h.queue, func() { p.request(s, d, id) })
		return
	}
	p.request(s, d, id)
}

func (p *hubPort) request(s string, d []byte, id uint64) {
	reply := fmt.Sprintf("%p.%d", p, id)
	p.h.replies[reply] = func(data []byte) {
		p.h.queue = append(p.h.queue, func() { p.r.Response(id, data, nil, p.h.now) })
	}
	if p.send(backbone.Msg{Subject: s, Reply: reply, Data: bytes.Clone(d)}) == 0 {
		p.h.queue = append(p.h.queue, func() { p.r.Response(id, nil, backbone.ErrNoResponders, p.h.now) })
	}
}

func (p *hubPort) Respond(reply string, d []byte) { p.h.replies[reply](bytes.Clone(d)) }

// run runs queued operations until none is left.
func (h *hub) run(t *testing.T) {
	for steps := 0; len(h.queue) > 0; steps++ {
		if steps > 1_000_000 {
			t.Fatal("hub never went quiet")
		}
		f := h.queue[0]
		h.queue = h.queue[1:]
		f()
	}
}

// settle runs the hub, then lets late answers (BackboneLateAnswer) go
// out, a few times over.
func (h *hub) settle(t *testing.T, hs []*harness) {
	h.run(t)
	for range 8 {
		h.now = h.now.Add(BackboneLateAnswer)
		for _, x := range hs {
			x.now = h.now
			x.r.Tick(h.now)
			h.run(t)
		}
	}
}

func newHub(t *testing.T, n int, cfg Config) (*hub, []*harness) {
	hb := &hub{now: time.Unix(1_000_000, 0)}
	hb.replies = map[string]func([]byte){}
	var hs []*harness
	for i := range n {
		p := &hubPort{h: hb, subs: map[string]bool{}}
		c := cfg
		c.Backbone = p
		r, err := New(c, rand.New(rand.NewPCG(uint64(i), 9)))
		if err != nil {
			t.Fatal(err)
		}
		p.r = r
		hb.ports = append(hb.ports, p)
		hs = append(hs, &harness{t: t, r: r, now: hb.now})
		r.BusState(true, hb.now)
	}
	return hb, hs
}

// announceAll connects a member to relay h and announces refs on it,
// returning the member's connection.
func announceAll(t *testing.T, hb *hub, h *harness, name string, k *roster.Keys, refs []string) *transporttest.Conn {
	c := h.askJoin(name, k)
	c.Discard = true
	hb.run(t)
	for i, ref := range refs {
		h.send(c, &wire.Announce{Handle: 1, Seq: uint32(i), Entries: [][]byte{seal(t, k, ref).Sealed}})
	}
	hb.run(t)
	return c
}

// converge runs anti-entropy rounds on every relay and reports whether
// their caches of k's channel all hold exactly want.
func converge(t *testing.T, hb *hub, hs []*harness, k *roster.Keys, want int, rounds int) error {
	for range rounds {
		hb.now = hb.now.Add(DefaultBackboneAntiEntropy)
		for _, h := range hs {
			h.now = hb.now
			h.r.Tick(hb.now)
			hb.run(t)
		}
	}
	var first *roster.Set
	for i, h := range hs {
		cache, _, ok := h.r.Cached(k.ID())
		if !ok || cache.Len() != want {
			return fmt.Errorf("relay %d holds %d entries, want %d", i, cache.Len(), want)
		}
		if first == nil {
			first = cache
		} else if a, b := first.Fingerprint(roster.Node{}), cache.Fingerprint(roster.Node{}); a != b {
			return fmt.Errorf("relay %d holds other entries than relay 0", i)
		}
	}
	return nil
}

// checkReconcile loses every publish between two relays holding
// different entries and reports whether anti-entropy makes them agree.
func checkReconcile(t *testing.T, fs faults) error {
	hb, hs := newHub(t, 2, Config{Faults: fs, MaxFrameSize: 1024, MaxEntrySize: 900, SyncReplyEntries: 7})
	k := keys(t, "hub")
	hb.lossy = true
	var a, b []string
	for i := range 60 {
		a = append(a, fmt.Sprint("a", i))
		b = append(b, fmt.Sprint("b", i))
	}
	announceAll(t, hb, hs[0], "m0", k, a)
	announceAll(t, hb, hs[1], "m1", k, b)
	return converge(t, hb, hs, k, 120, 2)
}

func TestBackboneReconcileConverges(t *testing.T) {
	if err := checkReconcile(t, nil); err != nil {
		t.Fatal(err)
	}
}

// TestBackboneReconcileProperty: two or three relays, each announced a
// random set of entries with publishes lost, agree on the union after
// anti-entropy, whatever the frame and reply limits.
func TestBackboneReconcileProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(2, 3).Draw(rt, "relays")
		cfg := Config{
			MaxFrameSize:     rapid.SampledFrom([]int{1024, 4096, 64 << 10}).Draw(rt, "frame"),
			MaxEntrySize:     900,
			SyncReplyEntries: rapid.IntRange(1, 64).Draw(rt, "reply"),
		}
		hb, hs := newHub(t, n, cfg)
		hb.lossy = true
		k := keys(t, "hub")
		union := map[string]bool{}
		for i, h := range hs {
			refs := rapid.SliceOfDistinct(rapid.IntRange(0, 400), rapid.ID[int]).Draw(rt, fmt.Sprint("set", i))
			var names []string
			for _, x := range refs {
				names = append(names, fmt.Sprint("ref", x))
				union[fmt.Sprint("ref", x)] = true
			}
			announceAll(t, hb, h, fmt.Sprint("m", i), k, names)
		}
		if err := converge(t, hb, hs, k, len(union), 3); err != nil {
			rt.Fatal(err)
		}
	})
}

// checkJoinedWaits joins a member to a relay new to a channel its peer
// holds, and reports what is wrong with its Joined.
func checkJoinedWaits(t *testing.T, fs faults) error {
	hb, hs := newHub(t, 2, Config{Faults: fs, BackboneAuthenticated: true})
	k := keys(t, "hub")
	var refs []string
	for i := range 30 {
		refs = append(refs, fmt.Sprint("r", i))
	}
	announceAll(t, hb, hs[0], "m0", k, refs)
	c := hs[1].askJoin("m1", k)
	if fs := c.Frames(t); len(fs) != 0 {
		return fmt.Errorf("got %+v before the relay reconciled, want Joined held", fs)
	}
	hb.run(t)
	j, err := lastJoined(c.Frames(t))
	if err != nil {
		return err
	}
	if j.Cached != 30 || j.Flags&wire.JoinedComplete == 0 {
		return fmt.Errorf("got %+v, want Joined caching the peer's 30 entries, complete", j)
	}
	return nil
}

// lastJoined finds the one Joined among fs, which must come last:
// entries learnt while it waited may be delivered before it.
func lastJoined(fs []wire.Frame) (*wire.Joined, error) {
	for i, f := range fs {
		if j, ok := f.(*wire.Joined); ok {
			if i != len(fs)-1 {
				return nil, fmt.Errorf("frames %+v after Joined", fs[i+1:])
			}
			return j, nil
		}
		if _, ok := f.(*wire.Deliver); !ok {
			return nil, fmt.Errorf("got %T, want Deliver frames and Joined", f)
		}
	}
	return nil, fmt.Errorf("no Joined among %d frames", len(fs))
}

// mustJoined is lastJoined of what c was sent, failing t without one.
func mustJoined(t *testing.T, c *transporttest.Conn) *wire.Joined {
	t.Helper()
	j, err := lastJoined(c.Frames(t))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestBackboneJoinedWaitsForReconcile(t *testing.T) {
	if err := checkJoinedWaits(t, nil); err != nil {
		t.Fatal(err)
	}
}

// A peer whose cache evicted does not let a newcomer claim completeness.
func TestBackboneJoinedIncompleteAfterIncompletePeer(t *testing.T) {
	hb, hs := newHub(t, 2, Config{CacheEntries: 20, BackboneAuthenticated: true})
	k := keys(t, "hub")
	var refs []string
	for i := range 30 {
		refs = append(refs, fmt.Sprint("r", i))
	}
	announceAll(t, hb, hs[0], "m0", k, refs)
	c := hs[1].askJoin("m1", k)
	hb.settle(t, hs)
	j := mustJoined(t, c)
	if j.Flags&wire.JoinedComplete != 0 || j.Cached != 10 {
		t.Fatalf("got %+v, want Joined with the peer's entries up to its quota of 10, not complete", j)
	}
}

// Two relays that create a channel within a round trip of each other: the
// one whose request the other answers while still reconciling itself hears
// "not complete" from a peer that lost nothing. That holds its first
// members' Joined short of complete, but the next reconciliation, answered
// by a peer that has since reconciled, makes the channel complete again.
func TestBackboneLearningPeerDoesNotLeaveChannelIncomplete(t *testing.T) {
	hb, hs := newHub(t, 2, Config{BackboneAuthenticated: true})
	k := keys(t, "hub")
	hs[0].askJoin("m0", k) // relay 0 finds no responder: its answer is held back
	noResponders := hb.queue
	hb.queue = nil
	// Relay 1's requests reach relay 0 while it still reconciles.
	hs[1].askJoin("m1", k)
	hb.run(t)
	hb.queue = noResponders
	hb.run(t)
	hb.now = hb.now.Add(DefaultBackboneAntiEntropy)
	for _, h := range hs {
		h.now = hb.now
		h.r.Tick(hb.now)
		hb.run(t)
	}
	c := hs[1].askJoin("m2", k)
	hb.run(t)
	j := mustJoined(t, c)
	if j.Flags&wire.JoinedComplete == 0 {
		t.Fatalf("got %+v after both relays reconciled, want complete: nothing was ever lost", j)
	}
}

// When a relay's first request is answered by a peer that was still in its
// own first reconciliation, it asks once more before releasing Joined: by
// then the peer knows, and the first members are told complete.
func TestBackboneFirstReconcileAsksLearningPeerAgain(t *testing.T) {
	hb, hs := newHub(t, 2, Config{BackboneAuthenticated: true})
	k := keys(t, "hub")
	hs[0].askJoin("m0", k)
	c := hs[1].askJoin("m1", k)
	// Relay 1's request overtakes relay 0's "no responders", as on a bus
	// where the one takes one delivery and the other two.
	slices.Reverse(hb.queue)
	hb.settle(t, hs)
	j := mustJoined(t, c)
	if j.Flags&wire.JoinedComplete == 0 {
		t.Fatalf("got %+v, want complete: the peer only had not finished reconciling", j)
	}
}

// A relay that forgot an idle channel relearns it from a complete peer
// when a member joins again, and may then say so: what it forgot, the
// peer held.
func TestBackboneForgottenChannelCompleteAgainFromPeer(t *testing.T) {
	hb, hs := newHub(t, 2, Config{ChannelIdleTimeout: time.Minute, BackboneAuthenticated: true})
	k := keys(t, "hub")
	announceAll(t, hb, hs[1], "m1", k, []string{"a", "b", "c"})
	c0 := announceAll(t, hb, hs[0], "m0", k, []string{"d"})
	hs[0].send(c0, &wire.Leave{Handle: 1})
	hb.now = hb.now.Add(2 * time.Minute)
	hs[0].now = hb.now
	hs[0].r.Tick(hb.now)
	hb.run(t)
	if _, _, ok := hs[0].r.Cached(k.ID()); ok {
		t.Fatal("idle channel not forgotten")
	}
	c := hs[0].askJoin("m2", k)
	hb.run(t)
	j := mustJoined(t, c)
	if j.Cached != 4 || j.Flags&wire.JoinedComplete == 0 {
		t.Fatalf("got %+v, want the peer's 4 entries, complete", j)
	}
}

// A reconciliation nobody answers holds Joined at most RequestTimeout,
// then lets it go without claiming completeness.
func TestBackboneJoinedHeldAtMostRequestTimeout(t *testing.T) {
	h, bus := bbHarness(t, Config{})
	k := keys(t, "hub")
	c := h.askJoin("a", k)
	if len(bus.reqs) != 1 || len(c.Frames(t)) != 0 {
		t.Fatalf("requests %d, want 1 and Joined held", len(bus.reqs))
	}
	at, ok := h.r.Deadline()
	if !ok || at.After(h.now.Add(backbone.RequestTimeout)) {
		t.Fatalf("deadline %v, want by %v", at, h.now.Add(backbone.RequestTimeout))
	}
	h.r.Tick(h.now.Add(backbone.RequestTimeout))
	fs := c.Frames(t)
	if len(fs) != 1 {
		t.Fatalf("got %+v after the hold, want Joined", fs)
	}
	if j := fs[0].(*wire.Joined); j.Flags&wire.JoinedComplete != 0 {
		t.Errorf("Joined claims complete while still reconciling")
	}
}

// Without the bus, local fan-out goes on, publishes are dropped and
// counted, and the bus's return reconciles channels with members.
func TestBackboneDownKeepsLocalFanout(t *testing.T) {
	h, bus := bbHarness(t, Config{})
	k := keys(t, "hub")
	a := joinAlone(h, bus, "a", k)
	b := h.member("b", k, 1)
	h.r.BusState(false, h.now)
	e := seal(t, k, "while-down")
	h.send(a, &wire.Announce{Handle: 1, Entries: [][]byte{e.Sealed}})
	if got := deliveredEntries(b.Frames(t)); len(got) != 1 {
		t.Fatalf("b got %d entries with the bus down, want 1", len(got))
	}
	s := h.r.Stats()
	if len(bus.pubs) != 0 || s.BackboneDropped != 1 || s.BackboneUp || s.BackboneDowns != 1 {
		t.Fatalf("pubs %d, stats %+v: want none published, 1 dropped, down", len(bus.pubs), s)
	}
	n := len(bus.reqs)
	h.r.BusState(true, h.now)
	if len(bus.reqs) != n+1 || bus.reqs[n].subject != SyncSubject(DefaultBackbonePrefix, k.ID()) {
		t.Fatalf("bus up sent %d requests, want one on the channel's sync subject", len(bus.reqs)-n)
	}
	// A bus lost mid-reconciliation fails it.
	h.r.BusState(false, h.now)
	if s := h.r.Stats(); s.BackboneReconcileFailed != 1 {
		t.Errorf("failed reconciliations %d, want 1", s.BackboneReconcileFailed)
	}
}

func TestBackboneForgetUnsubscribes(t *testing.T) {
	h, bus := bbHarness(t, Config{})
	k := keys(t, "hub")
	a := joinAlone(h, bus, "a", k)
	h.r.Closed(a, nil, h.now)
	if len(bus.subs) != 2 {
		t.Fatalf("subscriptions %v after the last member left, want kept", bus.subs)
	}
	h.idleFor(DefaultConfig().ChannelIdleTimeout + time.Minute)
	if h.r.ChannelCount() != 0 || len(bus.subs) != 0 {
		t.Fatalf("channels %d, subscriptions %v after forgetting, want none", h.r.ChannelCount(), bus.subs)
	}
}

func TestCheckBackbonePrefix(t *testing.T) {
	for _, p := range []string{"cosnim", "a.b.c", "pool-1_x"} {
		if err := CheckBackbonePrefix(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{"", "a..b", ".a", "a.", "a b", "a.*", "a.>", "x\tz"} {
		if err := CheckBackbonePrefix(p); !errors.Is(err, ErrBadBackbonePrefix) {
			t.Errorf("%q: got %v, want ErrBadBackbonePrefix", p, err)
		}
	}
	if err := (Config{BackbonePrefix: "a b"}).WithDefaults().Validate(); !errors.Is(err, ErrBadBackbonePrefix) {
		t.Errorf("Validate: got %v, want ErrBadBackbonePrefix", err)
	}
}

// Each backbone failpoint breaks a check above.
func TestBackboneFailpointsCaught(t *testing.T) {
	for _, tc := range []struct {
		point string
		check func(*testing.T, faults) error
	}{
		{FailNoBackbonePublish, checkPublish},
		{FailRepublishBackbone, checkFromBus},
		{FailNoBackboneReconcile, checkReconcile},
		{FailNoBackboneHold, checkJoinedWaits},
		{FailBackboneAnswerAtOnce, checkNewcomersLearnFromHolder},
	} {
		if err := tc.check(t, faults{tc.point: true}); err == nil {
			t.Errorf("%s: the check passed with it on", tc.point)
		}
	}
}

// Two relays that create a channel together, while a third already holds
// it, would each hear the other newcomer first (the bus hands over the
// first reply) and miss the third's entries until anti-entropy: a relay
// whose cache is not known complete answers late (BackboneLateAnswer), so
// the third's reply wins.
func checkNewcomersLearnFromHolder(t *testing.T, fs faults) error {
	// Authenticated: the first reply alone drives it (no reply window).
	hb, hs := newHub(t, 3, Config{Faults: fs, BackboneAuthenticated: true})
	k := keys(t, "hub")
	var refs []string
	for i := range 20 {
		refs = append(refs, fmt.Sprintf("old-%02d", i))
	}
	announceAll(t, hb, hs[2], "m2", k, refs)
	// Requests leave after both newcomers subscribed; the hub delivers in
	// port order, so each newcomer hears the other before relay 2.
	hb.ports[0].lateRequests, hb.ports[1].lateRequests = true, true
	for i, h := range hs[:2] {
		h.askJoin(fmt.Sprint("m", i), k).Discard = true
	}
	hb.settle(t, hs)
	for i, h := range hs[:2] {
		if cache, _, _ := h.r.Cached(k.ID()); cache.Len() != len(refs) {
			return fmt.Errorf("relay %d holds %d of the %d entries relay 2 held once its first reconciliation ended", i, cache.Len(), len(refs))
		}
	}
	return nil
}

func TestBackboneNewcomersLearnFromHolder(t *testing.T) {
	if err := checkNewcomersLearnFromHolder(t, nil); err != nil {
		t.Fatal(err)
	}
}
