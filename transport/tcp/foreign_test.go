package tcp

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// A dialed connection that reaches an HTTP server ends with wire.ErrNotRelay
// at its first bytes; the core never sees them as data.
func TestDialedHTTPServerIsNotARelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	defer func() { <-served }()
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(waitLong))
		c.Read(make([]byte, 1)) // until the client closes
	}()
	closed := make(chan error, 1)
	var data []byte
	h := &funcHandler{
		open:   func(c transport.Conn) { c.Send([]byte("COSNIM hello")) },
		data:   func(c transport.Conn, b []byte) { data = append(data, b...) },
		closed: func(c transport.Conn, err error) { closed <- err },
	}
	cl := NewLoop(h, LoopOptions{})
	defer cl.Close()
	cl.Do(func() { cl.Dialer(NetDialer(nil)).Dial(ln.Addr().String()) })
	select {
	case err := <-closed:
		var fe *wire.ForeignError
		if !errors.As(err, &fe) || fe.Kind != wire.ForeignHTTP || !strings.Contains(err.Error(), ln.Addr().String()) {
			t.Errorf("client Closed with %v, want a wire.ForeignError for HTTP naming the address", err)
		}
	case <-time.After(waitLong):
		t.Fatal("client never saw Closed")
	}
	cl.Do(func() {
		if len(data) != 0 {
			t.Errorf("client core got %q as data", data)
		}
	})
}
