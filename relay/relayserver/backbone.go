package relayserver

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cosnim/relays/backbone"
	natsbus "github.com/cosnim/relays/backbone/nats"
	"github.com/cosnim/relays/relay"
)

// backboneLink is the server's side of a backbone: the NATS driver and
// the core it feeds.
type backboneLink struct {
	bus *natsbus.Bus
	h   backbone.Handler
}

// newBackbone builds the driver for o and hands it to the core's Config
// (with prefix, "" for the core's default). The connection starts with
// start, in Run.
func newBackbone(o natsbus.Options, prefix string, rc *relay.Config, log *slog.Logger) (*backboneLink, error) {
	o.Logger = log
	if o.Name == "" {
		o.Name = "cosnim relay"
	}
	sizeBackbone(&o, rc.WithDefaults())
	bus, err := natsbus.New(o)
	if err != nil {
		return nil, err
	}
	rc.BackboneBytes = o.MaxHeld()
	// With a pool key only relays can speak on the bus (PROTOCOL §14).
	rc.BackboneAuthenticated = o.PoolKeyFile != ""
	attachBackbone(rc, bus, prefix)
	return &backboneLink{bus: bus}, nil
}

// busShare is the part of the memory budget that each of the driver's
// receive queue and outbox may take at most (1/busShare), though each
// keeps room for two of the largest messages.
const busShare = 16

// sizeBackbone fits the driver's queues to the relay's limits: messages
// up to max_frame_size, queues within the budget.
func sizeBackbone(o *natsbus.Options, lim relay.Config) {
	if o.MaxMessage == 0 {
		o.MaxMessage = lim.MaxFrameSize
	}
	share := max(int(lim.MemoryBudget/busShare), 2*(o.MaxMessage+natsbus.AuthOverhead+1024))
	if o.PendingBytes == 0 {
		o.PendingBytes = min(natsbus.DefaultPendingBytes, share)
	}
	if o.OutboxBytes == 0 {
		o.OutboxBytes = min(natsbus.DefaultOutboxBytes, share)
	}
}

// attachBackbone hands the driver to the core's Config, with prefix
// unless it is "" (the core's default). A variable, as backboneHandler is,
// so that tests can wire the driver to a stand-in.
var attachBackbone = func(rc *relay.Config, bus backbone.Bus, prefix string) {
	rc.Backbone = bus
	if prefix != "" {
		rc.BackbonePrefix = prefix
	}
}

// backboneHandler is the core as the driver feeds it. (A variable, as
// attachBackbone is, so that tests can wire the driver to a stand-in.)
var backboneHandler = func(core *relay.Relay) (backbone.Handler, error) { return core, nil }

// start connects in the background; run enters the core's event context.
func (b *backboneLink) start(run func(func())) { b.bus.Start(b.h, run) }

// close stops the driver; no backbone event reaches the core afterwards.
func (b *backboneLink) close() { b.bus.Close() }

// BackboneStatus is /status's backbone object.
type BackboneStatus struct {
	// URLs are the configured servers, without credentials.
	URLs []string `json:"urls"`
	natsbus.Stats
	// What the core sent and learnt over it.
	EntriesPublished uint64 `json:"entries_published"`
	EntriesLearnt    uint64 `json:"entries_learnt"`
	EntriesDropped   uint64 `json:"entries_dropped"`
	Reconciliations  uint64 `json:"reconciliations"`
	ReconcilesFailed uint64 `json:"reconciliations_failed"`
}

func (b *backboneLink) status(st relay.Stats) *BackboneStatus {
	return &BackboneStatus{URLs: b.bus.URLs(), Stats: b.bus.Stats(),
		EntriesPublished: st.BackbonePublishedEntries, EntriesLearnt: st.BackboneEntries, EntriesDropped: st.BackboneDropped,
		Reconciliations: st.BackboneReconciles, ReconcilesFailed: st.BackboneReconcileFailed}
}

