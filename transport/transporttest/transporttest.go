// Package transporttest holds a recording transport.Conn for core tests:
// it keeps what a core sends and decodes it into frames.
package transporttest

import (
	"bytes"
	"testing"

	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// Conn records what is sent on it. Its zero value is ready to use.
type Conn struct {
	Addr     string // what RemoteAddr reports
	MaxFrame int    // if set, Frames refuses larger frames
	Backlog  int    // what Queued reports; set it to play a slow reader
	Discard  bool   // count sent bytes without keeping them (benchmarks)

	Sent   []byte // bytes sent since the last Frames
	Total  int    // bytes sent in all
	Closed bool   // Close was called
}

var _ transport.Conn = (*Conn)(nil)

// Send records b; it fails with transport.ErrClosed after Close.
func (c *Conn) Send(b []byte) error {
	if c.Closed {
		return transport.ErrClosed
	}
	c.Total += len(b)
	if !c.Discard {
		c.Sent = append(c.Sent, b...)
	}
	return nil
}

// Queued reports Backlog.
func (c *Conn) Queued() int { return c.Backlog }

// Close marks c closed.
func (c *Conn) Close() { c.Closed = true }

// RemoteAddr reports Addr.
func (c *Conn) RemoteAddr() string { return c.Addr }

// Frames decodes and clears what was sent on c. It fails t on bytes that
// are not whole frames of known types.
func (c *Conn) Frames(t testing.TB) []wire.Frame {
	t.Helper()
	rd := wire.Reader{Max: c.MaxFrame}
	var got []wire.Frame
	err := rd.Feed(c.Sent, func(ty wire.Type, p []byte) error {
		f, err := wire.Decode(ty, bytes.Clone(p))
		if err != nil {
			return err
		}
		got = append(got, f)
		return nil
	})
	if err != nil {
		t.Fatalf("%s: sent undecodable bytes: %v", c.Addr, err)
	}
	if rd.Buffered() != 0 {
		t.Fatalf("%s: sent a partial frame", c.Addr)
	}
	c.Sent = nil
	return got
}
