package relay

import "github.com/cosnim/relays/roster"

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