var (
	descBBConnected   = desc("backbone_connected", "1 while the backbone (NATS) is connected.")
	descBBMessages    = desc("backbone_messages_total", "Backbone messages by direction: handed to NATS (publishes, requests, replies) and delivered from it.", "direction")
	descBBBytes       = desc("backbone_bytes_total", "Payload bytes of backbone messages by direction.", "direction")
	descBBDropped     = desc("backbone_dropped_total", "Backbone messages never handed to NATS (outbox or reconnect buffer full, not yet connected).")
	descBBSlow        = desc("backbone_slow_consumer_dropped_total", "Backbone messages NATS dropped because the relay did not take them in time.")
	descBBRefused     = desc("backbone_refused_total", "Backbone messages dropped on receipt, before queuing, by reason: oversized, reply_subject (not an inbox), unauthenticated (pool key), queue_full.", "reason")
	descBBPending     = desc("backbone_pending_bytes", "Bytes of received backbone messages waiting for the relay.")
	descBBConnEvents  = desc("backbone_connection_events_total", "Backbone connection events by kind: connect, disconnect, reconnect.", "event")
	descBBRequests    = desc("backbone_requests_total", "Relay-to-relay requests made.")
	descBBReqFailures = desc("backbone_request_failures_total", "Relay-to-relay requests without a reply, by reason.", "reason")
)

var (
	descBBEntries    = desc("backbone_entries_total", "Entries over the backbone by direction: published from local members, new ones stored from peers.", "direction")
	descBBDroppedEnt = desc("backbone_entries_dropped_total", "Entries of local members not published because the backbone was down (reconciliation repairs them).")
	descBBBad        = desc("backbone_bad_messages_total", "Backbone messages or replies dropped as oversized or undecodable.")
	descBBReconciles = desc("backbone_reconciliations_total", "Relay-to-relay reconciliations by outcome: started, agreed (or no peer), failed.", "outcome")
	descBBDistrust   = desc("backbone_distrusted_total", "What the relay refused to take from the backbone on its word, by kind: complete claims refuted, entries evicted over their origin's quota, requests not answered over the channel's rate.", "kind")
)

var backboneDescs = []*prometheus.Desc{descBBEntries, descBBDroppedEnt, descBBBad, descBBReconciles, descBBDistrust, descBBConnected, descBBMessages, descBBBytes, descBBDropped, descBBSlow,
	descBBRefused, descBBPending, descBBConnEvents, descBBRequests, descBBReqFailures}

// collect adds the core's backbone counters, from rs, and the driver's
// to a scrape.
func (b *backboneLink) collect(ch chan<- prometheus.Metric, rs relay.Stats) {
	gauge, counter := gaugeTo(ch), counterTo(ch)
	counter(descBBEntries, rs.BackbonePublishedEntries, "out")
	counter(descBBEntries, rs.BackboneEntries, "in")
	counter(descBBDroppedEnt, rs.BackboneDropped)
	counter(descBBBad, rs.BackboneBad)
	counter(descBBReconciles, rs.BackboneReconciles, "started")
	counter(descBBReconciles, rs.BackboneReconciled, "agreed")
	counter(descBBReconciles, rs.BackboneReconcileFailed, "failed")
	counter(descBBDistrust, rs.BackboneCompleteRefuted, "complete_refuted")
	counter(descBBDistrust, rs.BackboneQuotaEvicted, "quota_evicted")
	counter(descBBDistrust, rs.BackboneLimited, "answers_limited")
	st := b.bus.Stats()
	up := 0.0
	if st.Connected {
		up = 1
	}
	gauge(descBBConnected, up)
	counter(descBBMessages, st.Published, "out")
	counter(descBBMessages, st.Received, "in")
	counter(descBBBytes, st.PublishedBytes, "out")
	counter(descBBBytes, st.ReceivedBytes, "in")
	counter(descBBDropped, st.Dropped)
	counter(descBBSlow, st.SlowConsumerDrops)
	counter(descBBRefused, st.Oversized, "oversized")
	counter(descBBRefused, st.ReplySubject, "reply_subject")
	counter(descBBRefused, st.Unauthenticated, "unauthenticated")
	counter(descBBRefused, st.QueueFull, "queue_full")
	gauge(descBBPending, float64(st.PendingBytes))
	counter(descBBConnEvents, st.Connects, "connect")
	counter(descBBConnEvents, st.Disconnects, "disconnect")
	counter(descBBConnEvents, st.Reconnects, "reconnect")
	counter(descBBRequests, st.Requests)
	counter(descBBReqFailures, st.RequestsNoResponders, "no_responders")
	counter(descBBReqFailures, st.RequestsTimeout, "timeout")
	counter(descBBReqFailures, st.RequestsDown, "down")
}
