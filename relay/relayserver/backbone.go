package relayserver

import (
	"errors"
	"log/slog"
	"reflect"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cosnim/relays/backbone"
	natsbus "github.com/cosnim/relays/backbone/nats"
	"github.com/cosnim/relays/relay"
)

// errNoBackboneCore is returned by New for a backbone the core cannot use.
var errNoBackboneCore = errors.New("relay: this relay core has no backbone support")

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
	bus, err := natsbus.New(o)
	if err != nil {
		return nil, err
	}
	if !attachBackbone(rc, bus, prefix) {
		return nil, errNoBackboneCore
	}
	return &backboneLink{bus: bus}, nil
}

// attachBackbone sets the core's Config.Backbone and, when prefix is not
// empty, Config.BackbonePrefix; it reports false when relay.Config has no
// such fields. By name, so that this driver builds against a core with or
// without the backbone; once both are in one tree this is the two
// assignments it stands for.
var attachBackbone = func(rc *relay.Config, bus backbone.Bus, prefix string) bool {
	v := reflect.ValueOf(rc).Elem()
	f, p := v.FieldByName("Backbone"), v.FieldByName("BackbonePrefix")
	if !f.IsValid() || !p.IsValid() || p.Kind() != reflect.String || !reflect.TypeOf(bus).AssignableTo(f.Type()) {
		return false
	}
	f.Set(reflect.ValueOf(bus))
	if prefix != "" {
		p.SetString(prefix)
	}
	return true
}

// backboneHandler is the core as the driver feeds it. (A variable, as
// attachBackbone is, so that tests can wire the driver to a stand-in.)
var backboneHandler = func(core *relay.Relay) (backbone.Handler, error) {
	h, ok := any(core).(backbone.Handler)
	if !ok {
		return nil, errNoBackboneCore
	}
	return h, nil
}

// start connects in the background; run enters the core's event context.
func (b *backboneLink) start(run func(func())) { b.bus.Start(b.h, run) }

// close stops the driver; no backbone event reaches the core afterwards.
func (b *backboneLink) close() { b.bus.Close() }

// BackboneStatus is /status's backbone object.
type BackboneStatus struct {
	// URLs are the configured servers, without credentials.
	URLs []string `json:"urls"`
	natsbus.Stats
}

func (b *backboneLink) status() *BackboneStatus {
	return &BackboneStatus{URLs: b.bus.URLs(), Stats: b.bus.Stats()}
}

var (
	descBBConnected   = desc("backbone_connected", "1 while the backbone (NATS) is connected.")
	descBBMessages    = desc("backbone_messages_total", "Backbone messages by direction: handed to NATS (publishes, requests, replies) and delivered from it.", "direction")
	descBBBytes       = desc("backbone_bytes_total", "Payload bytes of backbone messages by direction.", "direction")
	descBBDropped     = desc("backbone_dropped_total", "Backbone messages never handed to NATS (outbox or reconnect buffer full, not yet connected).")
	descBBSlow        = desc("backbone_slow_consumer_dropped_total", "Backbone messages NATS dropped because the relay did not take them in time.")
	descBBConnEvents  = desc("backbone_connection_events_total", "Backbone connection events by kind: connect, disconnect, reconnect.", "event")
	descBBRequests    = desc("backbone_requests_total", "Relay-to-relay requests made.")
	descBBReqFailures = desc("backbone_request_failures_total", "Relay-to-relay requests without a reply, by reason.", "reason")
)

var backboneDescs = []*prometheus.Desc{descBBConnected, descBBMessages, descBBBytes, descBBDropped, descBBSlow,
	descBBConnEvents, descBBRequests, descBBReqFailures}

// collect adds the driver's counters to a scrape.
func (b *backboneLink) collect(ch chan<- prometheus.Metric) {
	st := b.bus.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
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
	counter(descBBConnEvents, st.Connects, "connect")
	counter(descBBConnEvents, st.Disconnects, "disconnect")
	counter(descBBConnEvents, st.Reconnects, "reconnect")
	counter(descBBRequests, st.Requests)
	counter(descBBReqFailures, st.RequestsNoResponders, "no_responders")
	counter(descBBReqFailures, st.RequestsTimeout, "timeout")
	counter(descBBReqFailures, st.RequestsDown, "down")
}
