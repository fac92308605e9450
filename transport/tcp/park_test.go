//go:build linux

package tcp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/transport"
)

// testParkAfter is short so that tests park quickly; pauses meant to park
// a connection last parkPause, well over the two periods parking can take.
const (
	testParkAfter = 20 * time.Millisecond
	parkPause     = 8 * testParkAfter
)

// parkRig is a Loop that echoes what it reads, with ParkAfter short.
type parkRig struct {
	l      *Loop
	addr   string
	dial   DialFunc
	tlsCfg *tls.Config // the client's, for TLS rigs

	mu     sync.Mutex
	conns  []transport.Conn // server side, in order of Open
	closed []error
}

func newParkRig(t *testing.T, useTLS bool, opt LoopOptions) *parkRig {
	t.Helper()
	r := &parkRig{dial: NetDialer(nil)}
	h := &funcHandler{
		open: func(c transport.Conn) { r.mu.Lock(); r.conns = append(r.conns, c); r.mu.Unlock() },
		data: func(c transport.Conn, b []byte) { c.Send(b) },
		closed: func(c transport.Conn, err error) {
			r.mu.Lock()
			r.closed = append(r.closed, err)
			r.mu.Unlock()
		},
	}
	if opt.ParkAfter == 0 {
		opt.ParkAfter = testParkAfter
	}
	r.l = NewLoop(h, opt)
	raw := listen(t)
	var ln net.Listener = SniffListener(raw, useTLS, nil)
	if useTLS {
		p := testpki.NewPKI(t)
		cfg, _, err := ServerTLSConfig(p.ServerCert, p.ServerKey, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		ln = tls.NewListener(ln, cfg)
		r.tlsCfg = clientConfig(t, p, "", "")
		r.dial = NetDialer(r.tlsCfg)
	}
	r.addr = raw.Addr().String()
	serve(t, r.l, ln)
	return r
}

// connect dials n clients, each echoing one byte so it is open and read.
func (r *parkRig) connect(t *testing.T, n int) []net.Conn {
	t.Helper()
	var ncs []net.Conn
	t.Cleanup(func() {
		for _, nc := range ncs {
			nc.Close()
		}
	})
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		nc, err := r.dial(ctx, r.addr)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ncs = append(ncs, nc)
		echo(t, nc, []byte("!"))
	}
	return ncs
}

// echo writes b and reads it back.
func echo(t *testing.T, nc net.Conn, b []byte) {
	t.Helper()
	nc.SetDeadline(time.Now().Add(waitLong))
	if _, err := nc.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(b))
	if _, err := io.ReadFull(nc, got); err != nil {
		t.Fatalf("reading echo: %v", err)
	}
	if !bytes.Equal(got, b) {
		t.Fatalf("echo = %q, want %q", got, b)
	}
}

func (r *parkRig) waitParked(t *testing.T, n int) {
	t.Helper()
	testutil.WaitFor(t, waitLong, fmt.Sprintf("%d parked", n), func() bool { return r.l.ParkStats().Parked == n })
}

func (r *parkRig) closedErrs() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.closed...)
}

// Idle connections give up their reader goroutines, and a parked one
// wakes when bytes come: it reads them and parks again.
func TestIdleConnectionsPark(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[useTLS], func(t *testing.T) {
			const n = 20
			base := runtime.NumGoroutine()
			r := newParkRig(t, useTLS, LoopOptions{})
			ncs := r.connect(t, n)
			r.waitParked(t, n)
			// The Loop's timer and Serve, and the parker: no reader.
			if extra := runtime.NumGoroutine() - base; extra > 3 {
				t.Errorf("%d idle connections parked, yet %d goroutines more than before the Loop, want at most 3", n, extra)
			}
			for i, nc := range ncs {
				echo(t, nc, fmt.Appendf(nil, "wake %d", i))
			}
			r.waitParked(t, n)
			st := r.l.ParkStats()
			if st.Parks < 2*n || st.Wakes < n {
				t.Errorf("ParkStats = %+v, want at least %d parks and %d wakes", st, 2*n, n)
			}
			if errs := r.closedErrs(); len(errs) != 0 {
				t.Errorf("Closed %v, want none", errs)
			}
		})
	}
}

