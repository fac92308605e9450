package bench

import (
	"context"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testnats"
)

// The NATS side of the bench, through nats.go, against a real server:
// every publish reaches every subscriber, and latency is sampled.
func TestNATSScenarios(t *testing.T) {
	srv := testnats.Start(t, testnats.Options(t))
	target, err := NATS(srv.URL(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{
		{Scenario: ScenarioFanout, Sub: 3, Msgs: 2000, Size: 64},
		{Scenario: ScenarioChannels, Channels: 3, Sub: 3, Rate: 3000, Duration: 300 * time.Millisecond, Size: 64},
	} {
		t.Run(o.Scenario, func(t *testing.T) {
			o.Timeout = 30 * time.Second
			r, err := Run(context.Background(), target, o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Published == 0 || r.Delivered != r.Expected || r.Errors != 0 {
				t.Errorf("published %d, delivered %d of %d, %d errors", r.Published, r.Delivered, r.Expected, r.Errors)
			}
			if r.Scenario == ScenarioFanout && r.Expected != 3*2000 {
				t.Errorf("expected %d deliveries, want %d", r.Expected, 3*2000)
			}
			if r.LatencySamples == 0 {
				t.Errorf("no latency samples")
			}
		})
	}
}
