package sim

import (
	"slices"
	"time"

	"github.com/cosnim/relays/backbone"

	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// The pool invariants checked while they matter (README, "Pools"):
// awareness over a shared home or across the bus, and the backbone
// catch-up of a member that joins a relay or whose relay gets the bus
// back. Each window names exactly the nodes and links it depends on, and
// is judged only if no fault touched one of them and none of its
// connections, homes or relay incarnations changed.

// poolSnap is what a window needs to stay the same until judged.
type poolSnap struct {
	clients  []*poolClient
	relays   []*simRelay
	gens     []int // relays' incarnations
	homes    []int // clients' homesGen
	conns    []int // clients' connGen of their relay (same index)
	connRel  []string
	names    []string // touch names
	from     time.Time
	needsBus bool
}

func (w *poolWorld) snap(cs []*poolClient, rel []string, rs []*simRelay, bus bool) *poolSnap {
	s := &poolSnap{clients: cs, relays: rs, connRel: rel, from: w.net.Now(), needsBus: bus}
	for i, c := range cs {
		s.homes = append(s.homes, c.homesGen)
		s.conns = append(s.conns, c.connGen[rel[i]])
		s.names = append(s.names, c.name, pairName(c.name, rel[i]))
	}
	for _, r := range rs {
		s.gens = append(s.gens, r.Gen)
		s.names = append(s.names, r.Name)
		if bus {
			s.names = append(s.names, pairName(busNode, r.Name))
		}
	}
	if bus {
		s.names = append(s.names, busNode)
	}
	return s
}

// still reports whether nothing the window depends on changed or was
// touched since it opened.
func (w *poolWorld) still(s *poolSnap) bool {
	for i, r := range s.relays {
		if r.Gen != s.gens[i] || !r.Up || s.needsBus && !r.busUp() {
			return false
		}
	}
	for i, c := range s.clients {
		if c.homesGen != s.homes[i] || c.connGen[s.connRel[i]] != s.conns[i] {
			return false
		}
	}
	return !w.touch.touched(s.names, s.from, w.net.Now(), 0, false)
}

// poolAwarenessBound is how long an announce takes from the announcer to a
// member joined on the same relay: the Announce to the relay and the
// Deliver to the member (2 one-way delays), the wire time of a full frame
// ahead of it each way, and boundSlack.
func (w *poolWorld) poolAwarenessBound() time.Duration {
	return 2*w.owMax + 2*xmitAt(wire.DefaultMaxFrameSize, netsimBandwidth) + boundSlack
}

// netsimBandwidth is netsim's default bandwidth, which pool runs use.
const netsimBandwidth = 100 << 20

// busMax is the longest delay of one bus delivery.
const busMax = busLatency + busJitter

func xmitAt(bytes, bandwidth int) time.Duration {
	return time.Duration(int64(bytes) * int64(time.Second) / int64(bandwidth))
}

// checkPoolAwareness arms invariant (a) for an entry c just announced:
// every member of its channel that shares a joined home with c, both
// connected and the relay up, holds it after poolAwarenessBound; a member
// joined only on other relays than c's, both relays on the bus, holds it
// one bus delivery (busMax) later.
func (w *poolWorld) checkPoolAwareness(c *poolClient, id roster.ID, ref string) {
	if len(c.joined) == 0 {
		return // not sent: the next catch-up carries it
	}
	for _, m := range w.clients {
		if m == c || m.ch != c.ch || len(m.joined) == 0 {
			continue
		}
		var s *poolSnap
		bound := w.poolAwarenessBound()
		how := ""
		for _, r := range c.joined {
			if slices.Contains(m.joined, r) && w.relay(r).Up {
				s = w.snap([]*poolClient{c, m}, []string{r, r}, []*simRelay{w.relay(r)}, false)
				how = "on " + r
				break
			}
		}
		if s == nil && w.bus != nil && w.bus.Up() {
			ra, rm := w.relay(c.joined[0]), w.relay(m.joined[0])
			if ra != rm && ra.busUp() && rm.busUp() {
				s = w.snap([]*poolClient{c, m}, []string{ra.Name, rm.Name}, []*simRelay{ra, rm}, true)
				bound += busMax
				how = "from " + ra.Name + " over the bus to " + rm.Name
			}
		}
		if s == nil {
			continue
		}
		w.net.At(s.from.Add(bound), func() {
			if !w.still(s) {
				return
			}
			w.checked[invAwareness]++
			if !m.roster().Has(id) {
				w.violate("awareness: %s lacks %s announced by %s at t=%s %s, %v later (bound %v)",
					m.name, ref, c.name, w.stampOf(s.from), how, w.net.Now().Sub(s.from), bound)
			}
		})
	}
}

// checkBackboneCatchUp arms the backbone catch-up check for members ms of
// relay r, which just joined r or whose r just got the bus back: each holds,
// after backboneCatchUpBound, every entry of its channel that all the other
// relays on the bus holding the channel held now. r reconciles a new
// channel, and every channel when the bus returns, with the first peer to
// answer, and holds a member's Joined until then; so what every peer has,
// r and its members get.
func (w *poolWorld) checkBackboneCatchUp(r *simRelay, ms []*poolClient, why string) {
	if w.bus == nil || !w.bus.Up() || !r.busUp() {
		return
	}
	for _, m := range ms {
		cid := w.keys[m.ch].ID()
		var peers []*simRelay
		var want []roster.ID
		for _, o := range w.relays {
			if o == r || !o.busUp() {
				continue
			}
			cache, _, ok := o.Core.Cached(cid)
			if !ok {
				continue
			}
			if peers == nil {
				for _, e := range cache.Entries() {
					if _, honest := w.announcedAt[e.ID]; honest { // not a bus publisher's junk
						want = append(want, e.ID)
					}
				}
			} else {
				want = slices.DeleteFunc(want, func(id roster.ID) bool { return !cache.Has(id) })
			}
			peers = append(peers, o)
		}
		if peers == nil {
			continue
		}
		rel := []string{r.Name}
		s := w.snap([]*poolClient{m}, rel, append([]*simRelay{r}, peers...), true)
		bound := w.backboneCatchUpBound(len(w.ids[m.ch]))
		if why == "joined" {
			// What reached the peers before r could have reconciled must
			// be in m's first catch-up from r (below, caughtUp).
			var old []roster.ID
			for _, id := range want {
				if !w.announcedAt[id].After(s.from.Add(-bound)) {
					old = append(old, id)
				}
			}
			m.waits = append(m.waits, &bbWait{relay: r, snap: s, want: old})
		}
		w.net.At(s.from.Add(bound), func() {
			if !w.still(s) || !slices.Contains(m.joined, r.Name) {
				return
			}
			w.checked[invCatchUp]++
			for _, id := range want {
				if !m.roster().Has(id) {
					w.violate("catch-up: %s lacks an entry every peer of %s held at t=%s (%s), %v later (bound %v)",
						m.name, r.Name, w.stampOf(s.from), why, w.net.Now().Sub(s.from), bound)
					return
				}
			}
		})
	}
}

// backboneCatchUpBound is the time for a relay to reconcile a channel of
// up to n entries with a peer over the bus — as many request and reply
// rounds as a member's sync (syncRounds), each two bus deliveries, plus
// the entries' wire time — then for its member to get them: a fan-out
// (one one-way delay) or the member's own catch-up (syncRounds round
// trips), and boundSlack. A peer whose cache is not known complete
// answers each round relay.BackboneLateAnswer late.
func (w *poolWorld) backboneCatchUpBound(n int) time.Duration {
	rounds := time.Duration(syncRounds(n))
	onWire := xmitAt(2*n*(w.entryBytes+40)+4*wire.DefaultMaxFrameSize, netsimBandwidth)
	return rounds*(2*busMax+relay.BackboneLateAnswer) + rounds*2*w.owMax + 2*onWire + boundSlack
}

// bbWait is a member's join of a relay on a backbone, waiting for its
// first catch-up there.
type bbWait struct {
	relay *simRelay
	snap  *poolSnap
	want  []roster.ID
}

// caughtUp checks, when c's pool reports a finished sync, that a member
// joined on one relay only holds what every peer of that relay held, up
// to a catch-up bound before it joined: the relay holds a member's Joined
// until it reconciled a new channel with a peer, so the sync that follows
// carries it all.
func (c *poolClient) caughtUp() {
	w := c.w
	waits := c.waits
	c.waits = nil
	for _, bw := range waits {
		if len(c.joined) != 1 || c.joined[0] != bw.relay.Name || !w.still(bw.snap) {
			continue
		}
		w.checked[invCatchUp]++
		for _, id := range bw.want {
			if !c.roster().Has(id) {
				w.violate("catch-up: %s caught up with %s lacking an entry every peer held before it joined at t=%s",
					c.name, bw.relay.Name, w.stampOf(bw.snap.from))
				break
			}
		}
	}
}

// failoverBound is how long a pool may lack a joined home while a relay
// it reaches is up: the idle timeout (to notice a home cut off), the
// maximum backoff (to reconnect to a relay that was down before the
// window), the connect timeout (a dial to the lost home in flight), a
// backbone reconciliation holding the Joined (backbone.RequestTimeout),
// and a second of slack for the handshake and join round trips.
func (w *poolWorld) failoverBound() time.Duration {
	t := w.sc.Timing
	return t.Idle + t.BackoffMax + clientConfigFor(t, 0, "", nil).ConnectTimeout + backbone.RequestTimeout + time.Second
}

// checkFailover is invariant (g), failover: a client has as many joined
// homes as its pool's homes, or as the relays it reaches if fewer, within
// failoverBound. A relay counts as reached when it, the client and the
// link between them were untouched over the whole bound.
func (w *poolWorld) checkFailover(c *poolClient) {
	now := w.net.Now()
	b := w.failoverBound()
	from := now.Add(-b)
	if from.Before(w.start()) {
		return
	}
	reach := 0
	var names []string
	for _, r := range w.relays {
		if r.Up && !w.touch.touched([]string{c.name, r.Name, pairName(c.name, r.Name)}, from, now, 0, true) {
			reach++
			names = append(names, r.Name)
		}
	}
	want := min(reach, w.sc.Pool.Homes)
	if want == 0 {
		return
	}
	w.checked[invFailover]++
	if !c.atLeast[want].Before(from) || !c.reported.Before(from) {
		return
	}
	c.reported = now
	w.violate("failover: %s has had fewer than %d joined homes (now %q) for %v while it reached %q",
		c.name, want, c.joined, now.Sub(c.atLeast[want]), names)
}

// syncBegan notes, as the relay Client of relayName starts a sync (seen
// on the tap, in the event that started it), what that relay's complete
// cache of the channel holds: honest entries only.
func (c *poolClient) syncBegan(relayName string) {
	w := c.w
	r := w.relay(relayName)
	c.syncFrom[relayName], c.syncGen[relayName], c.syncAt[relayName] = nil, r.Gen, w.net.Now()
	if !r.Up {
		return
	}
	cache, complete, ok := r.Core.Cached(w.keys[c.ch].ID())
	if !ok || !complete {
		return
	}
	ids := []roster.ID{}
	for _, e := range cache.Entries() {
		if _, honest := w.announcedAt[e.ID]; honest {
			ids = append(ids, e.ID)
		}
	}
	c.syncFrom[relayName] = ids
}

// checkReport is the report invariant (2c) for pools: a relay Client
// that reports the channel caught up holds every entry its relay's
// complete cache held when the sync began and still holds, unless the
// relay restarted since.
func (c *poolClient) checkReport(relayName string) {
	w := c.w
	from := c.syncFrom[relayName]
	delete(c.syncFrom, relayName)
	cl := c.pool.Client(relayName)
	if from == nil || cl == nil {
		return
	}
	r := w.relay(relayName)
	cid := w.keys[c.ch].ID()
	cache, complete, ok := r.Core.Cached(cid)
	if !r.Up || r.Gen != c.syncGen[relayName] || !ok || !complete {
		return
	}
	mine := cl.Roster(cid)
	if mine == nil {
		return // the channel left meanwhile
	}
	w.checked[invReport]++
	for _, id := range from {
		if !mine.Has(id) && cache.Has(id) {
			w.violate("report: %s reported channel %d caught up with %s lacking an entry %s held when the sync began at t=%s",
				c.name, c.ch, relayName, relayName, w.stampOf(c.syncAt[relayName]))
			return
		}
	}
}
