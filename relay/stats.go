package relay

import "github.com/cosnim/relays/wire"

// Stats counts what the relay did since it started. Drivers export them as
// metrics; the simulator reads them for its reports.
type Stats struct {
	Conns             uint64 // connections accepted
	Refused           uint64 // connections refused (full or draining)
	Channels          uint64 // channels created
	ChannelsForgotten uint64 // channels dropped after ChannelIdleTimeout without members, or sooner under memory pressure
	// ChannelsForgottenEarly counts those of ChannelsForgotten dropped
	// without members before ChannelIdleTimeout, for memory.
	ChannelsForgottenEarly uint64
	BytesIn                uint64
	BytesOut               uint64
	FramesIn               [256]uint64 // by wire.Type
	FramesOut              [256]uint64
	FrameBytesIn           [256]uint64 // by wire.Type, headers included
	FrameBytesOut          [256]uint64
	UnknownFrames          uint64
	ProtocolErrors         uint64
	JoinsDenied            uint64
	DeniedClosed           uint64 // connections closed at MaxDeniedJoins
	BadEntries             uint64
	EntriesIn              uint64 // new entries stored
	Duplicates             uint64 // entries already cached
	Delivered              uint64 // entries sent to members by fan-out
	Evicted                uint64 // entries dropped from full caches
	PendingMerged          uint64 // entries held for slow members
	PendingDropped         uint64 // held entries dropped past the cap
	Resyncs                uint64 // members told to sync again
	SyncRounds             uint64 // sync messages answered
	RateLimited            uint64 // connections closed over their frame or byte rate
	Shed                   uint64 // connections or channels refused over the memory budget
	QueueFull              uint64 // connections closed with their send queue over SendQueue
	ShedConns              uint64 // connections closed as the costliest when the budget was reached
	ShedResyncs            uint64 // costliest connections whose held entries were dropped (members told to resync) instead
	SyncsDeferred          uint64 // sync messages held until a connection's queue drained
	// Backbone (backbone.go); all zero without one.
	BackboneUp               bool   // the bus is connected now
	BackboneDowns            uint64 // times the bus was lost
	BackbonePublished        uint64 // messages published on channel subjects
	BackbonePublishedEntries uint64 // entries in them
	BackboneDropped          uint64 // entries not published because the bus was down
	BackboneReceived         uint64 // messages received on subscribed subjects
	BackboneEntries          uint64 // new entries stored from the bus (publishes and reconciliations)
	BackboneBad              uint64 // messages or replies dropped as oversized or undecodable
	BackboneSyncsAnswered    uint64 // reconciliation requests of peers answered
	BackboneReconciles       uint64 // reconciliations started
	BackboneReconciled       uint64 // reconciliations that ended in agreement, or found no peer
	BackboneReconcileFailed  uint64 // reconciliations that timed out, lost the bus, got a bad reply or hit the round limit
	BackboneCompleteRefuted  uint64 // replies that claimed a complete cache the other replies refuted
	BackboneQuotaEvicted     uint64 // bus entries evicted over their origin's quota
	BackboneLimited          uint64 // reconciliation requests not answered over the channel's answer rate
	ErrorsSent               map[wire.Code]uint64
	// HandshakeFailures counts refused handshakes by reason.
	HandshakeFailures map[wire.Code]uint64
}

// Stats returns a copy of the counters.
func (r *Relay) Stats() Stats {
	s := r.stats
	s.ErrorsSent = cloneCounts(r.stats.ErrorsSent)
	s.HandshakeFailures = cloneCounts(r.stats.HandshakeFailures)
	return s
}

func cloneCounts(m map[wire.Code]uint64) map[wire.Code]uint64 {
	c := make(map[wire.Code]uint64, len(m))
	for k, v := range m { // sorted: copy only
		c[k] = v
	}
	return c
}

// Conns reports live connections.
func (r *Relay) Conns() int { return len(r.conns) }

// ChannelCount reports channels the relay holds.
func (r *Relay) ChannelCount() int { return len(r.channels) }

// Usage reports the entries the relay holds for each channel and the most
// held for one member, for boundedness checks.
func (r *Relay) Usage() (maxCache, maxPending int) {
	for _, ch := range r.channels { // sorted: max is order-free
		maxCache = max(maxCache, ch.cache.Len())
		for _, m := range ch.members {
			maxPending = max(maxPending, len(m.pending))
		}
	}
	return maxCache, maxPending
}
