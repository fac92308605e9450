package sim

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/internal/fault/registry"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/sim/internal/lister"
	"github.com/cosnim/relays/transport"
)

const (
	checkEvery = 250 * time.Millisecond
	relayAddr  = "relay:7420"
	relayName  = "relay"
)

// HealBound is how long after faults stop every live client of the default
// class must hold the union of its channel: time to notice a dead link
// (idle timeout), back off and reconnect, plus two anti-entropy periods and
// slack (Timing.healBound; other classes derive theirs from their timing).
const HealBound = 3*time.Second + 2*time.Second + 2*5*time.Second + 5*time.Second

// Network of the simulation: one-way delays of Latency + [0, Jitter).
const (
	netLatency = 500 * time.Microsecond
	netJitter  = 200 * time.Microsecond
)

// Options tune a run.
type Options struct {
	// Timeline, if set, receives the readable trace as it is written.
	Timeline io.Writer
	// Frames, if set, receives one line per frame delivered (see
	// logFrames), for WriteSVG; it is not part of the trace.
	Frames io.Writer
	// CacheEntries and PendingEntries cap the relay (defaults 100000, 10000).
	CacheEntries, PendingEntries int
}

// Result is what a run found. Two runs of one scenario give the same Result
// apart from the wall-time fields.
type Result struct {
	Seed           uint64   `json:"seed"`
	Converged      bool     `json:"converged"`
	Violations     []string `json:"violations"`
	Events         uint64   `json:"events"`
	VirtualSeconds float64  `json:"virtual_seconds"`
	ConvergedAfter float64  `json:"converged_after_heal_seconds"`
	TraceSHA256    string   `json:"trace_sha256"`
	Clients        int      `json:"clients"`
	Channels       int      `json:"channels"`
	Announced      int      `json:"announced"`
	Faults         int      `json:"faults"`
	Messages       uint64   `json:"messages"`
	Bytes          uint64   `json:"bytes"`
	ForgedRefused  uint64   `json:"forged_refused"`
	Class          Class    `json:"class"`
	// Checked counts the windows each timing invariant was judged over.
	Checked            Checks `json:"checked"`
	Reconnects         uint64 `json:"reconnects"`
	NeedlessReconnects uint64 `json:"needless_reconnects"`
	// CatchUps counts syncs started by a Joined or a Resync;
	// NeedlessCatchUps those nothing asked for (sim/churn.go).
	CatchUps         uint64 `json:"catch_ups"`
	NeedlessCatchUps uint64 `json:"needless_catch_ups"`
	// Churn has each client's counts, by name.
	Churn               map[string]ClientChurn `json:"churn,omitempty"`
	DuplicateDeliveries uint64                 `json:"duplicate_deliveries"`
	// EvictionLosses counts entries a member could not get back from a
	// relay whose cache evicted them (it must list storage).
	EvictionLosses uint64 `json:"eviction_losses"`
	// Overloaded counts awareness and catch-up windows skipped because
	// the member was told to resync during them (again and again).
	Overloaded uint64 `json:"overloaded"`
	// ResyncLate counts members told to resync whose sync had not finished
	// within the resync bound (flooded ones; see sim/resync.go).
	ResyncLate uint64 `json:"resync_late"`
	// Rescans counts the Rescans pool clients were told (a Joined not
	// flagged complete: list storage); pool runs only.
	Rescans uint64 `json:"rescans,omitempty"`
	// Listings counts the storage listings the instances started, and
	// ListingsWithoutRelay the most they would have with no relay;
	// hostile-relay runs only (sim/hostilerelay.go).
	Listings             uint64  `json:"listings,omitempty"`
	ListingsWithoutRelay uint64  `json:"listings_without_relay,omitempty"`
	WallSeconds          float64 `json:"wall_seconds"`
	EventsPerWallSec     float64 `json:"events_per_wall_second"`
	ReplayCommand        string  `json:"replay_command,omitempty"`
}

// Checks counts judged windows per timing invariant.
type Checks struct {
	Awareness uint64 `json:"awareness"`
	CatchUp   uint64 `json:"catch_up"`
	Epoch     uint64 `json:"epoch"`
	Resync    uint64 `json:"resync"`
	// Failover counts pool clients' checks of their joined homes
	// (sim/poolinv.go).
	Failover uint64 `json:"failover,omitempty"`
	// Report counts CaughtUp reports judged against what the relay held
	// when their sync began (invariants.go, checkReport).
	Report uint64 `json:"report"`
}

