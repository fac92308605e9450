package relay

import (
	"encoding/binary"
	"slices"

	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/roster"
)

// FailRelayWideForgot makes every channel created after the relay forgot
// any channel claim an incomplete cache, as when the record was one flag
// for the whole relay (PROTOCOL §4.4).
const FailRelayWideForgot = "relay/relay-wide-forgot"

// ForgottenCapacity bounds the record of channels forgotten this epoch:
// it holds the first 8 bytes of each forgotten channel's ID, sorted, at
// most this many (256 KiB), each charged to the memory budget. Past it the
// relay claims no new channel complete. PROTOCOL §4.4 quotes it.
const ForgottenCapacity = 1 << 15

// forgottenEntryBytes is what one recorded channel costs the budget.
const forgottenEntryBytes = 8

// forgottenSet records which channels the relay forgot this epoch, so a
// channel created later knows whether entries of its own may have been
// dropped. It has no false negatives; a false positive (two IDs sharing
// 64 bits, which takes 2^64 work to make) costs members one storage
// listing.
type forgottenSet struct {
	ids      []uint64 // sorted
	overflow bool     // more than ForgottenCapacity forgotten: trust nothing
}

func idKey(id roster.ChannelID) uint64 { return binary.BigEndian.Uint64(id[:]) }

// add records id as forgotten. A channel forgotten twice is held once.
func (f *forgottenSet) add(id roster.ChannelID) {
	k := idKey(id)
	i, found := slices.BinarySearch(f.ids, k)
	switch {
	case found || f.overflow:
	case len(f.ids) >= ForgottenCapacity:
		f.overflow, f.ids = true, nil
	default:
		f.ids = slices.Insert(f.ids, i, k)
	}
}

// mayHold reports whether id may have been forgotten this epoch.
func (f *forgottenSet) mayHold(id roster.ChannelID) bool {
	_, found := slices.BinarySearch(f.ids, idKey(id))
	return f.overflow || found
}

// any reports whether any channel was forgotten.
func (f *forgottenSet) any() bool { return f.overflow || len(f.ids) > 0 }

// bytes is what the record costs the memory budget.
func (f *forgottenSet) bytes() int64 { return int64(len(f.ids)) * forgottenEntryBytes }

// forgetChannel records that ch, about to be dropped, may have held
// entries no later channel of its ID will.
func (r *Relay) forgetChannel(ch *channel) {
	r.forgotten.add(ch.id)
}

// newChannelComplete reports whether a channel created now may claim to
// hold everything announced on it this epoch: it may unless this relay
// forgot that channel before.
func (r *Relay) newChannelComplete(id roster.ChannelID) bool {
	if _, ok := fault.Hit(r.cfg.Faults, FailRelayWideForgot); ok && r.forgotten.any() {
		return false
	}
	return !r.forgotten.mayHold(id)
}
