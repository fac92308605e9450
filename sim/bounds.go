package sim

import (
	"math/bits"
	"time"

	"github.com/cosnim/relays/wire"
)

// Touches: which node a fault disturbs, and for how long. The timing
// invariants (awareness, catch-up, epoch, churn) hold only over windows no
// fault touches, and a fault touches only what it acts on: a partition its
// targets, a relay crash everybody, a refused dial only new connections.

// span is the time a fault disturbs something; to is far in the future
// while the fault lasts (a partition until the next heal).
type span struct {
	from, to time.Time
	id       int // the fault that made it
}

var forever = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// touches records spans by node name, for everybody (relay down, failpoint
// on) and for new connections (dials refused).
type touches struct {
	nodes     map[string][]span // lookups only
	global    []span
	dials     []span
	open      []openSpan     // spans that end at the next heal
	down      map[string]int // crashed client → index of its span
	relaySpan int            // index in global of the relay's downtime; -1 if up
	lastID    int
}

// openSpan finds a span of nodes by name and index.
type openSpan struct {
	name string
	i    int
}

// settle is what a span lasts after its fault ends: bytes held by a clog
// or partition drain, a connection closed during it is seen closed, a
// failpoint's last effects arrive. It covers a full high-water queue at the
// slowest simulated bandwidth and several round trips.
const settle = 2 * time.Second

func (t *touches) newID() int { t.lastID++; return t.lastID }

func (t *touches) node(name string, from, to time.Time, id int) {
	if t.nodes == nil {
		t.nodes = map[string][]span{}
	}
	t.nodes[name] = append(t.nodes[name], span{from, to, id})
}

// untilHeal records spans on names that last until the next heal.
func (t *touches) untilHeal(names []string, from time.Time) {
	id := t.newID()
	for _, n := range names {
		t.node(n, from, forever, id)
		t.open = append(t.open, openSpan{n, len(t.nodes[n]) - 1})
	}
}

// heal ends every span waiting for a heal.
func (t *touches) heal(now time.Time) {
	for _, o := range t.open {
		t.nodes[o.name][o.i].to = now.Add(settle)
	}
	t.open = t.open[:0]
}

func overlaps(l []span, from, to time.Time, skip int) bool {
	for _, s := range l {
		if s.id != skip && !s.to.Before(from) && !s.from.After(to) {
			return true
		}
	}
	return false
}

// touched reports whether any span other than fault skip's touches one of
// names, or everybody, within [from, to]. dials counts refused dials too,
// for windows in which a connection must be made.
func (t *touches) touched(names []string, from, to time.Time, skip int, dials bool) bool {
	if overlaps(t.global, from, to, skip) || (dials && overlaps(t.dials, from, to, skip)) {
		return true
	}
	for _, n := range names {
		if overlaps(t.nodes[n], from, to, skip) {
			return true
		}
	}
	return false
}

// Bounds. Every one is built from the simulated network: owMax, the
// longest one-way delay netsim draws (Latency + Jitter), and xmit, the time
// to put bytes on the wire at the scenario's bandwidth.

// boundSlack absorbs SplitReads chunking and same-time event ordering.
const boundSlack = 5 * time.Millisecond

// awarenessBound is how long an announce may take to reach a connected
// member over a healthy path: the Announce to the relay and the Deliver to
// the member (2 one-way delays), and, for a member the relay finds slow, a
// resync round (the relay's Error, the member's Sync, the Delta back: 3
// more) and one spare; plus the wire time of the bytes queued ahead of it
// in both directions, a full frame each way, the rest of its burst fanned
// out ahead of it, and a resync's Delta of a small cache (w.backlog), and
// boundSlack.
//
// With capped pending queues (small-caps), a member told to resync gets
// the entry from a full catch-up sync, so its bound is added.
func (w *world) awarenessBound(queued int) time.Duration {
	b := 6*w.owMax + w.xmit(queued+2*w.maxFrame()+w.backlog()) + boundSlack
	if w.sc.Caps.PendingEntries > 0 {
		b += w.catchUpBound(w.announces + w.sc.OnDisk)
	}
	return b
}

// backlog is the most entry bytes one announce can find fanned out ahead of
// it: the rest of its burst (Scenario.Burst) and, with a capped cache, a
// resync's Delta of the whole cache.
func (w *world) backlog() int {
	n := max(w.sc.Burst, 1) + w.sc.Caps.CacheEntries
	return n * (w.entryBytes + 64)
}

// catchUpBound is how long a catch-up sync of sets of up to n entries may
// take once joined: reconciliation descends one 16-ary level per round,
// log16(n/16)+1 levels, plus the first message, a round of wants and the
// barrier Ping (3 more); each round is a round trip. The entries and IDs
// exchanged (at most n each way) add their wire time.
func (w *world) catchUpBound(n int) time.Duration {
	rounds := syncRounds(n)
	perEntry := w.entryBytes + 40
	return time.Duration(rounds)*2*w.owMax + w.xmit(2*n*perEntry+4*w.maxFrame()) + boundSlack
}

// syncRounds is the round trips of a catch-up of sets of up to n entries
// (catchUpBound).
func syncRounds(n int) int {
	rounds := 4
	if n > 16 {
		rounds += (bits.Len(uint(n/16)) + 3) / 4
	}
	return rounds + 1 // the join itself: Join out, Joined back
}

// resyncBound is catchUpBound for a member the relay found slow: every
// reply of its sync may wait behind a queue the relay fills up to its
// high-water mark (plus a frame) with other members' entries.
func (w *world) resyncBound(n int) time.Duration {
	hw := firstNonZero(w.sc.Caps.HighWater, simHighWater)
	return w.catchUpBound(n) + time.Duration(syncRounds(n))*w.xmit(hw+w.maxFrame())
}

// reconnectBound is how long a client whose link was cut (reset, relay
// restart) takes to be back and caught up: its backoff after backoffs
// attempts in a row (the reset fault: 0, so BackoffMin), the handshake
// (dial and Hello: 2 round trips) and a catch-up.
func (w *world) reconnectBound(backoff time.Duration, n int) time.Duration {
	return backoff + 4*w.owMax + w.catchUpBound(n)
}

func (w *world) xmit(bytes int) time.Duration {
	if w.bandwidth <= 0 {
		return 0
	}
	return time.Duration(int64(bytes) * int64(time.Second) / int64(w.bandwidth))
}

func (w *world) maxFrame() int {
	return firstNonZero(w.sc.Caps.MaxFrameSize, wire.DefaultMaxFrameSize)
}

// untilRestart records a span on name that lasts until restarted(name).
func (t *touches) untilRestart(name string, from time.Time) {
	id := t.newID()
	t.node(name, from, forever, id)
	if t.down == nil {
		t.down = map[string]int{}
	}
	t.down[name] = len(t.nodes[name]) - 1
}

// restarted ends name's span of untilRestart.
func (t *touches) restarted(name string, now time.Time) {
	if i, ok := t.down[name]; ok {
		t.nodes[name][i].to = now.Add(settle)
		delete(t.down, name)
	}
}

// relayDown opens a span on everybody until relayUp; it returns its id.
func (t *touches) relayDown(from time.Time) int {
	id := t.newID()
	t.global = append(t.global, span{from, forever, id})
	t.relaySpan = len(t.global) - 1
	return id
}

func (t *touches) relayUp(now time.Time) {
	if t.relaySpan >= 0 && t.global[t.relaySpan].to.Equal(forever) {
		t.global[t.relaySpan].to = now.Add(settle)
	}
	t.relaySpan = -1
}