// splitConn writes each record in two halves, pause apart, once split.
type splitConn struct {
	net.Conn
	split bool
	pause time.Duration
}

func (s *splitConn) Write(b []byte) (int, error) {
	if !s.split || len(b) < 2 {
		return s.Conn.Write(b)
	}
	n, err := s.Conn.Write(b[:len(b)/2])
	if err != nil {
		return n, err
	}
	time.Sleep(s.pause)
	m, err := s.Conn.Write(b[len(b)/2:])
	return n + m, err
}

// A read deadline's timeout in crypto/tls is not sticky and leaves a
// partial record to be completed: a record whose halves arrive a parking
// apart (the reader parks holding half of it) arrives whole after the
// wake, and frames across many park and wake cycles arrive in order.
func TestTLSRecordAcrossPark(t *testing.T) {
	r := newParkRig(t, true, LoopOptions{})
	raw, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	sc := &splitConn{Conn: raw, pause: parkPause}
	cfg := r.tlsCfg.Clone()
	cfg.ServerName = "127.0.0.1"
	tc := tls.Client(sc, cfg)
	defer tc.Close()
	echo(t, tc, []byte("hello"))
	r.waitParked(t, 1)

	const rounds = 12
	var want bytes.Buffer
	for i := range rounds {
		sc.split = i%2 == 0
		before := r.l.ParkStats()
		frame := fmt.Appendf(nil, "frame %02d %s;", i, bytes.Repeat([]byte{'x'}, 100*i))
		want.Write(frame)
		echo(t, tc, frame)
		r.waitParked(t, 1)
		after := r.l.ParkStats()
		// A split record parks twice: once idle, once holding half.
		wantParks := uint64(1)
		if sc.split {
			wantParks = 2
		}
		if got := after.Parks - before.Parks; got < wantParks {
			t.Errorf("round %d (split %v): %d parks, want at least %d", i, sc.split, got, wantParks)
		}
	}
	if errs := r.closedErrs(); len(errs) != 0 {
		t.Errorf("Closed %v, want none", errs)
	}
}

// A plaintext client that stays silent past several idle deadlines
// before its first byte is still sniffed and served.
func TestSilentFirstByte(t *testing.T) {
	r := newParkRig(t, false, LoopOptions{})
	nc, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	time.Sleep(parkPause)
	echo(t, nc, []byte("late hello"))
	if errs := r.closedErrs(); len(errs) != 0 {
		t.Errorf("Closed %v, want none", errs)
	}
}

