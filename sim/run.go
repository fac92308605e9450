package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/internal/fault/registry"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// Timing of the simulated cores: short, so runs cover many cycles.
const (
	simHeartbeat   = time.Second
	simIdle        = 3 * time.Second
	simAntiEntropy = 5 * time.Second
	simBackoffMin  = 100 * time.Millisecond
	simBackoffMax  = 2 * time.Second
	checkEvery     = 250 * time.Millisecond
	relayAddr      = "relay:7420"
	relayName      = "relay"
)

// HealBound is how long after faults stop every live client must hold the
// union of its channel: time to notice a dead link (idle timeout), back off
// and reconnect, plus two anti-entropy periods and slack.
const HealBound = simIdle + simBackoffMax + 2*simAntiEntropy + 5*time.Second

// Options tune a run.
type Options struct {
	// Timeline, if set, receives the readable trace as it is written.
	Timeline io.Writer
	// CacheEntries and PendingEntries cap the relay (defaults 100000, 10000).
	CacheEntries, PendingEntries int
}

// Result is what a run found. Two runs of one scenario give the same Result
// apart from the wall-time fields.
type Result struct {
	Seed             uint64   `json:"seed"`
	Converged        bool     `json:"converged"`
	Violations       []string `json:"violations"`
	Events           uint64   `json:"events"`
	VirtualSeconds   float64  `json:"virtual_seconds"`
	ConvergedAfter   float64  `json:"converged_after_heal_seconds"`
	TraceSHA256      string   `json:"trace_sha256"`
	Clients          int      `json:"clients"`
	Channels         int      `json:"channels"`
	Announced        int      `json:"announced"`
	Faults           int      `json:"faults"`
	Messages         uint64   `json:"messages"`
	Bytes            uint64   `json:"bytes"`
	ForgedRefused    uint64   `json:"forged_refused"`
	WallSeconds      float64  `json:"wall_seconds"`
	EventsPerWallSec float64  `json:"events_per_wall_second"`
	ReplayCommand    string   `json:"replay_command,omitempty"`
}

// world is one run in progress.
type world struct {
	sc    Scenario
	opt   Options
	net   *netsim.Network
	rng   *rand.Rand
	trace io.Writer // hash and optional timeline
	hash  hash.Hash

	relayNode   *netsim.Node
	relay       *relay.Relay
	relayFaults *registry.Points
	relayUp     bool

	keys      []*roster.Keys
	announced []map[string]bool // refs announced, per channel
	clients   []*simClient      // by name order
	byName    map[string]*simClient

	healed     bool
	healAt     time.Time
	converged  time.Time
	violations []string
	announces  int
	faults     int
}

// simClient is one simulated Cosnim instance.
type simClient struct {
	w       *world
	name    string
	ch      int
	node    *netsim.Node
	core    *client.Client
	faults  *registry.Points
	up      bool
	chans   []int            // channels joined; chans[0] == ch
	saved   [][]roster.Entry // per channel, what the instance keeps on disk across crashes
	lastLen []int            // per channel
	next    int              // next capsule number
	dialed  dialRecorder
}

// Run runs a scenario and checks the invariants.
func Run(sc Scenario, opt Options) Result {
	start := time.Now()
	w := newWorld(sc, opt)
	w.schedule()
	w.net.RunUntil(w.healAt)
	w.heal()
	end := w.healAt.Add(HealBound)
	for !w.net.Now().After(end) && w.converged.IsZero() {
		w.net.RunUntil(w.net.Now().Add(checkEvery))
		w.check()
	}
	res := w.result()
	res.WallSeconds = time.Since(start).Seconds()
	if res.WallSeconds > 0 {
		res.EventsPerWallSec = float64(res.Events) / res.WallSeconds
	}
	return res
}

