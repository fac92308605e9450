package relay

import (
	"bytes"
	"encoding/hex"
	"slices"
	"time"
)

// MaxTopChannels bounds TopChannels.
const MaxTopChannels = 10

// ChannelTop is one channel in TopChannels. It names the channel by a
// short prefix of its ID: enough for an operator to tell channels apart
// from one view to the next, and no more than the opaque ID already is.
type ChannelTop struct {
	ID      string `json:"id"`      // the first 4 bytes of the channel ID, in hex
	Bytes   int64  `json:"bytes"`   // cached entries, as the memory budget counts them
	Entries int    `json:"entries"` // cached entries
	Members int    `json:"members"`
}

// topMaxAge is how long TopChannels serves the view it last computed, so
// that a dashboard polling /status many times a second costs the event
// loop one scan of every channel a second, not one per request.
const topMaxAge = time.Second

// TopChannels returns up to n (at most MaxTopChannels) channels with the
// most cached bytes, most first, ties broken by ID, as they were at most
// topMaxAge before now. Computing the view costs O(channels); serving it
// again costs a copy. Call it in the event context.
func (r *Relay) TopChannels(n int, now time.Time) []ChannelTop {
	n = min(max(n, 0), MaxTopChannels)
	if r.topAt.IsZero() || now.Sub(r.topAt) >= topMaxAge || now.Before(r.topAt) {
		r.top, r.topAt = r.scanTop(), now
	}
	return slices.Clone(r.top[:min(n, len(r.top))])
}

// scanTop finds the MaxTopChannels channels TopChannels names.
func (r *Relay) scanTop() []ChannelTop {
	var top [MaxTopChannels]*channel
	k := 0
	for _, ch := range r.channels { // sorted: insertion below is order-free
		if k < MaxTopChannels {
			top[k] = ch
			k++
		} else if !ranksBefore(ch, top[k-1]) {
			continue
		} else {
			top[k-1] = ch
		}
		for i := k - 1; i > 0 && ranksBefore(top[i], top[i-1]); i-- {
			top[i], top[i-1] = top[i-1], top[i]
		}
	}
	out := make([]ChannelTop, k)
	for i, ch := range top[:k] {
		out[i] = ChannelTop{ID: hex.EncodeToString(ch.id[:4]), Bytes: ch.bytes, Entries: ch.cache.Len(), Members: len(ch.members)}
	}
	return out
}

// ranksBefore orders TopChannels: more bytes first, then lower ID.
func ranksBefore(a, b *channel) bool {
	if a.bytes != b.bytes {
		return a.bytes > b.bytes
	}
	return bytes.Compare(a.id[:], b.id[:]) < 0
}
