package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cosnim/relays/backbone"
	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/internal/fault/registry"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/sim/internal/relaynode"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// The pool world: ClassPool's scenarios run 2–3 relays (relay-1..relay-3)
// that behave as one, optionally joined by a simulated NATS backbone
// (netsim.Bus), and clients that are client.Pools over them. It is a world
// of its own beside the one-relay world of run.go; Run picks it for
// scenarios with a Pool.

// PoolSpec is the pool of a pool-class scenario.
type PoolSpec struct {
	Relays   int  // 2 or 3
	Homes    int  // 1 or 2
	Backbone bool // relays share a netsim.Bus
	// Hysteresis is the clients' client.PoolConfig.Hysteresis.
	Hysteresis time.Duration
	// HostileBus adds a bus publisher that is no relay (poolbus.go).
	HostileBus bool
	// Authenticated runs the relays as with a pool key
	// (relay.Config.BackboneAuthenticated); never with HostileBus.
	Authenticated bool
}

// The simulated backbone: one-way delays of Latency + [0, Jitter) through
// the server (netsim.BusOptions).
const (
	busLatency = time.Millisecond
	busJitter  = 200 * time.Microsecond
	busNode    = "bus" // the name touches give the bus server
)

// poolHysteresis is the pool class's hysteresis: short, so that clients
// move back within runs, and longer than a few reconnects.
const poolHysteresis = 2 * time.Second

// PoolRelayName names relay i (from 0) of a pool scenario.
func PoolRelayName(i int) string { return fmt.Sprintf("relay-%d", i+1) }

func poolRelayAddr(name string) string { return name + ":7420" }

// pairName names the link between a client and a relay, or the bus and a
// relay, for touches: a fault on that link alone touches it alone.
func pairName(a, b string) string { return a + "|" + b }

// generatePool makes a pool-class scenario from seed, from streams of its
// own (the one-relay generator's draws are not consumed).
func generatePool(seed uint64) Scenario {
	rng := rand.New(rand.NewPCG(seed, 0x9001))
	sc := Scenario{
		Seed:              seed,
		Class:             ClassPool,
		Timing:            shortTiming,
		Channels:          1 + rng.IntN(2),
		ClientsPerChannel: 2 + rng.IntN(3),
		Announces:         3 + rng.IntN(6),
		Chaos:             time.Duration(30+rng.IntN(40)) * time.Second,
	}
	sc.Pool = &PoolSpec{Relays: 2 + rng.IntN(2), Homes: 1 + rng.IntN(2), Backbone: rng.IntN(3) != 0,
		Hysteresis: poolHysteresis}
	// From a stream of its own, so the draws above and below stay.
	switch bus := rand.New(rand.NewPCG(seed, 0xb05)); {
	case !sc.Pool.Backbone:
	case bus.IntN(2) == 0:
		sc.Pool.HostileBus = true
		sc.Caps.CacheEntries = hostileBusCache
	default:
		sc.Pool.Authenticated = bus.IntN(2) == 0
	}
	var clients []string
	for ch := 0; ch < sc.Channels; ch++ {
		for i := 0; i < sc.ClientsPerChannel; i++ {
			clients = append(clients, ClientName(ch, i))
		}
	}
	sc.Faults = genFaults(&sc, clients)
	return sc
}

// poolWorld is one pool run in progress.
type poolWorld struct {
	base

	bus         *netsim.Bus // nil without a backbone
	relays      []*simRelay
	relayFaults *registry.Points // every relay core's

	keys      []*roster.Keys
	announced []map[string]bool
	ids       [][]roster.ID
	// announcedAt is when each entry was announced (lookups only).
	announcedAt map[roster.ID]time.Time
	clients     []*poolClient
	byName      map[string]*simRelay

	touch      touches
	owMax      time.Duration
	entryBytes int
	checked    [numInv]uint64
	needless   uint64
	rescans    uint64

	hostile *hostileBus          // nil unless the scenario has one
	held    map[string]*poolHeld // by relay name (lookups only)
}

// simRelay is one relay of the pool (relaynode.Relay) and its memory
// budget, and whether it went over it.
type simRelay struct {
	*relaynode.Relay
	budget  int64
	memOver bool
}

