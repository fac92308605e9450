package tcp

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cosnim/relays/transport"
)

// A peer that takes no bytes for WriteTimeout is closed as timed out,
// however much is queued for it.
func TestWriteTimeout(t *testing.T) {
	closed := make(chan error, 1)
	h := &funcHandler{
		open: func(c transport.Conn) {
			c.Send(make([]byte, 32<<20)) // more than loopback buffers hold
		},
		closed: func(c transport.Conn, err error) { closed <- err },
	}
	l := NewLoop(h, LoopOptions{WriteTimeout: 200 * time.Millisecond})
	ln := listen(t)
	serve(t, l, ln)
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close() // never read
	select {
	case err := <-closed:
		if !errors.Is(err, transport.ErrTimeout) {
			t.Fatalf("Closed(%v), want a timeout", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a peer that reads nothing was never closed")
	}
}
