package client_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/internal/fault/registry"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// poolWorld is a simulated network of real relay cores and pool members.
type poolWorld struct {
	t      *testing.T
	net    *netsim.Network
	names  []string
	relays map[string]*relay.Relay
	keys   *roster.Keys
}

const testHysteresis = 5 * time.Second

func newPoolWorld(t *testing.T, n int) *poolWorld {
	t.Helper()
	w := &poolWorld{t: t, net: netsim.New(7, netsim.Options{}), relays: map[string]*relay.Relay{}}
	for i := range n {
		name := fmt.Sprintf("r%d", i+1)
		w.names = append(w.names, name)
		w.net.AddNode(name)
		w.startRelay(name)
	}
	k, err := roster.DeriveKeys([]byte("pool secret"), "hub")
	if err != nil {
		t.Fatal(err)
	}
	w.keys = k
	return w
}

func addrOf(name string) string { return name + ":7420" }

// newBackbonePool is newPoolWorld with the relays on a simulated backbone.
func newBackbonePool(t *testing.T, n int) *poolWorld {
	t.Helper()
	w := &poolWorld{t: t, net: netsim.New(7, netsim.Options{}), relays: map[string]*relay.Relay{}}
	bus := w.net.NewBus("nats", netsim.BusOptions{})
	for i := range n {
		name := fmt.Sprintf("r%d", i+1)
		w.names = append(w.names, name)
		nd := w.net.AddNode(name)
		port := bus.Attach(nd)
		r, err := relay.New(relay.Config{Backbone: port, BackboneAuthenticated: true}, rand.New(rand.NewPCG(uint64(i), 1)))
		if err != nil {
			t.Fatal(err)
		}
		w.relays[name] = r
		nd.SetHandler(r)
		nd.Listen(addrOf(name))
		port.SetHandler(r)
	}
	k, err := roster.DeriveKeys([]byte("pool secret"), "hub")
	if err != nil {
		t.Fatal(err)
	}
	w.keys = k
	w.net.RunFor(10 * time.Millisecond) // the relays get the bus
	return w
}

// startRelay (re)starts relay name with an empty memory.
func (w *poolWorld) startRelay(name string) {
	r, err := relay.New(relay.Config{}, rand.New(rand.NewPCG(uint64(len(w.relays)), w.net.Events())))
	if err != nil {
		w.t.Fatal(err)
	}
	w.relays[name] = r
	nd := w.net.Node(name)
	nd.Restart(r)
	nd.Listen(addrOf(name))
}

// member is a pool core on its own node, with what its Observer heard.
type member struct {
	w        *poolWorld
	node     *netsim.Node
	p        *client.Pool
	learned  map[string]int
	acked    []uint32
	epochs   int
	problems []wire.Code
}

func (m *member) Learned(_ roster.ChannelID, refs [][]byte, _ time.Time) {
	for _, r := range refs {
		m.learned[string(r)]++
	}
}
func (m *member) StateChanged(client.State, time.Time)              {}
func (m *member) CaughtUp(roster.ChannelID, time.Time)              {}
func (m *member) EpochChanged(uint64, time.Time)                    { m.epochs++ }
func (m *member) Acked(_ roster.ChannelID, seq uint32, _ time.Time) { m.acked = append(m.acked, seq) }
func (m *member) Problem(_ roster.ChannelID, code wire.Code, _ string, _ time.Time) {
	m.problems = append(m.problems, code)
}

func (w *poolWorld) member(name string, homes int) *member {
	w.t.Helper()
	return w.memberWith(name, homes, nil)
}

// memberWith is member with a failpoint registry for its relay Clients.
func (w *poolWorld) memberWith(name string, homes int, faults *registry.Points) *member {
	w.t.Helper()
	m := &member{w: w, node: w.net.AddNode(name), learned: map[string]int{}}
	cfg := client.PoolConfig{Homes: homes, Hysteresis: testHysteresis,
		Client: client.Config{BackoffMin: 100 * time.Millisecond, BackoffMax: 500 * time.Millisecond, Faults: faults}}
	for _, n := range w.names {
		cfg.Relays = append(cfg.Relays, client.PoolRelay{Name: n, Addrs: []string{addrOf(n)}})
	}
	p, err := client.NewPool(cfg, m.node.Dialer(), rand.New(rand.NewPCG(uint64(len(name)), 9)), m)
	if err != nil {
		w.t.Fatal(err)
	}
	m.p = p
	m.do(func(now time.Time) {
		if err := p.Join(w.keys, nil, now); err != nil {
			w.t.Fatal(err)
		}
		p.Start(now)
	})
	return m
}