func newWorld(sc Scenario, opt Options) *world {
	w := &world{sc: sc, opt: opt, byName: map[string]*simClient{}}
	w.hash = sha256.New()
	w.trace = w.hash
	if opt.Timeline != nil {
		w.trace = io.MultiWriter(w.hash, opt.Timeline)
	}
	w.net = netsim.New(sc.Seed, netsim.Options{SplitReads: true, RecordBytes: 1 << 16})
	w.net.SetTrace(func(line string) { io.WriteString(w.trace, line+"\n") })
	w.rng = rand.New(rand.NewPCG(sc.Seed, 0x51de))
	w.healAt = w.net.Now().Add(sc.Chaos)

	w.relayNode = w.net.AddNode(relayName)
	w.relayFaults = registry.New()
	w.startRelay()

	secret := fmt.Appendf(nil, "continuum secret %d", sc.Seed)
	for ch := 0; ch < sc.Channels; ch++ {
		k, err := roster.DeriveKeys(secret, fmt.Sprintf("hub-%d", ch))
		if err != nil {
			panic(err)
		}
		w.keys = append(w.keys, k)
		w.announced = append(w.announced, map[string]bool{})
		for i := 0; i < sc.ClientsPerChannel; i++ {
			w.addClient(ClientName(ch, i), []int{ch})
		}
	}
	all := make([]int, sc.Channels)
	for ch := range all {
		all[ch] = ch
	}
	for i := 0; i < sc.HubSpanning; i++ {
		w.addClient(SpanningName(i), all)
	}
	for _, name := range sc.Failpoints {
		w.setFailpoint(name, true)
	}
	if sc.Forger {
		newForger(w)
	}
	return w
}

// addClient adds and starts a client joined to chans.
func (w *world) addClient(name string, chans []int) {
	c := &simClient{w: w, name: name, ch: chans[0], chans: chans, faults: registry.New(),
		saved: make([][]roster.Entry, len(chans)), lastLen: make([]int, len(chans))}
	c.node = w.net.AddNode(c.name)
	w.clients = append(w.clients, c)
	w.byName[c.name] = c
	c.start()
}

func (w *world) logf(format string, args ...any) {
	fmt.Fprintf(w.trace, "t=%s sim ", stamp(w.net.Now().Sub(w.start())))
	fmt.Fprintf(w.trace, format+"\n", args...)
}

func (w *world) start() time.Time { return w.healAt.Add(-w.sc.Chaos) }

func stamp(d time.Duration) string {
	return fmt.Sprintf("%06d.%09d", d/time.Second, d%time.Second)
}

func (w *world) coreRand() *rand.Rand {
	return rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64()))
}

func (w *world) startRelay() {
	cfg := relay.Config{
		HeartbeatInterval: simHeartbeat,
		IdleTimeout:       simIdle,
		HandshakeTimeout:  2 * time.Second,
		CacheEntries:      w.opt.CacheEntries,
		PendingEntries:    w.opt.PendingEntries,
		HighWater:         64 << 10,
		// Short, so partitions outlast it and channels are forgotten.
		ChannelIdleTimeout: 8 * time.Second,
		Faults:             w.relayFaults,
	}
	r, err := relay.New(cfg, w.coreRand())
	if err != nil {
		panic(err)
	}
	w.relay = r
	if w.relayUp || w.net.Events() > 0 {
		w.relayNode.Restart(r)
	} else {
		w.relayNode.SetHandler(r)
	}
	w.relayNode.Listen(relayAddr)
	w.relayUp = true
	w.logf("relay up epoch=%016x", r.Epoch())
}

