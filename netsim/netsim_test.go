package netsim

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cosnim/relays/transport"
)

// TestInOrderOnce sends numbered messages in bursts both ways under heavy
// jitter with SplitReads and checks each byte stream arrives whole, in
// order, once, and really split and coalesced.
func TestInOrderOnce(t *testing.T) {
	p := newPair(1, Options{Latency: time.Millisecond, Jitter: 20 * time.Millisecond, SplitReads: true})
	cc, sc := p.connect(t)
	const bursts, per = 50, 20
	next := 0
	p.c.onTimer = func(now time.Time) {
		for range per {
			mustSend(t, cc, numbered(next, next+1))
			mustSend(t, sc, numbered(next, next+1))
			next++
		}
		if next < bursts*per {
			p.c.after(now.Add(time.Millisecond))
		}
	}
	p.c.after(p.cn.Now())
	p.cn.SetHandler(p.c)
	p.n.RunFor(10 * time.Second)

	want := numbered(0, bursts*per)
	if got := p.s.got[sc]; !bytes.Equal(got, want) {
		t.Errorf("server got %d bytes, want %d; first diff at %d", len(got), len(want), firstDiff(got, want))
	}
	if got := p.c.got[cc]; !bytes.Equal(got, want) {
		t.Errorf("client got %d bytes, want %d; first diff at %d", len(got), len(want), firstDiff(got, want))
	}
	msgs := bursts * per
	if r := p.s.reads[sc]; r == msgs || r == bursts {
		t.Errorf("server had %d reads for %d messages in %d bursts: reads not split", r, msgs, bursts)
	}
	if cc.Queued() != 0 || sc.Queued() != 0 {
		t.Errorf("Queued = %d, %d after delivery, want 0", cc.Queued(), sc.Queued())
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// workload runs a small, busy scenario and returns its trace.
func workload(seed uint64) []string {
	var lines []string
	n := New(seed, Options{SplitReads: true})
	n.SetTrace(func(s string) { lines = append(lines, s) })
	srv := n.AddNode("relay")
	sr := newRec("relay")
	sr.echo = true
	srv.SetHandler(sr)
	srv.Listen("relay:1")
	for i := range 4 {
		nd := n.AddNode(fmt.Sprintf("client%d", i))
		r := newRec(nd.Name())
		var c transport.Conn
		count := 0
		r.onTimer = func(now time.Time) {
			if c != nil && count < 30 {
				_ = c.Send(numbered(count, count+1+n.Rand().IntN(5)))
				count++
			}
			r.after(now.Add(time.Duration(1+i) * time.Millisecond))
		}
		r.after(nd.Now().Add(time.Millisecond))
		nd.SetHandler(r)
		c = nd.Dialer().Dial("relay:1")
		nd.SetDrift(time.Duration(i)*time.Millisecond, 50*i)
	}
	n.At(n.Now().Add(20*time.Millisecond), func() { n.Clog("client1", "relay") })
	n.At(n.Now().Add(40*time.Millisecond), func() { n.Heal() })
	n.RunFor(time.Second)
	return lines
}

// TestDeterminism: same seed and calls give the same trace; another seed
// gives another.
func TestDeterminism(t *testing.T) {
	a, b := workload(7), workload(7)
	if len(a) < 100 {
		t.Fatalf("trace has %d lines; workload too small", len(a))
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, different traces (-first +second):\n%s", diff)
	}
	if c := workload(8); slices.Equal(a, c) {
		t.Fatalf("seeds 7 and 8 gave identical traces")
	}
}

// TestClose: Close flushes, then the peer gets EOF; the closer hears
// nothing; Send after Close fails.
func TestClose(t *testing.T) {
	p := newPair(2, Options{SplitReads: true})
	cc, sc := p.connect(t)
	mustSend(t, cc, numbered(0, 100))
	cc.Close()
	if err := cc.Send([]byte("x")); err != transport.ErrClosed {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	p.n.RunFor(time.Second)
	if !bytes.Equal(p.s.got[sc], numbered(0, 100)) {
		t.Fatalf("server got %q before close", p.s.got[sc])
	}
	wantErr(t, p.s, sc, io.EOF)
	if _, ok := p.c.errs[cc]; ok {
		t.Fatalf("closer got Closed for its own Close: %v", p.c.log)
	}
	if err := sc.Send([]byte("x")); err != transport.ErrClosed {
		t.Fatalf("Send after peer close = %v, want ErrClosed", err)
	}
}

// TestPartitionHoldsAndHeals: bytes across a partition wait in Queued,
// and arrive in order after Heal; a close waits too.
func TestPartitionHoldsAndHeals(t *testing.T) {
	p := newPair(3, Options{SplitReads: true})
	cc, sc := p.connect(t)
	mustSend(t, cc, numbered(0, 10))
	p.n.Partition([]string{"c"}, []string{"s"})
	mustSend(t, cc, numbered(10, 20))
	mustSend(t, sc, numbered(0, 5))
	cc.Close()
	p.n.RunFor(time.Minute)
	if got := p.s.got[sc]; len(got) > len(numbered(0, 10)) {
		t.Fatalf("server got %d bytes across the partition", len(got))
	}
	if got, want := cc.Queued()+len(p.s.got[sc]), len(numbered(0, 20)); got != want {
		t.Fatalf("client Queued + delivered = %d, want %d", got, want)
	}
	if sc.Queued() != len(numbered(0, 5)) {
		t.Fatalf("server Queued = %d, want %d", sc.Queued(), len(numbered(0, 5)))
	}
	if _, ok := p.s.errs[sc]; ok {
		t.Fatalf("server heard the close across the partition")
	}
	p.n.Heal()
	p.n.RunFor(time.Second)
	if !bytes.Equal(p.s.got[sc], numbered(0, 20)) {
		t.Fatalf("after heal server got %q", p.s.got[sc])
	}
	wantErr(t, p.s, sc, io.EOF)
	if cc.Queued() != 0 {
		t.Fatalf("client Queued = %d after heal", cc.Queued())
	}
}

// TestBlockedLinks: a one-way partition blocks only its direction, a clog
// holds both; once unblocked, what was held arrives.
func TestBlockedLinks(t *testing.T) {
	for _, tc := range []struct {
		name           string
		seed           uint64
		block, unblock func(n *Network)
		clientDuring   string // what the client gets while blocked
	}{
		{"partition c→s", 4,
			func(n *Network) { n.PartitionOneWay("c", "s") }, func(n *Network) { n.Heal() }, "down"},
		{"clog", 5,
			func(n *Network) { n.Clog("s", "c") }, func(n *Network) { n.Unclog("c", "s") }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(tc.seed, Options{})
			cc, sc := p.connect(t)
			tc.block(p.n)
			mustSend(t, cc, []byte("up"))
			mustSend(t, sc, []byte("down"))
			p.n.RunFor(time.Second)
			if len(p.s.got[sc]) != 0 || string(p.c.got[cc]) != tc.clientDuring {
				t.Fatalf("while blocked got %q %q, want nothing and %q", p.s.got[sc], p.c.got[cc], tc.clientDuring)
			}
			tc.unblock(p.n)
			p.n.RunFor(time.Second)
			if string(p.s.got[sc]) != "up" || string(p.c.got[cc]) != "down" {
				t.Fatalf("after unblocking got %q %q", p.s.got[sc], p.c.got[cc])
			}
		})
	}
}

// TestSwizzleClog: every link gets clogged and then unclogged; all bytes
// arrive in the end.
func TestSwizzleClog(t *testing.T) {
	n := New(6, Options{SplitReads: true})
	var lines []string
	n.SetTrace(func(s string) { lines = append(lines, s) })
	names := []string{"a", "b", "c", "d"}
	recs := map[string]*rec{}
	var conns []transport.Conn
	for _, name := range names {
		nd := n.AddNode(name)
		r := newRec(name)
		recs[name] = r
		nd.SetHandler(r)
		nd.Listen(name)
	}
	for i, a := range names {
		for _, b := range names[i+1:] {
			conns = append(conns, n.Node(a).Dialer().Dial(b))
		}
	}
	n.RunFor(10 * time.Millisecond)
	done := n.SwizzleClog(names, 100*time.Millisecond)
	// Send during the swizzle.
	for k := range 20 {
		n.At(n.Now().Add(time.Duration(k)*60*time.Millisecond), func() {
			for _, c := range conns {
				_ = c.Send(numbered(k, k+1))
			}
			for _, name := range names {
				for _, c := range recs[name].conns {
					if c.(*end).side == 1 {
						_ = c.Send(numbered(k, k+1))
					}
				}
			}
		})
	}
	// All six links are clogged from 600ms to 700ms: everything sent waits.
	n.RunUntil(n.Now().Add(690 * time.Millisecond))
	for _, c := range conns {
		if c.Queued() == 0 || c.(*end).peer().Queued() == 0 {
			t.Fatalf("conn %v not held while all links are clogged", c)
		}
	}
	n.RunUntil(done.Add(time.Second))
	if len(n.clogged) != 0 {
		t.Fatalf("clogs left after the swizzle: %d", len(n.clogged))
	}
	clogs, unclogs := 0, 0
	for _, s := range lines {
		clogs += bytes.Count([]byte(s), []byte("net clog "))
		unclogs += bytes.Count([]byte(s), []byte("net unclog "))
	}
	if clogs != 6 || unclogs != 6 {
		t.Fatalf("swizzle clogged %d and unclogged %d links, want 6 and 6", clogs, unclogs)
	}
	want := numbered(0, 20)
	for _, r := range recs {
		for _, c := range r.conns {
			if !bytes.Equal(r.got[c], want) {
				t.Fatalf("%s on %v got %q, want all 20 messages", r.name, c, r.got[c])
			}
		}
	}
}
