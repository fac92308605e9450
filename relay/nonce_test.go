package relay

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// nonceConn is the least transport.Conn these tests need: it keeps the
// bytes the relay sent.
type nonceConn struct {
	name string
	out  []byte
}

var _ transport.Conn = (*nonceConn)(nil)

func (c *nonceConn) Send(b []byte) error { c.out = append(c.out, b...); return nil }
func (c *nonceConn) Queued() int         { return 0 }
func (c *nonceConn) Close()              {}
func (c *nonceConn) RemoteAddr() string  { return c.name }

// take decodes and clears what the relay sent.
func (c *nonceConn) take(t *testing.T) []wire.Frame {
	t.Helper()
	var rd wire.Reader
	var fs []wire.Frame
	err := rd.Feed(c.out, func(ty wire.Type, p []byte) error {
		f, err := wire.Decode(ty, append([]byte(nil), p...))
		fs = append(fs, f)
		return err
	})
	if err != nil || rd.Buffered() != 0 {
		t.Fatalf("%s: relay sent bad bytes: %v", c.name, err)
	}
	c.out = nil
	return fs
}

// greetNonceConn opens a connection and returns its Welcome.
func greetNonceConn(t *testing.T, r *Relay, name string, now time.Time) (*nonceConn, *wire.Welcome) {
	t.Helper()
	c := &nonceConn{name: name}
	r.Open(c, now)
	r.Data(c, wire.Append(nil, &wire.Hello{MinVersion: 1, MaxVersion: wire.Version}), now)
	fs := c.take(t)
	if len(fs) != 1 {
		t.Fatalf("%s: %d frames after Hello, want a Welcome", name, len(fs))
	}
	w, ok := fs[0].(*wire.Welcome)
	if !ok {
		t.Fatalf("%s: got %T after Hello, want a Welcome", name, fs[0])
	}
	return c, w
}

// Every connection gets its own join nonce, drawn from the relay's random
// source; a shared or constant nonce would let a proof from one connection
// serve on all.
func TestJoinNoncePerConnection(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	r, err := New(Config{}, rand.New(rand.NewPCG(7, 8)))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[roster.JoinNonceSize]byte]string{}
	for i := range 256 {
		name := string(rune('a'+i%26)) + string(rune('0'+i/26))
		_, w := greetNonceConn(t, r, name, now)
		if w.Nonce == ([roster.JoinNonceSize]byte{}) {
			t.Fatalf("%s: zero join nonce", name)
		}
		if prev, ok := seen[w.Nonce]; ok {
			t.Fatalf("%s and %s share the join nonce %x", prev, name, w.Nonce)
		}
		seen[w.Nonce] = name
	}
	// The nonces come from the source the relay is handed: another seed,
	// other nonces (so a simulation replays them, and production draws them
	// from crypto/rand through that source).
	other, err := New(Config{}, rand.New(rand.NewPCG(9, 10)))
	if err != nil {
		t.Fatal(err)
	}
	if _, w := greetNonceConn(t, other, "x", now); seen[w.Nonce] != "" {
		t.Fatalf("relays with other seeds drew the same nonce %x", w.Nonce)
	}
}

// A join proof captured on one connection (by the relay's operator, or by
// an on-path observer without TLS) is refused on another, inline and when
// the driver checks proofs.
func TestCapturedJoinProofRefusedElsewhere(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(map[bool]string{false: "inline", true: "async"}[async], func(t *testing.T) {
			now := time.Unix(1_000_000, 0)
			r, err := New(Config{AsyncJoinChecks: async}, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			k, err := roster.DeriveKeys([]byte("secret"), "hub")
			if err != nil {
				t.Fatal(err)
			}
			// check runs the driver's side of async checks.
			check := func() {
				for _, jc := range r.Ready().JoinChecks {
					r.JoinChecked(jc, jc.Verify(), now)
				}
			}
			a, wa := greetNonceConn(t, r, "a", now)
			pub, sig := k.JoinProof(wa.Nonce)
			captured := wire.Append(nil, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig})
			r.Data(a, captured, now)
			check()
			if fs := a.take(t); len(fs) != 1 {
				t.Fatalf("owner: %d frames, want Joined", len(fs))
			} else if _, ok := fs[0].(*wire.Joined); !ok {
				t.Fatalf("owner: got %+v, want Joined", fs[0])
			}

			b, _ := greetNonceConn(t, r, "b", now)
			r.Data(b, captured, now)
			check()
			fs := b.take(t)
			if len(fs) != 1 {
				t.Fatalf("replay: %d frames, want one Error", len(fs))
			}
			e, ok := fs[0].(*wire.Error)
			if !ok || e.Code != wire.CodeJoinDenied || e.Handle != 1 {
				t.Fatalf("replay: got %+v, want Error join denied for handle 1", fs[0])
			}
			// Nothing announced on the channel reaches the replayer.
			ent, err := k.Seal([]byte("capsule/1"))
			if err != nil {
				t.Fatal(err)
			}
			r.Data(a, wire.Append(nil, &wire.Announce{Handle: 1, Seq: 1, Entries: [][]byte{ent.Sealed}}), now)
			for _, f := range b.take(t) {
				if _, ok := f.(*wire.Deliver); ok {
					t.Fatalf("the replayer received %+v", f)
				}
			}
		})
	}
}