const (
	invAwareness = iota
	invCatchUp
	invEpoch
	invResync
	invFailover
	invReport
	numInv
)

// world is one run in progress.
type world struct {
	base

	relayNode   *netsim.Node
	relay       *relay.Relay
	relayFaults *registry.Points
	relayUp     bool

	keys      []*roster.Keys
	announced []map[string]bool // refs announced, per channel
	clients   []*simClient      // by name order
	byName    map[string]*simClient

	// What the invariant checkers keep (invariants.go, bounds.go).
	touch   touches
	entries map[roster.ID]entryInfo
	// bySealed maps sealed bytes to IDs, so the wire tap needs no second
	// hash of what the client core hashes anyway.
	bySealed map[string]roster.ID
	// relisted marks entries a listing announced again, by a client that
	// lacked them: the relay may deliver them back to their creator.
	relisted     map[roster.ID]bool
	ids          [][]roster.ID        // per channel, announce order
	sorted       [][]roster.ID        // per channel, sorted; nil when stale
	model        []map[roster.ID]bool // per channel: held by the relay in this incarnation
	relayGen     int                  // relay incarnations started
	epochWatch   []*simClient         // connected when the relay went down
	epochSince   time.Time
	epochSpan    int
	owMax        time.Duration // longest one-way delay
	bandwidth    int
	entryBytes   int // sealed bytes of the largest entry
	memoryBudget int64
	memoryOver   bool
	// firstJoined marks the channels a client got a Joined for from this
	// relay incarnation (rotation.go).
	firstJoined    map[int]bool
	resyncsSeen    uint64 // the relay's Stats().Resyncs at the last look
	resyncLate     uint64
	lateResyncs    []lateResync
	relayStart     time.Time
	checked        [numInv]uint64
	needless       uint64
	overloaded     uint64
	dupDeliveries  uint64
	evictionLosses uint64
	script         *strings.Builder // scripted runs: what the network delivered
}

// simClient is one simulated Cosnim instance.
type simClient struct {
	w          *world
	name       string
	ch         int
	node       *netsim.Node
	core       *client.Client
	faults     *registry.Points
	up         bool
	chans      []int            // channels joined; chans[0] == ch
	saved      [][]roster.Entry // per channel, what the instance keeps on disk across crashes
	lastLen    []int            // per channel
	next       int              // next capsule number
	dialed     dialRecorder
	tap        *tap
	epochAt    time.Time // last EpochChanged
	reconnects uint64
	churn      churn
	seqs       map[uint32]roster.ID // announce sequence → entry, for Acked
	lists      *lister.Lister       // this incarnation's listing policies, by index of chans
	listWaits  []listWait           // checks waiting for a listing
	rescanAt   map[int]time.Time    // channel → the last Rescan the relay sent
}

// chanIndex is the index of channel ch in c.chans, or -1.
func (c *simClient) chanIndex(ch int) int {
	for i, x := range c.chans {
		if x == ch {
			return i
		}
	}
	return -1
}

// Run runs a scenario and checks the invariants.
func Run(sc Scenario, opt Options) Result {
	if sc.Pool != nil {
		return runPool(sc, opt)
	}
	if sc.HostileRelay != nil {
		return runHostileRelay(sc, opt)
	}
	start := time.Now()
	w := newWorld(sc, opt)
	w.schedule()
	w.play(w.net, w.heal, w.check)
	w.judgeLateResyncs()
	return timed(w.result(), start)
}

