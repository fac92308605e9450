package transporttest

import (
	"errors"
	"testing"

	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

func TestConnRecordsAndDecodes(t *testing.T) {
	c := &Conn{Addr: "a", Backlog: 7}
	if err := c.Send(wire.Append(wire.Append(nil, &wire.Ping{Data: 1}), &wire.Ack{Handle: 2, Seq: 3})); err != nil {
		t.Fatal(err)
	}
	fs := c.Frames(t)
	if len(fs) != 2 || fs[0].(*wire.Ping).Data != 1 || fs[1].(*wire.Ack).Seq != 3 {
		t.Fatalf("got %+v, want the Ping and the Ack", fs)
	}
	if len(c.Frames(t)) != 0 {
		t.Fatal("Frames did not clear what it decoded")
	}
	if c.Queued() != 7 || c.RemoteAddr() != "a" {
		t.Fatalf("Queued %d, RemoteAddr %q; want 7, a", c.Queued(), c.RemoteAddr())
	}
	c.Close()
	if err := c.Send([]byte{1}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Send after Close: got %v, want transport.ErrClosed", err)
	}
}

func TestConnDiscardCounts(t *testing.T) {
	c := &Conn{Discard: true}
	c.Send(make([]byte, 10))
	c.Send(make([]byte, 5))
	if c.Total != 15 || len(c.Sent) != 0 {
		t.Fatalf("Total %d, kept %d bytes; want 15, 0", c.Total, len(c.Sent))
	}
}
