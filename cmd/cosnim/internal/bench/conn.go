package bench

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cosnim/relays/internal/wirepeer"
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

// benchAgent names bench clients in Hello. Its length, 10, makes the
// Hello's agent length byte a '\n', so that an HTTP port dialed by mistake
// answers at once (see the CLI's cliAgent).
const benchAgent = "relaybench"

// conn is one bench client: a blocking wire peer on its own socket, which
// costs far less than an agent.Agent.
type conn struct {
	*wirepeer.Peer
	nc        net.Conn      // for the TLS state
	heartbeat time.Duration // how often the relay wants a quiet client to ping
	limits    []wire.Limit  // what the relay advertised in Welcome
	pace      *limitPacer   // keeps sends within limits; nil: unpaced
}

// dial connects, completes TLS (when cfg is not nil), the Hello exchange
// and the join of k's channel under handle 1, all bounded by ctx. readBuf
// sizes the read buffer.
func dial(ctx context.Context, addr string, cfg *tls.Config, readBuf int, k *roster.Keys) (*conn, error) {
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
	c := &conn{Peer: wirepeer.New(nc, readBuf), nc: nc}
	lift := c.Bound(ctx)
	defer lift()
	w, err := c.Handshake(benchAgent)
	if err == nil {
		c.heartbeat = heartbeatOf(w)
		c.limits = w.Limits
		_, err = c.Join(w, k, 1)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// heartbeatOf is the heartbeat interval a Welcome advertises, or the
// protocol's default.
func heartbeatOf(w *wire.Welcome) time.Duration {
	for _, l := range w.Limits {
		if l.Key == wire.LimitHeartbeatMillis && l.Value > 0 {
			return time.Duration(l.Value) * time.Millisecond
		}
	}
	return wire.DefaultHeartbeatMillis * time.Millisecond
}

// relayError returns what an Error frame's payload reports: a
// *wirepeer.RemoteError, or why the payload does not decode.
func relayError(p []byte) error {
	re := &wirepeer.RemoteError{}
	if err := re.Frame.DecodePayload(p); err != nil {
		return err
	}
	return re
}

// fatal reports whether err ends the connection: every error but a
// non-fatal Error frame does.
func fatal(err error) bool {
	var re *wirepeer.RemoteError
	return !errors.As(err, &re) || re.Frame.Fatal()
}

// pong answers a Ping's payload.
func (c *conn) pong(p []byte) {
	if f, err := wirepeer.PongFor(p); err == nil {
		c.Send(f)
	}
}

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

// fill makes a the next Announce frame, of n new entries.
func (s *sealer) fill(a *wire.Announce, n int) error {
	a.Entries = a.Entries[:0]
	for range n {
		sealed, err := s.seal()
		if err != nil {
			return err
		}
		a.Entries = append(a.Entries, sealed)
	}
	a.Seq++
	return nil
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

// channelKeyList derives the keys of bench channels 0..n-1.
func channelKeyList(n int) ([]*roster.Keys, error) {
	keys := make([]*roster.Keys, n)
	for i := range keys {
		var err error
		if keys[i], err = channelKeys(i); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// notice reports an Error frame that tells, not fails: a relay whose cache
// evicted entries (Rescan) still delivers every new one.
func notice(err error) bool {
	var re *wirepeer.RemoteError
	return errors.As(err, &re) && re.Frame.Code == wire.CodeRescan && !re.Frame.Fatal()
}