func newWorld(sc Scenario, opt Options) *world {
	if sc.Timing == (Timing{}) {
		sc.Timing = shortTiming
	}
	w := &world{base: base{sc: sc, opt: opt}, byName: map[string]*simClient{}, entries: map[roster.ID]entryInfo{}, bySealed: map[string]roster.ID{},
		relisted: map[roster.ID]bool{}}
	w.healBound = sc.Timing.healBound()
	if firstNonZero(opt.CacheEntries, sc.Caps.CacheEntries) > 0 {
		// A cache that evicts leaves what it dropped to storage: a member
		// whose link is healthy learns it at its next listing.
		w.healBound += healthyListBound(listConfig)
	}
	w.touch.relaySpan = -1
	w.hash, w.trace = newTrace(opt)
	nopt := netsim.Options{SplitReads: true, RecordBytes: 1 << 16, Latency: netLatency, Jitter: netJitter,
		Bandwidth: sc.Caps.Bandwidth}
	if hw := sc.Caps.HighWater; hw > 0 {
		// netsim's Writable mark matches the relay's slow-member mark, as a
		// driver's would.
		nopt.HighWater, nopt.LowWater = hw, hw/4
	}
	w.net = netsim.New(sc.Seed, nopt)
	w.owMax, w.bandwidth = netLatency+netJitter, sc.Caps.Bandwidth
	if w.bandwidth == 0 {
		w.bandwidth = 100 << 20 // netsim's default
	}
	w.net.SetTraceWriter(w.trace)
	logFrames(w.net, opt.Frames)
	w.rng = rand.New(rand.NewPCG(sc.Seed, 0x51de))
	w.healAt = w.net.Now().Add(sc.Chaos)

	w.relayNode = w.net.AddNode(relayName)
	w.relayFaults = registry.New()
	w.startRelay()

	w.keys = channelKeys(sc.Seed, sc.Channels)
	for range w.keys {
		w.announced = append(w.announced, map[string]bool{})
		w.ids = append(w.ids, nil)
		w.sorted = append(w.sorted, nil)
		w.model = append(w.model, nil)
	}
	onDisk := w.makeOnDisk()
	for ch := 0; ch < sc.Channels; ch++ {
		for i := 0; i < sc.ClientsPerChannel; i++ {
			w.addClient(ClientName(ch, i), []int{ch}, onDisk)
		}
	}
	all := make([]int, sc.Channels)
	for ch := range all {
		all[ch] = ch
	}
	for i := 0; i < sc.HubSpanning; i++ {
		w.addClient(SpanningName(i), all, nil)
	}
	for _, name := range sc.Failpoints {
		w.setFailpoint(name, true)
	}
	if sc.Forger {
		newForger(w)
	}
	for i, k := range sc.Hostile {
		newHostile(w, i, k)
	}
	return w
}

// addClient adds and starts a client joined to chans, with the entries of
// onDisk its disk holds at start.
func (w *world) addClient(name string, chans []int, onDisk func(name string, ch int) []roster.Entry) {
	c := &simClient{w: w, name: name, ch: chans[0], chans: chans, faults: registry.New(),
		saved: make([][]roster.Entry, len(chans)), lastLen: make([]int, len(chans))}
	if onDisk != nil {
		for i, ch := range chans {
			c.saved[i] = onDisk(name, ch)
		}
	}
	c.tap = newTap(c)
	c.rescanAt = map[int]time.Time{}
	c.node = w.net.AddNode(c.name)
	w.clients = append(w.clients, c)
	w.byName[c.name] = c
	c.start()
}

func stamp(d time.Duration) string {
	return fmt.Sprintf("%06d.%09d", d/time.Second, d%time.Second)
}

// relayConfig is the relay's configuration in this scenario.
func (w *world) relayConfig() relay.Config { return relayConfigFor(w.sc, w.opt, w.relayFaults) }

// relayConfigFor is a relay's configuration in scenario sc, with failpoint
// registry faults.
func relayConfigFor(sc Scenario, opt Options, faults *registry.Points) relay.Config {
	t, caps := sc.Timing, sc.Caps
	cfg := relay.Config{
		HeartbeatInterval: t.Heartbeat,
		IdleTimeout:       t.Idle,
		HandshakeTimeout:  2 * time.Second,
		CacheEntries:      firstNonZero(opt.CacheEntries, caps.CacheEntries),
		PendingEntries:    firstNonZero(opt.PendingEntries, caps.PendingEntries),
		MaxFrameSize:      caps.MaxFrameSize,
		HighWater:         firstNonZero(caps.HighWater, simHighWater),
		// Short, so partitions outlast it and channels are forgotten.
		ChannelIdleTimeout: channelIdleOf(t),
		// Scenarios join at most 3 channels per connection; a small cap
		// keeps the swarm's join proofs (a signature each, signed and
		// checked again at every reconnect) from dominating run time.
		MaxChannels: 8,
	}
	if faults != nil {
		cfg.Faults = faults
	}
	return cfg.WithDefaults()
}

// simHighWater is the simulated relay's high-water mark unless a class
// sets one: a quarter of production's, so slow members show at small rates.
const simHighWater = 64 << 10

