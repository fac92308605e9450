package relay

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport/transporttest"
	"github.com/cosnim/relays/wire"
)

type harness struct {
	t   *testing.T
	r   *Relay
	now time.Time
}

func newHarness(t *testing.T, cfg Config) *harness {
	r, err := New(cfg, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, r: r, now: time.Unix(1_000_000, 0)}
}

func (h *harness) send(c *transporttest.Conn, f wire.Frame) {
	h.r.Data(c, wire.Append(nil, f), h.now)
}

// connect opens a conn and completes the handshake, returning the welcome.
func (h *harness) connect(name string) (*transporttest.Conn, *wire.Welcome) {
	c := &transporttest.Conn{Addr: name}
	h.r.Open(c, h.now)
	h.send(c, &wire.Hello{MinVersion: 1, MaxVersion: wire.Version, Agent: name})
	fs := c.Frames(h.t)
	if len(fs) != 1 {
		h.t.Fatalf("%s: got %d frames after hello, want 1 welcome", name, len(fs))
	}
	w, ok := fs[0].(*wire.Welcome)
	if !ok {
		h.t.Fatalf("%s: got %T after hello, want *wire.Welcome", name, fs[0])
	}
	return c, w
}

func (h *harness) join(c *transporttest.Conn, w *wire.Welcome, k *roster.Keys, handle uint32) {
	pub, sig := k.JoinProof(w.Nonce)
	h.send(c, &wire.Join{Handle: handle, Channel: k.ID(), Pub: pub, Sig: sig})
	fs := c.Frames(h.t)
	if len(fs) != 1 {
		h.t.Fatalf("join: got %d frames, want 1", len(fs))
	}
	if j, ok := fs[0].(*wire.Joined); !ok || j.Handle != handle {
		h.t.Fatalf("join: got %+v, want Joined for handle %d", fs[0], handle)
	}
}

// member connects name and joins it to k's channel on handle.
// rejoin connects name and joins k's channel under handle 1, returning
// the connection and the Joined whatever its flags.
func (h *harness) rejoin(name string, k *roster.Keys) (*transporttest.Conn, *wire.Joined) {
	h.t.Helper()
	c, w := h.connect(name)
	pub, sig := k.JoinProof(w.Nonce)
	h.send(c, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig})
	fs := c.Frames(h.t)
	j, ok := fs[0].(*wire.Joined)
	if !ok {
		h.t.Fatalf("%s: got %+v, want Joined", name, fs[0])
	}
	return c, j
}

// idleFor moves time on by d in 45 s steps, ticking whatever is due.
func (h *harness) idleFor(d time.Duration) {
	for end := h.now.Add(d); h.now.Before(end); {
		h.now = h.now.Add(45 * time.Second)
		if at, ok := h.r.Deadline(); ok && !at.After(h.now) {
			h.r.Tick(h.now)
		}
	}
}

func (h *harness) member(name string, k *roster.Keys, handle uint32) *transporttest.Conn {
	c, w := h.connect(name)
	h.join(c, w, k, handle)
	return c
}

