package netsim

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/cosnim/relays/transport"
)

// TestCrash: peers get ErrReset, new dials are refused, the handler and its
// timer are gone.
func TestCrash(t *testing.T) {
	p := newPair(10, Options{})
	cc, _ := p.connect(t)
	p.s.after(p.sn.Now().Add(time.Second))
	p.sn.SetHandler(p.s)
	p.sn.Crash()
	t0 := p.n.Now()
	p.n.RunFor(time.Millisecond)
	wantErr(t, p.c, cc, transport.ErrReset)
	if err := cc.Send([]byte("x")); err != transport.ErrClosed {
		t.Fatalf("Send after reset = %v, want ErrClosed", err)
	}
	d := p.cn.Dialer().Dial("s:1")
	p.n.RunFor(5 * time.Second)
	wantErr(t, p.c, d, transport.ErrRefused)
	if len(p.s.ticks) != 0 {
		t.Fatalf("crashed node ticked at %v (crash at %v)", p.s.ticks, t0)
	}
	if slices.Contains(p.s.log, "closed reset") || len(p.s.conns) != 1 {
		t.Fatalf("crashed handler still fed: %v", p.s.log)
	}
}

// TestCrashBehindPartition: the RST waits for the link like any packet.
func TestCrashBehindPartition(t *testing.T) {
	p := newPair(11, Options{})
	cc, _ := p.connect(t)
	p.n.Partition([]string{"s"}, []string{"c"})
	p.sn.Crash()
	p.n.RunFor(time.Minute)
	if _, ok := p.c.errs[cc]; ok {
		t.Fatalf("reset crossed a partition")
	}
	p.n.Heal()
	p.n.RunFor(time.Second)
	wantErr(t, p.c, cc, transport.ErrReset)
}

// TestRestart: the node comes back with a new handler and serves again
// once it listens.
func TestRestart(t *testing.T) {
	p := newPair(12, Options{})
	p.connect(t)
	p.sn.Crash()
	fresh := newRec("s2")
	fresh.after(p.n.Now().Add(time.Second))
	p.sn.Restart(fresh)
	p.n.RunFor(2 * time.Second)
	if len(fresh.ticks) != 1 {
		t.Fatalf("restarted handler ticked %d times, want 1", len(fresh.ticks))
	}
	d := p.cn.Dialer().Dial("s:1")
	p.n.RunFor(time.Second)
	wantErr(t, p.c, d, transport.ErrRefused)
	p.sn.Listen("s:1")
	d = p.cn.Dialer().Dial("s:1")
	p.n.RunFor(time.Second)
	if len(fresh.conns) != 1 || len(p.s.conns) != 1 {
		t.Fatalf("after Listen: fresh has %d conns, old has %d; want 1 and 1", len(fresh.conns), len(p.s.conns))
	}
	mustSend(t, d, []byte("hi"))
	p.n.RunFor(time.Second)
	if string(fresh.got[fresh.conns[0]]) != "hi" {
		t.Fatalf("restarted node got %q", fresh.got[fresh.conns[0]])
	}
}

// TestRefuse covers Refuse and dials with no listener.
func TestRefuse(t *testing.T) {
	p := newPair(13, Options{})
	p.n.Refuse("s:1", true)
	d1 := p.cn.Dialer().Dial("s:1")
	d2 := p.cn.Dialer().Dial("nowhere:1")
	p.n.RunFor(time.Second)
	wantErr(t, p.c, d1, transport.ErrRefused)
	wantErr(t, p.c, d2, transport.ErrRefused)
	if len(p.s.conns) != 0 {
		t.Fatalf("refused dial reached the server")
	}
	if got := p.n.Stats().Refused; got != 2 {
		t.Fatalf("Stats.Refused = %d, want 2", got)
	}
	p.n.Refuse("s:1", false)
	p.connect(t)
}

