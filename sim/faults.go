package sim

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/cosnim/relays/transport"
)

// faultSpec is one entry of the fault registry: everything about a fault
// kind in one place, so that a new fault is one entry. Each kind draws its
// schedule from a random stream of its own (seeded by the seed and the
// kind's name), so adding a kind leaves every other kind's schedule, and
// so every existing seed's faults, as they were.
type faultSpec struct {
	kind FaultKind
	// max is the most faults of this kind in one chaos phase; the count
	// is drawn uniformly from 0..max.
	max int
	// gen fills in one fault's targets and duration; ok false drops it
	// (a kind the seed's class excludes).
	gen func(g *genCtx, f *Fault) (ok bool)
	// apply acts on the world; it records the spans the fault touches.
	apply func(w *world, f Fault)
	// usage documents the script verb, which is the kind's name; its
	// arguments are clients, failpoint names and durations in any order.
	usage string
	// in says which worlds draw the kind: inOne (the one-relay world;
	// also when zero), inPool (pool scenarios, see pool.go), or both.
	in uint8
	// poolApply acts on a pool world.
	poolApply func(w *poolWorld, f Fault)
	// untilHeal: the fault lasts until the heal (timelines draw it so).
	untilHeal bool
}

// lastsUntilHeal reports whether a fault of kind lasts until the heal.
func lastsUntilHeal(kind FaultKind) bool {
	s := specOf(kind)
	return s != nil && s.untilHeal
}

// Worlds a fault kind is drawn in (faultSpec.in).
const (
	inOne uint8 = 1 << iota
	inPool
)

// drawnIn reports whether spec's kind is drawn for sc.
func (spec *faultSpec) drawnIn(sc *Scenario) bool {
	in := spec.in
	if in == 0 {
		in = inOne
	}
	if sc.Pool != nil {
		return in&inPool != 0
	}
	return in&inOne != 0
}

// genCtx is what a kind's generator draws from.
type genCtx struct {
	rng     *rand.Rand
	sc      *Scenario
	clients []string
	relays  []string // pool scenarios' relays
}

func (g *genCtx) pickRelay() string { return g.relays[g.rng.IntN(len(g.relays))] }

func (g *genCtx) pick() string { return g.clients[g.rng.IntN(len(g.clients))] }

func (g *genCtx) some() []string {
	var out []string
	for _, c := range g.clients {
		if g.rng.IntN(2) == 0 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		out = append(out, g.pick())
	}
	return out
}

func (g *genCtx) dur() time.Duration { return time.Duration(500+g.rng.IntN(10000)) * time.Millisecond }

