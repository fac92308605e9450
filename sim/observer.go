package sim

import (
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// The simulated instance as the client core's Observer: what it learns,
// its link's state, and its storage listings, on the schedule of the
// shipped client.ListPolicy.

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
	c.lists.StateChanged(s, now)
}

func (c *simClient) CaughtUp(id roster.ChannelID, now time.Time) {
	if ch := c.chanOf(id); ch >= 0 {
		c.w.onCaughtUp(c, ch)
	}
	c.lists.CaughtUp(id, now)
}

func (c *simClient) EpochChanged(e uint64, now time.Time) {
	c.epochAt = c.w.net.Now()
	c.w.logf("%s epoch %016x", c.name, e)
	c.lists.EpochChanged(e, now)
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
	c.lists.Problem(id, code, text, now)
}

// listScale is the simulator's time base for listing policies: the
// shipped defaults (client.DefaultListConfig) this many times faster, so
// a run of minutes covers several listing intervals.
const listScale = 12

// listConfig is the listing policy of the fault simulator's instances.
var listConfig = client.DefaultListConfig().Scaled(listScale)

// listLatency is how long a listing of a hub's storage takes.
const listLatency = 100 * time.Millisecond

// startListing gives the lister of the client's incarnation, as its core
// starts, a client.ListPolicy per channel (routed by client.Listings).
func (c *simClient) startListing(now time.Time) {
	w := c.w
	for _, ch := range c.chans {
		p, err := client.NewListPolicy(listConfig, w.coreRand(), now)
		if err != nil {
			panic(err)
		}
		c.lists.Add(w.keys[ch].ID(), p)
	}
	c.lists.ArmAll()
}

// list lists channel c.chans[i]'s storage (lister.Start): storage holds
// every capsule announced so far, and what the client lacks it
// announces, as compare's instances do. Checks waiting for a listing
// (listWait) are judged once it is done.
func (c *simClient) list(i int, began time.Time) (time.Duration, func(time.Time)) {
	w := c.w
	ch := c.chans[i]
	ids := w.ids[ch][:len(w.ids[ch]):len(w.ids[ch])]
	return listLatency, func(now time.Time) {
		r := c.rosterOf(ch)
		n := 0
		for _, id := range ids {
			if !r.Has(id) {
				_, _ = c.core.Announce(w.keys[ch].ID(), []byte(w.entries[id].ref), c.node.Now())
				w.relisted[id] = true
				n++
			}
		}
		w.logf("%s listed channel %d: %d of %d new", c.name, ch, n, len(ids))
		waits := c.listWaits
		c.listWaits = nil
		for _, lw := range waits {
			if lw.ch == ch && !began.Before(lw.after) {
				lw.judge()
			} else {
				c.listWaits = append(c.listWaits, lw)
			}
		}
	}
}

// listWait is a check judged when a listing of channel ch that began at
// or after after is done.
type listWait struct {
	ch    int
	after time.Time
	judge func()
}

// urgentListBound is, by the listing policy's parameters, how long after
// an urgent ask (a Rescan) a listing is done at the latest: one under way
// ends (listLatency), the rate limit's spacing after it (at most
// HealthyInterval, see client.ListPolicy), the ask's Soon with its
// jitter, and the listing itself.
func urgentListBound(cfg client.ListConfig) time.Duration {
	cfg = cfg.WithDefaults()
	return 2*listLatency + cfg.HealthyInterval + cfg.Soon*11/10 + boundSlack
}

// healthyListBound is, by the listing policy's parameters, how long a
// member with a healthy link may go without listing: HealthyInterval with
// its jitter, and the listing itself.
func healthyListBound(cfg client.ListConfig) time.Duration {
	cfg = cfg.WithDefaults()
	return cfg.HealthyInterval*11/10 + listLatency + boundSlack
}

var _ client.Observer = (*simClient)(nil)