// do runs f on the member's pool now and re-arms its timer.
func (m *member) do(f func(now time.Time)) {
	f(m.w.net.Now())
	m.node.SetHandler(m.p)
}

func (m *member) announce(ref string) {
	m.do(func(now time.Time) {
		if _, err := m.p.Announce(m.w.keys.ID(), []byte(ref), now); err != nil {
			m.w.t.Fatal(err)
		}
	})
}

func (m *member) homes() []string { return m.p.Homes(m.w.keys.ID()) }

func (m *member) running() []string {
	var out []string
	for _, r := range m.p.Relays() {
		if r.Running {
			out = append(out, r.Name)
		}
	}
	return out
}

// order is the hub's rendezvous order of the relays.
func (w *poolWorld) order() []string {
	var out []string
	for _, i := range client.RendezvousOrder(w.keys.ID(), w.names) {
		out = append(out, w.names[i])
	}
	return out
}

// spy is a single-relay client joined to the hub on relay name: it shows
// what that relay holds.
func (w *poolWorld) spy(name string) *member {
	m := &member{w: w, node: w.net.AddNode("spy-" + name), learned: map[string]int{}}
	c, err := client.New(client.Config{Addrs: []string{addrOf(name)}}, m.node.Dialer(), rand.New(rand.NewPCG(1, 2)), m)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := c.Join(w.keys, nil, w.net.Now()); err != nil {
		w.t.Fatal(err)
	}
	c.Start(w.net.Now())
	m.node.SetHandler(c)
	return m
}

func TestPoolHomesFollowRendezvousOrder(t *testing.T) {
	w := newPoolWorld(t, 3)
	m := w.member("a", 2)
	w.net.RunFor(time.Second)
	order := w.order()
	if got := m.homes(); !slices.Equal(got, order[:2]) {
		t.Fatalf("homes %q, want the first two of %q", got, order)
	}
	if got := m.running(); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(order[:2]))) {
		t.Fatalf("running %q: a relay preferred by no channel holds a connection", got)
	}
	if m.p.State() != client.Connected {
		t.Fatalf("pool state %v, want connected", m.p.State())
	}
}

func TestPoolAnnouncesToEveryHome(t *testing.T) {
	w := newPoolWorld(t, 3)
	m := w.member("a", 2)
	w.net.RunFor(time.Second)
	spies := []*member{w.spy(m.homes()[0]), w.spy(m.homes()[1])}
	w.net.RunFor(time.Second)
	m.announce("cap-1")
	// Well within anti-entropy (30 s): only the announce itself can carry it.
	w.net.RunFor(time.Second)
	for i, s := range spies {
		if s.learned["cap-1"] != 1 {
			t.Fatalf("home %s: spy learned %v, want cap-1 once", m.homes()[i], s.learned)
		}
	}
	if len(m.acked) != 1 {
		t.Fatalf("acks %v, want the pool's one seq once although both homes acked", m.acked)
	}
}

// The failpoint the simulator's self-test uses must do what it says: the
// second home never gets the announce.
func TestPoolFirstHomeOnlyFailpoint(t *testing.T) {
	w := newPoolWorld(t, 3)
	faults := registry.New()
	if err := faults.Enable(client.FailPoolFirstHomeOnly, "return(true)"); err != nil {
		t.Fatal(err)
	}
	m := w.memberWith("a", 2, faults)
	w.net.RunFor(time.Second)
	spies := []*member{w.spy(m.homes()[0]), w.spy(m.homes()[1])}
	w.net.RunFor(time.Second)
	m.announce("cap-1")
	w.net.RunFor(time.Second)
	if spies[0].learned["cap-1"] != 1 || spies[1].learned["cap-1"] != 0 {
		t.Fatalf("first home's spy learned %v, second's %v: want cap-1 on the first only", spies[0].learned, spies[1].learned)
	}
}

