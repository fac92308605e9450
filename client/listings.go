package client

import (
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// Listings owns one ListPolicy per hub (channel) and routes the core's
// events to them: an event about a channel to that hub's policy, an event
// about the link (state, epoch) to every hub's. A Problem about no known
// channel concerns the link, so every hub's. It is pure and
// deterministic, in hub order, and is what the Agent and the simulator's
// relay-value harness both use, so the harness measures the shipped
// routing.
type Listings struct {
	ids      []roster.ChannelID
	policies []*ListPolicy
}

// Add gives channel id the policy p and returns its index.
func (l *Listings) Add(id roster.ChannelID, p *ListPolicy) int {
	l.ids = append(l.ids, id)
	l.policies = append(l.policies, p)
	return len(l.ids) - 1
}

// Len is the number of hubs.
func (l *Listings) Len() int { return len(l.policies) }

// Policy returns the policy of hub i.
func (l *Listings) Policy(i int) *ListPolicy { return l.policies[i] }

// Index returns the hub of channel id, or -1.
func (l *Listings) Index(id roster.ChannelID) int {
	for i, x := range l.ids {
		if x == id {
			return i
		}
	}
	return -1
}

// each calls f for the hub of id, or for every hub if all is set and id
// is no hub's.
func (l *Listings) each(id roster.ChannelID, all bool, f func(p *ListPolicy)) {
	if i := l.Index(id); i >= 0 {
		f(l.policies[i])
		return
	}
	if all {
		for _, p := range l.policies {
			f(p)
		}
	}
}

// StateChanged tells every hub's policy about the link's state.
func (l *Listings) StateChanged(s State, now time.Time) {
	for _, p := range l.policies {
		p.StateChanged(s, now)
	}
}

// CaughtUp tells the policy of channel id that a sync with the relay
// finished.
func (l *Listings) CaughtUp(id roster.ChannelID, now time.Time) {
	l.each(id, false, func(p *ListPolicy) { p.RelayCaughtUp(now) })
}

// EpochChanged tells every hub's policy the relay lost its memory.
func (l *Listings) EpochChanged(_ uint64, now time.Time) {
	for _, p := range l.policies {
		p.EpochChanged(now)
	}
}

// Problem tells the policy of channel id, or every hub's if id is no
// hub's, what the relay reported.
func (l *Listings) Problem(id roster.ChannelID, code wire.Code, _ string, now time.Time) {
	l.each(id, true, func(p *ListPolicy) { p.Problem(code, now) })
}