// TestDialTimeout: a dial across a partition, either direction, fails
// with ErrTimeout after ConnectTimeout and the listener hears nothing.
func TestDialTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(n *Network)
	}{
		{"both", func(n *Network) { n.Partition([]string{"c"}, []string{"s"}) }},
		{"to-listener", func(n *Network) { n.PartitionOneWay("c", "s") }},
		{"to-dialer", func(n *Network) { n.PartitionOneWay("s", "c") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(14, Options{ConnectTimeout: 2 * time.Second})
			tc.cut(p.n)
			start := p.n.Now()
			var at time.Time
			p.c.onOpen = func(transport.Conn, time.Time) { t.Fatalf("dial opened across a partition") }
			d := p.cn.Dialer().Dial("s:1")
			for p.n.Step() {
				if _, ok := p.c.errs[d]; ok && at.IsZero() {
					at = p.n.Now()
				}
			}
			wantErr(t, p.c, d, transport.ErrTimeout)
			if got := at.Sub(start); got != 2*time.Second {
				t.Fatalf("timeout after %v, want 2s", got)
			}
			if len(p.s.log) != 0 {
				t.Fatalf("listener heard %v", p.s.log)
			}
		})
	}
}

// TestResetConn: both ends get ErrReset at once; nothing in flight lands.
func TestResetConn(t *testing.T) {
	p := newPair(15, Options{})
	cc, sc := p.connect(t)
	other, _ := p.connect(t)
	mustSend(t, cc, []byte("lost"))
	if got := p.n.Conns(); !slices.Equal(got, []transport.Conn{cc, other}) {
		t.Fatalf("Conns = %v, want [cc other]", got)
	}
	p.n.ResetConn(sc)
	p.n.RunFor(time.Second)
	wantErr(t, p.c, cc, transport.ErrReset)
	wantErr(t, p.s, sc, transport.ErrReset)
	if len(p.s.got[sc]) != 0 {
		t.Fatalf("server got %q after reset", p.s.got[sc])
	}
	if got := p.n.Conns(); !slices.Equal(got, []transport.Conn{other}) {
		t.Fatalf("Conns after reset = %v, want [other]", got)
	}
}

// TestWritable: Writable fires once the queue drains below LowWater after
// reaching HighWater, and not for a queue that stayed low.
func TestWritable(t *testing.T) {
	p := newPair(16, Options{Bandwidth: 1 << 20, HighWater: 64 << 10, LowWater: 16 << 10, SplitReads: true})
	cc, sc := p.connect(t)
	mustSend(t, cc, make([]byte, 10<<10))
	p.n.RunFor(time.Second)
	if slices.Contains(p.c.log, "writable") {
		t.Fatalf("Writable without reaching high water")
	}
	var queued []int
	p.c.onWrite = func(c transport.Conn, _ time.Time) { queued = append(queued, c.Queued()) }
	for range 10 {
		mustSend(t, cc, make([]byte, 10<<10))
	}
	if cc.Queued() != 100<<10 {
		t.Fatalf("Queued = %d, want %d", cc.Queued(), 100<<10)
	}
	p.n.RunFor(time.Second)
	if len(queued) != 1 || queued[0] >= 16<<10 {
		t.Fatalf("Writable saw Queued %v, want one value below 16 KiB", queued)
	}
	if len(p.s.got[sc]) != 110<<10 {
		t.Fatalf("server got %d bytes", len(p.s.got[sc]))
	}
}

// TestTimers: Tick fires when the node's drifted clock reaches Deadline,
// with that clock as now; a replaced deadline does not fire.
func TestTimers(t *testing.T) {
	p := newPair(17, Options{})
	start := p.n.Now()
	// The client's clock runs 10% fast and 1s ahead.
	p.cn.SetDrift(time.Second, 100_000)
	if got := p.cn.Now().Sub(start); got != time.Second {
		t.Fatalf("drifted clock at start reads +%v, want +1s", got)
	}
	var fired []time.Duration // global times
	p.c.onTimer = func(time.Time) { fired = append(fired, p.n.Now().Sub(start)) }
	p.c.after(start.Add(12 * time.Second)) // node +12s = global +10s
	p.cn.SetHandler(p.c)
	p.s.after(start.Add(5 * time.Second))
	p.sn.SetHandler(p.s)
	p.s.timers = []time.Time{start.Add(7 * time.Second)} // replaced: 5s is stale
	p.n.At(start.Add(time.Second), func() { p.sn.SetHandler(p.s) })
	p.n.RunFor(20 * time.Second)
	if !slices.Equal(fired, []time.Duration{10 * time.Second}) {
		t.Fatalf("client timer fired at %v, want [10s]", fired)
	}
	if len(p.c.ticks) != 1 || !p.c.ticks[0].Equal(start.Add(12*time.Second)) {
		t.Fatalf("client Tick now = %v, want start+12s", p.c.ticks)
	}
	if len(p.s.ticks) != 1 || !p.s.ticks[0].Equal(start.Add(7*time.Second)) {
		t.Fatalf("server ticks %v, want one at start+7s", p.s.ticks)
	}
	// Handlers see the drifted clock in other callbacks too.
	var openedAt time.Time
	p.c.onOpen = func(_ transport.Conn, now time.Time) { openedAt = now }
	p.cn.Dialer().Dial("s:1")
	p.n.RunFor(time.Second)
	if want := p.cn.Now(); openedAt.IsZero() || openedAt.Sub(start) < 22*time.Second || openedAt.After(want) {
		t.Fatalf("Open now = %v, want the client's drifted clock (now %v)", openedAt.Sub(start), want.Sub(start))
	}
}

