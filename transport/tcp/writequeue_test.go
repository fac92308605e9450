package tcp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/transport"
)

// TestQueuedEventsArriveInOrder sends thousands of events' bytes to a peer
// that reads nothing at first, so the writer's batches hold many events'
// buffers (a vectored write on TCP, joined buffers for TLS); the peer must
// then read every byte, in order.
func TestQueuedEventsArriveInOrder(t *testing.T) {
	p := testpki.NewPKI(t)
	srvTLS, _, err := ServerTLSConfig(p.ServerCert, p.ServerKey, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"tcp", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu   sync.Mutex
				conn transport.Conn
			)
			l := NewLoop(&funcHandler{open: func(c transport.Conn) { mu.Lock(); conn = c; mu.Unlock() }}, LoopOptions{})
			raw := listen(t)
			var ln net.Listener = SniffListener(raw, tc.tls, nil)
			if tc.tls {
				ln = tls.NewListener(ln, srvTLS)
			}
			serve(t, l, ln)

			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			defer cancel()
			var cfg *tls.Config
			if tc.tls {
				cfg = clientConfig(t, p, "", "")
			}
			nc, err := NetDialer(cfg)(ctx, raw.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if tc.tls {
				// The server's handshake ends with the client's first read.
				go func() { nc.Read(make([]byte, 0)) }()
			}
			testutil.WaitFor(t, waitLong, "Open", func() bool { mu.Lock(); defer mu.Unlock(); return conn != nil })

			var want bytes.Buffer
			for i := range 20000 {
				// Sizes from a few bytes to several KiB, so both the copy
				// into a buffer's spare room and a new buffer happen.
				b := fmt.Appendf(nil, "<%d:%s>", i, bytes.Repeat([]byte{'a' + byte(i%26)}, (i*37)%5000))
				want.Write(b)
				l.Do(func() { conn.Send(b) })
			}
			nc.SetReadDeadline(time.Now().Add(waitLong))
			got := make([]byte, want.Len())
			if _, err := io.ReadFull(nc, got); err != nil {
				t.Fatalf("read %v", err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				i := 0
				for i < len(got) && got[i] == want.Bytes()[i] {
					i++
				}
				t.Fatalf("stream differs from byte %d: got %.40q, want %.40q", i, got[i:], want.Bytes()[i:])
			}
		})
	}
}

// TestQueueMemoryBounded: a peer that reads nothing while the core sends
// many events must not pin a pooled buffer per event, small events or
// large ones in buffers that past bursts left large: the queue's buffers
// stay within half more than what is queued (copyIntoLast aims at a
// quarter for what waits, the writer's batch aside) plus pinSlack, and
// Held reports them (the relay's memory budget counts it).
func TestQueueMemoryBounded(t *testing.T) {
	t.Run("small events", func(t *testing.T) {
		checkQueueMemory(t, 60000, func(i int) []byte {
			if i%500 == 0 {
				return bytes.Repeat([]byte{'b'}, 6000)
			}
			return bytes.Repeat([]byte{'s'}, 40)
		})
	})
	t.Run("large pooled buffers", func(t *testing.T) {
		checkQueueMemory(t, 20000, func(i int) []byte {
			if i == 2000 {
				// The writer is stuck by now: these buffers go to the queue.
				for range 400 {
					b := make([]byte, 0, maxPooledWrite)
					writePool.Put(&b)
				}
			}
			return bytes.Repeat([]byte{'l'}, 2*smallCopy)
		})
	})
}

func checkQueueMemory(t *testing.T, events int, event func(i int) []byte) {
	var (
		mu sync.Mutex
		tc transport.Conn
	)
	l := NewLoop(&funcHandler{open: func(c transport.Conn) { mu.Lock(); tc = c; mu.Unlock() }}, LoopOptions{})
	dialSlowPeer(t, l)
	testutil.WaitFor(t, waitLong, "Open", func() bool { mu.Lock(); defer mu.Unlock(); return tc != nil })

	for i := range events {
		b := event(i)
		l.Do(func() { tc.Send(b) })
	}
	var queued, held, buffers, reported int
	l.Do(func() {
		q := tc.(*conn)
		q.wmu.Lock()
		defer q.wmu.Unlock()
		for _, b := range q.pend {
			held += cap(*b)
			queued += len(*b)
		}
		buffers = len(q.pend)
		held += q.inflightCap // the writer's batch, stuck in its Write
		queued += q.inflight
		reported = q.Held()
	})
	if queued < 500<<10 {
		t.Fatalf("only %d bytes queued: the peer's buffers took the rest; the test needs a deeper queue", queued)
	}
	if limit := queued + queued/2 + pinSlack + maxPooledWrite; held > limit {
		t.Errorf("%d queued bytes pin %d bytes in %d buffers, want <= %d", queued, held, buffers, limit)
	} else {
		t.Logf("%d queued bytes pin %d bytes in %d buffers", queued, held, buffers)
	}
	if reported != held {
		t.Errorf("Held reports %d bytes, the queue's buffers hold %d", reported, held)
	}
}

// A connection closed while its peer has stopped reading (a queue over
// HighWater before the closing event) drops its queue and its socket at
// once, rather than holding the queue for CloseFlush: the core stops
// counting it the moment it closes.
func TestCloseDropsAStalledQueue(t *testing.T) {
	var (
		mu sync.Mutex
		tc transport.Conn
	)
	l := NewLoop(&funcHandler{open: func(c transport.Conn) { mu.Lock(); tc = c; mu.Unlock() }}, LoopOptions{CloseFlush: time.Minute})
	nc := dialSlowPeer(t, l)
	testutil.WaitFor(t, waitLong, "Open", func() bool { mu.Lock(); defer mu.Unlock(); return tc != nil })
	chunk := bytes.Repeat([]byte{'q'}, 16<<10)
	for range 64 { // 1 MiB over 64 events: far past what the peer's buffers take
		l.Do(func() { tc.Send(chunk) })
	}
	var queued, held int
	l.Do(func() {
		tc.Close()
		q := tc.(*conn)
		q.wmu.Lock()
		queued, held = q.queuedLocked()-q.inflight, q.pinned
		q.wmu.Unlock()
	})
	if queued != 0 || held != 0 {
		t.Errorf("after Close a stalled queue still holds %d bytes in buffers of %d", queued, held)
	}
	// The socket goes at once, not after CloseFlush.
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, nc); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("the socket still open 5s after Close (CloseFlush is a minute)")
	}
}
