package relay

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport/transporttest"
	"github.com/cosnim/relays/wire"
)

// FuzzRelay feeds arbitrary byte streams, in arbitrary chunks, to a relay
// core over an in-memory connection, after a valid handshake and join. The
// relay must not panic, must never buffer more than a frame, and must keep
// serving a well-behaved member of the same channel.
func FuzzRelay(f *testing.F) {
	k, _ := roster.DeriveKeys([]byte("secret"), "hub")
	e, _ := k.Seal([]byte("capsule"))
	seeds := [][]byte{
		wire.Append(nil, &wire.Announce{Handle: 1, Seq: 1, Entries: [][]byte{e.Sealed}}),
		wire.Append(nil, &wire.Sync{Handle: 1, Session: 1, Msg: roster.SyncMsg{Ranges: []roster.Range{{Mode: roster.ModeFingerprint, FP: roster.Fingerprint{Count: 9}}}}}),
		wire.Append(nil, &wire.Join{Handle: 2}),
		{0xff, 0xff, 0xff, 0xff, 1},
		{0, 0, 0, 1, 0x7f},
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{0x16, 0x03, 0x01, 0x00, 0x10},
	}
	for _, s := range seeds {
		f.Add(s, uint8(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		r, err := New(Config{MaxFrameSize: 4096, MaxEntrySize: 1000}, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1, 0)
		join := func(c *transporttest.Conn) {
			r.Open(c, now)
			r.Data(c, wire.Append(nil, &wire.Hello{MinVersion: 1, MaxVersion: 1}), now)
			var w wire.Welcome
			var rd wire.Reader
			_ = rd.Feed(c.Sent, func(_ wire.Type, p []byte) error { return w.DecodePayload(p) })
			pub, sig := k.JoinProof(w.Nonce)
			r.Data(c, wire.Append(nil, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig}), now)
			c.Sent = nil
		}
		good, bad := &transporttest.Conn{Addr: "good"}, &transporttest.Conn{Addr: "fuzz"}
		join(good)
		join(bad)
		step := int(chunk%64) + 1
		for len(data) > 0 && !bad.Closed {
			n := min(step, len(data))
			r.Data(bad, data[:n], now)
			data = data[n:]
			if c := r.conns[bad]; c != nil && c.rd.Buffered() > 4096 {
				t.Fatalf("relay buffers %d bytes of a partial frame, over the 4096 limit", c.rd.Buffered())
			}
		}
		if good.Closed {
			t.Fatal("a fuzzed member got a well-behaved member closed")
		}
		r.Data(good, wire.Append(nil, &wire.Ping{Data: 5}), now)
		var pong bool
		var rd wire.Reader
		_ = rd.Feed(good.Sent, func(t wire.Type, _ []byte) error {
			pong = pong || t == wire.TypePong
			return nil
		})
		if !pong {
			t.Fatal("the relay stopped answering a well-behaved member")
		}
	})
}