func keys(t *testing.T, hub string) *roster.Keys {
	k, err := roster.DeriveKeys([]byte("secret"), hub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func seal(t *testing.T, k *roster.Keys, ref string) roster.Entry {
	e, err := k.Seal([]byte(ref))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func wantError(t *testing.T, fs []wire.Frame, code wire.Code, fatal bool) {
	t.Helper()
	for _, f := range fs {
		if e, ok := f.(*wire.Error); ok {
			if e.Code != code || (e.Flags&wire.ErrorFatal != 0) != fatal {
				t.Fatalf("got error %v fatal=%v (%q), want %v fatal=%v", e.Code, e.Flags&wire.ErrorFatal != 0, e.Text, code, fatal)
			}
			return
		}
	}
	t.Fatalf("got frames %+v, want an Error %v", fs, code)
}

func TestWelcomeAdvertisesLimitsAndEpoch(t *testing.T) {
	h := newHarness(t, Config{MaxChannels: 7})
	_, w := h.connect("a")
	if w.Epoch != h.r.Epoch() {
		t.Errorf("welcome epoch %x, want %x", w.Epoch, h.r.Epoch())
	}
	found := false
	for _, l := range w.Limits {
		if l.Key == wire.LimitMaxChannels {
			found = l.Value == 7
		}
	}
	if !found {
		t.Errorf("welcome limits %+v do not advertise max channels 7", w.Limits)
	}
	for k := wire.LimitMaxFrameSize; k <= wire.LimitChannelIdleMillis; k++ {
		if v, ok := w.Limit(k); !ok || v == 0 {
			t.Errorf("welcome does not advertise %v", k)
		}
	}
	h2 := newHarness(t, Config{})
	h2.r, _ = New(Config{}, rand.New(rand.NewPCG(9, 9)))
	if h2.r.Epoch() == h.r.Epoch() {
		t.Errorf("two relays with different random sources share epoch %x", h.r.Epoch())
	}
}

func TestBadInputClosesWithError(t *testing.T) {
	huge := make([]byte, 5)
	binary.BigEndian.PutUint32(huge, 0xFFFFFFFF)
	tests := []struct {
		name  string
		hello bool
		bytes []byte
		code  wire.Code
	}{
		{"frame before hello", false, wire.Append(nil, &wire.Ping{Data: 1}), wire.CodeNoHello},
		{"4 GB length prefix", false, huge, wire.CodeFrameTooLarge},
		{"zero length", true, []byte{0, 0, 0, 0}, wire.CodeProtocol},
		{"truncated join", true, []byte{0, 0, 0, 5, byte(wire.TypeJoin), 0, 0, 0, 1}, wire.CodeProtocol},
		{"unsupported version", false, wire.Append(nil, &wire.Hello{MinVersion: 9, MaxVersion: 12}), wire.CodeVersion},
		{"relay-only frame from client", true, wire.Append(nil, &wire.Welcome{Version: 1}), wire.CodeProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			c := &transporttest.Conn{Addr: "x"}
			h.r.Open(c, h.now)
			if tt.hello {
				h.send(c, &wire.Hello{MinVersion: 1, MaxVersion: 1})
				c.Frames(t)
			}
			h.r.Data(c, tt.bytes, h.now)
			wantError(t, c.Frames(t), tt.code, true)
			if !c.Closed {
				t.Error("connection left open")
			}
			if h.r.Conns() != 0 {
				t.Errorf("relay still tracks %d connections", h.r.Conns())
			}
		})
	}
}

func TestUnknownFrameTypeSkipped(t *testing.T) {
	h := newHarness(t, Config{})
	c, _ := h.connect("a")
	h.r.Data(c, []byte{0, 0, 0, 3, 0x7F, 1, 2}, h.now)
	h.send(c, &wire.Ping{Data: 42})
	fs := c.Frames(t)
	if len(fs) != 1 {
		t.Fatalf("got %+v, want one pong", fs)
	}
	if p, ok := fs[0].(*wire.Pong); !ok || p.Data != 42 {
		t.Fatalf("got %+v, want Pong 42", fs[0])
	}
	if s := h.r.Stats(); s.UnknownFrames != 1 {
		t.Errorf("UnknownFrames = %d, want 1", s.UnknownFrames)
	}
}

func TestJoinNeedsProof(t *testing.T) {
	h := newHarness(t, Config{})
	c, w := h.connect("a")
	k, other := keys(t, "hub"), keys(t, "other")
	pub, sig := other.JoinProof(w.Nonce)
	h.send(c, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig})
	wantError(t, c.Frames(t), wire.CodeJoinDenied, false)
	// A proof made for another connection's nonce is refused too (replay).
	var stale [roster.JoinNonceSize]byte
	pub, sig = k.JoinProof(stale)
	h.send(c, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig})
	wantError(t, c.Frames(t), wire.CodeJoinDenied, false)
	h.join(c, w, k, 1)
}

func TestFanoutAndAck(t *testing.T) {
	h := newHarness(t, Config{})
	k := keys(t, "hub")
	a := h.member("a", k, 1)
	b := h.member("b", k, 5)
	x := h.member("x", keys(t, "elsewhere"), 1)
	e := seal(t, k, "capsule-1")
	h.send(a, &wire.Announce{Handle: 1, Seq: 9, Entries: [][]byte{e.Sealed}})
	fa := a.Frames(t)
	if len(fa) != 1 {
		t.Fatalf("sender got %+v, want only an ack", fa)
	}
	if ack, ok := fa[0].(*wire.Ack); !ok || ack.Seq != 9 || ack.Handle != 1 {
		t.Fatalf("sender got %+v, want Ack{1 9}", fa[0])
	}
	fb := b.Frames(t)
	if len(fb) != 1 {
		t.Fatalf("member got %d frames, want 1 deliver", len(fb))
	}
	d, ok := fb[0].(*wire.Deliver)
	if !ok || d.Handle != 5 || len(d.Entries) != 1 || string(d.Entries[0]) != string(e.Sealed) {
		t.Fatalf("member got %+v, want Deliver on handle 5 with the entry", fb[0])
	}
	if fx := x.Frames(t); len(fx) != 0 {
		t.Fatalf("member of another channel got %+v", fx)
	}
	// A duplicate is acked but not fanned out again.
	h.send(a, &wire.Announce{Handle: 1, Seq: 10, Entries: [][]byte{e.Sealed}})
	a.Frames(t)
	if fb := b.Frames(t); len(fb) != 0 {
		t.Fatalf("duplicate fanned out: %+v", fb)
	}
}

