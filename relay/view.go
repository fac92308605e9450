package relay

import (
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
)

// Cached returns the relay's cache of channel id and whether it is
// complete (nothing evicted since the channel was created), for checkers
// that compare what clients hold with what the relay held. The set must not
// be modified; ok is false if the relay holds no such channel.
func (r *Relay) Cached(id roster.ChannelID) (cache *roster.Set, complete, ok bool) {
	ch := r.channels[id]
	if ch == nil {
		return nil, false, false
	}
	return &ch.cache, ch.complete, true
}

// Overflows counts the times the member of channel id on connection tc had
// more entries pending than the cap, lost them and was to be told to sync
// again, for checkers that hold the member to it; ok is false for no such
// member (it left, or the relay closed its connection).
func (r *Relay) Overflows(tc transport.Conn, id roster.ChannelID) (n uint64, ok bool) {
	c := r.conns[tc]
	if c == nil {
		return 0, false
	}
	for _, m := range c.members {
		if m.ch.id == id {
			return m.overflows, true
		}
	}
	return 0, false
}

// Serving reports whether tc is a connection the relay serves (it has not
// closed it, nor been told it closed), so a driver can drop work queued
// for one that is gone, such as its join checks.
func (r *Relay) Serving(tc transport.Conn) bool {
	c := r.conns[tc]
	return c != nil && !c.closed
}