// poolClient is one simulated instance running a client.Pool.
type poolClient struct {
	w      *poolWorld
	name   string
	ch     int
	node   *netsim.Node
	pool   *client.Pool
	faults *registry.Points
	next   int
	last   int // roster length at the last check

	conns map[transport.Conn]string // dialed connection → relay (lookups only)
	// Per relay: connections opened or closed (a window needs the same),
	// the last Open and the relay Client that made it (lookups only).
	connGen map[string]int
	openAt  map[string]time.Time
	openBy  map[string]*client.Client
	// homes and joined are the channel's homes and joined homes after the
	// last event; homesGen counts their changes.
	homes, joined []string
	homesGen      int
	reconnects    uint64
	waits         []*bbWait // joins waiting for their first catch-up
	// atLeast[k] is the last time the channel had k or more joined homes.
	atLeast  []time.Time
	reported time.Time // the last failover violation
	// reporting is the relay whose connection's event the pool handles
	// now ("" in a Tick); syncFrom, syncGen and syncAt are, per relay,
	// what its complete cache held when the relay Client's latest sync
	// began, its incarnation and when (checkReport; lookups only).
	reporting string
	syncFrom  map[string][]roster.ID
	syncGen   map[string]int
	syncAt    map[string]time.Time
}

func runPool(sc Scenario, opt Options) Result {
	start := time.Now()
	w := newPoolWorld(sc, opt)
	w.schedule()
	w.play(w.net, w.heal, w.check)
	return timed(w.result(), start)
}

func newPoolWorld(sc Scenario, opt Options) *poolWorld {
	w := &poolWorld{base: base{sc: sc, opt: opt}, byName: map[string]*simRelay{}, announcedAt: map[roster.ID]time.Time{},
		held: map[string]*poolHeld{}}
	w.touch.relaySpan = -1
	w.hash, w.trace = newTrace(opt)
	w.net = netsim.New(sc.Seed, netsim.Options{SplitReads: true, RecordBytes: 1 << 16, Latency: netLatency, Jitter: netJitter})
	w.owMax = netLatency + netJitter
	w.net.SetTraceWriter(w.trace)
	logFrames(w.net, opt.Frames)
	w.rng = rand.New(rand.NewPCG(sc.Seed, 0x51de))
	w.healAt = w.net.Now().Add(sc.Chaos)
	w.healBound = w.poolHealBound()
	w.relayFaults = registry.New()
	if sc.Pool.Backbone {
		w.bus = w.net.NewBus("nats", netsim.BusOptions{Latency: busLatency, Jitter: busJitter})
	}
	for i := range sc.Pool.Relays {
		name := PoolRelayName(i)
		r := &simRelay{Relay: relaynode.New(w.net, w.bus, name, poolRelayAddr(name))}
		w.relays = append(w.relays, r)
		w.byName[r.Name] = r
		w.startRelay(r)
	}
	w.keys = channelKeys(sc.Seed, sc.Channels)
	if sc.Pool.HostileBus && w.bus != nil {
		w.hostile = newHostileBus(w)
	}
	for range w.keys {
		w.announced = append(w.announced, map[string]bool{})
		w.ids = append(w.ids, nil)
	}
	for ch := 0; ch < sc.Channels; ch++ {
		for i := 0; i < sc.ClientsPerChannel; i++ {
			w.addClient(ClientName(ch, i), ch)
		}
	}
	for _, name := range sc.Failpoints {
		w.setFailpoint(name, true)
	}
	return w
}

// poolHealBound is the one-relay heal bound (Timing.healBound) plus the
// hysteresis (a client that failed over moves back once its preferred
// relay has stayed connected that long) and, with a backbone, two of the
// relays' anti-entropy periods (a relay whose reconciliation at the bus's
// return failed repairs at its next one).
func (w *poolWorld) poolHealBound() time.Duration {
	b := w.sc.Timing.healBound() + w.sc.Pool.Hysteresis
	if w.sc.Pool.Backbone {
		b += 2 * w.bbAntiEntropy()
	}
	return b
}