// faultRegistry lists every fault kind, in the order their streams are
// drawn (order does not matter for schedules, only for the trace).
var faultRegistry = []faultSpec{
	{kind: FaultPartition, max: 2, untilHeal: true, usage: "partition CLIENT...",
		gen: func(g *genCtx, f *Fault) bool { f.Targets = g.some(); return true },
		apply: func(w *world, f Fault) {
			w.net.Partition(f.Targets, []string{relayName})
			w.touch.untilHeal(f.Targets, w.net.Now())
		}},
	{kind: FaultOneWay, max: 1, untilHeal: true, usage: "oneway CLIENT",
		gen: func(g *genCtx, f *Fault) bool { f.Targets = []string{g.pick()}; return true },
		apply: func(w *world, f Fault) {
			w.net.PartitionOneWay(f.Targets[0], relayName)
			w.touch.untilHeal(f.Targets[:1], w.net.Now())
		}},
	{kind: FaultClog, max: 1, untilHeal: true, usage: "clog CLIENT",
		gen: func(g *genCtx, f *Fault) bool { f.Targets = []string{g.pick()}; return true },
		apply: func(w *world, f Fault) {
			w.net.Clog(f.Targets[0], relayName)
			w.touch.untilHeal(f.Targets[:1], w.net.Now())
		}},
	{kind: FaultSwizzle, max: 1, usage: "swizzle CLIENT... INTERVAL",
		gen: func(g *genCtx, f *Fault) bool {
			f.Targets, f.Duration = g.some(), time.Duration(100+g.rng.IntN(900))*time.Millisecond
			return true
		},
		apply: func(w *world, f Fault) {
			end := w.net.SwizzleClog(append([]string{relayName}, f.Targets...), f.Duration)
			id := w.touch.newID()
			for _, t := range f.Targets {
				w.touch.node(t, w.net.Now(), end.Add(settle), id)
			}
		}},
	{kind: FaultHeal, max: 1, usage: "heal", in: inOne | inPool,
		gen: func(*genCtx, *Fault) bool { return true },
		apply: func(w *world, f Fault) {
			w.net.Heal()
			w.touch.heal(w.net.Now())
		},
		poolApply: func(w *poolWorld, f Fault) {
			w.net.Heal()
			w.touch.heal(w.net.Now())
		}},
	{kind: FaultCrashRelay, max: 2, usage: "crash-relay [DOWNTIME]",
		gen:   func(g *genCtx, f *Fault) bool { f.Duration = g.dur(); return true },
		apply: applyCrashRelay},
	{kind: FaultCrashClient, max: 1, usage: "crash-client CLIENT [DOWNTIME]",
		gen:   func(g *genCtx, f *Fault) bool { f.Targets, f.Duration = []string{g.pick()}, g.dur(); return true },
		apply: applyCrashClient},
	{kind: FaultReset, max: 1, usage: "reset CLIENT",
		gen: func(g *genCtx, f *Fault) bool { f.Targets = []string{g.pick()}; return true },
		apply: func(w *world, f Fault) {
			c := w.client(f.Targets[0])
			if !c.up || c.dialed.last == nil {
				return
			}
			id := w.touch.newID()
			w.touch.node(c.name, w.net.Now(), w.net.Now().Add(settle), id)
			w.checkReconnect(c, id)
			w.net.ResetConn(c.dialed.last)
		}},
	{kind: FaultRefuse, max: 1, usage: "refuse DURATION",
		gen: func(g *genCtx, f *Fault) bool { f.Duration = g.dur(); return true },
		apply: func(w *world, f Fault) {
			now := w.net.Now()
			w.touch.dials = append(w.touch.dials, span{now, now.Add(f.Duration + settle), w.touch.newID()})
			w.net.Refuse(relayAddr, true)
			w.net.At(now.Add(f.Duration), func() { w.net.Refuse(relayAddr, false) })
		}},
	{kind: FaultReplay, max: 1, usage: "replay CLIENT",
		gen: func(g *genCtx, f *Fault) bool { f.Targets = []string{g.pick()}; return true },
		// An old connection's bytes on a new one must not disturb anybody:
		// the replay touches no span.
		apply: func(w *world, f Fault) {
			if c := w.client(f.Targets[0]); c.dialed.first != nil {
				w.net.Replay(c.name, relayAddr, c.dialed.first, 1<<20)
			}
		}},
	{kind: FaultBuggify, max: 1, usage: "buggify FAILPOINT DURATION",
		gen: func(g *genCtx, f *Fault) bool {
			points := buggifyPoints
			if g.sc.Timing.AntiEntropy == 0 {
				points = buggifyKeepData // nothing would repair a loss
			}
			f.Targets, f.Duration = []string{points[g.rng.IntN(len(points))]}, g.dur()
			return true
		},
		apply: func(w *world, f Fault) {
			now := w.net.Now()
			w.touch.global = append(w.touch.global, span{now, now.Add(f.Duration + settle), w.touch.newID()})
			w.setFailpoint(f.Targets[0], true)
			w.net.At(now.Add(f.Duration), func() { w.setFailpoint(f.Targets[0], false) })
		}},
	{kind: FaultDrift, max: 1, usage: "drift CLIENT OFFSET",
		gen: func(g *genCtx, f *Fault) bool {
			f.Targets = []string{g.pick()}
			f.Duration = time.Duration(g.rng.Int64N(int64(2*time.Second))) - time.Second
			return true
		},
		apply: func(w *world, f Fault) {
			c := w.client(f.Targets[0])
			now := w.net.Now()
			w.touch.node(c.name, now, now.Add(w.sc.Timing.Idle+settle), w.touch.newID())
			c.node.SetDrift(f.Duration, 200)
		}},
	{kind: FaultDrainRelay, max: 1, usage: "drain GRACE",
		gen:   func(g *genCtx, f *Fault) bool { f.Duration = g.dur(); return true },
		apply: applyDrain},
	// Pool scenarios (pool.go, poolfaults.go).
	{kind: FaultPoolCrash, max: 2, usage: "relay-crash RELAY [DOWNTIME]", in: inPool,
		gen:       func(g *genCtx, f *Fault) bool { f.Targets, f.Duration = []string{g.pickRelay()}, g.dur(); return true },
		poolApply: applyPoolCrash},
	{kind: FaultPoolCut, max: 2, untilHeal: true, usage: "relay-cut CLIENT RELAY...", in: inPool,
		gen:       genPoolCut,
		poolApply: applyPoolCut},
	{kind: FaultBusCut, max: 1, usage: "bus-cut RELAY [DURATION]", in: inPool,
		gen: func(g *genCtx, f *Fault) bool {
			f.Targets, f.Duration = []string{g.pickRelay()}, g.dur()
			return g.sc.Pool.Backbone
		},
		poolApply: applyBusCut},
	{kind: FaultBusCrash, max: 1, usage: "bus-crash [DOWNTIME]", in: inPool,
		gen:       func(g *genCtx, f *Fault) bool { f.Duration = g.dur(); return g.sc.Pool.Backbone },
		poolApply: applyBusCrash},
	{kind: FaultPoolDrain, max: 1, usage: "relay-drain RELAY GRACE", in: inPool,
		gen:       func(g *genCtx, f *Fault) bool { f.Targets, f.Duration = []string{g.pickRelay()}, g.dur(); return true },
		poolApply: applyPoolDrain},
	// The hostile bus publisher's (poolbus.go).
	{kind: FaultBusInject, max: 2, usage: "bus-inject", in: inPool,
		gen:       func(g *genCtx, f *Fault) bool { return g.sc.Pool.HostileBus },
		poolApply: applyBusInject},
	{kind: FaultBusAsk, max: 2, usage: "bus-ask", in: inPool,
		gen:       func(g *genCtx, f *Fault) bool { return g.sc.Pool.HostileBus },
		poolApply: applyBusAsk},
}

