package client

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cosnim/relays/wire"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func newPolicy(t *testing.T) *ListPolicy {
	t.Helper()
	p, err := NewListPolicy(ListConfig{}, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// list runs one listing from start to done.
func list(p *ListPolicy, start, done time.Duration) {
	p.ListingStarted(at(start))
	p.ListingDone(at(done))
}

// wantNext checks the scheduled listing; a lagging link may make Next
// earlier (see TestListPolicyLagging).
func wantNext(t *testing.T, p *ListPolicy, want time.Duration) {
	t.Helper()
	if got := p.next.Sub(t0); got != want {
		t.Errorf("next listing at %v, want %v", got, want)
	}
}

// connectedAndCaughtUp tells p that a relay connected and caught up at 0.
func connectedAndCaughtUp(p *ListPolicy) {
	p.RelayConnected(at(0))
	p.RelayCaughtUp(at(0))
}

func TestListConfigDefaults(t *testing.T) {
	c := ListConfig{}.WithDefaults()
	if c != DefaultListConfig() {
		t.Errorf("got %+v, want %+v", c, DefaultListConfig())
	}
	if c.ListInterval != time.Minute || c.HealthyInterval != 15*time.Minute || c.Soon != time.Second || c.StaleAfter != 2*time.Minute {
		t.Errorf("defaults changed: %+v", c)
	}
	bad := []ListConfig{
		{ListInterval: -1},
		{Soon: 2 * time.Minute, ListInterval: time.Minute},
	}
	for _, b := range bad {
		if _, err := NewListPolicy(b, nil, t0); err == nil {
			t.Errorf("NewListPolicy(%+v) accepted", b)
		}
	}
}

func TestListPolicyTransitions(t *testing.T) {
	tests := []struct {
		name string
		run  func(p *ListPolicy)
		want time.Duration
	}{
		{"start lists soon", func(p *ListPolicy) {}, time.Second},
		{"no relay lists every interval", func(p *ListPolicy) {
			list(p, time.Second, 2*time.Second)
		}, 62 * time.Second},
		{"refused dials leave the schedule", func(p *ListPolicy) {
			list(p, time.Second, 2*time.Second)
			p.StateChanged(Connecting, at(3*time.Second))
			p.StateChanged(Disconnected, at(4*time.Second))
		}, 62 * time.Second},
		{"catch-up at start skips the first listing", func(p *ListPolicy) {
			p.StateChanged(Connected, at(10*time.Millisecond))
			p.RelayCaughtUp(at(20 * time.Millisecond))
		}, 20*time.Millisecond + 15*time.Minute},
		{"connected without catch-up keeps listing", func(p *ListPolicy) {
			p.StateChanged(Connected, at(10*time.Millisecond))
			list(p, time.Second, 2*time.Second)
		}, 62 * time.Second},
		{"healthy lists rarely", func(p *ListPolicy) {
			connectedAndCaughtUp(p)
			p.RelayCaughtUp(at(time.Minute)) // anti-entropy
			list(p, 15*time.Minute, 15*time.Minute+time.Second)
			p.RelayCaughtUp(at(15*time.Minute + 2*time.Second))
		}, 30*time.Minute + time.Second},
		{"catch-up counts from the last listing", func(p *ListPolicy) {
			list(p, time.Second, 2*time.Second)
			p.RelayConnected(at(30 * time.Second))
			p.RelayCaughtUp(at(31 * time.Second))
		}, 2*time.Second + 15*time.Minute},
		{"relay lost lists soon", func(p *ListPolicy) {
			connectedAndCaughtUp(p)
			p.StateChanged(Disconnected, at(5*time.Minute))
		}, 5*time.Minute + time.Second},
		{"reconnect does not cancel the listing after a loss", func(p *ListPolicy) {
			connectedAndCaughtUp(p)
			p.RelayLost(at(5 * time.Minute))
			p.RelayConnected(at(5*time.Minute + 200*time.Millisecond))
			p.RelayCaughtUp(at(5*time.Minute + 300*time.Millisecond))
		}, 5*time.Minute + time.Second},
		{"epoch change lists soon", func(p *ListPolicy) {
			connectedAndCaughtUp(p)
			p.EpochChanged(at(5 * time.Minute))
			p.RelayCaughtUp(at(5*time.Minute + 100*time.Millisecond))
		}, 5*time.Minute + time.Second},
		{"soon never postpones", func(p *ListPolicy) {
			p.EpochChanged(at(900 * time.Millisecond))
		}, time.Second},
		{"healthy after the soon listing", func(p *ListPolicy) {
			connectedAndCaughtUp(p)
			p.EpochChanged(at(5 * time.Minute))
			p.RelayCaughtUp(at(5*time.Minute + 100*time.Millisecond))
			list(p, 5*time.Minute+time.Second, 5*time.Minute+2*time.Second)
		}, 20*time.Minute + 2*time.Second},
		{"urgent event during a listing lists again a ListInterval later", func(p *ListPolicy) {
			connectedAndCaughtUp(p)
			p.ListingStarted(at(15 * time.Minute))
			p.EpochChanged(at(15*time.Minute + 50*time.Millisecond))
			p.ListingDone(at(15*time.Minute + 100*time.Millisecond))
		}, 16*time.Minute + 100*time.Millisecond},
		{"urgent event soon after a listing waits a ListInterval", func(p *ListPolicy) {
			connectedAndCaughtUp(p)
			p.RelayCaughtUp(at(15 * time.Minute))
			list(p, 15*time.Minute, 15*time.Minute+time.Second)
			p.RescanAsked(at(15*time.Minute + 10*time.Second))
		}, 16*time.Minute + time.Second},
		{"urgent event a ListInterval after a listing lists soon", func(p *ListPolicy) {
			connectedAndCaughtUp(p)
			p.RelayCaughtUp(at(15 * time.Minute))
			list(p, 15*time.Minute, 15*time.Minute+time.Second)
			p.RescanAsked(at(16*time.Minute + 10*time.Second))
		}, 16*time.Minute + 11*time.Second},
		{"stopped client lists soon", func(p *ListPolicy) {
			p.StateChanged(Connected, at(0))
			p.RelayCaughtUp(at(0))
			p.StateChanged(Stopped, at(time.Minute))
		}, time.Minute + time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPolicy(t)
			// Feed the events the way a driver would: only when nothing is due
			// earlier, so that the expectation is the whole story.
			tt.run(p)
			wantNext(t, p, tt.want)
		})
	}
}

