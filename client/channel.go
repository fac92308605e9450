package client

import (
	"slices"
	"time"

	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// FailNoSyncOnJoin skips the catch-up sync after a join (and the
// anti-entropy that would repair it): reconnects then miss entries.
const FailNoSyncOnJoin = "client/no-sync-on-join"

// channel is the client's state in one channel.
type channel struct {
	keys        *roster.Keys
	id          roster.ChannelID
	handle      uint32
	roster      roster.Set
	joined      bool
	session     uint32
	outstanding int      // sync messages sent and not yet answered
	pushed      bool     // this sync sent the relay entries it lacked
	barrier     uint64   // Ping data whose Pong ends the sync, if pushed
	held        [][]byte // sealed announces waiting for AnnounceDelay
	heldSeq     uint32   // the seq they will carry
	heldBytes   int      // their sealed bytes
	// rejected holds IDs of entries that did not open, at most
	// MaxRejected, so that syncs stop asking for them (PROTOCOL §8.3);
	// rejectOrder is their arrival order, the oldest forgotten first.
	rejected    map[roster.ID]struct{}
	rejectOrder []roster.ID
	// left marks a channel given up by Leave: its handle stays taken
	// until the connection it was left on ends (the relay may still send
	// on it), then free lets Join reuse the slot.
	left, free bool
}

func (c *Client) sendJoin(ch *channel) {
	pub, sig := ch.keys.JoinProof(c.nonce)
	c.send(&wire.Join{Handle: ch.handle, Channel: ch.id, Pub: pub, Sig: sig})
}

func (c *Client) startSync(ch *channel) {
	if _, ok := fault.Hit(c.cfg.Faults, FailNoSyncOnJoin); ok {
		return
	}
	ch.session++
	ch.outstanding = 1
	ch.pushed, ch.barrier = false, 0
	c.stats.Syncs++
	msg := ch.roster.StartSync()
	c.send(&wire.Sync{Handle: ch.handle, Session: ch.session, Msg: msg})
}

// channelOf returns the joined channel of handle, or nil.
func (c *Client) channelOf(handle uint32) *channel {
	if ch := c.slot(handle); ch != nil && !ch.left {
		return ch
	}
	return nil
}

// slot returns the channel that holds handle, left or not, or nil.
func (c *Client) slot(handle uint32) *channel {
	if handle == 0 || int(handle) > len(c.channels) {
		return nil
	}
	return c.channels[handle-1]
}

// learn adds entries from the relay that open with the channel's keys.
func (c *Client) learn(ch *channel, sealed [][]byte, now time.Time) {
	var refs [][]byte
	for _, s := range sealed {
		e := roster.NewEntry(s)
		if ch.roster.Has(e.ID) {
			continue
		}
		ref, err := ch.keys.Open(e)
		if err != nil {
			c.stats.Forged++
			ch.reject(e.ID)
			continue
		}
		e.Sealed = append([]byte(nil), s...)
		ch.roster.Add(e)
		refs = append(refs, ref)
	}
	if len(refs) > 0 {
		c.stats.Learned += uint64(len(refs))
		c.obs.Learned(ch.id, refs, now)
	}
}

// MaxRejected bounds the IDs of unopenable entries a client remembers per
// channel (32 bytes and a map slot each).
const MaxRejected = 1024

// FailForgetRejected keeps no record of entries that did not open: every
// sync asks for them again.
const FailForgetRejected = "client/forget-rejected"

// reject remembers id, of an entry that did not open.
func (ch *channel) reject(id roster.ID) {
	if _, ok := ch.rejected[id]; ok {
		return
	}
	if ch.rejected == nil {
		ch.rejected = map[roster.ID]struct{}{}
	}
	if len(ch.rejectOrder) >= MaxRejected {
		delete(ch.rejected, ch.rejectOrder[0])
		ch.rejectOrder = ch.rejectOrder[1:]
	}
	ch.rejected[id] = struct{}{}
	ch.rejectOrder = append(ch.rejectOrder, id)
}

// dropRejected removes, in place, wants of entries known not to open.
func (c *Client) dropRejected(ch *channel, want []roster.ID) []roster.ID {
	if len(ch.rejected) == 0 || fault.On(c.cfg.Faults, FailForgetRejected) {
		return want
	}
	return slices.DeleteFunc(want, func(id roster.ID) bool {
		_, ok := ch.rejected[id]
		return ok
	})
}
