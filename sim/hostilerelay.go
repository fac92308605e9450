package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/internal/badrelay"
	"github.com/cosnim/relays/internal/fault/registry"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/sim/internal/lister"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// The hostile-relay world (ClassHostileRelay): the relay, or one relay of
// a pool of two, is malicious (internal/badrelay: a rescan storm, a resync
// storm, a new epoch at every reconnect, or Joined never flagged complete),
// and the instances list storage on the schedule of the shipped
// client.ListPolicy, routed by client.Listings as the Agent does. The
// invariant: an instance never lists a hub more often than it would with
// no relay (client.ListingsWithoutRelay, the same policy fed nothing).
// And, since listing is the truth, every instance still comes to know
// every capsule of its hubs; and by the end it has found the relay out:
// each hub's policy counts it as suspect, or with a pool the pool does
// (client.Pool.Suspects).

// HostileRelaySpec sets up a ClassHostileRelay run.
type HostileRelaySpec struct {
	// Attack is the malicious relay's behaviour, on the run's time base.
	Attack badrelay.Config
	// Pool puts the malicious relay in a pool of two beside an honest
	// relay core; the clients run client.Pool with two homes.
	Pool bool
	// List is the instances' listing policy.
	List client.ListConfig
}

// The malicious and the honest relay's names.
const (
	badRelayName  = "bad-relay"
	goodRelayName = "good-relay"
)

func generateHostileRelay(seed uint64) Scenario {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	atk := badrelay.Attacks[rng.IntN(len(badrelay.Attacks))]
	atk.Period /= listScale // the attacks on the listing policies' time base
	sc := Scenario{
		Seed: seed, Class: ClassHostileRelay, Timing: shortTiming,
		Channels: 1 + rng.IntN(2), ClientsPerChannel: 2 + rng.IntN(3),
		Announces: 3 + rng.IntN(6),
		Chaos:     time.Duration(60+rng.IntN(60)) * time.Second,
		HostileRelay: &HostileRelaySpec{Attack: atk, Pool: rng.IntN(3) == 0,
			List: listConfig},
	}
	if sc.Channels > 1 {
		sc.HubSpanning = 1
	}
	return sc
}

// hrWorld is one hostile-relay run.
type hrWorld struct {
	base

	bad      *badrelay.Relay
	keys     []*roster.Keys
	storage  [][][]byte // per hub: capsules written, in order
	clients  []*hrClient
	listings uint64 // listings started by every client
	bound    uint64 // the most they would have started with no relay
}

// hrCore is what a client needs of its core: a Client or a Pool.
type hrCore interface {
	transport.Handler
	Join(keys *roster.Keys, known []roster.Entry, now time.Time) error
	Announce(id roster.ChannelID, ref []byte, now time.Time) (uint32, error)
	Start(now time.Time)
}

// hrClient is one instance: a core, and a policy per hub that its lister
// lists on.
type hrClient struct {
	w       *hrWorld
	name    string
	node    *netsim.Node
	core    hrCore
	hubs    []int
	lists   *lister.Lister // per hub, in hubs order
	started time.Time
	count   []int
	known   []map[string]bool
	over    []bool // the invariant already reported for this hub
}

func runHostileRelay(sc Scenario, opt Options) Result {
	start := time.Now()
	w := newHRWorld(sc, opt)
	t0 := w.net.Now()
	var writes []func()
	for _, c := range w.clients {
		writes = append(writes, c.write)
	}
	scheduleAnnounces(w.net, w.rng, t0, sc.Chaos, sc.Announces, writes)
	var tick func()
	tick = func() {
		w.check()
		if w.net.Now().Before(w.healAt) {
			w.net.At(w.net.Now().Add(checkEvery), tick)
		}
	}
	w.net.At(t0.Add(checkEvery), tick)
	w.play(w.net, func() { w.healed = true; w.logf("heal: writes stop") }, w.check)
	w.check()
	return timed(w.result(), start)
}