// After a catch-up, a problem that means the relay may lack entries lists
// soon; other problems leave the schedule.
func TestListPolicyProblems(t *testing.T) {
	for _, tt := range []struct {
		code wire.Code
		want time.Duration
	}{
		{wire.CodeRescan, 3*time.Minute + time.Second},
		{wire.CodeResync, 3*time.Minute + time.Second},
		{wire.CodeRateLimited, 15 * time.Minute},
	} {
		t.Run(tt.code.String(), func(t *testing.T) {
			p := newPolicy(t)
			connectedAndCaughtUp(p)
			p.Problem(tt.code, at(3*time.Minute))
			wantNext(t, p, tt.want)
		})
	}
}

func TestListPolicyLagging(t *testing.T) {
	p := newPolicy(t)
	connectedAndCaughtUp(p)
	if got, want := p.Next(), at(2*time.Minute); !got.Equal(want) {
		t.Fatalf("lagging link: next listing at %v, want %v", got.Sub(t0), want.Sub(t0))
	}
	p.RelayCaughtUp(at(time.Minute)) // anti-entropy keeps it healthy
	if got, want := p.Next(), at(3*time.Minute); !got.Equal(want) {
		t.Fatalf("after anti-entropy: next listing at %v, want %v", got.Sub(t0), want.Sub(t0))
	}
	list(p, 3*time.Minute, 3*time.Minute+time.Second)
	if got, want := p.Next(), at(4*time.Minute+time.Second); !got.Equal(want) {
		t.Fatalf("lagging: next listing at %v, want %v (every ListInterval)", got.Sub(t0), want.Sub(t0))
	}
	p.RelayCaughtUp(at(3*time.Minute + 10*time.Second))
	if got, want := p.next, at(18*time.Minute+time.Second); !got.Equal(want) {
		t.Fatalf("caught up again: scheduled listing at %v, want %v", got.Sub(t0), want.Sub(t0))
	}
}

func TestListPolicyHealthy(t *testing.T) {
	p := newPolicy(t)
	if p.Healthy(at(0)) {
		t.Error("healthy before connecting")
	}
	p.RelayConnected(at(0))
	if p.Healthy(at(0)) {
		t.Error("healthy before a catch-up")
	}
	p.RelayCaughtUp(at(time.Second))
	if !p.Healthy(at(time.Minute)) {
		t.Error("not healthy after a catch-up")
	}
	if p.Healthy(at(2*time.Minute + time.Second)) {
		t.Error("healthy after StaleAfter without catch-up")
	}
	p.RelayLost(at(3 * time.Minute))
	if p.Healthy(at(3 * time.Minute)) {
		t.Error("healthy after the link was lost")
	}
	p.RelayCaughtUp(at(3 * time.Minute)) // late report for a dead link
	if p.Healthy(at(3 * time.Minute)) {
		t.Error("a catch-up without a link made it healthy")
	}
}

func TestListPolicyDue(t *testing.T) {
	p := newPolicy(t)
	if p.Due(at(999 * time.Millisecond)) {
		t.Error("due before Next")
	}
	if !p.Due(at(time.Second)) {
		t.Error("not due at Next")
	}
	p.ListingStarted(at(time.Second))
	if p.Due(at(10 * time.Second)) {
		t.Error("due while a listing runs")
	}
	p.ListingDone(at(11 * time.Second))
	if p.Due(at(11 * time.Second)) {
		t.Error("due right after a listing")
	}
}

func TestListPolicyJitter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 200 {
		p, err := NewListPolicy(ListConfig{}, rng, t0)
		if err != nil {
			t.Fatal(err)
		}
		p.ListingDone(at(0))
		d := p.Next().Sub(t0)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 54*time.Second || hi >= 66*time.Second || hi-lo < 6*time.Second {
		t.Errorf("jittered interval spans [%v, %v], want about [54s, 66s)", lo, hi)
	}
	// The same source replays the same schedule.
	a, _ := NewListPolicy(ListConfig{}, rand.New(rand.NewPCG(7, 7)), t0)
	b, _ := NewListPolicy(ListConfig{}, rand.New(rand.NewPCG(7, 7)), t0)
	if !a.Next().Equal(b.Next()) {
		t.Errorf("same seed, different schedules: %v, %v", a.Next(), b.Next())
	}
}
