package main

import (
	"strings"
	"testing"

	natsbus "github.com/cosnim/relays/backbone/nats"
	"github.com/cosnim/relays/relay/relayserver"
)

// The view shows the backbone only for a relay that has one: its link
// (or why it is down) and what crossed it.
func TestTopShowsBackbone(t *testing.T) {
	v := &topView{Relay: "east-1"}
	if out := renderTop(v); strings.Contains(out, "backbone") {
		t.Errorf("a relay without a backbone shows one:\n%s", out)
	}
	v.Status.Backbone = &relayserver.BackboneStatus{Stats: natsbus.Stats{LastError: "nats: authorization violation"},
		EntriesPublished: 7, EntriesLearnt: 5}
	if out := renderTop(v); !strings.Contains(out, "DOWN (nats: authorization violation)") || !strings.Contains(out, "entries out 7  in 5") {
		t.Errorf("the backbone line lacks its state or counts:\n%s", out)
	}
	v.Status.Backbone.Connected, v.Status.Backbone.URL = true, "nats://n1:4222"
	if out := renderTop(v); !strings.Contains(out, "connected to nats://n1:4222") {
		t.Errorf("the backbone line lacks its server:\n%s", out)
	}
}
