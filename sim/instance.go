package sim

import (
	"fmt"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
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
	cores   []*client.Client // per hub (see coreMux)
	mux     coreMux
	policy  []*client.ListPolicy // per hub
	armed   []time.Time          // per hub: the wake-up scheduled for its policy
	listing []bool               // per hub: a listing in progress
	known   []bool               // by capsule index
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

// startInstance adds and starts an instance: a node, and per hub a client
// core joined to it and a ListPolicy.
//
// A real instance joins every hub on one relay connection. Here each hub
// has its own core and connection: the relay core at this commit panics
// when a connection with more than one channel closes (dropConn ranges
// over c.members while leave deletes from it), and relay crashes and
// partitions close such connections all the time.
func (w *cworld) startInstance(name string, command bool) *instance {
	in := &instance{w: w, name: name, command: command, live: true}
	in.node = w.net.AddNode(name)
	now := w.net.Now()
	in.started = now
	in.mux.init(in.node.Dialer())
	hubs := len(w.keys)
	in.armed = make([]time.Time, hubs)
	in.listing = make([]bool, hubs)
	in.known = make([]bool, len(w.caps), len(w.caps)+64)
	for h, k := range w.keys {
		cfg := client.Config{Addrs: []string{relayAddr}, Agent: fmt.Sprintf("%s/h%d", name, h)}
		core, err := client.New(cfg, in.mux.dialer(h), w.coreRand(), hubObserver{in, h})
		if err != nil {
			panic(err)
		}
		if err := core.Join(k, nil, now); err != nil {
			panic(err)
		}
		p, err := client.NewListPolicy(w.cfg.List, w.coreRand(), now)
		if err != nil {
			panic(err)
		}
		in.cores = append(in.cores, core)
		in.mux.cores = append(in.mux.cores, core)
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
	in.node.SetHandler(&in.mux)
	for _, c := range in.cores {
		c.Start(now)
	}
	for h := range w.keys {
		in.arm(h)
	}
	return in
}

// stop ends a starting command: the process exits.
func (in *instance) stop() {
	if in.live {
		in.live = false
		for _, c := range in.cores {
			c.Stop(in.w.net.Now())
		}
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
			_, _ = in.cores[h].Announce(w.keys[h].ID(), ref, done)
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
	if _, err := in.cores[h].Announce(w.keys[h].ID(), ref, now); err != nil {
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

// hubObserver hears one hub's client core; the instance feeds that hub's
// listing policy.
type hubObserver struct {
	in *instance
	h  int
}

func (o hubObserver) Learned(_ roster.ChannelID, refs [][]byte, now time.Time) {
	in := o.in
	for _, ref := range refs {
		c, ok := in.w.byRef[string(ref)]
		if !ok {
			panic(fmt.Sprintf("sim: %s learned %q, which nobody wrote", in.name, ref))
		}
		in.know(c, now, true)
	}
}

func (o hubObserver) StateChanged(s client.State, now time.Time) {
	o.in.policy[o.h].StateChanged(s, now)
	o.in.arm(o.h)
}

func (o hubObserver) CaughtUp(_ roster.ChannelID, now time.Time) {
	o.in.policy[o.h].RelayCaughtUp(now)
	o.in.arm(o.h)
}

func (o hubObserver) EpochChanged(_ uint64, now time.Time) {
	o.in.policy[o.h].EpochChanged(now)
	o.in.arm(o.h)
}

func (o hubObserver) Acked(roster.ChannelID, uint32, time.Time) {}

func (o hubObserver) Problem(_ roster.ChannelID, code wire.Code, _ string, now time.Time) {
	o.in.policy[o.h].Problem(code, now)
	o.in.arm(o.h)
}

var _ client.Observer = hubObserver{}

// coreMux runs several client cores on one node: it routes each
// connection's events to the core that dialed it.
type coreMux struct {
	d     transport.Dialer
	cores []*client.Client
	owner map[transport.Conn]int // lookups only
}

func (m *coreMux) init(d transport.Dialer) {
	m.d, m.owner = d, map[transport.Conn]int{}
}

// dialer returns the dialer core i must use.
func (m *coreMux) dialer(i int) transport.Dialer { return muxDialer{m, i} }

type muxDialer struct {
	m *coreMux
	i int
}

func (d muxDialer) Dial(addr string) transport.Conn {
	c := d.m.d.Dial(addr)
	d.m.owner[c] = d.i
	return c
}

func (m *coreMux) core(c transport.Conn) *client.Client {
	if i, ok := m.owner[c]; ok {
		return m.cores[i]
	}
	return nil
}

func (m *coreMux) Open(c transport.Conn, now time.Time) {
	if k := m.core(c); k != nil {
		k.Open(c, now)
	}
}

func (m *coreMux) Data(c transport.Conn, b []byte, now time.Time) {
	if k := m.core(c); k != nil {
		k.Data(c, b, now)
	}
}

func (m *coreMux) Writable(c transport.Conn, now time.Time) {
	if k := m.core(c); k != nil {
		k.Writable(c, now)
	}
}

func (m *coreMux) Closed(c transport.Conn, err error, now time.Time) {
	if k := m.core(c); k != nil {
		delete(m.owner, c)
		k.Closed(c, err, now)
	}
}

func (m *coreMux) Tick(now time.Time) {
	for _, k := range m.cores {
		if t, ok := k.Deadline(); ok && !now.Before(t) {
			k.Tick(now)
		}
	}
}

func (m *coreMux) Deadline() (time.Time, bool) {
	var next time.Time
	found := false
	for _, k := range m.cores {
		if t, ok := k.Deadline(); ok && (!found || t.Before(next)) {
			next, found = t, true
		}
	}
	return next, found
}

var _ transport.Handler = (*coreMux)(nil)