func (c *simClient) start() {
	w := c.w
	cfg := client.Config{
		Addrs:          []string{relayAddr},
		Agent:          c.name,
		BackoffMin:     simBackoffMin,
		BackoffMax:     simBackoffMax,
		ConnectTimeout: 2 * time.Second,
		AntiEntropy:    simAntiEntropy,
		Heartbeat:      simHeartbeat,
		IdleTimeout:    simIdle,
		Faults:         c.faults,
	}
	c.dialed.d = c.node.Dialer()
	core, err := client.New(cfg, &c.dialed, w.coreRand(), c)
	if err != nil {
		panic(err)
	}
	c.core = core
	now := c.node.Now()
	for i, ch := range c.chans {
		if err := core.Join(w.keys[ch], c.saved[i], now); err != nil {
			panic(err)
		}
	}
	if c.up || w.net.Events() > 0 {
		c.node.Restart(core)
	} else {
		c.node.SetHandler(core)
	}
	c.up = true
	core.Start(now)
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

func (w *world) violate(format string, args ...any) {
	v := fmt.Sprintf("t=%s ", stamp(w.net.Now().Sub(w.start()))) + fmt.Sprintf(format, args...)
	w.logf("VIOLATION %s", v)
	if len(w.violations) < 50 {
		w.violations = append(w.violations, v)
	}
}

// schedule sets up the workload, the faults and the periodic checks.
func (w *world) schedule() {
	t0 := w.start()
	for _, c := range w.clients {
		for range w.sc.Announces {
			at := t0.Add(time.Duration(w.rng.Int64N(int64(w.sc.Chaos))))
			w.net.At(at, c.announce)
		}
	}
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
	if c.up {
		ch := c.chans[c.w.rng.IntN(len(c.chans))]
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
	w.announced[ch][ref] = true
	w.announces++
	w.logf("announce %s %s", c.name, ref)
	if _, err := c.core.Announce(w.keys[ch].ID(), []byte(ref), c.node.Now()); err != nil {
		w.violate("%s: announce failed: %v", c.name, err)
		return err
	}
	e, _ := w.keys[ch].Seal([]byte(ref))
	if !c.rosterOf(ch).Has(e.ID) {
		w.violate("read-your-writes: %s does not hold %s right after announcing it", c.name, ref)
	}
	return nil
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
		cacheCap, pendingCap := w.opt.CacheEntries, w.opt.PendingEntries
		if cacheCap == 0 {
			cacheCap = relay.DefaultConfig().CacheEntries
		}
		if pendingCap == 0 {
			pendingCap = relay.DefaultConfig().PendingEntries
		}
		if cache > cacheCap || pending > pendingCap {
			w.violate("boundedness: relay holds %d cached (cap %d), %d pending (cap %d)", cache, cacheCap, pending, pendingCap)
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
			want := w.sealedIDs(ch)
			got := c.rosterOf(ch).Entries()
			if len(got) != len(want) {
				return false
			}
			for i, e := range got {
				if e.ID != want[i] {
					return false
				}
			}
		}
	}
	return true
}

func (w *world) sealedIDs(ch int) []roster.ID {
	refs := sortedKeys(w.announced[ch])
	ids := make([]roster.ID, 0, len(refs))
	for _, ref := range refs {
		e, _ := w.keys[ch].Seal([]byte(ref))
		ids = append(ids, e.ID)
	}
	slices.SortFunc(ids, func(a, b roster.ID) int { return bytesCompare(a[:], b[:]) })
	return ids
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
		w.violate("convergence: not converged %s after heal: %v", HealBound, lag)
	} else {
		res.ConvergedAfter = w.converged.Sub(w.healAt).Seconds()
	}
	res.Violations = append([]string{}, w.violations...)
	res.Converged = !w.converged.IsZero()
	st := w.net.Stats()
	res.Messages, res.Bytes = st.Messages, st.BytesDelivered
	for _, c := range w.clients {
		res.ForgedRefused += c.core.Stats().Forged
	}
	res.TraceSHA256 = hex.EncodeToString(w.hash.Sum(nil))
	if len(res.Violations) > 0 {
		res.ReplayCommand = fmt.Sprintf("cosnim sim --seed %d --timeline timeline.txt --svg timeline.svg", w.sc.Seed)
		for _, fp := range w.sc.Failpoints {
			res.ReplayCommand += " --failpoint " + fp
		}
	}
	return res
}

// Observer methods: each learned reference must be one announced in the
// client's own channel (no fabrication, isolation).

func (c *simClient) Learned(id roster.ChannelID, refs [][]byte, now time.Time) {
	w := c.w
	ch := -1
	for _, j := range c.chans {
		if w.keys[j].ID() == id {
			ch = j
		}
	}
	if ch < 0 {
		w.violate("isolation: %s learned entries of a channel it never joined", c.name)
		return
	}
	for _, ref := range refs {
		if !w.announced[ch][string(ref)] {
			w.violate("fabrication: %s learned %q, which nobody announced in its channel", c.name, ref)
		}
	}
}

func (c *simClient) StateChanged(s client.State, now time.Time) {
	c.w.logf("%s state %v", c.name, s)
}
func (c *simClient) CaughtUp(roster.ChannelID, time.Time)      {}
func (c *simClient) EpochChanged(e uint64, now time.Time)      { c.w.logf("%s epoch %016x", c.name, e) }
func (c *simClient) Acked(roster.ChannelID, uint32, time.Time) {}
func (c *simClient) Problem(_ roster.ChannelID, code wire.Code, text string, now time.Time) {
	c.w.logf("%s problem %v %s", c.name, code, text)
}

var _ client.Observer = (*simClient)(nil)
var _ transport.Handler = (*relay.Relay)(nil)