// syncAll runs a client-side sync against the relay until it ends,
// answering every part of every reply as the protocol asks.
func syncAll(t *testing.T, h *harness, c *transporttest.Conn, handle uint32, set *roster.Set) {
	queue := []roster.SyncMsg{set.StartSync()}
	for round := 0; len(queue) > 0; round++ {
		if round > 10000 {
			t.Fatal("sync did not end")
		}
		msg := queue[0]
		queue = queue[1:]
		if msg.Empty() {
			continue
		}
		limit := c.MaxFrame
		if limit == 0 {
			limit = wire.DefaultMaxFrameSize
		}
		parts, _ := wire.AppendSyncSplit(nil, &wire.Sync{Handle: handle, Session: 1, Msg: msg}, limit)
		var rd wire.Reader
		err := rd.Feed(parts, func(_ wire.Type, p []byte) error {
			h.r.Data(c, wire.Append(nil, mustSync(t, p)), h.now)
			queue = append(queue, answer(t, h, c, handle, set)...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func mustSync(t *testing.T, p []byte) *wire.Sync {
	var f wire.Sync
	if err := f.DecodePayload(p); err != nil {
		t.Fatal(err)
	}
	return &f
}

// answer reads the relay's reply to one Sync frame, applies its Deltas,
// pushes what the relay lacks and returns the client's next messages.
func answer(t *testing.T, h *harness, c *transporttest.Conn, handle uint32, set *roster.Set) []roster.SyncMsg {
	var next []roster.SyncMsg
	final := false
	for _, f := range c.Frames(t) {
		switch f := f.(type) {
		case *wire.Delta:
			for _, s := range f.Entries {
				set.Add(roster.NewEntry(s))
			}
		case *wire.Sync:
			final = final || f.Flags&wire.SyncMore == 0
			if f.Msg.Empty() {
				continue
			}
			out, give := set.ReplySync(&f.Msg)
			for len(give) > 0 { // 10 entries a frame fit any limit used here
				n := min(len(give), 10)
				sealed := make([][]byte, n)
				for i, e := range give[:n] {
					sealed[i] = e.Sealed
				}
				give = give[n:]
				h.send(c, &wire.Delta{Handle: handle, Session: 1, Entries: sealed})
			}
			next = append(next, out)
		}
	}
	if !final {
		t.Fatalf("relay reply had no final Sync frame; connection closed=%v, errors %v", c.Closed, h.r.Stats().ErrorsSent)
	}
	return next
}

func TestSyncRepliesFitFrameLimit(t *testing.T) {
	const limit = 2048
	h := newHarness(t, Config{MaxFrameSize: limit, MaxEntrySize: 200})
	k := keys(t, "hub")
	a := h.member("a", k, 1)
	for i := range 3000 {
		h.send(a, &wire.Announce{Handle: 1, Entries: [][]byte{seal(t, k, fmt.Sprintf("relay-%d", i)).Sealed}})
	}
	b := h.member("b", k, 1)
	var set roster.Set
	for i := range 3000 {
		set.Add(seal(t, k, fmt.Sprintf("client-%d", i)))
	}
	b.MaxFrame = limit
	syncAll(t, h, b, 1, &set)
	if set.Len() != 6000 {
		t.Fatalf("client holds %d entries after sync, want 6000", set.Len())
	}
	if s := h.r.Stats(); s.EntriesIn != 6000 {
		t.Fatalf("relay stored %d entries, want 6000", s.EntriesIn)
	}
}

func TestLateJoinerCatchesUpBySync(t *testing.T) {
	h := newHarness(t, Config{})
	k := keys(t, "hub")
	a := h.member("a", k, 1)
	var want roster.Set
	for i := range 100 {
		e := seal(t, k, fmt.Sprintf("capsule-%d", i))
		want.Add(e)
		h.send(a, &wire.Announce{Handle: 1, Seq: uint32(i), Entries: [][]byte{e.Sealed}})
	}
	b := h.member("b", k, 1)
	var got roster.Set
	mine := seal(t, k, "only-b-has-it")
	got.Add(mine)
	syncAll(t, h, b, 1, &got)
	if got.Len() != want.Len()+1 {
		t.Fatalf("late joiner holds %d entries after sync, want %d", got.Len(), want.Len()+1)
	}
	// The relay learned b's entry from the sync and fanned it out to a.
	found := false
	for _, f := range a.Frames(t) {
		if d, ok := f.(*wire.Deliver); ok {
			for _, s := range d.Entries {
				found = found || string(s) == string(mine.Sealed)
			}
		}
	}
	if !found {
		t.Fatal("entry pushed by a sync was not fanned out to the other member")
	}
}

func TestSlowMemberGetsMergedThenResync(t *testing.T) {
	h := newHarness(t, Config{PendingEntries: 5, HighWater: 100})
	k := keys(t, "hub")
	a := h.member("a", k, 1)
	b := h.member("b", k, 1)
	b.Backlog = 1000 // b stopped reading
	for i := range 3 {
		h.send(a, &wire.Announce{Handle: 1, Seq: uint32(i), Entries: [][]byte{seal(t, k, fmt.Sprint(i)).Sealed}})
	}
	if fs := b.Frames(t); len(fs) != 0 {
		t.Fatalf("slow member was sent %d frames while over high water", len(fs))
	}
	b.Backlog = 0
	h.r.Writable(b, h.now)
	if n := deliverEntries(b.Frames(t)); n != 3 {
		t.Fatalf("after Writable the member got %d held entries, want 3", n)
	}
	b.Backlog = 1000
	for i := 3; i < 9; i++ {
		h.send(a, &wire.Announce{Handle: 1, Seq: uint32(i), Entries: [][]byte{seal(t, k, fmt.Sprint(i)).Sealed}})
	}
	wantError(t, b.Frames(t), wire.CodeResync, false)
	if s := h.r.Stats(); s.Resyncs != 1 {
		t.Errorf("Resyncs = %d, want 1", s.Resyncs)
	}
	if _, pending := h.r.Usage(); pending > 5 {
		t.Errorf("pending %d over the cap of 5", pending)
	}
}

func TestTimeouts(t *testing.T) {
	h := newHarness(t, Config{HandshakeTimeout: time.Second, HeartbeatInterval: time.Second, IdleTimeout: 3 * time.Second})
	quiet := &transporttest.Conn{Addr: "slowloris"}
	h.r.Open(quiet, h.now)
	idle, _ := h.connect("idle")
	live, _ := h.connect("live")
	for range 8 {
		h.now = h.now.Add(500 * time.Millisecond)
		h.send(live, &wire.Ping{})
		if d, ok := h.r.Deadline(); ok && !d.After(h.now) {
			h.r.Tick(h.now)
		}
	}
	wantError(t, quiet.Frames(t), wire.CodeHandshakeTimout, true)
	wantError(t, idle.Frames(t), wire.CodeIdle, true)
	if live.Closed {
		t.Fatal("a connection that pings was closed")
	}
	if h.r.Conns() != 1 {
		t.Fatalf("relay tracks %d connections, want 1", h.r.Conns())
	}
}

func TestRelayFull(t *testing.T) {
	h := newHarness(t, Config{MaxConnections: 1})
	h.connect("a")
	c := &transporttest.Conn{Addr: "b"}
	h.r.Open(c, h.now)
	wantError(t, c.Frames(t), wire.CodeRelayFull, true)
	if !c.Closed {
		t.Fatal("over-limit connection left open")
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{HeartbeatInterval: time.Minute, IdleTimeout: time.Second}, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Fatal("idle timeout below heartbeat accepted")
	}
	if _, err := New(Config{MaxFrameSize: 10}, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Fatal("tiny max frame size accepted")
	}
}

func TestCloseAfterJoiningSeveralChannels(t *testing.T) {
	h := newHarness(t, Config{})
	c, w := h.connect("a")
	for i, hub := range []string{"h1", "h2", "h3"} {
		h.join(c, w, keys(t, hub), uint32(i+1))
	}
	b := h.member("b", keys(t, "h2"), 1)
	h.r.Closed(c, nil, h.now)
	if h.r.Conns() != 1 {
		t.Fatalf("relay tracks %d connections, want 1", h.r.Conns())
	}
	// b's channel lost a, so b's announces go nowhere but b is served.
	h.send(b, &wire.Announce{Handle: 1, Seq: 1, Entries: [][]byte{seal(t, keys(t, "h2"), "x").Sealed}})
	if fs := b.Frames(t); len(fs) != 1 || fs[0].FrameType() != wire.TypeAck {
		t.Fatalf("after a multi-channel member left, b got %+v, want an ack", fs)
	}
}

func TestIdleChannelsAreForgotten(t *testing.T) {
	h := newHarness(t, Config{ChannelIdleTimeout: time.Minute})
	k := keys(t, "hub")
	a := h.member("a", k, 1)
	h.send(a, &wire.Announce{Handle: 1, Seq: 1, Entries: [][]byte{seal(t, k, "kept").Sealed}})
	held := h.r.Memory()
	h.r.Closed(a, nil, h.now)
	if h.r.ChannelCount() != 1 {
		t.Fatal("a channel was forgotten as soon as its last member left")
	}
	// Back within the timeout: the cache is still there.
	h.now = h.now.Add(30 * time.Second)
	b, j := h.rejoin("b", k)
	if j.Cached != 1 {
		t.Fatalf("rejoin got %+v, want Joined with 1 cached entry", j)
	}
	h.r.Closed(b, nil, h.now)
	// Gone a full timeout later.
	h.idleFor(135 * time.Second)
	if h.r.ChannelCount() != 0 {
		t.Fatalf("relay still holds %d channels after the idle timeout", h.r.ChannelCount())
	}
	if m := h.r.Memory(); m >= held {
		t.Fatalf("memory estimate %d after forgetting the channel, %d while it held an entry", m, held)
	}
	if s := h.r.Stats(); s.ChannelsForgotten != 1 {
		t.Fatalf("ChannelsForgotten = %d, want 1", s.ChannelsForgotten)
	}
}

func TestAsyncJoinChecks(t *testing.T) {
	h := newHarness(t, Config{AsyncJoinChecks: true})
	k := keys(t, "hub")
	c, w := h.connect("a")
	pub, sig := k.JoinProof(w.Nonce)
	h.send(c, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig})
	badPub, badSig := keys(t, "other").JoinProof(w.Nonce)
	h.send(c, &wire.Join{Handle: 2, Channel: keys(t, "third").ID(), Pub: badPub, Sig: badSig})
	if fs := c.Frames(t); len(fs) != 0 {
		t.Fatalf("joins answered before their proofs were checked: %+v", fs)
	}
	checks := h.r.Ready().JoinChecks
	if len(checks) != 2 || len(h.r.Ready().JoinChecks) != 0 {
		t.Fatalf("took %d checks, then more; want 2 once", len(checks))
	}
	for _, jc := range checks {
		h.r.JoinChecked(jc, jc.Verify(), h.now)
	}
	fs := c.Frames(t)
	if len(fs) != 2 {
		t.Fatalf("got %d frames after the checks, want Joined and an error", len(fs))
	}
	if j, ok := fs[0].(*wire.Joined); !ok || j.Handle != 1 {
		t.Fatalf("first answer %+v, want Joined for handle 1", fs[0])
	}
	wantError(t, fs[1:], wire.CodeJoinDenied, false)

	// A connection gone before its check completes is forgotten quietly.
	d, wd := h.connect("d")
	pub, sig = k.JoinProof(wd.Nonce)
	h.send(d, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig})
	late := h.r.Ready().JoinChecks
	h.r.Closed(d, nil, h.now)
	h.r.JoinChecked(late[0], true, h.now)
	if fs := d.Frames(t); len(fs) != 0 {
		t.Fatalf("a closed connection was answered: %+v", fs)
	}
}

// A channel the relay forgot and that comes back holds none of its old
// entries: its Joined must not claim a complete cache, or members would
// not list storage for what only the forgotten cache had (found by the
// simulator: a complete flag over an emptied cache, without a new epoch).
func TestForgottenChannelComesBackIncomplete(t *testing.T) {
	h := newHarness(t, Config{ChannelIdleTimeout: time.Minute})
	k := keys(t, "hub")
	forgetOne(t, h, k)
	if _, j := h.rejoin("b", k); j.Flags&wire.JoinedComplete != 0 {
		t.Fatal("a forgotten channel came back flagged complete")
	}
}