// bbAntiEntropy is the relays' BackboneAntiEntropy: the clients' period,
// so a pool repairs as often as its members do.
func (w *poolWorld) bbAntiEntropy() time.Duration {
	if w.sc.Timing.AntiEntropy > 0 {
		return w.sc.Timing.AntiEntropy
	}
	return relay.DefaultBackboneAntiEntropy
}

// startRelay starts a fresh core on r's node, with an empty memory.
func (w *poolWorld) startRelay(r *simRelay) {
	cfg := relayConfigFor(w.sc, w.opt, w.relayFaults)
	if r.Port != nil {
		cfg.Backbone = r.Port
		cfg.BackboneAntiEntropy = w.bbAntiEntropy()
		cfg.BackboneAuthenticated = w.sc.Pool.Authenticated
	}
	core, err := relay.New(cfg, w.coreRand())
	if err != nil {
		panic(err)
	}
	r.budget, r.memOver = cfg.MemoryBudget, false
	r.Start(core, w.relayTap(r), poolBusTap{w, r})
	w.touch.restarted(r.Name, w.net.Now())
	w.logf("%s up epoch=%016x", r.Name, core.Epoch())
}

// crashRelay kills r's node: its memory and connections are lost.
func (w *poolWorld) crashRelay(r *simRelay) {
	if _, down := w.touch.down[r.Name]; !down {
		w.touch.untilRestart(r.Name, w.net.Now())
	}
	r.Crash()
}

// busUp reports whether r is up and its core has the bus.
func (r *simRelay) busUp() bool { return r.Up && r.Port != nil && r.Core.Stats().BackboneUp }

func (w *poolWorld) addClient(name string, ch int) {
	c := &poolClient{w: w, name: name, ch: ch, faults: registry.New(),
		conns: map[transport.Conn]string{}, connGen: map[string]int{}, openAt: map[string]time.Time{},
		openBy: map[string]*client.Client{}, syncFrom: map[string][]roster.ID{}, syncGen: map[string]int{},
		syncAt: map[string]time.Time{}}
	c.node = w.net.AddNode(name)
	c.atLeast = make([]time.Time, w.sc.Pool.Homes+1)
	for k := range c.atLeast {
		c.atLeast[k] = w.net.Now()
	}
	cfg := client.PoolConfig{Homes: w.sc.Pool.Homes, Hysteresis: w.sc.Pool.Hysteresis,
		Client: clientConfigFor(w.sc.Timing, aePeriodOf(w.sc.Timing), name, c.faults)}
	for _, r := range w.relays {
		cfg.Relays = append(cfg.Relays, client.PoolRelay{Name: r.Name, Addrs: []string{r.Addr},
			Dialer: poolDialer{c, r.Name}})
	}
	p, err := client.NewPool(cfg, c.node.Dialer(), w.coreRand(), poolObserver{c})
	if err != nil {
		panic(err)
	}
	c.pool = p
	w.clients = append(w.clients, c)
	now := c.node.Now()
	if err := p.Join(w.keys[ch], nil, now); err != nil {
		panic(err)
	}
	p.Start(now)
	c.node.SetHandler(poolClientTap{c})
	c.observe()
}

func (w *poolWorld) setFailpoint(name string, on bool) {
	set := func(p *registry.Points) {
		if on {
			_ = p.Enable(name, "return(true)")
		} else {
			_ = p.Disable(name)
		}
	}
	if len(name) > 6 && name[:6] == "relay/" {
		set(w.relayFaults)
		return
	}
	for _, c := range w.clients {
		set(c.faults)
	}
}

// schedule sets up the workload, the faults and the periodic checks.
func (w *poolWorld) schedule() {
	t0 := w.start()
	announce := make([]func(), len(w.clients))
	for i, c := range w.clients {
		announce[i] = c.announce
	}
	scheduleAnnounces(w.net, w.rng, t0, w.sc.Chaos, w.sc.Announces, announce)
	for _, f := range w.sc.Faults {
		w.net.At(t0.Add(f.At), func() {
			if !w.healed {
				w.apply(f)
			}
		})
	}
	var tick func()
	tick = func() {
		w.check()
		if w.net.Now().Before(w.healAt) {
			w.net.At(w.net.Now().Add(checkEvery), tick)
		}
	}
	w.net.At(t0.Add(checkEvery), tick)
}

