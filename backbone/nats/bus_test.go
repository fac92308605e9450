package nats

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cosnim/relays/backbone"
	"github.com/cosnim/relays/internal/testnats"
	"github.com/cosnim/relays/internal/testutil"
)

// within bounds every wait of these tests.
const within = 5 * time.Second

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, within, what, cond)
}

// event is one Handler call seen by a fakeCore.
type event struct {
	kind    string // "msg", "resp", "state"
	subject string
	reply   string
	data    string
	id      uint64
	err     error
	up      bool
}

// fakeCore stands for the relay core: one lock is its event context, and
// it checks that the driver calls it only through run, never inside a
// call the core is making.
type fakeCore struct {
	t       *testing.T
	mu      sync.Mutex // the event context; guards the following
	calling bool       // the core is inside a Bus method
	inEvent bool       // run is executing an event
	events  chan event
}

func newCore(t *testing.T) *fakeCore {
	return &fakeCore{t: t, events: make(chan event, 1000)}
}

func (c *fakeCore) run(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inEvent = true
	f()
	c.inEvent = false
}

// call runs f as the core would call the Bus: inside an event.
func (c *fakeCore) call(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calling = true
	f()
	c.calling = false
}

func (c *fakeCore) record(e event) {
	if c.calling || !c.inEvent {
		c.t.Errorf("%s delivered outside the core's event context (calling=%v inEvent=%v)", e.kind, c.calling, c.inEvent)
	}
	c.events <- e
}

func (c *fakeCore) Message(m backbone.Msg, _ time.Time) {
	c.record(event{kind: "msg", subject: m.Subject, reply: m.Reply, data: string(m.Data)})
}

func (c *fakeCore) Response(id uint64, data []byte, err error, _ time.Time) {
	c.record(event{kind: "resp", id: id, data: string(data), err: err})
}

func (c *fakeCore) BusState(up bool, _ time.Time) { c.record(event{kind: "state", up: up}) }

// next returns the next event, failing after within.
func (c *fakeCore) next(t *testing.T, what string) event {
	t.Helper()
	select {
	case e := <-c.events:
		return e
	case <-time.After(within):
		t.Fatalf("no event within %v waiting for %s", within, what)
		return event{}
	}
}

// expect returns the next event, which must be of kind.
func (c *fakeCore) expect(t *testing.T, kind string) event {
	t.Helper()
	e := c.next(t, kind)
	if e.kind != kind {
		t.Fatalf("got event %+v, want a %s", e, kind)
	}
	return e
}

// quiet fails if an event arrives within d.
func (c *fakeCore) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case e := <-c.events:
		t.Fatalf("unexpected event %+v", e)
	case <-time.After(d):
	}
}

// startBus builds and starts a Bus on url and waits for it to be up.
func startBus(t *testing.T, o Options) (*Bus, *fakeCore) {
	t.Helper()
	b, c := newBus(t, o)
	if e := c.expect(t, "state"); !e.up {
		t.Fatalf("first state is down, want up")
	}
	return b, c
}