// Channels reports as joined the homes whose relay confirmed the join on
// the current connection, and no others.
func TestPoolChannelsReportJoined(t *testing.T) {
	w := newPoolWorld(t, 3)
	m := w.member("a", 2)
	if got := m.p.Channels()[0].Joined; len(got) != 0 {
		t.Fatalf("joined %q before any connection", got)
	}
	w.net.RunFor(time.Second)
	homes := m.homes()
	if got := m.p.Channels()[0].Joined; !slices.Equal(got, homes) {
		t.Fatalf("joined %q, want the homes %q", got, homes)
	}
	w.net.Node(homes[0]).Crash()
	w.net.RunFor(50 * time.Millisecond)
	if got := m.p.Channels()[0].Joined; slices.Contains(got, homes[0]) {
		t.Fatalf("joined %q still lists %s, which crashed", got, homes[0])
	}
}

// A pool joining two homes on a backbone at once must not make the two
// relays reconcile the new channel with each other while both are unsure
// of it: each would end up claiming an incomplete cache, and every member
// be told to list storage, though nothing was ever lost.
func TestPoolJoinsNewHomesOneAtATime(t *testing.T) {
	w := newBackbonePool(t, 2)
	a, b := w.member("a", 2), w.member("b", 2)
	w.net.RunFor(time.Second)
	for _, m := range []*member{a, b} {
		if got := m.p.Channels()[0].Joined; len(got) != 2 {
			t.Fatalf("joined %q, want both homes", got)
		}
		if slices.Contains(m.problems, wire.CodeRescan) {
			t.Fatalf("told to list storage (problems %v) though no relay lost anything", m.problems)
		}
	}
}

func TestPoolDedupesAndMergesLearned(t *testing.T) {
	w := newPoolWorld(t, 3)
	a, b := w.member("a", 2), w.member("b", 2)
	w.net.RunFor(time.Second)
	b.announce("cap-1")
	w.net.RunFor(time.Second)
	if a.learned["cap-1"] != 1 {
		t.Fatalf("a learned %v, want cap-1 reported once though both homes delivered it", a.learned)
	}
	e, _ := w.keys.Seal([]byte("cap-1"))
	for _, h := range a.homes() {
		if c := a.p.Client(h); c == nil || !c.Roster(w.keys.ID()).Has(e.ID) {
			t.Fatalf("home %s's roster lacks cap-1", h)
		}
	}
}

// A learned entry is merged into a home that lacks it without being
// announced there: the relay gets it only from a sync, so a spy of that
// relay sees nothing before the anti-entropy.
func TestPoolMergeDoesNotReannounce(t *testing.T) {
	w := newPoolWorld(t, 2)
	order := w.order()
	// b uses only the first relay; a uses both.
	a := w.member("a", 2)
	b := w.member("b", 1)
	w.net.RunFor(time.Second)
	if got := b.homes(); !slices.Equal(got, order[:1]) {
		t.Fatalf("b's homes %q, want %q", got, order[:1])
	}
	spy := w.spy(order[1])
	w.net.RunFor(time.Second)
	b.announce("cap-1")
	w.net.RunFor(5 * time.Second)
	if a.learned["cap-1"] != 1 {
		t.Fatalf("a learned %v, want cap-1", a.learned)
	}
	if spy.learned["cap-1"] != 0 {
		t.Fatalf("%s got cap-1 from a before any sync: the merge was announced", order[1])
	}
	w.net.RunFor(40 * time.Second) // past the anti-entropy period
	if spy.learned["cap-1"] != 1 {
		t.Fatalf("%s never got cap-1: the sync did not push the merged entry", order[1])
	}
}

// The failpoint the simulator's failover self-test uses must do what it
// says: a lost home stays a home.
func TestPoolNoFailoverFailpoint(t *testing.T) {
	w := newPoolWorld(t, 3)
	faults := registry.New()
	if err := faults.Enable(client.FailPoolNoFailover, "return(true)"); err != nil {
		t.Fatal(err)
	}
	a := w.memberWith("a", 2, faults)
	w.net.RunFor(time.Second)
	order := w.order()
	w.net.Node(order[0]).Crash()
	w.net.RunFor(time.Second)
	if got := a.homes(); !slices.Equal(got, order[:2]) {
		t.Fatalf("homes %q after %s crashed, want %q kept", got, order[0], order[:2])
	}
}

