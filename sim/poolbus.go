package sim

import (
	"math/rand/v2"
	"time"

	"github.com/cosnim/relays/backbone"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// The hostile bus publisher of pool scenarios with PoolSpec.HostileBus: a
// NATS user that is no relay but may publish and subscribe on the pool's
// subjects. It answers every reconciliation request at once, first, as
// two relay IDs, "complete, and we agree" (a forged completeness), and
// its faults inject floods of entries (FaultBusInject) and of oversized
// requests (FaultBusAsk). Its invariants (checkHostileBus):
//
//   - catch-up: a relay never flags its cache of a channel complete while
//     it lacks an entry a peer relay's cache has held for a catch-up
//     bound, no fault having touched either, the bus or their links since
//     the entry was announced;
//   - boundedness: while a relay's cache holds entries the publisher
//     injected, it holds every entry its own members announced in its
//     incarnation (bus entries go first, one origin's past its quota;
//     injected entries other relays stored and pass on under their own
//     IDs may still evict those relays' entries); every
//     reply to the publisher's requests is within the reply bound, and
//     each relay answers a channel's requests within its rate.

// Fault kinds of the hostile bus publisher.
const (
	FaultBusInject FaultKind = "bus-inject" // inject busFlood junk entries per channel, from one origin
	FaultBusAsk    FaultKind = "bus-ask"    // busAsks 16-empty-range requests per channel at once
)

const (
	// busFlood is how many entries one injection sends a channel: ten
	// times the cache of a hostile-bus seed.
	busFlood = 10 * hostileBusCache
	// busAsks is how many requests one ask flood sends a channel.
	busAsks = 3 * relay.BackboneAnswerBurst
	// hostileBusCache is the relays' cache in hostile-bus seeds: twice
	// what a channel's honest clients announce at most, so honest entries
	// fit one origin's quota beside a flood.
	hostileBusCache = 64
	// busOrigin names the publisher's injections; forgedOrigins its
	// forged replies.
	busOrigin = 0xBAD
)

var forgedOrigins = [...]uint32{0xF0, 0xF1}

// hostileBusName is the publisher's node, for the trace.
const hostileBusName = "bus-publisher"

// hostileBus is the publisher: a port on the bus and what it saw.
type hostileBus struct {
	w    *poolWorld
	port *netsim.BusPort
	rng  *rand.Rand
	junk map[roster.ID]bool // injected (lookups only)
	// asks are its requests in flight by id: the channel and size.
	asks   map[uint64]busAsk
	nextID uint64
	// answers counts, per relay ID and channel, the answers it got, and
	// since when.
	answers map[answerKey]*answerCount
}

type busAsk struct {
	ch, size int
}

type answerKey struct {
	origin uint32
	ch     int
}

type answerCount struct {
	since time.Time
	n     int
}

func newHostileBus(w *poolWorld) *hostileBus {
	nd := w.net.AddNode(hostileBusName)
	h := &hostileBus{w: w, rng: rand.New(rand.NewPCG(w.sc.Seed, 0xbad0)), junk: map[roster.ID]bool{},
		asks: map[uint64]busAsk{}, answers: map[answerKey]*answerCount{}}
	h.port = w.bus.Attach(nd)
	h.port.SetHandler(h)
	for _, k := range w.keys {
		h.port.Subscribe(relay.SyncSubject(relay.DefaultBackbonePrefix, k.ID()))
	}
	return h
}

// Message answers a reconciliation request with forged replies.
func (h *hostileBus) Message(m backbone.Msg, _ time.Time) {
	if m.Reply == "" {
		return
	}
	for _, o := range forgedOrigins {
		data := wire.Append(nil, &wire.Joined{Handle: o, Flags: wire.JoinedComplete})
		data = wire.Append(data, &wire.Sync{Handle: o})
		h.port.Respond(m.Reply, data)
	}
}

// Response checks a relay's answer to one of its requests.
func (h *hostileBus) Response(id uint64, data []byte, err error, now time.Time) {
	ask, ok := h.asks[id]
	if !ok || err != nil {
		return
	}
	if bound := max(relay.BackboneReplyFloor, relay.BackboneReplyFactor*ask.size); len(data) > bound {
		h.w.violate("boundedness: a %d-byte request got a %d-byte reply (bound %d)", ask.size, len(data), bound)
	}
	f, err := wire.Decode(wire.TypeJoined, joinedPayload(data))
	if err != nil {
		return
	}
	key := answerKey{f.(*wire.Joined).Handle, ask.ch}
	c := h.answers[key]
	if c == nil {
		c = &answerCount{since: now}
		h.answers[key] = c
	}
	c.n++
	limit := relay.BackboneAnswerBurst + int(now.Sub(c.since).Seconds()*relay.BackboneAnswerRate) + 1
	if c.n > limit {
		h.w.violate("boundedness: relay ID %x answered %d requests of channel %d in %v (rate %d/s, burst %d)",
			key.origin, c.n, ask.ch, now.Sub(c.since), relay.BackboneAnswerRate, relay.BackboneAnswerBurst)
		c.since, c.n = now, 0 // once per excess
	}
}

// joinedPayload is the payload of a reply's first frame, its Joined.
func joinedPayload(data []byte) []byte {
	t, p, _, ok := wire.Cut(data)
	if !ok || t != wire.TypeJoined {
		return nil
	}
	return p
}

func (h *hostileBus) BusState(bool, time.Time) {}

// inject publishes busFlood junk entries on every channel's subject.
func (h *hostileBus) inject() {
	size := max(h.w.entryBytes, 64)
	for _, k := range h.w.keys {
		var batch [][]byte
		for range busFlood {
			e := make([]byte, size)
			for i := range e {
				e[i] = byte(h.rng.Uint32())
			}
			h.junk[roster.NewEntry(e).ID] = true
			batch = append(batch, e)
			if len(batch) == 200 {
				h.publish(k, batch)
				batch = nil
			}
		}
		h.publish(k, batch)
	}
}

func (h *hostileBus) publish(k *roster.Keys, batch [][]byte) {
	if len(batch) > 0 {
		h.port.Publish(relay.ChannelSubject(relay.DefaultBackbonePrefix, k.ID()), wire.Append(nil, &wire.Deliver{Handle: busOrigin, Entries: batch}))
	}
}

// ask sends busAsks requests of 16 empty ID ranges to every channel.
func (h *hostileBus) ask() {
	var msg roster.SyncMsg
	for i := range 16 {
		msg.Ranges = append(msg.Ranges, roster.Range{Node: roster.Node{Depth: 1, Prefix: uint64(i)}, Mode: roster.ModeIDs})
	}
	for ch, k := range h.w.keys {
		for range busAsks {
			h.nextID++
			data := wire.Append(nil, &wire.Sync{Handle: busOrigin, Session: uint32(h.nextID), Msg: msg})
			h.asks[h.nextID] = busAsk{ch: ch, size: len(data)}
			h.port.Request(relay.SyncSubject(relay.DefaultBackbonePrefix, k.ID()), data, h.nextID)
		}
	}
}

// askTouch is how long an ask flood leaves channels' answer budgets
// spent, so that relays' own reconciliations may find no answer: the
// burst's refill time, a request timeout and settle.
func askTouch() time.Duration {
	return time.Duration(relay.BackboneAnswerBurst)*time.Second/relay.BackboneAnswerRate + backbone.RequestTimeout
}

func applyBusInject(w *poolWorld, _ Fault) {
	if w.hostile != nil && w.bus.Up() {
		w.hostile.inject()
	}
}

func applyBusAsk(w *poolWorld, _ Fault) {
	if w.hostile == nil || !w.bus.Up() {
		return
	}
	now := w.net.Now()
	w.touch.node(busNode, now, now.Add(askTouch()+settle), w.touch.newID())
	w.hostile.ask()
}

// poolHeld tracks, per relay incarnation and channel, the honest entries
// its cache held and since when, and those its members announced.
type poolHeld struct {
	gen   int
	seen  []map[roster.ID]time.Time // by channel
	local []map[roster.ID]bool      // by channel
}

// checkHostileBus runs the publisher's invariants over every relay.
func (w *poolWorld) checkHostileBus() {
	now := w.net.Now()
	for _, r := range w.relays {
		if !r.Up {
			continue
		}
		held := w.held[r.Name]
		if held == nil || held.gen != r.Gen {
			held = &poolHeld{gen: r.Gen}
			for range w.keys {
				held.seen = append(held.seen, map[roster.ID]time.Time{})
				held.local = append(held.local, map[roster.ID]bool{})
			}
			w.held[r.Name] = held
		}
		for ch, k := range w.keys {
			cache, _, ok := r.Core.Cached(k.ID())
			if !ok {
				clear(held.seen[ch]) // forgotten: a new cache starts empty
				clear(held.local[ch])
				continue
			}
			junk, lost := 0, 0
			for _, e := range cache.Entries() {
				if w.hostile != nil && w.hostile.junk[e.ID] {
					junk++
				} else if _, ok := held.seen[ch][e.ID]; !ok {
					held.seen[ch][e.ID] = now
				}
			}
			for _, id := range r.Core.LocalIDs(k.ID()) {
				held.local[ch][id] = true
			}
			for id := range held.local[ch] { // sorted: a count
				if !cache.Has(id) {
					lost++
				}
			}
			if junk > 0 && lost > 0 {
				w.violate("boundedness: %s evicted %d entries its members announced in channel %d while holding %d a bus publisher injected",
					r.Name, lost, ch, junk)
				held.local[ch] = map[roster.ID]bool{} // once per loss
			}
		}
	}
	w.checkSaysComplete(now)
}

// checkSaysComplete: a relay that flags its cache complete holds every
// entry a peer has held for a catch-up bound, unless a fault touched
// either, the bus or their links since that entry was announced.
func (w *poolWorld) checkSaysComplete(now time.Time) {
	if w.bus == nil {
		return
	}
	for _, r := range w.relays {
		if !r.busUp() {
			continue
		}
		for ch, k := range w.keys {
			if !r.Core.SaysComplete(k.ID()) {
				continue
			}
			mine, _, _ := r.Core.Cached(k.ID())
			bound := w.backboneCatchUpBound(len(w.ids[ch])) + relay.BackboneReplyWindow + busMax
			for _, o := range w.relays {
				ho := w.held[o.Name]
				if o == r || !o.busUp() || ho == nil || ho.gen != o.Gen {
					continue
				}
				for _, id := range w.ids[ch] {
					at, ok := ho.seen[ch][id]
					if !ok || at.After(now.Add(-bound)) {
						continue
					}
					names := []string{r.Name, o.Name, busNode, pairName(busNode, r.Name), pairName(busNode, o.Name)}
					if w.touch.touched(names, w.announcedAt[id], now, 0, false) {
						continue
					}
					w.checked[invCatchUp]++
					if mine.Has(id) {
						continue
					}
					w.violate("catch-up: %s flags its cache of channel %d complete but lacks an entry %s has held since t=%s",
						r.Name, ch, o.Name, w.stampOf(at))
					return
				}
			}
		}
	}
}
