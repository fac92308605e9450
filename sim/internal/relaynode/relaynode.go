// Package relaynode is one simulated relay as both simulators run it
// (sim's pools, sim/value's variants): a netsim node and address, the
// current relay core and, with a backbone, its port on the bus.
package relaynode

import (
	"github.com/cosnim/relays/backbone"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/transport"
)

// Relay is one simulated relay.
type Relay struct {
	Name, Addr string
	Node       *netsim.Node
	Port       *netsim.BusPort // nil without a backbone
	Core       *relay.Relay
	Up         bool
	Gen        int // incarnations started
}

// New adds r's node to net and, if bus is not nil, attaches it.
func New(net *netsim.Network, bus *netsim.Bus, name, addr string) *Relay {
	r := &Relay{Name: name, Addr: addr, Node: net.AddNode(name)}
	if bus != nil {
		r.Port = bus.Attach(r.Node)
	}
	return r
}

// Start runs core as r's next incarnation, with an empty memory: the node
// (restarted after the first) hands connection events to h and listens
// on Addr, the bus port hands backbone events to bh.
func (r *Relay) Start(core *relay.Relay, h transport.Handler, bh backbone.Handler) {
	r.Core = core
	r.Gen++
	if r.Gen > 1 {
		r.Node.Restart(h)
	} else {
		r.Node.SetHandler(h)
	}
	r.Node.Listen(r.Addr)
	if r.Port != nil {
		r.Port.SetHandler(bh)
	}
	r.Up = true
}

// Crash kills r's node: its memory and connections are lost.
func (r *Relay) Crash() {
	r.Node.Crash()
	r.Up = false
}