func (w *poolWorld) apply(f Fault) {
	spec := specOf(f.Kind)
	if spec == nil || spec.poolApply == nil {
		panic(fmt.Sprintf("sim: fault kind %q has no pool mechanism", f.Kind))
	}
	w.faults++
	w.logf("fault %s %v %v", f.Kind, f.Targets, f.Duration)
	spec.poolApply(w, f)
}

// relay returns the relay named name.
func (w *poolWorld) relay(name string) *simRelay {
	r := w.byName[name]
	if r == nil {
		panic(fmt.Sprintf("no relay %q", name))
	}
	return r
}

// heal ends the chaos phase: every partition and bus fault is lifted,
// down and draining relays start again.
func (w *poolWorld) heal() {
	w.healed = true
	w.net.Heal()
	for _, name := range w.sc.Failpoints {
		w.setFailpoint(name, true)
	}
	if w.bus != nil {
		w.bus.Restart()
		w.touch.restarted(busNode, w.net.Now())
		for _, r := range w.relays {
			w.bus.Heal(r.Name)
			w.touch.restarted(pairName(busNode, r.Name), w.net.Now())
		}
	}
	w.touch.heal(w.net.Now())
	for _, r := range w.relays {
		if r.Up && r.Core.Draining() {
			w.crashRelay(r)
		}
		if !r.Up {
			w.startRelay(r)
		}
	}
	w.logf("heal: faults stop")
}

// announce makes c create a capsule in its channel.
func (c *poolClient) announce() {
	w := c.w
	ref := fmt.Sprintf("cap/%s/%d", c.name, c.next)
	c.next++
	k := w.keys[c.ch]
	e, _ := k.Seal([]byte(ref))
	w.announced[c.ch][ref] = true
	w.ids[c.ch] = append(w.ids[c.ch], e.ID)
	w.announcedAt[e.ID] = w.net.Now()
	w.entryBytes = max(w.entryBytes, len(e.Sealed))
	w.announces++
	w.logf("announce %s %s", c.name, ref)
	if _, err := c.pool.Announce(k.ID(), []byte(ref), c.node.Now()); err != nil {
		w.violate("%s: announce failed: %v", c.name, err)
	}
	c.node.SetHandler(poolClientTap{c}) // re-arm its timer
	c.observe()
	if !c.pool.Roster(k.ID()).Has(e.ID) {
		w.violate("read-your-writes: %s does not hold %s right after announcing it", c.name, ref)
	}
	w.checkPoolAwareness(c, e.ID, ref)
}

// observe notes changes of c's homes after an event.
func (c *poolClient) observe() {
	st := c.pool.Channels()[0]
	for k := 1; k <= len(st.Joined) && k < len(c.atLeast); k++ {
		c.atLeast[k] = c.w.net.Now()
	}
	if !slices.Equal(st.Homes, c.homes) || !slices.Equal(st.Joined, c.joined) {
		fresh := []string{}
		for _, r := range st.Joined {
			if !slices.Contains(c.joined, r) {
				fresh = append(fresh, r)
			}
		}
		c.homes, c.joined = st.Homes, st.Joined
		c.homesGen++
		for _, r := range fresh {
			c.w.checkBackboneCatchUp(c.w.relay(r), []*poolClient{c}, "joined")
		}
	}
}