// channelIdleOf is the relay's channel-idle-timeout with timing t.
func channelIdleOf(t Timing) time.Duration { return max(8*time.Second, 2*t.Idle) }

func firstNonZero(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func (w *world) startRelay() {
	cfg := w.relayConfig()
	w.memoryBudget = cfg.MemoryBudget
	r, err := relay.New(cfg, w.coreRand())
	if err != nil {
		panic(err)
	}
	restart := w.relayGen > 0
	w.relay = r
	w.relayGen++
	w.relayStart = w.net.Now()
	w.memoryOver = false
	w.resyncsSeen = 0
	clear(w.firstJoined)
	for ch := range w.model {
		w.model[ch] = nil
	}
	if w.relayUp || w.net.Events() > 0 {
		w.relayNode.Restart(w.oneRelayTap())
	} else {
		w.relayNode.SetHandler(w.oneRelayTap())
	}
	w.relayNode.Listen(relayAddr)
	w.relayUp = true
	w.touch.relayUp(w.net.Now())
	w.logf("relay up epoch=%016x", r.Epoch())
	if restart {
		w.checkEpoch()
	}
}

// relayDown marks the relay as going away: everybody is touched until it
// is back, and who is connected now must see its next epoch.
func (w *world) relayDown() {
	id := w.touch.relayDown(w.net.Now())
	w.armEpochCheck(id)
	w.relayUp = false
}

func (c *simClient) start() {
	w := c.w
	cfg := clientConfigFor(w.sc.Timing, w.aePeriod(), c.name, c.faults)
	cfg.Addrs = []string{relayAddr}
	c.dialed.d = c.node.Dialer()
	core, err := client.New(cfg, &c.dialed, w.coreRand(), c)
	if err != nil {
		panic(err)
	}
	c.core = core
	c.lists = lister.New(c.node, c.list, func() bool { return c.up && c.core == core })
	now := c.node.Now()
	c.churn.aeSyncs, c.churn.aeStart = 0, now
	for i, ch := range c.chans {
		if err := core.Join(w.keys[ch], c.saved[i], now); err != nil {
			panic(err)
		}
	}
	if c.up || w.net.Events() > 0 {
		c.node.Restart(c.tap)
	} else {
		c.node.SetHandler(c.tap)
	}
	c.up = true
	c.seqs = map[uint32]roster.ID{}
	w.touch.restarted(c.name, w.net.Now())
	if at := w.lateStart(c); at.After(w.net.Now()) {
		w.net.At(at, func() {
			if c.core == core {
				c.startListing(c.node.Now())
				core.Start(c.node.Now())
			}
		})
		return
	}
	c.startListing(now)
	core.Start(now)
}

// lateStart is when a client of a large-roster run with nothing on disk
// starts: 2s in, then one every 500ms.
func (w *world) lateStart(c *simClient) time.Time {
	if r := w.sc.Rotation; r != nil && c.ch >= 1 && len(c.chans) == 1 {
		return w.start().Add(r.createAt(w.sc.Timing, c.ch))
	}
	if w.sc.OnDisk == 0 || len(c.chans) != 1 {
		return time.Time{}
	}
	for i := 2; i < w.sc.ClientsPerChannel; i++ {
		if c.name == ClientName(c.ch, i) {
			return w.start().Add(2*time.Second + time.Duration(i-2)*500*time.Millisecond)
		}
	}
	return time.Time{}
}

// clientConfigFor is a client core's configuration with timing t and
// anti-entropy period ae, without addresses.
func clientConfigFor(t Timing, ae time.Duration, name string, faults *registry.Points) client.Config {
	return client.Config{
		Agent:          name,
		BackoffMin:     t.BackoffMin,
		BackoffMax:     t.BackoffMax,
		ConnectTimeout: 2 * time.Second,
		AntiEntropy:    ae,
		Heartbeat:      t.Heartbeat,
		IdleTimeout:    t.Idle,
		Faults:         faults,
	}
}

// roster returns the client's roster for its first channel.
func (c *simClient) roster() *roster.Set { return c.rosterOf(c.ch) }

// rosterOf returns the client's roster for channel ch.
func (c *simClient) rosterOf(ch int) *roster.Set { return c.core.Roster(c.w.keys[ch].ID()) }

// save records what the client keeps on disk, before a crash.
func (c *simClient) save() {
	for i, ch := range c.chans {
		c.saved[i] = c.rosterOf(ch).Entries()
	}
}

// schedule sets up the workload, the faults and the periodic checks.
func (w *world) schedule() {
	t0 := w.start()
	announce := make([]func(), len(w.clients))
	for i, c := range w.clients {
		announce[i] = c.announce
	}
	scheduleAnnounces(w.net, w.rng, t0, w.sc.Chaos, w.sc.Announces, announce)
	for _, f := range w.sc.Faults {
		w.net.At(t0.Add(f.At), func() { w.inject(f) })
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

// announce makes the client create a capsule in one of its channels and
// announce it.
func (c *simClient) announce() {
	if !c.up {
		return
	}
	ch := c.chans[c.w.rng.IntN(len(c.chans))]
	for range max(c.w.sc.Burst, 1) {
		_ = c.announceIn(ch, fmt.Sprintf("cap/%s/%d", c.name, c.next))
		c.next++
	}
}

// announceRef announces ref in the client's first channel.
func (c *simClient) announceRef(ref string) error { return c.announceIn(c.ch, ref) }

func (c *simClient) announceIn(ch int, ref string) error {
	w := c.w
	if !c.up {
		return fmt.Errorf("%s is down", c.name)
	}
	e, _ := w.keys[ch].Seal([]byte(ref))
	w.record(ch, ref, e, c)
	w.announces++
	w.logf("announce %s %s", c.name, ref)
	seq, err := c.core.Announce(w.keys[ch].ID(), []byte(ref), c.node.Now())
	if err != nil {
		w.violate("%s: announce failed: %v", c.name, err)
		return err
	}
	if seq != 0 {
		c.seqs[seq] = e.ID
	}
	if !c.rosterOf(ch).Has(e.ID) {
		w.violate("read-your-writes: %s does not hold %s right after announcing it", c.name, ref)
	}
	w.checkAwareness(c, ch, e.ID, ref)
	return nil
}

// record notes an entry as announced in ch.
func (w *world) record(ch int, ref string, e roster.Entry, by *simClient) {
	w.announced[ch][ref] = true
	w.entries[e.ID] = entryInfo{ch: ch, ref: ref, by: by}
	w.bySealed[string(e.Sealed)] = e.ID
	w.ids[ch] = append(w.ids[ch], e.ID)
	w.sorted[ch] = nil
	w.entryBytes = max(w.entryBytes, len(e.Sealed))
}

// makeOnDisk seals the entries that exist before the run (Scenario.OnDisk)
// and says which a client's disk holds: the channel's first client all,
// the second every other one, the rest none.
func (w *world) makeOnDisk() func(name string, ch int) []roster.Entry {
	if w.sc.OnDisk == 0 {
		return nil
	}
	all := make([][]roster.Entry, w.sc.Channels)
	for ch := range all {
		for i := range w.sc.OnDisk {
			ref := fmt.Sprintf("disk/%d/%d", ch, i)
			e, _ := w.keys[ch].Seal([]byte(ref))
			w.record(ch, ref, e, nil)
			all[ch] = append(all[ch], e)
		}
	}
	return func(name string, ch int) []roster.Entry {
		switch name {
		case ClientName(ch, 0):
			return all[ch]
		case ClientName(ch, 1):
			var half []roster.Entry
			for i := 0; i < len(all[ch]); i += 2 {
				half = append(half, all[ch][i])
			}
			return half
		}
		return nil
	}
}

// heal ends the chaos phase: faults stop, the relay is up, crashed clients
// come back.
func (w *world) heal() {
	w.healed = true
	w.net.Heal()
	w.net.Refuse(relayAddr, false)
	for _, p := range buggifyPoints {
		w.setFailpoint(p, false)
	}
	for _, name := range w.sc.Failpoints {
		w.setFailpoint(name, true)
	}
	if w.relayUp && w.relay.Draining() {
		w.relayNode.Crash()
		w.relayUp = false
	}
	w.touch.heal(w.net.Now())
	if !w.relayUp {
		w.startRelay()
	}
	for _, c := range w.clients {
		if !c.up {
			c.start()
		}
	}
	w.logf("heal: faults stop")
}

// check verifies the safety invariants and, after heal, convergence.
func (w *world) check() {
	if w.relayUp {
		cache, pending := w.relay.Usage()
		cfg := w.relayConfig()
		if cache > cfg.CacheEntries || pending > cfg.PendingEntries {
			w.violate("boundedness: relay holds %d cached (cap %d), %d pending (cap %d)", cache, cfg.CacheEntries, pending, cfg.PendingEntries)
		}
	}
	all := true
	for _, c := range w.clients {
		if !c.up {
			all = false
			continue
		}
		for i, ch := range c.chans {
			n := c.rosterOf(ch).Len()
			if n < c.lastLen[i] {
				w.violate("monotonic: %s roster of channel %d shrank from %d to %d", c.name, ch, c.lastLen[i], n)
			}
			c.lastLen[i] = n
			if n != len(w.announced[ch]) {
				all = false
			}
		}
	}
	if w.healed && all && w.converged.IsZero() && w.exactUnion() {
		w.converged = w.net.Now()
		w.logf("converged %s after heal", w.converged.Sub(w.healAt))
	}
}

// exactUnion compares every client's roster with its channel's announced set.
func (w *world) exactUnion() bool {
	for _, c := range w.clients {
		for _, ch := range c.chans {
			want := w.sortedIDs(ch)
			r := c.rosterOf(ch)
			if r.Len() != len(want) {
				return false
			}
			for _, id := range want {
				if !r.Has(id) {
					return false
				}
			}
		}
	}
	return true
}

// sortedIDs returns the IDs announced in ch, sorted.
func (w *world) sortedIDs(ch int) []roster.ID {
	if w.sorted[ch] == nil {
		ids := slices.Clone(w.ids[ch])
		slices.SortFunc(ids, func(a, b roster.ID) int { return bytesCompare(a[:], b[:]) })
		w.sorted[ch] = ids
	}
	return w.sorted[ch]
}

func bytesCompare(a, b []byte) int { return bytes.Compare(a, b) }

func (w *world) client(name string) *simClient {
	c := w.byName[name]
	if c == nil {
		panic(fmt.Sprintf("no client %q", name))
	}
	return c
}

func (w *world) result() Result {
	res := Result{
		Seed:           w.sc.Seed,
		Violations:     w.violations,
		Events:         w.net.Events(),
		VirtualSeconds: w.net.Now().Sub(w.start()).Seconds(),
		Clients:        len(w.clients),
		Channels:       w.sc.Channels,
		Announced:      w.announces,
		Faults:         w.faults,
	}
	if w.converged.IsZero() {
		var lag []string
		for _, c := range w.clients {
			for _, ch := range c.chans {
				if n, want := c.rosterOf(ch).Len(), len(w.announced[ch]); n != want {
					lag = append(lag, fmt.Sprintf("%s holds %d of %d in channel %d", c.name, n, want, ch))
				}
			}
		}
		w.violate("convergence: not converged %s after heal: %v", w.healBound, lag)
	} else {
		res.ConvergedAfter = w.converged.Sub(w.healAt).Seconds()
	}
	res.Violations = append([]string{}, w.violations...)
	res.Converged = !w.converged.IsZero()
	st := w.net.Stats()
	res.Messages, res.Bytes = st.Messages, st.BytesDelivered
	for _, c := range w.clients {
		res.ForgedRefused += c.core.Stats().Forged
		res.Reconnects += c.reconnects
		res.CatchUps += c.churn.catchUps
		res.NeedlessCatchUps += c.churn.needless
		if res.Churn == nil {
			res.Churn = map[string]ClientChurn{}
		}
		res.Churn[c.name] = ClientChurn{Reconnects: c.reconnects, CatchUps: c.churn.catchUps, NeedlessCatchUps: c.churn.needless}
	}
	res.Class = w.sc.Class
	res.Checked = Checks{Awareness: w.checked[invAwareness], CatchUp: w.checked[invCatchUp], Epoch: w.checked[invEpoch],
		Resync: w.checked[invResync], Report: w.checked[invReport]}
	res.NeedlessReconnects, res.DuplicateDeliveries, res.EvictionLosses = w.needless, w.dupDeliveries, w.evictionLosses
	res.Overloaded = w.overloaded
	res.ResyncLate = w.resyncLate
	finish(&res, w.sc, w.hash)
	return res
}

// Observer methods: each learned reference must be one announced in the
// client's own channel (no fabrication, isolation).

var _ transport.Handler = (*relay.Relay)(nil)

// scriptf adds a line to a scripted run's output.
func (w *world) scriptf(format string, args ...any) {
	if w.script != nil {
		fmt.Fprintf(w.script, format+"\n", args...)
	}
}
