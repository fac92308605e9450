package relayserver

import (
	"testing"

	natsbus "github.com/cosnim/relays/backbone/nats"
	"github.com/cosnim/relays/relay"
)

// TestBackboneInBudget: what the NATS driver may hold (its receive queue,
// outbox and buffers) is a fixed part of the relay's memory accounting,
// and a small budget gets small queues (the hand-off of
// 64 messages stays, so 16 MiB keeps 9 for the rest).
func TestBackboneInBudget(t *testing.T) {
	for _, budget := range []int64{0, 16 << 20} {
		o := natsbus.Options{URLs: []string{"nats://127.0.0.1:1"}}
		s, err := New(Config{Addr: "127.0.0.1:0", Relay: relay.Config{MemoryBudget: budget}, Backbone: &o})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.bb.close)
		lim := s.cfg.Relay.WithDefaults()
		u := s.core.MemoryUsage()
		if u.Backbone < int64(2*lim.MaxFrameSize) || u.Total() < u.Backbone {
			t.Errorf("budget %d: the backbone is accounted %d bytes of %d in all", budget, u.Backbone, u.Total())
		}
		if budget == 0 && u.Backbone < natsbus.DefaultPendingBytes+natsbus.DefaultOutboxBytes {
			t.Errorf("default budget: backbone accounted %d, less than its default queues", u.Backbone)
		}
		if u.Backbone > lim.MemoryBudget/2 {
			t.Errorf("budget %d: the backbone takes %d, over half", lim.MemoryBudget, u.Backbone)
		}
	}
}