func newHRWorld(sc Scenario, opt Options) *hrWorld {
	w := &hrWorld{base: base{sc: sc, opt: opt}}
	w.hash, w.trace = newTrace(opt)
	w.net = netsim.New(sc.Seed, netsim.Options{SplitReads: true, RecordBytes: 1 << 16, Latency: netLatency, Jitter: netJitter})
	w.net.SetTraceWriter(w.trace)
	w.rng = rand.New(rand.NewPCG(sc.Seed, 0x51de))
	w.healAt = w.net.Now().Add(sc.Chaos)
	list := sc.HostileRelay.List.WithDefaults()
	// Without a relay's help every capsule is known by the second listing
	// after it is written (at most two spaced listing intervals, the second
	// one stretched by the rate limit's first doubling), plus its pages.
	w.healBound = 2*list.ListInterval*11/10 + list.Soon + 2*listLatency + time.Second

	bad, err := badrelay.New(sc.HostileRelay.Attack, w.coreRand(), w.net.Now())
	if err != nil {
		panic(err)
	}
	w.bad = bad
	node := w.net.AddNode(badRelayName)
	node.SetHandler(bad)
	node.Listen(poolRelayAddr(badRelayName))
	if sc.HostileRelay.Pool {
		good, err := relay.New(relayConfigFor(sc, opt, nil), w.coreRand())
		if err != nil {
			panic(err)
		}
		gn := w.net.AddNode(goodRelayName)
		gn.SetHandler(good)
		gn.Listen(poolRelayAddr(goodRelayName))
	}
	w.logf("relay %s %s every %v, pool %v", badRelayName, sc.HostileRelay.Attack.Behaviour, sc.HostileRelay.Attack.Period, sc.HostileRelay.Pool)

	w.keys = channelKeys(sc.Seed, sc.Channels)
	w.storage = make([][][]byte, sc.Channels)
	for ch := range sc.Channels {
		for i := range sc.ClientsPerChannel {
			w.addClient(ClientName(ch, i), []int{ch})
		}
	}
	all := make([]int, sc.Channels)
	for ch := range all {
		all[ch] = ch
	}
	for i := range sc.HubSpanning {
		w.addClient(SpanningName(i), all)
	}
	return w
}

func (w *hrWorld) addClient(name string, hubs []int) {
	sc := w.sc
	c := &hrClient{w: w, name: name, hubs: hubs, node: w.net.AddNode(name), started: w.net.Now(),
		count: make([]int, len(hubs)), over: make([]bool, len(hubs))}
	c.lists = lister.New(c.node, c.list, nil)
	faults := registry.New()
	for _, fp := range sc.Failpoints {
		_ = faults.Enable(fp, "return(true)")
	}
	list := sc.HostileRelay.List
	list.Faults = faults
	cfg := clientConfigFor(sc.Timing, aePeriodOf(sc.Timing), name, faults)
	if sc.HostileRelay.Pool {
		pc := client.PoolConfig{Homes: 2, Client: cfg, Listing: list, Relays: []client.PoolRelay{
			{Name: badRelayName, Addrs: []string{poolRelayAddr(badRelayName)}},
			{Name: goodRelayName, Addrs: []string{poolRelayAddr(goodRelayName)}},
		}}
		p, err := client.NewPool(pc, c.node.Dialer(), w.coreRand(), (*hrObserver)(c))
		if err != nil {
			panic(err)
		}
		c.core = p
	} else {
		cfg.Addrs = []string{poolRelayAddr(badRelayName)}
		cl, err := client.New(cfg, c.node.Dialer(), w.coreRand(), (*hrObserver)(c))
		if err != nil {
			panic(err)
		}
		c.core = cl
	}
	now := c.node.Now()
	for _, h := range hubs {
		if err := c.core.Join(w.keys[h], nil, now); err != nil {
			panic(err)
		}
		p, err := client.NewListPolicy(list, w.coreRand(), now)
		if err != nil {
			panic(err)
		}
		c.lists.Add(w.keys[h].ID(), p)
		c.known = append(c.known, map[string]bool{})
	}
	c.node.SetHandler(c.core)
	c.core.Start(now)
	w.clients = append(w.clients, c)
	c.lists.ArmAll()
}

// write stores a capsule in one of the client's hubs and announces it.
func (c *hrClient) write() {
	w := c.w
	i := w.rng.IntN(len(c.hubs))
	h := c.hubs[i]
	ref := fmt.Appendf(nil, "cap/%s/%d", c.name, len(w.storage[h]))
	w.storage[h] = append(w.storage[h], ref)
	w.announces++
	c.known[i][string(ref)] = true
	_, _ = c.core.Announce(w.keys[h].ID(), ref, c.node.Now())
}

