package sim

import (
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// The simulated instance as the client core's Observer: what it learns,
// its link's state, and the storage listings a relay's Rescan asks for.

func (c *simClient) Learned(id roster.ChannelID, refs [][]byte, now time.Time) {
	w := c.w
	ch := -1
	for _, j := range c.chans {
		if w.keys[j].ID() == id {
			ch = j
		}
	}
	if ch < 0 {
		w.violate("isolation: %s learned entries of a channel it never joined", c.name)
		return
	}
	for _, ref := range refs {
		if !w.announced[ch][string(ref)] {
			w.violate("fabrication: %s learned %q, which nobody announced in its channel", c.name, ref)
		}
	}
}

func (c *simClient) StateChanged(s client.State, now time.Time) {
	c.w.logf("%s state %v", c.name, s)
	if s == client.Disconnected || s == client.Stopped {
		c.w.onLost(c)
	}
}

func (c *simClient) CaughtUp(id roster.ChannelID, _ time.Time) {
	if ch := c.chanOf(id); ch >= 0 {
		c.w.onCaughtUp(c, ch)
	}
}

func (c *simClient) EpochChanged(e uint64, now time.Time) {
	c.epochAt = c.w.net.Now()
	c.w.logf("%s epoch %016x", c.name, e)
}

func (c *simClient) Acked(id roster.ChannelID, seq uint32, _ time.Time) {
	if e, ok := c.seqs[seq]; ok {
		delete(c.seqs, seq)
		if ch := c.chanOf(id); ch >= 0 && c.tap.relay == c.w.relayGen {
			c.w.relayHad(ch, e)
		}
	}
}

// chanOf finds the channel index of id among the client's channels, or -1.
func (c *simClient) chanOf(id roster.ChannelID) int {
	for _, j := range c.chans {
		if c.w.keys[j].ID() == id {
			return j
		}
	}
	return -1
}
func (c *simClient) Problem(id roster.ChannelID, code wire.Code, text string, now time.Time) {
	c.w.logf("%s problem %v %s", c.name, code, text)
	if ch := c.chanOf(id); ch >= 0 && code == wire.CodeRescan {
		c.rescanAt[ch] = now
	}
	if ch := c.chanOf(id); ch >= 0 && code == wire.CodeRescan && !c.listing[ch] {
		c.listing[ch] = true
		c.keepListing(ch)
	}
}

// keepListing lists channel ch now and every listEvery while the relay's
// cache of it is incomplete, as an instance's ListPolicy does without a
// relay that holds everything.
func (c *simClient) keepListing(ch int) {
	w := c.w
	if !c.up || (w.relayUp && w.cacheComplete(ch)) {
		c.listing[ch] = false
		return
	}
	c.list(ch)
	w.net.At(w.net.Now().Add(listEvery), func() { c.keepListing(ch) })
}

// listEvery is how often a client lists while the relay's cache is
// incomplete.
const listEvery = 5 * time.Second

// listLatency is how long a listing of a hub's storage takes.
const listLatency = 100 * time.Millisecond

// list lists channel ch's storage, as an instance does when the relay
// says its cache is incomplete: storage holds every capsule announced so
// far, and what the client lacks it announces, as compare's instances do.
func (c *simClient) list(ch int) {
	w := c.w
	ids := w.ids[ch][:len(w.ids[ch]):len(w.ids[ch])]
	up := c.core
	w.net.At(w.net.Now().Add(listLatency), func() {
		if !c.up || c.core != up {
			return
		}
		r := c.rosterOf(ch)
		n := 0
		for _, id := range ids {
			if !r.Has(id) {
				_, _ = c.core.Announce(w.keys[ch].ID(), []byte(w.entries[id].ref), c.node.Now())
				n++
			}
		}
		w.logf("%s listed channel %d: %d of %d new", c.name, ch, n, len(ids))
	})
}

var _ client.Observer = (*simClient)(nil)
