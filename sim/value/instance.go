package value

import (
	"fmt"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/sim/internal/lister"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// instance is one simulated Cosnim instance of the comparison runs: it
// writes capsules to storage and announces them, lists its hubs on the
// client's ListPolicy schedule, and learns through the relay. It runs the
// same code whether a relay is reachable or not.
type instance struct {
	w      *cworld
	name   string
	node   *netsim.Node
	core   core           // joined to every hub
	lists  *lister.Lister // per hub, in w.keys order; routes the core's events as the Agent does
	known  []bool         // by capsule index
	nKnown int
	live   bool

	// A starting command: it must come to know every capsule visible in
	// storage when it started.
	command    bool
	started    time.Time
	missing    int // capsules visible at start, not yet known
	caughtUp   time.Duration
	isCaughtUp bool

	queries   uint64 // list queries, during the workload
	listBytes uint64
	viaRelay  uint64 // capsules first known through the relay
	viaList   uint64 // capsules first known by listing
}

// startInstance adds and starts an instance: a node, a client core joined
// to every hub, and per hub a ListPolicy.
func (w *cworld) startInstance(name string, command bool) *instance {
	in := &instance{w: w, name: name, command: command, live: true}
	in.node = w.net.AddNode(name)
	now := w.net.Now()
	in.started = now
	in.lists = lister.New(in.node, in.list, func() bool { return in.live })
	in.known = make([]bool, len(w.caps), len(w.caps)+64)
	core := w.newCore(in)
	in.core = core
	for h, k := range w.keys {
		if err := core.Join(k, nil, now); err != nil {
			panic(err)
		}
		p, err := client.NewListPolicy(w.cfg.List, w.coreRand(), now)
		if err != nil {
			panic(err)
		}
		if in.lists.Add(k.ID(), p) != h {
			panic("sim: hubs out of order")
		}
	}
	if command {
		for _, c := range w.caps {
			if !c.visible.After(now) {
				in.missing++
			}
		}
		in.checkCaughtUp(now)
	}
	in.node.SetHandler(core)
	core.Start(now)
	in.lists.ArmAll()
	return in
}

// stop ends a starting command: the process exits.
func (in *instance) stop() {
	if in.live {
		in.live = false
		in.core.Stop(in.w.net.Now())
		in.node.Crash()
	}
}

// list starts a listing of hub h (lister.Start). The answer comes after
// the listing's pages; it was taken as of the start.
func (in *instance) list(h int, now time.Time) (time.Duration, func(time.Time)) {
	w := in.w
	l := w.storage[h].List(now)
	if !w.workloadOver {
		in.queries += uint64(l.Pages)
		in.listBytes += uint64(l.Bytes)
	}
	return l.Took, func(done time.Time) {
		var found [][]byte
		for _, c := range l.Capsules {
			if !in.knows(c) {
				in.know(c, done, false)
				found = append(found, w.caps[c].ref)
			}
		}
		// Tell the others what listing found: after a relay restart it may
		// be all that is left of a capsule whose writer is gone.
		for _, ref := range found {
			_, _ = in.core.Announce(w.keys[h].ID(), ref, done)
		}
	}
}

// write creates a capsule in hub h: into storage first, then announced.
func (in *instance) write(h int) {
	w := in.w
	if !in.live {
		return
	}
	now := w.net.Now()
	idx := len(w.caps)
	ref := fmt.Appendf(nil, "cap/h%d/%s/%d", h, in.name, idx)
	visible := w.storage[h].Write(idx, now, w.workloadRand)
	w.caps = append(w.caps, capsule{ref: ref, hub: h, writer: in, written: now, visible: visible})
	w.byRef[string(ref)] = idx
	in.know(idx, now, false)
	if _, err := in.core.Announce(w.keys[h].ID(), ref, now); err != nil {
		panic(err)
	}
}

// knows reports whether the instance knows capsule c.
func (in *instance) knows(c int) bool { return c < len(in.known) && in.known[c] }

// know records that the instance knows capsule c from now on.
func (in *instance) know(c int, now time.Time, viaRelay bool) {
	for len(in.known) <= c {
		in.known = append(in.known, false)
	}
	if in.known[c] {
		return
	}
	in.known[c] = true
	in.nKnown++
	w := in.w
	cp := &w.caps[c]
	if cp.writer != in {
		if viaRelay {
			in.viaRelay++
		} else {
			in.viaList++
		}
	}
	if in.command {
		if !cp.visible.After(in.started) {
			in.missing--
			in.checkCaughtUp(now)
		}
		return
	}
	if cp.writer != in && !cp.writer.command {
		w.awareness = append(w.awareness, sample{written: cp.written, latency: now.Sub(cp.written)})
	}
}

func (in *instance) checkCaughtUp(now time.Time) {
	if in.missing == 0 && !in.isCaughtUp {
		in.isCaughtUp = true
		in.caughtUp = now.Sub(in.started)
		in.w.net.At(now.Add(time.Second), in.stop)
	}
}

// core is what an instance needs of its client core: a client.Client on
// one relay connection, or a client.Pool over the variant's relays.
type core interface {
	transport.Handler
	Join(keys *roster.Keys, known []roster.Entry, now time.Time) error
	Announce(id roster.ChannelID, ref []byte, now time.Time) (uint32, error)
	Start(now time.Time)
	Stop(now time.Time)
	Stats() client.Stats
}

var (
	_ core = (*client.Client)(nil)
	_ core = (*client.Pool)(nil)
)

// newCore returns in's client core for the variant, observed by in.
func (w *cworld) newCore(in *instance) core {
	obs := (*instObserver)(in)
	if w.spec.pool {
		p, err := client.NewPool(w.poolConfig(in.name), in.node.Dialer(), w.coreRand(), obs)
		if err != nil {
			panic(err)
		}
		return p
	}
	c, err := client.New(client.Config{Addrs: []string{relayAddr}, Agent: in.name}, in.node.Dialer(), w.coreRand(), obs)
	if err != nil {
		panic(err)
	}
	return c
}

// instObserver hears the instance's client core: what it learns, and,
// through its lister, what client.Listings routes to the hubs' policies.
type instObserver instance

func (o *instObserver) Learned(_ roster.ChannelID, refs [][]byte, now time.Time) {
	in := (*instance)(o)
	for _, ref := range refs {
		c, ok := in.w.byRef[string(ref)]
		if !ok {
			panic(fmt.Sprintf("sim: %s learned %q, which nobody wrote", in.name, ref))
		}
		in.know(c, now, true)
	}
}

func (o *instObserver) StateChanged(s client.State, now time.Time) { o.lists.StateChanged(s, now) }

func (o *instObserver) CaughtUp(id roster.ChannelID, now time.Time) { o.lists.CaughtUp(id, now) }

func (o *instObserver) EpochChanged(epoch uint64, now time.Time) { o.lists.EpochChanged(epoch, now) }

func (o *instObserver) Acked(roster.ChannelID, uint32, time.Time) {}

func (o *instObserver) Problem(id roster.ChannelID, code wire.Code, text string, now time.Time) {
	o.lists.Problem(id, code, text, now)
}

var _ client.Observer = (*instObserver)(nil)
