package nats

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/cosnim/relays/internal/testnats"
)

// rawConn is a NATS user that is not a relay.
func rawConn(t *testing.T, url string) *natsgo.Conn {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func mustFlush(t *testing.T, nc *natsgo.Conn) {
	t.Helper()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// A message over MaxMessage is dropped before it is queued, and counted;
// one at the limit passes.
func TestOversizedDropped(t *testing.T) {
	srv := testnats.Start(t, testnats.Options(t))
	b, c := startBus(t, Options{URLs: []string{srv.URL()}, MaxMessage: 1000})
	c.call(func() { b.Subscribe("cosnim.ch") })
	b.waitSubscribed(t, 1)
	nc := rawConn(t, srv.URL())
	nc.Publish("cosnim.ch", make([]byte, 1001))
	nc.Publish("cosnim.ch", make([]byte, 1<<20))
	nc.Publish("cosnim.ch", []byte(strings.Repeat("k", 1000)))
	mustFlush(t, nc)
	if e := c.expect(t, "msg"); len(e.data) != 1000 {
		t.Fatalf("got a message of %d bytes first, want the one of 1000", len(e.data))
	}
	c.quiet(t, 50*time.Millisecond)
	if st := b.Stats(); st.Oversized != 2 || st.Received != 1 {
		t.Errorf("stats %+v: want 2 oversized refused, 1 received", st)
	}
}

// A request naming a reply subject outside the inboxes never reaches the
// core, so no relay answers on, say, a channel subject; and Respond does
// not publish outside them either.
func TestReplyOnlyToInboxes(t *testing.T) {
	srv := testnats.Start(t, testnats.Options(t))
	b, c := startBus(t, Options{URLs: []string{srv.URL()}})
	c.call(func() { b.Subscribe("cosnim.sync.x") })
	b.waitSubscribed(t, 1)
	nc := rawConn(t, srv.URL())
	evil, err := nc.SubscribeSync("cosnim.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.PublishRequest("cosnim.sync.x", "cosnim.ch.victim", []byte("q1"))
	nc.PublishRequest("cosnim.sync.x", "_INBOXX.y", []byte("q2"))
	nc.PublishRequest("cosnim.sync.x", "_INBOX.attacker.1", []byte("q3"))
	mustFlush(t, nc)
	if e := c.expect(t, "msg"); e.data != "q3" || e.reply != "_INBOX.attacker.1" {
		t.Fatalf("core got %+v first, want the request with an inbox", e)
	}
	c.quiet(t, 50*time.Millisecond)
	if st := b.Stats(); st.ReplySubject != 2 {
		t.Errorf("stats %+v: want 2 refused for their reply subject", st)
	}
	c.call(func() { b.Respond("cosnim.ch.victim", []byte("answer")) })
	mustFlush(t, nc)
	for {
		m, err := evil.NextMsg(50 * time.Millisecond)
		if errors.Is(err, natsgo.ErrTimeout) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == "cosnim.ch.victim" {
			t.Fatalf("the Bus published %q on %s", m.Data, m.Subject)
		}
	}
	if st := b.Stats(); st.Dropped != 1 {
		t.Errorf("Respond to a channel subject: dropped %d, want 1", st.Dropped)
	}
}

// writeKey writes a pool key file.
func writeKey(t *testing.T, dir, name, key string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const testKey = "kR4pX9wQ2vL7mN0sT5yB8cF1gH6jD3zA+e/U="

func TestLoadPoolKey(t *testing.T) {
	dir := t.TempDir()
	for name, tt := range map[string]struct { // sorted: each case alone
		key  string
		weak bool
	}{
		"random":     {key: testKey},
		"short":      {key: "correct horse battery", weak: true},
		"repetitive": {key: strings.Repeat("ab", 32), weak: true},
		"zeros":      {key: strings.Repeat("0", 64), weak: true},
	} {
		_, err := LoadPoolKey(writeKey(t, dir, name, tt.key))
		if got := errors.Is(err, ErrWeakPoolKey); got != tt.weak || (err != nil && !tt.weak) {
			t.Errorf("%s: LoadPoolKey = %v, want weak=%v", name, err, tt.weak)
		}
	}
	if _, err := LoadPoolKey(dir); err == nil {
		t.Error("a directory was taken as a pool key")
	}
	if _, err := New(Options{URLs: []string{"nats://127.0.0.1:1"}, PoolKeyFile: writeKey(t, dir, "w", "short")}); !errors.Is(err, ErrWeakPoolKey) {
		t.Errorf("New with a short pool key: %v, want ErrWeakPoolKey", err)
	}
}

// With a pool key, relays holding it talk as before; a NATS user without
// it can neither inject (unsealed, forged, replayed, moved to another
// subject or reply) nor get an answer to a request of its own.
func TestPoolKey(t *testing.T) {
	srv := testnats.Start(t, testnats.Options(t))
	dir := t.TempDir()
	key := writeKey(t, dir, "pool.key", testKey)
	a, ca := startBus(t, Options{URLs: []string{srv.URL()}, PoolKeyFile: key})
	b, cb := startBus(t, Options{URLs: []string{srv.URL()}, PoolKeyFile: key})
	other, co := startBus(t, Options{URLs: []string{srv.URL()}, PoolKeyFile: writeKey(t, dir, "other.key", "Zq8"+testKey[3:])})
	ca.call(func() { a.Subscribe("cosnim.ch.x"); a.Subscribe("cosnim.sync.x") })
	a.waitSubscribed(t, 2)
	spy := rawConn(t, srv.URL())
	seen, err := spy.SubscribeSync("cosnim.>")
	if err != nil {
		t.Fatal(err)
	}
	mustFlush(t, spy)

	// Holders of the key: publish and request/reply work.
	cb.call(func() { b.Publish("cosnim.ch.x", []byte("entries")) })
	if e := ca.expect(t, "msg"); e.data != "entries" {
		t.Fatalf("a got %+v", e)
	}
	cb.call(func() { b.Request("cosnim.sync.x", []byte("question"), 1) })
	q := ca.expect(t, "msg")
	if q.data != "question" {
		t.Fatalf("a got request %+v", q)
	}
	ca.call(func() { a.Respond(q.reply, []byte("answer")) })
	if e := cb.expect(t, "resp"); e.id != 1 || e.data != "answer" {
		t.Fatalf("b got %+v", e)
	}
	// What the spy saw is sealed: the payload with an envelope.
	pub, err := seen.NextMsg(within)
	if err != nil {
		t.Fatal(err)
	}
	req, err := seen.NextMsg(within)
	if err != nil {
		t.Fatal(err)
	}
	if len(pub.Data) != len("entries")+AuthOverhead || req.Reply == "" {
		t.Fatalf("spy saw %q (%d bytes) and a request with reply %q", pub.Data, len(pub.Data), req.Reply)
	}

	// Outsiders: none of these reaches a's core.
	forged := append([]byte(nil), pub.Data...)
	forged[authHeader] ^= 1
	spy.Publish("cosnim.ch.x", []byte("unsealed"))
	spy.Publish("cosnim.ch.x", forged)
	spy.Publish("cosnim.ch.x", pub.Data)                          // replayed
	spy.Publish("cosnim.sync.x", pub.Data)                        // moved to another subject
	spy.PublishRequest("cosnim.sync.x", "_INBOX.spy.1", req.Data) // moved to another reply
	spy.PublishRequest("cosnim.sync.x", "_INBOX.spy.2", []byte("an outsider's request"))
	mustFlush(t, spy)
	co.call(func() { other.Publish("cosnim.ch.x", []byte("other pool")) })
	ca.quiet(t, 100*time.Millisecond)
	if st := a.Stats(); st.Unauthenticated != 7 || !st.Authenticated {
		t.Errorf("a stats %+v: want 7 refused as unauthenticated", st)
	}
	// A replay of the request as it was: still refused.
	spy.PublishRequest("cosnim.sync.x", req.Reply, req.Data)
	mustFlush(t, spy)
	ca.quiet(t, 50*time.Millisecond)
	if st := a.Stats(); st.Unauthenticated != 8 {
		t.Errorf("a replayed request: %d refused in all, want 8", st.Unauthenticated)
	}
	// And a's traffic still flows.
	cb.call(func() { b.Publish("cosnim.ch.x", []byte("more")) })
	if e := ca.expect(t, "msg"); e.data != "more" {
		t.Fatalf("a got %+v", e)
	}
}

// The envelope: the replay window takes each counter of a sender once, in any order
// within replayWindow, and nothing older.
func TestAuthEnvelope(t *testing.T) {
	a := newAuth([]byte(testKey))
	s := [8]byte{1}
	now := time.Now()
	for _, tt := range []struct {
		ctr  uint64
		want bool
	}{
		{10, true}, {10, false}, {12, true}, {11, true}, {11, false},
		{12 + replayWindow, true}, {12, false}, {13, true}, {1000, true}, {13 + replayWindow, false},
	} {
		if got := a.fresh(s, tt.ctr, now); got != tt.want {
			t.Errorf("counter %d: fresh = %v, want %v", tt.ctr, got, tt.want)
		}
	}
	// A sealed message older than AuthMaxAge is refused even unseen.
	msg := a.seal("s", "", []byte("p"), now.Add(-AuthMaxAge-time.Second))
	if _, err := a.open("s", "", msg, now); !errors.Is(err, ErrStale) {
		t.Errorf("open of an old message: %v, want ErrStale", err)
	}
	// The subject and reply are authenticated: a message moved to another
	// is refused by a receiver that never saw it.
	msg = a.seal("cosnim.sync.x", "_INBOX.a", []byte("p"), now)
	for _, to := range [][2]string{{"cosnim.sync.y", "_INBOX.a"}, {"cosnim.sync.x", "_INBOX.b"}, {"cosnim.sync.x", ""}} {
		if _, err := newAuth([]byte(testKey)).open(to[0], to[1], msg, now); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("open moved to %q reply %q: %v, want ErrUnauthenticated", to[0], to[1], err)
		}
	}
	if p, err := newAuth([]byte(testKey)).open("cosnim.sync.x", "_INBOX.a", msg, now); err != nil || string(p) != "p" {
		t.Errorf("open = %q, %v", p, err)
	}
}