func TestPoolFailsOverAndMovesBackAfterHysteresis(t *testing.T) {
	w := newPoolWorld(t, 3)
	a, b := w.member("a", 2), w.member("b", 2)
	w.net.RunFor(time.Second)
	order := w.order()
	first := order[0]
	w.net.Node(first).Crash()
	w.net.RunFor(time.Second)
	for _, m := range []*member{a, b} {
		if got := m.homes(); !slices.Equal(got, order[1:]) {
			t.Fatalf("after %s crashed homes %q, want %q", first, got, order[1:])
		}
	}
	b.announce("during")
	w.net.RunFor(time.Second)
	if a.learned["during"] != 1 {
		t.Fatalf("a learned %v during the failover, want \"during\"", a.learned)
	}
	w.startRelay(first)
	// Reconnecting takes at most the backoff cap; then the hysteresis runs.
	w.net.RunFor(time.Second)
	st := a.p.Relays()[slices.Index(w.names, first)]
	if st.State != client.Connected {
		t.Fatalf("%s state %v after its restart, want connected (kept reconnecting)", first, st.State)
	}
	back := st.ConnectedSince.Add(testHysteresis)
	w.net.RunUntil(back.Add(-100 * time.Millisecond))
	if got := a.homes(); !slices.Equal(got, order[1:]) {
		t.Fatalf("homes %q before the hysteresis ended, want still %q", got, order[1:])
	}
	w.net.RunUntil(back.Add(100 * time.Millisecond))
	if got := a.homes(); !slices.Equal(got, order[:2]) {
		t.Fatalf("homes %q after the hysteresis, want back on %q", got, order[:2])
	}
	if got := a.running(); slices.Contains(got, order[2]) {
		t.Fatalf("running %q: the replacement %s was not let go", got, order[2])
	}
	a.announce("after")
	w.net.RunFor(time.Second)
	if b.learned["after"] != 1 {
		t.Fatalf("b learned %v after the move back, want \"after\"", b.learned)
	}
}

// A relay that restarted forgot nothing the pool needs while another home
// of each of its channels stayed connected: the pool does not report its
// new epoch (which would make an instance list storage needlessly). A
// relay that was a channel's only home does report it.
func TestPoolEpochChangeOnlyWhenNoOtherHomeHeld(t *testing.T) {
	w := newPoolWorld(t, 3)
	a := w.member("a", 2)
	w.net.RunFor(time.Second)
	first := w.order()[0]
	w.net.Node(first).Crash()
	w.net.RunFor(time.Second)
	w.startRelay(first)
	w.net.RunFor(time.Second + testHysteresis)
	if got := a.homes(); !slices.Equal(got, w.order()[:2]) {
		t.Fatalf("homes %q, want back on %q", got, w.order()[:2])
	}
	if a.epochs != 0 {
		t.Fatalf("%d epoch changes reported, want none: the other home held the channel", a.epochs)
	}

	w = newPoolWorld(t, 1)
	a = w.member("a", 1)
	w.net.RunFor(time.Second)
	w.net.Node("r1").Crash()
	w.net.RunFor(time.Second)
	w.startRelay("r1")
	w.net.RunFor(time.Second)
	if a.epochs != 1 {
		t.Fatalf("%d epoch changes reported by the only home, want 1", a.epochs)
	}
}

func TestPoolHonoursDrain(t *testing.T) {
	w := newPoolWorld(t, 3)
	a := w.member("a", 2)
	w.net.RunFor(time.Second)
	order := w.order()
	first := order[0]
	const after = 3 * time.Second
	drainAt := w.net.Now()
	// With two homes the alternate, order[2], is the next of the order
	// too (TestPoolPlacesDrainedChannelsOnAlternates tells them apart).
	w.relays[first].Drain(drainAt, after, 0, []string{addrOf(order[2])})
	w.net.Node(first).SetHandler(w.relays[first])
	w.net.RunFor(500 * time.Millisecond)
	if got := a.homes(); !slices.Equal(got, order[1:]) {
		t.Fatalf("homes %q after %s drained, want %q", got, first, order[1:])
	}
	st := a.p.Relays()[slices.Index(w.names, first)]
	if st.DrainUntil.Before(drainAt.Add(after)) {
		t.Fatalf("DrainUntil %v, want at least %v", st.DrainUntil, drainAt.Add(after))
	}
	// The draining relay is restarted at once: the pool must still wait.
	w.startRelay(first)
	w.net.RunUntil(drainAt.Add(after - 100*time.Millisecond))
	if st := a.p.Relays()[slices.Index(w.names, first)]; st.State == client.Connected {
		t.Fatalf("reconnected to %s before its drain's reconnect-after", first)
	}
	w.net.RunUntil(drainAt.Add(after + time.Second + testHysteresis))
	if got := a.homes(); !slices.Equal(got, order[:2]) {
		t.Fatalf("homes %q once the drain ended, want %q", got, order[:2])
	}
	if n := w.relays[first].Conns(); n != 1 {
		t.Fatalf("%s has %d connections once back, want a's one (a Drain alternate redirected it)", first, n)
	}
}

