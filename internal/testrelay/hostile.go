package testrelay

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/badrelay"
	"github.com/cosnim/relays/transport/tcp"
)

// StartBad serves a malicious relay (badrelay) on a loopback port until the
// test ends, and returns its address and a reader of its counters.
func StartBad(t testing.TB, cfg badrelay.Config) (addr string, stats func() badrelay.Stats) {
	t.Helper()
	r, err := badrelay.New(cfg, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	loop := tcp.NewLoop(r, tcp.LoopOptions{})
	go loop.Serve(ln)
	t.Cleanup(func() { loop.Close() })
	return ln.Addr().String(), func() (st badrelay.Stats) {
		loop.Do(func() { st = r.Stats() })
		return st
	}
}

// ScaledListing is the default listing policy with every interval divided
// by scale: a run of d then stands for d*scale of an instance's life.
func ScaledListing(scale int) client.ListConfig { return client.DefaultListConfig().Scaled(scale) }

// Listings is what MeasureListings saw of one hub.
type Listings struct {
	Count int // listings started
	// Bound is the most listings an instance makes in the same time
	// without a relay (client.ListingsWithoutRelay).
	Bound int
	// PerHour and BoundPerHour are Count and Bound per hour of the scaled
	// time base.
	PerHour, BoundPerHour float64
	Problems              []string // the Agent's Problems at the end
}

func (l Listings) String() string {
	return fmt.Sprintf("%d listings (%.0f/h), no relay at most %d (%.0f/h)", l.Count, l.PerHour, l.Bound, l.BoundPerHour)
}

// MeasureListings joins hub on a (whose Options.Listing is cfg) and lists
// it for d whenever the Agent says a listing is due, each listing taking
// took, as an instance does; scale is the time base of cfg (ScaledListing).
func MeasureListings(t testing.TB, a *agent.Agent, hub string, cfg client.ListConfig, scale int, d, took time.Duration) Listings {
	t.Helper()
	bound, err := client.ListingsWithoutRelay(cfg, d, took)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(d)
	if err := a.Join(hub); err != nil {
		t.Fatal(err)
	}
	n := 0
	for now := time.Now(); now.Before(end); now = time.Now() {
		next, err := a.NextListing(hub)
		if err != nil {
			t.Fatal(err)
		}
		if now.Before(next) {
			// Urgent asks move the next listing sooner: look again often.
			time.Sleep(min(next.Sub(now), end.Sub(now), cfg.Soon/4+time.Millisecond))
			continue
		}
		n++
		if err := a.ListingStarted(hub); err != nil {
			t.Fatal(err)
		}
		time.Sleep(took)
		if err := a.ListingDone(hub); err != nil {
			t.Fatal(err)
		}
	}
	hours := (d * time.Duration(scale)).Hours()
	return Listings{Count: n, Bound: bound, PerHour: float64(n) / hours, BoundPerHour: float64(bound) / hours, Problems: a.Problems()}
}