// check verifies the safety invariants and, after heal, convergence.
func (w *poolWorld) check() {
	if w.bus != nil {
		w.checkHostileBus()
	}
	for _, r := range w.relays {
		if !r.Up {
			continue
		}
		cache, pending := r.Core.Usage()
		cfg := relayConfigFor(w.sc, w.opt, nil)
		if cache > cfg.CacheEntries || pending > cfg.PendingEntries {
			w.violate("boundedness: %s holds %d cached (cap %d), %d pending (cap %d)", r.Name, cache, cfg.CacheEntries, pending, cfg.PendingEntries)
		}
	}
	all := true
	for _, c := range w.clients {
		c.observe()
		w.checkFailover(c)
		n := c.roster().Len()
		if n < c.last {
			w.violate("monotonic: %s roster of channel %d shrank from %d to %d", c.name, c.ch, c.last, n)
		}
		c.last = n
		if n != len(w.announced[c.ch]) {
			all = false
		}
	}
	if w.healed && all && w.converged.IsZero() && w.exactUnion() {
		w.converged = w.net.Now()
		w.logf("converged %s after heal", w.converged.Sub(w.healAt))
	}
}

func (c *poolClient) roster() *roster.Set { return c.pool.Roster(c.w.keys[c.ch].ID()) }

func (w *poolWorld) exactUnion() bool {
	for _, c := range w.clients {
		r := c.roster()
		if r.Len() != len(w.ids[c.ch]) {
			return false
		}
		for _, id := range w.ids[c.ch] {
			if !r.Has(id) {
				return false
			}
		}
	}
	return true
}

func (w *poolWorld) result() Result {
	res := Result{
		Seed: w.sc.Seed, Class: w.sc.Class, Events: w.net.Events(),
		VirtualSeconds: w.net.Now().Sub(w.start()).Seconds(),
		Clients:        len(w.clients), Channels: w.sc.Channels, Announced: w.announces, Faults: w.faults,
	}
	if w.converged.IsZero() {
		var lag []string
		for _, c := range w.clients {
			if n, want := c.roster().Len(), len(w.announced[c.ch]); n != want {
				lag = append(lag, fmt.Sprintf("%s holds %d of %d in channel %d", c.name, n, want, c.ch))
			}
		}
		w.violate("convergence: not converged %s after heal: %v", w.healBound, lag)
	} else {
		res.ConvergedAfter = w.converged.Sub(w.healAt).Seconds()
	}
	res.Converged = !w.converged.IsZero()
	st := w.net.Stats()
	res.Messages, res.Bytes = st.Messages, st.BytesDelivered
	res.Churn = map[string]ClientChurn{}
	for _, c := range w.clients {
		res.ForgedRefused += c.pool.Stats().Forged
		res.Reconnects += c.reconnects
		res.Churn[c.name] = ClientChurn{Reconnects: c.reconnects}
	}
	res.NeedlessReconnects, res.Rescans = w.needless, w.rescans
	res.Checked = Checks{Awareness: w.checked[invAwareness], CatchUp: w.checked[invCatchUp], Failover: w.checked[invFailover],
		Report: w.checked[invReport]}
	res.Violations = append([]string{}, w.violations...)
	finish(&res, w.sc, w.hash)
	return res
}

// Taps: the pool world's handlers wrap the cores to watch their events.

// relayTap is r's relayTap: invariant (d), its accounted memory under
// its budget.
func (w *poolWorld) relayTap(r *simRelay) relayTap {
	return relayTap{core: func() *relay.Relay { return r.Core }, check: func() {
		if m := r.Core.Memory(); m > r.budget && !r.memOver {
			r.memOver = true
			w.violate("boundedness: %s accounts %d bytes, over its budget of %d", r.Name, m, r.budget)
		}
	}}
}

// poolBusTap is a relay core's backbone handler: it arms the backbone
// catch-up check when the relay gets the bus back.
type poolBusTap struct {
	w *poolWorld
	r *simRelay
}

func (t poolBusTap) Message(m backbone.Msg, now time.Time) {
	t.r.Core.Message(m, now)
	t.w.relayTap(t.r).check()
}
func (t poolBusTap) Response(id uint64, data []byte, err error, now time.Time) {
	t.r.Core.Response(id, data, err, now)
}
func (t poolBusTap) BusState(up bool, now time.Time) {
	t.r.Core.BusState(up, now)
	if up {
		var ms []*poolClient
		for _, c := range t.w.clients {
			if slices.Contains(c.joined, t.r.Name) {
				ms = append(ms, c)
			}
		}
		t.w.checkBackboneCatchUp(t.r, ms, "bus up")
	}
}

type poolClientTap struct{ c *poolClient }