// specOf finds a kind's registry entry.
func specOf(k FaultKind) *faultSpec {
	for i := range faultRegistry {
		if faultRegistry[i].kind == k {
			return &faultRegistry[i]
		}
	}
	return nil
}

// genFaults draws every kind's faults from its own stream.
func genFaults(sc *Scenario, clients []string) []Fault {
	var out []Fault
	var relays []string
	if sc.Pool != nil {
		for i := range sc.Pool.Relays {
			relays = append(relays, PoolRelayName(i))
		}
	}
	for _, spec := range faultRegistry {
		if !spec.drawnIn(sc) {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(spec.kind))
		g := &genCtx{rng: rand.New(rand.NewPCG(sc.Seed, h.Sum64())), sc: sc, clients: clients, relays: relays}
		for range g.rng.IntN(spec.max + 1) {
			f := Fault{At: time.Duration(g.rng.Int64N(int64(sc.Chaos))), Kind: spec.kind}
			if spec.gen(g, &f) {
				out = append(out, f)
			}
		}
	}
	sortFaults(out)
	return out
}

func applyCrashRelay(w *world, f Fault) {
	if !w.relayUp {
		return
	}
	w.relayDown()
	w.relayNode.Crash()
	if f.Duration > 0 {
		w.net.At(w.net.Now().Add(f.Duration), func() {
			if !w.relayUp && !w.healed {
				w.startRelay()
			}
		})
	}
}

func applyDrain(w *world, f Fault) {
	if !w.relayUp {
		return
	}
	w.relayDown()
	w.relayUp = true // still serving while it drains
	now := w.net.Now()
	w.relay.Drain(now, 500*time.Millisecond, time.Second, nil)
	w.net.At(now.Add(f.Duration), func() {
		if w.relayUp && !w.healed {
			w.relayNode.Crash()
			w.relayUp = false
			w.startRelay()
		}
	})
}

func applyCrashClient(w *world, f Fault) {
	c := w.client(f.Targets[0])
	if !c.up {
		return
	}
	w.touch.untilRestart(c.name, w.net.Now())
	c.save()
	c.node.Crash()
	c.up = false
	c.tap.lost()
	if f.Duration > 0 {
		w.net.At(w.net.Now().Add(f.Duration), func() {
			if !c.up && !w.healed {
				c.start()
			}
		})
	}
}

// parseFault reads a script verb and its arguments as a fault.
func parseFault(verb string, args []string) (Fault, error) {
	spec := specOf(FaultKind(verb))
	if spec == nil {
		return Fault{}, fmt.Errorf("unknown fault %q", verb)
	}
	if spec.apply == nil {
		return Fault{}, fmt.Errorf("fault %q runs in pool scenarios only; scripts run one relay", verb)
	}
	f := Fault{Kind: spec.kind}
	for _, a := range args {
		if d, err := time.ParseDuration(a); err == nil {
			f.Duration = d
			continue
		}
		f.Targets = append(f.Targets, a)
	}
	if strings.Contains(spec.usage, "CLIENT") || strings.Contains(spec.usage, "FAILPOINT") || strings.Contains(spec.usage, "RELAY") {
		if len(f.Targets) == 0 {
			return Fault{}, fmt.Errorf("usage: %s", spec.usage)
		}
	}
	return f, nil
}

func sortFaults(fs []Fault) {
	slices.SortStableFunc(fs, func(a, b Fault) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
}

// setFailpoint turns a failpoint on or off in the registry of the core it
// belongs to (relay/... on the relay, client/... on every client).
func (w *world) setFailpoint(name string, on bool) {
	set := func(p interface {
		Enable(string, string) error
		Disable(string) error
	}) {
		if on {
			_ = p.Enable(name, "return(true)")
		} else {
			_ = p.Disable(name)
		}
	}
	if strings.HasPrefix(name, "relay/") {
		set(w.relayFaults)
		return
	}
	for _, c := range w.clients {
		set(c.faults)
	}
}

// inject applies a scheduled fault unless the chaos phase is over.
func (w *world) inject(f Fault) {
	if !w.healed {
		w.apply(f)
	}
}

// apply applies one fault through its registry entry.
func (w *world) apply(f Fault) {
	spec := specOf(f.Kind)
	if spec == nil {
		panic(fmt.Sprintf("sim: unknown fault kind %q", f.Kind))
	}
	w.faults++
	w.logf("fault %s %v %v", f.Kind, f.Targets, f.Duration)
	spec.apply(w, f)
}

// dialRecorder remembers a client's first and latest connections, for
// resets and replays.
type dialRecorder struct {
	d           transport.Dialer
	first, last transport.Conn
}

func (r *dialRecorder) Dial(addr string) transport.Conn {
	c := r.d.Dial(addr)
	if r.first == nil {
		r.first = c
	}
	r.last = c
	return c
}