// Whichever way a parked connection closes, the parker forgets it and
// every goroutine ends.
func TestParkedCloseLeavesNothing(t *testing.T) {
	cases := []struct {
		name  string
		opt   LoopOptions
		close func(t *testing.T, r *parkRig, nc net.Conn)
		want  error // the Closed event, if any
	}{
		{"core close", LoopOptions{}, func(t *testing.T, r *parkRig, nc net.Conn) {
			r.l.Do(func() { r.conns[0].Close() })
			nc.SetReadDeadline(time.Now().Add(waitLong))
			if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("client read after core Close = %v, want EOF", err)
			}
		}, nil},
		{"core close after send", LoopOptions{}, func(t *testing.T, r *parkRig, nc net.Conn) {
			r.l.Do(func() { r.conns[0].Send([]byte("bye")); r.conns[0].Close() })
			nc.SetReadDeadline(time.Now().Add(waitLong))
			if b, err := io.ReadAll(nc); string(b) != "bye" || err != nil {
				t.Errorf("client read after core Close = %q, %v, want \"bye\"", b, err)
			}
		}, nil},
		{"peer close", LoopOptions{}, func(t *testing.T, r *parkRig, nc net.Conn) {
			nc.Close()
			testutil.WaitFor(t, waitLong, "Closed", func() bool { return len(r.closedErrs()) > 0 })
		}, io.EOF},
		{"write failure", LoopOptions{WriteTimeout: 50 * time.Millisecond}, func(t *testing.T, r *parkRig, nc net.Conn) {
			// The client reads nothing: the writer times out while
			// the reader is parked.
			r.l.Do(func() { r.conns[0].Send(make([]byte, 64<<20)) })
			testutil.WaitFor(t, waitLong, "Closed", func() bool { return len(r.closedErrs()) > 0 })
		}, transport.ErrTimeout},
		{"loop close", LoopOptions{}, func(t *testing.T, r *parkRig, nc net.Conn) {
			r.l.Close()
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newParkRig(t, false, tc.opt)
			ncs := r.connect(t, 1)
			r.waitParked(t, 1)
			tc.close(t, r, ncs[0])
			r.waitParked(t, 0)
			errs := r.closedErrs()
			switch {
			case tc.want == nil && len(errs) != 0:
				t.Errorf("Closed %v, want none", errs)
			case tc.want != nil && (len(errs) != 1 || !errors.Is(errs[0], tc.want)):
				t.Errorf("Closed %v, want one wrapping %v", errs, tc.want)
			}
			r.l.Close()
			if st := r.l.ParkStats(); st.Parked != 0 {
				t.Errorf("after Loop.Close %d parked, want 0", st.Parked)
			}
			ncs[0].Close()
			if err := goleak.Find(); err != nil {
				t.Error(err)
			}
		})
	}
}

// wrapped is a wrapper the Loop does not know.
type wrapped struct{ net.Conn }

// offered is a wrapper that offers its inner conn.
type offered struct{ net.Conn }

func (o offered) NetConn() net.Conn { return o.Conn }

// A conn parks only through wrappers that hold no bytes the socket no
// longer shows.
func TestParkOnlyWithoutHeldBytes(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	sniff := func(f func(s *sniffConn)) *sniffConn {
		s := &sniffConn{Conn: server, sniffed: true}
		f(s)
		return s
	}
	cases := []struct {
		name string
		nc   net.Conn
		park bool
	}{
		{"socket", server, true},
		{"sniffed and drained", sniff(func(*sniffConn) {}), true},
		{"TLS over sniffed", tls.Server(sniff(func(*sniffConn) {}), &tls.Config{}), true},
		{"offered wrapper", offered{sniff(func(*sniffConn) {})}, true},
		{"peeked bytes", sniff(func(s *sniffConn) { s.peeked = []byte{'a'} }), false},
		{"half a sniff", sniff(func(s *sniffConn) { s.sniffed, s.nhdr, s.hdr[0] = false, 1, 0x16 }), false},
		{"held error", sniff(func(s *sniffConn) { s.err = io.ErrUnexpectedEOF }), false},
		{"TLS over peeked", tls.Server(sniff(func(s *sniffConn) { s.peeked = []byte{'a'} }), &tls.Config{}), false},
		{"unknown wrapper", wrapped{server}, false},
	}
	for _, tc := range cases {
		if got := rawConnOf(tc.nc) != nil; got != tc.park {
			t.Errorf("%s: parkable %v, want %v", tc.name, got, tc.park)
		}
	}
}

// ParkAfter defaults to DefaultParkAfter; negative never parks.
func TestParkAfterOption(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{0, DefaultParkAfter}, {-1, 0}, {time.Minute, time.Minute},
	} {
		o := LoopOptions{ParkAfter: tc.in}
		o.setDefaults()
		if o.ParkAfter != tc.want {
			t.Errorf("ParkAfter %v: got %v, want %v", tc.in, o.ParkAfter, tc.want)
		}
	}
	r := newParkRig(t, false, LoopOptions{ParkAfter: -1})
	ncs := r.connect(t, 1)
	time.Sleep(parkPause)
	echo(t, ncs[0], []byte("still here"))
	if st := r.l.ParkStats(); st.Parks != 0 {
		t.Errorf("ParkAfter off: %d parks, want 0", st.Parks)
	}
}
