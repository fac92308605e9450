package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// Entry layout: the sealed bytes are a 12-byte nonce, the reference and a
// 16-byte tag; the reference starts with refHeader bytes: publish time
// (u64 nanoseconds since the run's start), publisher (u32), sequence (u64).
const (
	sealOverhead = 28
	refHeader    = 20
)

// errRelay reports an Error frame from the relay.
type errRelay struct{ f wire.Error }

func (e *errRelay) Error() string {
	return fmt.Sprintf("relay error %d: %s", e.f.Code, e.f.Text)
}

// wconn is one bench client: a blocking frame reader and writer over a
// net.Conn, speaking the wire protocol directly.
type wconn struct {
	nc    net.Conn
	br    *bufio.Reader
	buf   []byte // the last frame read; valid until the next read
	out   []byte // encoding scratch
	epoch uint64
	nonce [roster.JoinNonceSize]byte
	max   int
}

// dialWire connects, completes TLS (when cfg is not nil) and the Hello
// exchange. readBuf sizes the read buffer.
func dialWire(ctx context.Context, addr string, cfg *tls.Config, readBuf int) (*wconn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	c := &wconn{nc: nc, br: bufio.NewReaderSize(nc, readBuf), max: wire.DefaultMaxFrameSize}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
		defer nc.SetDeadline(time.Time{})
	}
	if err := c.send(&wire.Hello{MinVersion: 1, MaxVersion: wire.Version, Agent: "cosnim-bench"}); err != nil {
		nc.Close()
		return nil, err
	}
	var w wire.Welcome
	if err := c.expect(wire.TypeWelcome, &w); err != nil {
		nc.Close()
		return nil, err
	}
	c.epoch, c.nonce = w.Epoch, w.Nonce
	for _, l := range w.Limits {
		if l.Key == wire.LimitMaxFrameSize {
			c.max = int(l.Value)
		}
	}
	return c, nil
}

// join joins the channel of k under handle and waits for Joined.
func (c *wconn) join(k *roster.Keys, handle uint32) (wire.Joined, error) {
	pub, sig := k.JoinProof(c.nonce)
	var j wire.Joined
	if err := c.send(&wire.Join{Handle: handle, Channel: k.ID(), Pub: pub, Sig: sig}); err != nil {
		return j, err
	}
	err := c.expect(wire.TypeJoined, &j)
	return j, err
}

// expect reads frames until one of type t, skipping pings (answered) and
// failing on an Error frame.
func (c *wconn) expect(t wire.Type, f wire.Frame) error {
	for {
		ft, p, err := c.next()
		if err != nil {
			return err
		}
		switch ft {
		case t:
			return f.DecodePayload(p)
		case wire.TypeError:
			var e wire.Error
			if err := e.DecodePayload(p); err != nil {
				return err
			}
			return &errRelay{e}
		case wire.TypePing:
			if err := c.pong(p); err != nil {
				return err
			}
		}
	}
}

func (c *wconn) pong(p []byte) error {
	var f wire.Ping
	if err := f.DecodePayload(p); err != nil {
		return err
	}
	return c.send(&wire.Pong{Data: f.Data})
}

// next reads one frame. The payload is valid until the next call.
func (c *wconn) next() (wire.Type, []byte, error) {
	var hdr [wire.HeaderSize]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := int(binary.BigEndian.Uint32(hdr[:])) + 4
	if size < wire.HeaderSize || size > c.max {
		return 0, nil, fmt.Errorf("bench: bad frame length %d", size)
	}
	n := size - wire.HeaderSize
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	c.buf = c.buf[:n]
	if _, err := io.ReadFull(c.br, c.buf); err != nil {
		return 0, nil, err
	}
	return wire.Type(hdr[4]), c.buf, nil
}

// send encodes and writes f.
func (c *wconn) send(f wire.Frame) error {
	c.out = wire.Append(c.out[:0], f)
	_, err := c.nc.Write(c.out)
	return err
}

func (c *wconn) close() { c.nc.Close() }

// sealer makes timestamped entries for one publisher.
type sealer struct {
	k     *roster.Keys
	start time.Time
	pub   uint32
	seq   uint64
	ref   []byte
}

func newSealer(k *roster.Keys, start time.Time, pub uint32, size int) *sealer {
	return &sealer{k: k, start: start, pub: pub, ref: make([]byte, size-sealOverhead)}
}

// seal returns a new entry stamped with the current time.
func (s *sealer) seal() ([]byte, error) {
	s.seq++
	binary.BigEndian.PutUint64(s.ref[0:], uint64(time.Since(s.start)))
	binary.BigEndian.PutUint32(s.ref[8:], s.pub)
	binary.BigEndian.PutUint64(s.ref[12:], s.seq)
	e, err := s.k.Seal(s.ref)
	return e.Sealed, err
}

// stampOf opens a sealed entry and returns its publish time since start.
func stampOf(k *roster.Keys, sealed []byte) (time.Duration, error) {
	ref, err := k.Open(roster.Entry{Sealed: sealed})
	if err != nil {
		return 0, err
	}
	if len(ref) < refHeader {
		return 0, errors.New("bench: entry too short for a timestamp")
	}
	return time.Duration(binary.BigEndian.Uint64(ref)), nil
}

// channelKeys derives the keys of bench channel i.
func channelKeys(i int) (*roster.Keys, error) {
	return roster.DeriveKeys([]byte("cosnim bench secret"), fmt.Sprintf("bench-hub-%d", i))
}
