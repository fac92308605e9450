package hostile

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/secret"
	"github.com/cosnim/relays/internal/testnats"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// cpu is the relay process's CPU time so far (user and system); the
// test skips where /proc cannot tell it.
func (tg *target) cpu(t *testing.T) time.Duration {
	t.Helper()
	d, ok := cpuTime(tg.cmd.Process.Pid)
	if !ok {
		t.Skip("no /proc stat for the relay")
	}
	return d
}

// spy learns, as any NATS user allowed to subscribe could, a channel
// tg holds: the subject of the first entries it publishes.
func spy(t *testing.T, tg *target, nc *natsgo.Conn) (ch, syncSubj string) {
	t.Helper()
	sub, err := nc.SubscribeSync(relay.DefaultBackbonePrefix + ".ch.*")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	m, err := sub.NextMsg(waitTimeout)
	if err != nil {
		st := tg.status(t)
		t.Fatalf("no channel message seen on the backbone: %v; relay: %d channels, backbone %+v", err, st.Channels, *st.Backbone)
	}
	hex := strings.TrimPrefix(m.Subject, relay.DefaultBackbonePrefix+".ch.")
	return m.Subject, relay.DefaultBackbonePrefix + ".sync." + hex
}

// attacker is a NATS user that is not a relay.
func attacker(t *testing.T, url string, opts ...natsgo.Option) *natsgo.Conn {
	t.Helper()
	nc, err := natsgo.Connect(url, append([]natsgo.Option{natsgo.Name("attacker"), natsgo.MaxReconnects(-1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// injection is a well-formed channel message of random entries, as large
// as the relay takes.
func injection() []byte {
	var entries [][]byte
	for size := wire.HeaderSize + 8; size+2+120 < wire.DefaultMaxFrameSize; size += 2 + 120 {
		e := make([]byte, 120)
		rand.Read(e)
		entries = append(entries, e)
	}
	return wire.Append(nil, &wire.Deliver{Entries: entries})
}

// emptyRanges is a sync request of 16 empty ID ranges: "I hold nothing".
func emptyRanges() []byte {
	var msg roster.SyncMsg
	for p := range uint64(16) {
		msg.Ranges = append(msg.Ranges, roster.Range{Node: roster.Node{Depth: 1, Prefix: p}, Mode: roster.ModeIDs})
	}
	return wire.Append(nil, &wire.Sync{Session: 1, Msg: msg})
}

// The flood: floodConns connections, each publishing bigRate 1 MiB
// messages and injectRate valid injections a second at most (a shared
// 2-core machine reaches about this much); and 1,000 sync requests a
// second at most.
const (
	floodConns = 3
	bigRate    = 200
	injectRate = 1000
)

// busFlood is what one flood sent and got back.
type busFlood struct {
	big, injected, requests atomic.Int64
	replies, replyBytes     atomic.Int64
}

// flood publishes, until stop, 1 MiB messages and valid injections on
// the channel subject ch from each of pubs, and sync requests on syncSubj
// from nc, replies asked to inbox; it counts the replies it gets.
func flood(t *testing.T, nc *natsgo.Conn, pubs []*natsgo.Conn, ch, syncSubj, inbox string, stop <-chan struct{}) (*busFlood, func()) {
	t.Helper()
	f := &busFlood{}
	sub, err := nc.Subscribe(inbox, func(m *natsgo.Msg) {
		f.replies.Add(1)
		f.replyBytes.Add(int64(len(m.Data)))
	})
	if err != nil {
		t.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	big := make([]byte, 1<<20)
	rand.Read(big)
	inj, req := injection(), emptyRanges()
	var wg sync.WaitGroup
	send := func(n *atomic.Int64, pace time.Duration, pub func() error) {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if pub() == nil {
					n.Add(1)
				}
				if pace > 0 {
					time.Sleep(pace)
				}
			}
		})
	}
	for _, p := range pubs {
		send(&f.big, time.Second/bigRate, func() error { return p.Publish(ch, big) })
		send(&f.injected, time.Second/injectRate, func() error { return p.Publish(ch, inj) })
	}
	send(&f.requests, time.Millisecond, func() error { return nc.PublishRequest(syncSubj, inbox, req) })
	return f, func() {
		wg.Wait()
		for _, p := range pubs {
			p.Flush()
		}
		nc.Flush()
		sub.Unsubscribe()
	}
}

// A NATS user floods the backbone a relay subscribes to: 1 MiB messages,
// valid injections and sync requests, under a 64 MiB budget. The relay
// drops the oversized messages before queuing them, keeps what waits
// for it within its byte-bounded queue, and its peak RSS within 1.5× the
// budget. How often nats-server cuts it as a slow consumer is reported,
// not asserted: on a shared machine it is a race for CPU between the
// relay's one reader and the attacker's publishers, which the NATS
// configuration of deploy/nats ends (max_payload, accounts).
func TestBusFlood(t *testing.T) {
	const budget = 64 << 20
	ns := testnats.Start(t, testnats.Options(t))
	tg := startRelay(t, relayOptions{backbone: []string{"url: " + ns.URL()}, limits: []string{fmt.Sprintf("memory_budget: %d", budget)}})
	wait := honest(t, tg)
	nc := attacker(t, ns.URL())
	stop := make(chan struct{})
	ch, syncSubj := spy(t, tg, nc)
	cpu0, start := tg.cpu(t), time.Now()
	var pubs []*natsgo.Conn
	for range floodConns {
		pubs = append(pubs, attacker(t, ns.URL()))
	}
	f, done := flood(t, nc, pubs, ch, syncSubj, nc.NewRespInbox(), stop)
	time.Sleep(*duration)
	close(stop)
	done()
	cpu := float64(tg.cpu(t)-cpu0) / float64(time.Since(start))
	st := tg.status(t)
	report(t, "bus flood", tg, wait, 100*time.Millisecond)
	rss := tg.peakRSS(t)
	bb := st.Backbone
	t.Logf("bus flood: sent %d × 1 MiB, %d injections, %d sync requests in %v; got %d replies (%.1f MB); "+
		"relay CPU %.0f%%, peak RSS %.1f MiB (budget %d MiB), accounted %.1f MiB (backbone %.1f); "+
		"nats-server cut it as a slow consumer %d times; relay refused %d oversized, %d over its queue, dropped %d in nats.go; delivered %d, learnt %d entries",
		f.big.Load(), f.injected.Load(), f.requests.Load(), *duration, f.replies.Load(), float64(f.replyBytes.Load())/1e6,
		100*cpu, float64(rss)/(1<<20), budget>>20, float64(st.Memory.Total)/(1<<20), float64(st.Memory.Backbone)/(1<<20),
		ns.NumSlowConsumers(), bb.Oversized, bb.QueueFull, bb.SlowConsumerDrops, bb.Received, bb.EntriesLearnt)
	if bb.Oversized == 0 || st.Memory.Backbone == 0 {
		t.Errorf("relay refused %d oversized messages and accounts %d bytes for its backbone", bb.Oversized, st.Memory.Backbone)
	}
}

// hub is a hub of its own for a bus test: its channel ID and Agents
// joined to it on relays.
type hub struct {
	name   string
	secret []byte
	id     roster.ChannelID
}

func newHub(t *testing.T, name string) *hub {
	t.Helper()
	h := &hub{name: name, secret: []byte("bus test continuum " + name)}
	s, err := secret.Stretch(h.secret)
	if err != nil {
		t.Fatal(err)
	}
	k, err := roster.DeriveKeys(s, name)
	if err != nil {
		t.Fatal(err)
	}
	h.id = k.ID()
	return h
}

func (h *hub) subjects() (ch, syncSubj string) {
	return relay.ChannelSubject(relay.DefaultBackbonePrefix, h.id), relay.SyncSubject(relay.DefaultBackbonePrefix, h.id)
}

// member joins an Agent to h on tg and waits until it is caught up.
func (h *hub) member(t *testing.T, tg *target) *agent.Agent {
	t.Helper()
	a, err := agent.New(agent.Options{Addrs: []string{tg.addr}, Secret: h.secret, Agent: "bus-member"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.Join(h.name); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := a.WaitCaughtUp(ctx, h.name); err != nil {
		t.Fatal(err)
	}
	return a
}

// crossing announces n entries from a and waits until b knows them all:
// the relays of a and b share entries over the backbone.
func (h *hub) crossing(t *testing.T, a, b *agent.Agent, prefix string, n int) {
	t.Helper()
	for i := range n {
		if err := a.Announce(h.name, fmt.Appendf(nil, "%s-%d", prefix, i)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, waitTimeout, fmt.Sprintf("%d entries to cross the backbone", n), func() bool {
		refs, err := b.Known(h.name)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, r := range refs {
			if strings.HasPrefix(string(r), prefix+"-") {
				got++
			}
		}
		return got == n
	})
}

// inbox counts the messages with data that arrive on subjects (not the
// server's empty "no responders" notices).
func inbox(t *testing.T, nc *natsgo.Conn, subjects ...string) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	for _, s := range subjects {
		if _, err := nc.Subscribe(s, func(m *natsgo.Msg) {
			if len(m.Data) > 0 {
				n.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &n
}

// A NATS user names a reply subject that is not an inbox (a channel
// subject the relays subscribe to, or any other): the relay answers
// nothing there, while it answers a request with an inbox.
func TestBusReplySubject(t *testing.T) {
	ns := testnats.Start(t, testnats.Options(t))
	tg := startRelay(t, relayOptions{backbone: []string{"url: " + ns.URL()}})
	h := newHub(t, "replies")
	h.member(t, tg)
	ch, syncSubj := h.subjects()
	nc := attacker(t, ns.URL())
	wrong := inbox(t, nc, ch, "evil.>")
	right := inbox(t, nc, "_INBOX.attacker.>")
	for _, reply := range []string{ch, "evil.x", "_INBOXES.x"} {
		if err := nc.PublishRequest(syncSubj, reply, emptyRanges()); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.PublishRequest(syncSubj, "_INBOX.attacker.1", emptyRanges()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, waitTimeout, "the answer on the inbox", func() bool { return right.Load() == 1 })
	time.Sleep(100 * time.Millisecond) // the others, had they been answered, came first
	st := tg.status(t).Backbone
	t.Logf("reply subjects: %d answers outside inboxes, %d on the inbox; relay refused %d requests for their reply subject",
		wrong.Load(), right.Load(), st.ReplySubject)
	if wrong.Load() != 0 || st.ReplySubject != 3 {
		t.Errorf("%d messages on non-inbox reply subjects, %d requests refused; want 0 and 3", wrong.Load(), st.ReplySubject)
	}
}

// poolKey writes a pool key file.
func poolKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	name := filepath.Join(t.TempDir(), "pool.key")
	if err := os.WriteFile(name, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// With a pool key, two relays share entries over a shared NATS, while a
// NATS user without the key who sees all their traffic injects valid
// frames, forges and replays sealed messages and asks for the cache: no
// entry of its reaches a relay and no request of its is answered.
func TestBusPoolKey(t *testing.T) {
	ns := testnats.Start(t, testnats.Options(t))
	key := poolKey(t)
	bb := []string{"url: " + ns.URL(), "pool_key_file: " + key}
	ra, rb := startRelay(t, relayOptions{backbone: bb}), startRelay(t, relayOptions{backbone: bb})
	h := newHub(t, "keyed")
	ch, syncSubj := h.subjects()

	// The attacker hears everything from the start: entries, requests
	// and replies.
	nc := attacker(t, ns.URL(), natsgo.NoEcho())
	answers := inbox(t, nc, "_INBOX.attacker.>")
	var seen []*natsgo.Msg
	var mu sync.Mutex // guards seen
	for _, s := range []string{relay.DefaultBackbonePrefix + ".>", "_INBOX.>"} {
		if _, err := nc.Subscribe(s, func(m *natsgo.Msg) {
			if len(m.Data) > 0 && !strings.HasPrefix(m.Subject, "_INBOX.attacker.") {
				mu.Lock()
				seen = append(seen, m)
				mu.Unlock()
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	a, b := h.member(t, ra), h.member(t, rb)
	const honestN = 50
	h.crossing(t, a, b, "before", honestN)

	// The attack: replay everything seen (as it was, and with the
	// attacker's inbox), forge, inject, ask.
	mu.Lock()
	captured := slices.Clone(seen)
	mu.Unlock()
	sent := 0
	pub := func(subject, reply string, data []byte) {
		if err := nc.PublishMsg(&natsgo.Msg{Subject: subject, Reply: reply, Data: data}); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	for i, m := range captured {
		pub(m.Subject, m.Reply, m.Data)
		pub(m.Subject, fmt.Sprint("_INBOX.attacker.", i), m.Data)
		forged := slices.Clone(m.Data)
		forged[len(forged)/2] ^= 0xff
		pub(m.Subject, m.Reply, forged)
	}
	for i := range 100 {
		pub(ch, "", injection())
		pub(syncSubj, fmt.Sprint("_INBOX.attacker.q", i), emptyRanges())
	}
	nc.Flush()
	h.crossing(t, a, b, "after", honestN)
	sa, sb := ra.status(t), rb.status(t)
	refused := sa.Backbone.Unauthenticated + sb.Backbone.Unauthenticated
	t.Logf("pool key: attacker sent %d messages (%d captured and replayed, forged, injections, requests); got %d answers; "+
		"relays refused %d as unauthenticated; relay B learnt %d entries from the bus (%d announced on A)",
		sent, len(captured), answers.Load(), refused, sb.Backbone.EntriesLearnt, 2*honestN)
	if answers.Load() != 0 {
		t.Errorf("the attacker got %d answers", answers.Load())
	}
	if sb.Backbone.EntriesLearnt != 2*honestN || sa.Backbone.EntriesLearnt != 0 {
		t.Errorf("relays learnt %d (A) and %d (B) entries from the bus; want 0 and the %d honest ones", sa.Backbone.EntriesLearnt, sb.Backbone.EntriesLearnt, 2*honestN)
	}
	if refused == 0 || !sa.Backbone.Authenticated {
		t.Errorf("relays refused %d messages as unauthenticated (authenticated=%v)", refused, sa.Backbone.Authenticated)
	}
}

// natsConf is the tested NATS configuration for a pool.
const natsConf = "../../deploy/nats/pool.conf"

// The NATS configuration of deploy/nats: relays in an account of their
// own share entries and reconcile; a user of another account cannot
// reach their subjects (its injections and requests go nowhere) and
// cannot publish more than max_payload.
func TestBusAccounts(t *testing.T) {
	pw := map[string]string{"RELAY_EAST_1_PASSWORD": "r1-" + rand.Text(), "RELAY_EAST_2_PASSWORD": "r2-" + rand.Text(), "APP_PASSWORD": "app-" + rand.Text()}
	for k, v := range pw { // sorted: each alone
		t.Setenv(k, v)
	}
	o, err := server.ProcessConfigFile(natsConf)
	if err != nil {
		t.Fatal(err)
	}
	base := testnats.Options(t)
	o.Host, o.Port, o.NoLog, o.NoSigs = base.Host, base.Port, true, true
	ns := testnats.Start(t, o)
	relayAt := func(user, env string) *target {
		return startRelay(t, relayOptions{backbone: []string{"url: " + ns.URL(), "user: " + user, "password: " + pw[env]}})
	}
	ra, rb := relayAt("relay-east-1", "RELAY_EAST_1_PASSWORD"), relayAt("relay-east-2", "RELAY_EAST_2_PASSWORD")
	h := newHub(t, "accounts")
	a, b := h.member(t, ra), h.member(t, rb)
	const honestN = 50
	h.crossing(t, a, b, "before", honestN)

	app := attacker(t, ns.URL(), natsgo.UserInfo("app", pw["APP_PASSWORD"]), natsgo.NoEcho())
	ch, syncSubj := h.subjects()
	heard := inbox(t, app, relay.DefaultBackbonePrefix+".>", "_INBOX.>")
	for i := range 100 {
		if err := app.Publish(ch, injection()); err != nil {
			t.Fatal(err)
		}
		if err := app.PublishRequest(syncSubj, fmt.Sprint("_INBOX.app.", i), emptyRanges()); err != nil {
			t.Fatal(err)
		}
	}
	big := app.Publish(ch, make([]byte, 1<<20))
	app.Flush()
	h.crossing(t, a, b, "after", honestN)
	sa, sb := ra.status(t), rb.status(t)
	t.Logf("accounts: the other account's user heard %d messages or answers; its 1 MiB publish: %v; "+
		"relay B learnt %d entries from the bus (%d announced on A), relays reconciled %d times",
		heard.Load(), big, sb.Backbone.EntriesLearnt, 2*honestN, sa.Backbone.Reconciliations+sb.Backbone.Reconciliations)
	if heard.Load() != 0 {
		t.Errorf("a user of another account heard %d messages of the relays' subjects or answers", heard.Load())
	}
	if sb.Backbone.EntriesLearnt != 2*honestN || sa.Backbone.EntriesLearnt != 0 {
		t.Errorf("relays learnt %d (A) and %d (B) entries from the bus; want 0 and the %d honest ones", sa.Backbone.EntriesLearnt, sb.Backbone.EntriesLearnt, 2*honestN)
	}
	if !errors.Is(big, natsgo.ErrMaxPayload) {
		t.Errorf("a 1 MiB publish: %v, want refused over max_payload", big)
	}
}
