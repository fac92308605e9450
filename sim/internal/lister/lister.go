// Package lister runs a simulated instance's storage listings on the
// virtual clock, on the schedule of the shipped client.Listings: one
// client.ListPolicy per hub, fed the client core's events as the Agent
// feeds them. The fault simulator (sim) and the relay-value harness
// (sim/value) both list through it, so both measure the shipped policy
// and its routing, and neither has a listing loop of its own.
package lister

import (
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// Start begins a listing of hub h at now: it returns how long the listing
// takes and what to do when it is done (storage as of now).
type Start func(h int, now time.Time) (took time.Duration, done func(now time.Time))

// Lister lists an instance's hubs when their policies say so. It is also
// the instance's client.Observer for what the policies need (embed it
// and override Learned and Acked as needed).
type Lister struct {
	node  *netsim.Node // its clock: the policies' and the listings' time
	lists client.Listings
	start Start
	live  func() bool // nil: always
	armed []time.Time // per hub: the wake-up scheduled for its policy
	busy  []bool      // per hub: a listing in progress
}

// New returns a lister on node's clock (drifted, as the instance's core
// sees time) that lists with start while live reports true (nil: always).
func New(node *netsim.Node, start Start, live func() bool) *Lister {
	return &Lister{node: node, start: start, live: live}
}

// Add gives channel id the policy p and returns its hub index; call Arm
// (or ArmAll) once the instance has started.
func (l *Lister) Add(id roster.ChannelID, p *client.ListPolicy) int {
	l.armed = append(l.armed, time.Time{})
	l.busy = append(l.busy, false)
	return l.lists.Add(id, p)
}

// Len is the number of hubs.
func (l *Lister) Len() int { return l.lists.Len() }

// Policy returns hub h's policy.
func (l *Lister) Policy(h int) *client.ListPolicy { return l.lists.Policy(h) }

// Index returns the hub of channel id, or -1.
func (l *Lister) Index(id roster.ChannelID) int { return l.lists.Index(id) }

func (l *Lister) alive() bool { return l.live == nil || l.live() }

// Arm schedules a wake-up at hub h's next listing time, unless one is set
// for that time; stale wake-ups find armed changed and do nothing.
func (l *Lister) Arm(h int) {
	if !l.alive() || l.busy[h] {
		return
	}
	t := l.lists.Policy(h).Next()
	if t.Equal(l.armed[h]) {
		return
	}
	l.armed[h] = t
	l.node.At(t, func() {
		if l.armed[h].Equal(t) {
			l.armed[h] = time.Time{}
			l.maybeList(h)
		}
	})
}

// ArmAll arms every hub (arming is cheap; an event may move any policy).
func (l *Lister) ArmAll() {
	for h := range l.lists.Len() {
		l.Arm(h)
	}
}

// maybeList lists hub h if its policy says so.
func (l *Lister) maybeList(h int) {
	now := l.node.Now()
	p := l.lists.Policy(h)
	if !l.alive() || l.busy[h] || !p.Due(now) {
		l.Arm(h)
		return
	}
	l.busy[h] = true
	p.ListingStarted(now)
	took, done := l.start(h, now)
	l.node.At(now.Add(took), func() {
		if !l.alive() {
			return
		}
		end := l.node.Now()
		done(end)
		l.busy[h] = false
		p.ListingDone(end)
		l.Arm(h)
	})
}

// The policies' part of client.Observer: route the event, re-arm.

func (l *Lister) StateChanged(s client.State, now time.Time) {
	l.lists.StateChanged(s, now)
	l.ArmAll()
}

func (l *Lister) CaughtUp(id roster.ChannelID, now time.Time) {
	l.lists.CaughtUp(id, now)
	l.ArmAll()
}

func (l *Lister) EpochChanged(e uint64, now time.Time) {
	l.lists.EpochChanged(e, now)
	l.ArmAll()
}

func (l *Lister) Problem(id roster.ChannelID, code wire.Code, text string, now time.Time) {
	l.lists.Problem(id, code, text, now)
	l.ArmAll()
}
