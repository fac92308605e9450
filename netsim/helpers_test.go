package netsim

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cosnim/relays/transport"
)

// rec is a small test core: it records what it hears, optionally echoes,
// and runs timers.
type rec struct {
	name   string
	echo   bool // echo what arrives on accepted conns
	log    []string
	conns  []transport.Conn          // opened, in order
	got    map[transport.Conn][]byte // bytes received per conn
	reads  map[transport.Conn]int    // Data calls per conn
	errs   map[transport.Conn]error  // Closed reasons
	ticks  []time.Time               // now of each Tick
	timers []time.Time               // pending, sorted

	onOpen  func(c transport.Conn, now time.Time)
	onTimer func(now time.Time)
	onWrite func(c transport.Conn, now time.Time)
}

func newRec(name string) *rec {
	return &rec{
		name:  name,
		got:   map[transport.Conn][]byte{},
		reads: map[transport.Conn]int{},
		errs:  map[transport.Conn]error{},
	}
}

func (r *rec) Open(c transport.Conn, now time.Time) {
	r.log = append(r.log, "open")
	r.conns = append(r.conns, c)
	if r.onOpen != nil {
		r.onOpen(c, now)
	}
}

func (r *rec) Data(c transport.Conn, b []byte, now time.Time) {
	if r.got != nil {
		r.got[c] = append(r.got[c], b...)
	}
	r.reads[c]++
	if r.echo && c.(*end).side == 1 {
		if err := c.Send(b); err != nil {
			panic(err)
		}
	}
}

func (r *rec) Writable(c transport.Conn, now time.Time) {
	r.log = append(r.log, "writable")
	if r.onWrite != nil {
		r.onWrite(c, now)
	}
}

func (r *rec) Closed(c transport.Conn, err error, now time.Time) {
	r.log = append(r.log, "closed "+errName(err))
	r.errs[c] = err
}

func (r *rec) Tick(now time.Time) {
	r.ticks = append(r.ticks, now)
	for len(r.timers) > 0 && !r.timers[0].After(now) {
		r.timers = r.timers[1:]
		if r.onTimer != nil {
			r.onTimer(now)
		}
	}
}

func (r *rec) Deadline() (time.Time, bool) {
	if len(r.timers) == 0 {
		return time.Time{}, false
	}
	return r.timers[0], true
}

func (r *rec) after(t time.Time) {
	i, _ := slices.BinarySearchFunc(r.timers, t, time.Time.Compare)
	r.timers = slices.Insert(r.timers, i, t)
}

// pair is a network with a client node "c" and a server node "s" listening
// on "s:1".
type pair struct {
	n      *Network
	cn, sn *Node
	c, s   *rec
}

func newPair(seed uint64, opt Options) *pair {
	n := New(seed, opt)
	p := &pair{n: n, cn: n.AddNode("c"), sn: n.AddNode("s"), c: newRec("c"), s: newRec("s")}
	p.cn.SetHandler(p.c)
	p.sn.SetHandler(p.s)
	p.sn.Listen("s:1")
	return p
}

// connect dials from the client and runs until both sides are open.
func (p *pair) connect(t *testing.T) (cc, sc transport.Conn) {
	t.Helper()
	cc = p.cn.Dialer().Dial("s:1")
	p.n.RunFor(100 * time.Millisecond)
	if len(p.s.conns) == 0 || !slices.Contains(p.c.conns, cc) {
		t.Fatalf("connect: client log %v, server log %v", p.c.log, p.s.log)
	}
	return cc, p.s.conns[len(p.s.conns)-1]
}

func mustSend(t *testing.T, c transport.Conn, b []byte) {
	t.Helper()
	if err := c.Send(b); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

// numbered returns the stream of messages lo..hi-1.
func numbered(lo, hi int) []byte {
	var b []byte
	for i := lo; i < hi; i++ {
		b = fmt.Appendf(b, "msg %06d|", i)
	}
	return b
}

func wantErr(t *testing.T, r *rec, c transport.Conn, want error) {
	t.Helper()
	got, ok := r.errs[c]
	if !ok {
		t.Fatalf("%s: no Closed for %v; log %v", r.name, c, r.log)
	}
	if !errors.Is(got, want) {
		t.Fatalf("%s: Closed err = %v, want %v", r.name, got, want)
	}
}