func (t poolClientTap) Open(tc transport.Conn, now time.Time) {
	c := t.c
	name, ok := c.conns[tc]
	if ok {
		c.opened(name)
	}
	c.pool.Open(tc, now)
	c.observe()
}
func (t poolClientTap) Data(tc transport.Conn, b []byte, now time.Time) {
	c := t.c
	name := c.conns[tc]
	cl := c.pool.Client(name)
	var syncs uint64
	if cl != nil {
		syncs = cl.Stats().Syncs
	}
	c.reporting = name
	c.pool.Data(tc, b, now)
	c.reporting = ""
	if cl != nil && cl.Stats().Syncs > syncs {
		c.syncBegan(name)
	}
	c.observe()
}
func (t poolClientTap) Writable(tc transport.Conn, now time.Time) { t.c.pool.Writable(tc, now) }
func (t poolClientTap) Closed(tc transport.Conn, err error, now time.Time) {
	c := t.c
	if name, ok := c.conns[tc]; ok {
		c.connGen[name]++
		delete(c.conns, tc)
	}
	c.pool.Closed(tc, err, now)
	c.observe()
}
func (t poolClientTap) Tick(now time.Time) {
	c := t.c
	syncs := make([]uint64, len(c.w.relays))
	for i, r := range c.w.relays {
		if cl := c.pool.Client(r.Name); cl != nil {
			syncs[i] = cl.Stats().Syncs
		}
	}
	c.pool.Tick(now)
	for i, r := range c.w.relays {
		if cl := c.pool.Client(r.Name); cl != nil && cl.Stats().Syncs > syncs[i] {
			c.syncBegan(r.Name)
		}
	}
	c.observe()
}
func (t poolClientTap) Deadline() (time.Time, bool) { return t.c.pool.Deadline() }

// opened is invariant (e), churn: a relay Client of the pool that
// connects again (it lost its connection) must have been touched since its
// last connection, on the client, the relay or the link between them.
func (c *poolClient) opened(relayName string) {
	w := c.w
	now := w.net.Now()
	cl := c.pool.Client(relayName)
	if cl != nil && c.openBy[relayName] == cl {
		c.reconnects++
		if !w.touch.touched([]string{c.name, relayName, pairName(c.name, relayName)}, c.openAt[relayName], now, 0, true) {
			w.needless++
			w.violate("churn: %s reconnected to %s (connected since t=%s) with no fault on either or between them",
				c.name, relayName, w.stampOf(c.openAt[relayName]))
		}
	}
	c.openBy[relayName], c.openAt[relayName] = cl, now
	c.connGen[relayName]++
}

// poolDialer dials one relay for a client and remembers the connection.
type poolDialer struct {
	c     *poolClient
	relay string
}

func (d poolDialer) Dial(addr string) transport.Conn {
	tc := d.c.node.Dialer().Dial(addr)
	d.c.conns[tc] = d.relay
	return tc
}

// poolObserver checks what a pool learns: only references announced in
// its channel (invariant (c), nothing fabricated).
type poolObserver struct{ c *poolClient }

func (o poolObserver) Learned(id roster.ChannelID, refs [][]byte, _ time.Time) {
	c := o.c
	for _, ref := range refs {
		if id != c.w.keys[c.ch].ID() || !c.w.announced[c.ch][string(ref)] {
			c.w.violate("fabrication: %s learned %q in channel %x, never announced there", c.name, ref, id.Short())
		}
	}
}
func (poolObserver) StateChanged(client.State, time.Time) {}
func (o poolObserver) CaughtUp(roster.ChannelID, time.Time) {
	o.c.checkReport(o.c.reporting)
	o.c.caughtUp()
}
func (poolObserver) EpochChanged(uint64, time.Time)            {}
func (poolObserver) Acked(roster.ChannelID, uint32, time.Time) {}

// Problem counts the relays' Rescans: "list storage" (Result.Rescans).
func (o poolObserver) Problem(_ roster.ChannelID, code wire.Code, _ string, _ time.Time) {
	if code == wire.CodeRescan {
		o.c.w.rescans++
	}
}
