package sim

import (
	"fmt"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// instance is one simulated Cosnim instance of the comparison runs: it
// writes capsules to storage and announces them, lists its hubs on the
// client's ListPolicy schedule, and learns through the relay. It runs the
// same code whether a relay is reachable or not.
type instance struct {
	w       *cworld
	name    string
	node    *netsim.Node
	core    *client.Client           // joined to every hub, on one relay connection
	hubOf   map[roster.ChannelID]int // lookups only
	policy  []*client.ListPolicy     // per hub
	armed   []time.Time              // per hub: the wake-up scheduled for its policy
	listing []bool                   // per hub: a listing in progress
	known   []bool                   // by capsule index
	nKnown  int
	live    bool

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
	in := &instance{w: w, name: name, command: command, live: true, hubOf: map[roster.ChannelID]int{}}
	in.node = w.net.AddNode(name)
	now := w.net.Now()
	in.started = now
	hubs := len(w.keys)
	in.armed = make([]time.Time, hubs)
	in.listing = make([]bool, hubs)
	in.known = make([]bool, len(w.caps), len(w.caps)+64)
	core, err := client.New(client.Config{Addrs: []string{relayAddr}, Agent: name}, in.node.Dialer(), w.coreRand(), (*instObserver)(in))
	if err != nil {
		panic(err)
	}
	in.core = core
	for h, k := range w.keys {
		if err := core.Join(k, nil, now); err != nil {
			panic(err)
		}
		p, err := client.NewListPolicy(w.cfg.List, w.coreRand(), now)
		if err != nil {
			panic(err)
		}
		in.hubOf[k.ID()] = h
		in.policy = append(in.policy, p)
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
	for h := range w.keys {
		in.arm(h)
	}
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

// arm schedules a wake-up at the hub policy's next listing time, unless one
// is already set for that time. Stale wake-ups find armed changed and do
// nothing.
func (in *instance) arm(h int) {
	if !in.live || in.listing[h] {
		return
	}
	t := in.policy[h].Next()
	if t.Equal(in.armed[h]) {
		return
	}
	in.armed[h] = t
	in.w.net.At(t, func() {
		if in.armed[h].Equal(t) {
			in.armed[h] = time.Time{}
			in.maybeList(h)
		}
	})
}

// maybeList lists hub h if its policy says so. The answer comes after the
// listing's pages; it was taken as of the start.
func (in *instance) maybeList(h int) {
	w := in.w
	now := w.net.Now()
	if !in.live || in.listing[h] || !in.policy[h].Due(now) {
		in.arm(h)
		return
	}
	in.listing[h] = true
	in.policy[h].ListingStarted(now)
	l := w.storage[h].List(now)
	if !w.workloadOver {
		in.queries += uint64(l.Pages)
		in.listBytes += uint64(l.Bytes)
	}
	w.net.At(now.Add(l.Took), func() {
		if !in.live {
			return
		}
		done := w.net.Now()
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
		in.listing[h] = false
		in.policy[h].ListingDone(done)
		in.arm(h)
	})
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

// instObserver hears the instance's client core and feeds the listing
// policies: of the hub an event names, or of every hub for link events.
type instObserver instance

// hubs returns the hubs an event about channel id concerns.
func (o *instObserver) hubs(id roster.ChannelID) []int {
	if h, ok := o.hubOf[id]; ok {
		return []int{h}
	}
	all := make([]int, len(o.policy))
	for h := range all {
		all[h] = h
	}
	return all
}

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

func (o *instObserver) StateChanged(s client.State, now time.Time) {
	for h := range o.policy {
		o.policy[h].StateChanged(s, now)
		(*instance)(o).arm(h)
	}
}

func (o *instObserver) CaughtUp(id roster.ChannelID, now time.Time) {
	for _, h := range o.hubs(id) {
		o.policy[h].RelayCaughtUp(now)
		(*instance)(o).arm(h)
	}
}

func (o *instObserver) EpochChanged(_ uint64, now time.Time) {
	for h := range o.policy {
		o.policy[h].EpochChanged(now)
		(*instance)(o).arm(h)
	}
}

func (o *instObserver) Acked(roster.ChannelID, uint32, time.Time) {}

func (o *instObserver) Problem(id roster.ChannelID, code wire.Code, _ string, now time.Time) {
	for _, h := range o.hubs(id) {
		o.policy[h].Problem(code, now)
		(*instance)(o).arm(h)
	}
}

var _ client.Observer = (*instObserver)(nil)