// TestDriftMonotonic: moving the clock back freezes it instead.
func TestDriftMonotonic(t *testing.T) {
	p := newPair(18, Options{})
	p.n.RunFor(10 * time.Second)
	before := p.cn.Now()
	p.cn.SetDrift(-5*time.Second, 0)
	if p.cn.Now().Before(before) {
		t.Fatalf("clock went back from %v to %v", before, p.cn.Now())
	}
	p.n.RunFor(6 * time.Second)
	if got := p.cn.Now().Sub(before); got != time.Second {
		t.Fatalf("clock advanced %v after catching up, want 1s", got)
	}
}

// TestReplay: a fresh connection from another node carries the first
// bytes an old connection sent.
func TestReplay(t *testing.T) {
	p := newPair(19, Options{SplitReads: true})
	cc, _ := p.connect(t)
	mustSend(t, cc, []byte("hello "))
	mustSend(t, cc, []byte("world"))
	p.n.RunFor(time.Second)
	p.n.AddNode("mallory")
	r := p.n.Replay("mallory", "s:1", cc, 8)
	p.n.RunFor(time.Second)
	if len(p.s.conns) != 2 {
		t.Fatalf("server has %d conns, want 2", len(p.s.conns))
	}
	nc := p.s.conns[1]
	if got := string(p.s.got[nc]); got != "hello wo" {
		t.Fatalf("replayed %q, want %q", got, "hello wo")
	}
	if nc.RemoteAddr() == cc.RemoteAddr() || r.Queued() != 0 {
		t.Fatalf("replay conn: remote %q, queued %d", nc.RemoteAddr(), r.Queued())
	}
	if !bytes.HasPrefix([]byte(nc.RemoteAddr()), []byte("mallory")) {
		t.Fatalf("replay came from %q, want mallory", nc.RemoteAddr())
	}
}

// TestAtOrder: events due at the same time run in the order scheduled.
func TestAtOrder(t *testing.T) {
	n := New(20, Options{})
	var got []int
	at := n.Now().Add(time.Second)
	for i := range 5 {
		n.At(at, func() { got = append(got, i) })
	}
	n.At(at.Add(-time.Millisecond), func() { got = append(got, -1) })
	n.RunUntil(at)
	if want := []int{-1, 0, 1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	if !n.Now().Equal(at) || n.Events() != 6 {
		t.Fatalf("now %v events %d", n.Now(), n.Events())
	}
}

// TestSwizzleHealCancels: a Heal during a swizzle cancels its later steps.
func TestSwizzleHealCancels(t *testing.T) {
	n := New(21, Options{})
	names := []string{"a", "b", "c"}
	for _, name := range names {
		n.AddNode(name)
	}
	done := n.SwizzleClog(names, time.Second)
	n.RunFor(2500 * time.Millisecond) // two links clogged
	if len(n.clogged) != 4 {
		t.Fatalf("%d clogged directions after two steps, want 4", len(n.clogged))
	}
	n.Heal()
	n.RunUntil(done)
	if len(n.clogged) != 0 {
		t.Fatalf("swizzle went on after Heal: %d clogged directions", len(n.clogged))
	}
}