func newBus(t *testing.T, o Options) (*Bus, *fakeCore) {
	t.Helper()
	if o.ReconnectMax == 0 {
		o.ReconnectMin, o.ReconnectMax = 20*time.Millisecond, 100*time.Millisecond
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	c := newCore(t)
	b.Start(c, c.run)
	t.Cleanup(b.Close)
	return b, c
}

func TestRoundTrips(t *testing.T) {
	srv := testnats.Start(t, testnats.Options(t))
	a, ca := startBus(t, Options{URLs: []string{srv.URL()}, Name: "a"})
	b, cb := startBus(t, Options{URLs: []string{srv.URL()}, Name: "b", RequestTimeout: 300 * time.Millisecond})

	ca.call(func() { a.Subscribe("cosnim.ch"); a.Subscribe("cosnim.ch"); a.Subscribe("cosnim.svc") })
	cb.call(func() { b.Subscribe("cosnim.ch") })
	a.waitSubscribed(t, 2)
	b.waitSubscribed(t, 1)

	// Publish reaches the other subscriber, and only once though a
	// subscribed twice.
	cb.call(func() { b.Publish("cosnim.ch", []byte("from b")) })
	if e := ca.expect(t, "msg"); e.subject != "cosnim.ch" || e.data != "from b" || e.reply != "" {
		t.Fatalf("a got %+v", e)
	}
	// No echo: b's own publish was routed (a got it) before a publishes
	// the mark, so with echo b would see "from b" first.
	ca.call(func() { a.Publish("cosnim.ch", []byte("mark")) })
	if e := cb.expect(t, "msg"); e.data != "mark" {
		t.Fatalf("b got %q first, want the mark (its own publish echoed?)", e.data)
	}

	// Request and Respond.
	buf := []byte("question")
	cb.call(func() { b.Request("cosnim.svc", buf, 7); copy(buf, "XXXXXXXX") }) // the Bus copied it
	q := ca.expect(t, "msg")
	if q.data != "question" || q.reply == "" {
		t.Fatalf("a got request %+v", q)
	}
	ca.call(func() { a.Respond(q.reply, []byte("answer")) })
	if e := cb.expect(t, "resp"); e.id != 7 || e.data != "answer" || e.err != nil {
		t.Fatalf("b got %+v, want response 7 \"answer\"", e)
	}
	// Further replies within ReplyWindow of the first arrive too; later
	// ones do not.
	ca.call(func() { a.Respond(q.reply, []byte("second")) })
	if e := cb.expect(t, "resp"); e.id != 7 || e.data != "second" || e.err != nil {
		t.Fatalf("b got %+v, want response 7 \"second\" within the reply window", e)
	}
	time.Sleep(backbone.ReplyWindow + 50*time.Millisecond)
	ca.call(func() { a.Respond(q.reply, []byte("late")) })
	cb.quiet(t, 100*time.Millisecond)

	// Nobody subscribes: NATS says so at once.
	cb.call(func() { b.Request("cosnim.nobody", []byte("?"), 8) })
	if e := cb.expect(t, "resp"); e.id != 8 || !errors.Is(e.err, backbone.ErrNoResponders) {
		t.Fatalf("got %+v, want response 8 with ErrNoResponders", e)
	}

	// A subscriber that never answers: the request times out.
	start := time.Now()
	cb.call(func() { b.Request("cosnim.svc", []byte("?"), 9) })
	ca.expect(t, "msg")
	if e := cb.expect(t, "resp"); e.id != 9 || !errors.Is(e.err, backbone.ErrTimeout) {
		t.Fatalf("got %+v, want response 9 with ErrTimeout", e)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("timed out after %v, before RequestTimeout", d)
	}

	// Unsubscribe stops delivery.
	ca.call(func() { a.Unsubscribe("cosnim.ch") })
	a.waitSubscribed(t, 1)
	cb.call(func() { b.Publish("cosnim.ch", []byte("late")) })
	ca.quiet(t, 100*time.Millisecond)

	st := b.Stats()
	if st.Published < 3 || st.Received != 1 || st.RequestsNoResponders != 1 || st.RequestsTimeout != 1 || !st.Connected || st.URL != srv.URL() {
		t.Errorf("b stats %+v", st)
	}
}

func TestRequestWhileDown(t *testing.T) {
	// Nothing listens: the bus stays down and fails requests at once.
	b, c := newBus(t, Options{URLs: []string{"nats://" + testutil.FreeAddr(t)}})
	c.call(func() { b.Request("cosnim.svc", []byte("?"), 3); b.Publish("cosnim.ch", []byte("x")) })
	if e := c.expect(t, "resp"); e.id != 3 || !errors.Is(e.err, backbone.ErrDown) {
		t.Fatalf("got %+v, want response 3 with ErrDown", e)
	}
	if st := b.Stats(); st.Dropped != 1 || st.RequestsDown != 1 || st.Connected {
		t.Errorf("stats %+v, want 1 dropped publish and 1 request failed down", st)
	}
}

func TestReconnect(t *testing.T) {
	srv := testnats.Start(t, testnats.Options(t))
	a, ca := startBus(t, Options{URLs: []string{srv.URL()}})
	b, cb := startBus(t, Options{URLs: []string{srv.URL()}})
	ca.call(func() { a.Subscribe("cosnim.ch") })
	a.waitSubscribed(t, 1)

	srv.Stop()
	if e := ca.expect(t, "state"); e.up {
		t.Fatal("a: got up after the server stopped")
	}
	if e := cb.expect(t, "state"); e.up {
		t.Fatal("b: got up after the server stopped")
	}
	cb.call(func() { b.Request("cosnim.ch", nil, 1) })
	if e := cb.expect(t, "resp"); !errors.Is(e.err, backbone.ErrDown) {
		t.Fatalf("request while down: %+v, want ErrDown", e)
	}
	srv.Restart()
	if e := ca.expect(t, "state"); !e.up {
		t.Fatal("a: not up after the server restarted")
	}
	if e := cb.expect(t, "state"); !e.up {
		t.Fatal("b: not up after the server restarted")
	}
	// a's subscription was restored by the driver (nats.go resends it;
	// the server may see b's publish first, so b repeats it).
	publishUntil(t, b, cb, "cosnim.ch", "after", ca)
	if st := a.Stats(); st.Reconnects != 1 || st.Disconnects != 1 || st.Connects != 1 {
		t.Errorf("a stats %+v, want 1 connect, 1 disconnect, 1 reconnect", st)
	}
}

func TestCluster(t *testing.T) {
	nodes := testnats.Cluster(t, 3)
	var buses []*Bus
	var cores []*fakeCore
	for i, n := range nodes {
		b, c := startBus(t, Options{URLs: []string{n.URL()}, Name: fmt.Sprintf("relay-%d", i+1)})
		buses, cores = append(buses, b), append(cores, c)
	}
	for i := 1; i < 3; i++ {
		cores[i].call(func() { buses[i].Subscribe("cosnim.ch") })
		buses[i].waitSubscribed(t, 1)
	}
	// Interest crosses the routes asynchronously: node 1 publishes until
	// both remote subscribers have a message.
	publishUntil(t, buses[0], cores[0], "cosnim.ch", "via node 1", cores[1], cores[2])
}

// publishUntil publishes data on subject from b every 50ms until every
// one of subs has received it, failing after within; each sub must see
// nothing else.
func publishUntil(t *testing.T, b *Bus, c *fakeCore, subject, data string, subs ...*fakeCore) {
	t.Helper()
	got := make([]bool, len(subs))
	deadline := time.Now().Add(within)
	for slices.Contains(got, false) {
		if time.Now().After(deadline) {
			t.Fatalf("within %v, subscribers that got %q: %v", within, data, got)
		}
		c.call(func() { b.Publish(subject, []byte(data)) })
		for i, s := range subs {
			select {
			case e := <-s.events:
				if e.kind != "msg" || e.data != data || e.subject != subject {
					t.Fatalf("subscriber %d got %+v", i, e)
				}
				got[i] = true
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

func TestTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, dir)
	o := testnats.Options(t)
	o.TLSConfig = pki.serverTLS(t)
	o.TLSVerify = true
	o.Username, o.Password = "relay", "s3cret"
	srv := testnats.Start(t, o)

	b, c := startBus(t, Options{URLs: []string{srv.URL()}, CACertFile: pki.ca, CertFile: pki.cert, KeyFile: pki.key,
		User: "relay", Password: "s3cret"})
	c.call(func() { b.Request("cosnim.nobody", nil, 1) })
	if e := c.expect(t, "resp"); !errors.Is(e.err, backbone.ErrNoResponders) {
		t.Fatalf("over TLS: %+v", e)
	}

	// A wrong password: never up, and the reason is in the stats and logs.
	var logs testutil.SyncBuffer
	bad, badCore := newBus(t, Options{URLs: []string{srv.URL()}, CACertFile: pki.ca, CertFile: pki.cert, KeyFile: pki.key,
		User: "relay", Password: "wrong", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	waitFor(t, "the refused login reported", func() bool {
		return strings.Contains(strings.ToLower(bad.Stats().LastError), "authorization violation")
	})
	if !strings.Contains(strings.ToLower(logs.String()), "authorization violation") {
		t.Errorf("logs do not name the refused login:\n%s", logs.String())
	}
	badCore.quiet(t, 50*time.Millisecond)

	// Without the CA the server's certificate is refused.
	untrusted, _ := newBus(t, Options{URLs: []string{srv.URL()}, User: "relay", Password: "s3cret"})
	waitFor(t, "the unknown CA reported", func() bool {
		return strings.Contains(untrusted.Stats().LastError, "certificate")
	})
}

func TestNewRefuses(t *testing.T) {
	for name, o := range map[string]Options{ // sorted: each case alone
		"no url":      {},
		"bad scheme":  {URLs: []string{"http://127.0.0.1:4222"}},
		"credentials": {URLs: []string{"nats://u:p@127.0.0.1:4222"}},
		"missing ca":  {URLs: []string{"tls://127.0.0.1:4222"}, CACertFile: "/nonexistent/ca.pem"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

func TestReconnectDelay(t *testing.T) {
	b := &Bus{opt: Options{ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second}}
	want := []time.Duration{100, 100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.reconnectDelay(i); got != w*time.Millisecond {
			t.Errorf("attempt %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
}

// TestBoundedQueues: a core that takes nothing makes the Bus drop what
// passes its receive queue's bytes (counted) instead of stalling the
// connection, and what does not fit the outbox is dropped and counted,
// not queued without bound.
func TestBoundedQueues(t *testing.T) {
	srv := testnats.Start(t, testnats.Options(t))
	const pending = 8 << 10
	a, ca := startBus(t, Options{URLs: []string{srv.URL()}, PendingBytes: pending})
	b, cb := startBus(t, Options{URLs: []string{srv.URL()}, OutboxBytes: 4096})
	ca.call(func() { a.Subscribe("cosnim.ch") })
	a.waitSubscribed(t, 1)

	ca.mu.Lock() // the core is busy: a's reader cannot deliver
	busy := true
	t.Cleanup(func() { // before a closes, which waits for the delivery
		if busy {
			ca.mu.Unlock()
		}
	})
	payload := strings.Repeat("x", 1000)
	for range 50 {
		cb.call(func() { b.Publish("cosnim.ch", []byte(payload)) })
		time.Sleep(time.Millisecond) // a few turns of b's writer, so none is dropped by b
	}
	waitFor(t, "receive-queue drops", func() bool { return a.Stats().QueueFull > 0 })
	waitFor(t, "all 50 taken or refused", func() bool {
		st := a.Stats()
		return st.QueueFull+uint64(st.PendingBytes/int64(1000+len("cosnim.ch")+msgOverhead)) >= 49
	})
	if st := a.Stats(); st.PendingBytes > pending || st.SlowConsumer != 0 {
		t.Errorf("a stats %+v: want at most %d bytes pending and no slow consumer", st, pending)
	}
	busy = false
	ca.mu.Unlock()
	got := 0 // deliveries trickle out one by one: drain until none comes for a while
	for drained := false; !drained; {
		select {
		case e := <-ca.events:
			if e.kind != "msg" || e.data != payload {
				t.Fatalf("a got %+v", e)
			}
			got++
		case <-time.After(200 * time.Millisecond):
			drained = true
		}
	}
	fit := pending / (1000 + len("cosnim.ch") + msgOverhead)
	if st := a.Stats(); got > fit || got+int(st.QueueFull) != 50 {
		t.Errorf("a delivered %d and refused %d of 50; at most %d fit the queue with the batch the core held", got, st.QueueFull, fit)
	}
	waitFor(t, "b's 50 publishes handed to NATS", func() bool { return b.Stats().Published == 50 })
	if st := b.Stats(); st.Dropped != 0 {
		t.Errorf("b stats %+v, want none dropped", st)
	}

	cb.call(func() { b.Publish("cosnim.ch", make([]byte, 8192)) })
	if st := b.Stats(); st.Dropped != 1 {
		t.Errorf("a publish larger than the outbox: dropped %d, want 1", st.Dropped)
	}
}