// list starts a listing of hub i (lister.Start): storage as of now,
// after listLatency.
func (c *hrClient) list(i int, now time.Time) (time.Duration, func(time.Time)) {
	w := c.w
	c.count[i]++
	w.listings++
	h := c.hubs[i]
	seen := w.storage[h][:len(w.storage[h]):len(w.storage[h])]
	w.logf("%s lists hub %d (%d)", c.name, h, c.count[i])
	return listLatency, func(time.Time) {
		for _, ref := range seen {
			c.known[i][string(ref)] = true
		}
	}
}

// check judges the listing invariant and, after heal, convergence.
func (w *hrWorld) check() {
	now := w.net.Now()
	all := true
	for _, c := range w.clients {
		for i, h := range c.hubs {
			bound, err := client.ListingsWithoutRelay(w.sc.HostileRelay.List, now.Sub(c.started), listLatency)
			if err != nil {
				panic(err)
			}
			if c.count[i] > bound && !c.over[i] {
				c.over[i] = true
				w.violate("listing: %s listed hub %d %d times in %v, more than the %d it would with no relay (%s every %v)",
					c.name, h, c.count[i], now.Sub(c.started), bound, w.sc.HostileRelay.Attack.Behaviour, w.sc.HostileRelay.Attack.Period)
			}
			for _, ref := range w.storage[h] {
				if !c.known[i][string(ref)] {
					all = false
					break
				}
			}
		}
	}
	if w.healed && all && w.converged.IsZero() {
		w.converged = now
		w.logf("converged %s after heal", now.Sub(w.healAt))
	}
}

// checkFoundOut asks that every instance counts the relay as asking too
// often by the end of the run.
func (w *hrWorld) checkFoundOut() {
	now := w.net.Now()
	for _, c := range w.clients {
		if p, ok := c.core.(*client.Pool); ok {
			if !slices.Contains(p.Suspects(now), badRelayName) {
				w.violate("found-out: %s's pool does not count %s as asking too often (%s every %v)",
					c.name, badRelayName, w.sc.HostileRelay.Attack.Behaviour, w.sc.HostileRelay.Attack.Period)
			}
			continue
		}
		for i, h := range c.hubs {
			if !c.lists.Policy(i).Suspect(now) {
				w.violate("found-out: %s's policy of hub %d does not count the relay as asking too often (%s every %v)",
					c.name, h, w.sc.HostileRelay.Attack.Behaviour, w.sc.HostileRelay.Attack.Period)
			}
		}
	}
}

func (w *hrWorld) result() Result {
	res := Result{Seed: w.sc.Seed, Class: w.sc.Class, Events: w.net.Events(),
		VirtualSeconds: w.net.Now().Sub(w.start()).Seconds(), Clients: len(w.clients), Channels: w.sc.Channels,
		Announced: w.announces, Converged: !w.converged.IsZero()}
	if res.Converged {
		res.ConvergedAfter = w.converged.Sub(w.healAt).Seconds()
	} else {
		w.violate("convergence: instances do not know every capsule of their hubs %v after writes stopped", w.healBound)
	}
	w.checkFoundOut()
	end := w.net.Now()
	for _, c := range w.clients {
		n, _ := client.ListingsWithoutRelay(w.sc.HostileRelay.List, end.Sub(c.started), listLatency)
		w.bound += uint64(n * len(c.hubs))
	}
	res.Listings, res.ListingsWithoutRelay = w.listings, w.bound
	res.Violations = append([]string{}, w.violations...)
	st := w.net.Stats()
	res.Messages, res.Bytes = st.Messages, st.BytesDelivered
	finish(&res, w.sc, w.hash)
	return res
}

// hrObserver hears the core: what it learns, and, through the client's
// lister, what client.Listings routes to the hubs' policies.
type hrObserver hrClient

func (o *hrObserver) Learned(id roster.ChannelID, refs [][]byte, _ time.Time) {
	if i := o.lists.Index(id); i >= 0 {
		for _, ref := range refs {
			o.known[i][string(ref)] = true
		}
	}
}

func (o *hrObserver) StateChanged(s client.State, now time.Time)  { o.lists.StateChanged(s, now) }
func (o *hrObserver) CaughtUp(id roster.ChannelID, now time.Time) { o.lists.CaughtUp(id, now) }
func (o *hrObserver) EpochChanged(e uint64, now time.Time)        { o.lists.EpochChanged(e, now) }
func (o *hrObserver) Acked(roster.ChannelID, uint32, time.Time)   {}
func (o *hrObserver) Problem(id roster.ChannelID, code wire.Code, text string, now time.Time) {
	o.lists.Problem(id, code, text, now)
}

var _ client.Observer = (*hrObserver)(nil)