// A drained home goes to the Drain's alternates that are relays of the
// pool, before the next of the order; alternates outside the pool are
// skipped.
func TestPoolPlacesDrainedChannelsOnAlternates(t *testing.T) {
	for _, tt := range []struct {
		name       string
		alternates func(order []string) []string
		want       func(order []string) string
	}{
		{"an alternate of the pool", func(o []string) []string { return []string{"elsewhere:7420", addrOf(o[2])} },
			func(o []string) string { return o[2] }},
		{"none in the pool", func([]string) []string { return []string{"elsewhere:7420"} },
			func(o []string) string { return o[1] }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newPoolWorld(t, 3)
			a := w.member("a", 1)
			w.net.RunFor(time.Second)
			order := w.order()
			w.relays[order[0]].Drain(w.net.Now(), 3*time.Second, 0, tt.alternates(order))
			w.net.RunFor(500 * time.Millisecond)
			if got := a.homes(); !slices.Equal(got, []string{tt.want(order)}) {
				t.Fatalf("home %q after %s drained, want %q", got, order[0], tt.want(order))
			}
		})
	}
}

func TestPoolWithoutChannelsKeepsOneRelay(t *testing.T) {
	w := newPoolWorld(t, 3)
	nd := w.net.AddNode("a")
	cfg := client.PoolConfig{}
	for _, n := range w.names {
		cfg.Relays = append(cfg.Relays, client.PoolRelay{Name: n, Addrs: []string{addrOf(n)}})
	}
	p, err := client.NewPool(cfg, nd.Dialer(), rand.New(rand.NewPCG(1, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Start(w.net.Now())
	nd.SetHandler(p)
	w.net.RunFor(time.Second)
	var up []string
	for _, r := range p.Relays() {
		if r.Running {
			up = append(up, r.Name)
		}
	}
	if len(up) != 1 || p.State() != client.Connected {
		t.Fatalf("running %q in state %v, want one connected relay", up, p.State())
	}
}

func TestPoolConfigValidate(t *testing.T) {
	r := func(n string) client.PoolRelay { return client.PoolRelay{Name: n, Addrs: []string{n}} }
	for _, tc := range []struct {
		name string
		cfg  client.PoolConfig
		ok   bool
	}{
		{"one relay", client.PoolConfig{Relays: []client.PoolRelay{r("a")}}, true},
		{"no relay", client.PoolConfig{}, false},
		{"duplicate", client.PoolConfig{Relays: []client.PoolRelay{r("a"), r("a")}}, false},
		{"homes over size", client.PoolConfig{Relays: []client.PoolRelay{r("a")}, Homes: 2}, false},
		{"no address", client.PoolConfig{Relays: []client.PoolRelay{{Name: "a"}}}, false},
	} {
		err := tc.cfg.WithDefaults().Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if got := (client.PoolConfig{Relays: []client.PoolRelay{r("a"), r("b"), r("c")}}).WithDefaults().Homes; got != 2 {
		t.Errorf("default homes of 3 relays = %d, want 2", got)
	}
}

// The same run replays byte for byte: the pool draws on nothing but its
// rng and the events it is handed.
func TestPoolRunsReplay(t *testing.T) {
	run := func() []string {
		w := newPoolWorld(t, 3)
		var trace []string
		w.net.SetTrace(func(line string) { trace = append(trace, line) })
		a, b := w.member("a", 2), w.member("b", 2)
		w.net.RunFor(time.Second)
		w.net.Node(w.order()[0]).Crash()
		b.announce("x")
		w.net.RunFor(2 * time.Second)
		w.startRelay(w.order()[0])
		w.net.RunFor(testHysteresis + 2*time.Second)
		a.announce("y")
		w.net.RunFor(time.Second)
		return trace
	}
	first, second := run(), run()
	if len(first) == 0 || !slices.Equal(first, second) {
		t.Fatalf("two runs differ (%d and %d trace lines)", len(first), len(second))
	}
}
