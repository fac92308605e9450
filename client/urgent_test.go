package client

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/fault/registry"
	"github.com/cosnim/relays/wire"
)

// hostileRelays are the malicious relays of the hostile suite, as the
// events a client core reports for them, at default timings.
var hostileRelays = []struct {
	name  string
	every time.Duration
	fire  func(p *ListPolicy, now time.Time)
}{
	{"rescan storm", 200 * time.Millisecond, func(p *ListPolicy, now time.Time) { p.Problem(wire.CodeRescan, now) }},
	{"resync storm", 2 * time.Second, func(p *ListPolicy, now time.Time) { p.Problem(wire.CodeResync, now) }},
	{"epoch churn", 3 * time.Second, func(p *ListPolicy, now time.Time) {
		p.StateChanged(Disconnected, now)
		p.StateChanged(Connected, now)
		p.EpochChanged(now)
		p.RelayCaughtUp(now)
	}},
	{"never-complete joined", 3 * time.Second, func(p *ListPolicy, now time.Time) {
		p.StateChanged(Disconnected, now)
		p.StateChanged(Connected, now)
		p.Problem(wire.CodeRescan, now) // a Joined not flagged complete
		p.RelayCaughtUp(now)
	}},
}

// driveHostile runs p for d against a relay that fires every period, with
// catch-ups every 30s between (anti-entropy), listing whenever p is due,
// each listing taking took; it returns the listings started.
func driveHostile(p *ListPolicy, every time.Duration, fire func(*ListPolicy, time.Time), d, took time.Duration) int {
	const step = 10 * time.Millisecond
	p.StateChanged(Connected, t0)
	p.RelayCaughtUp(t0)
	n := 0
	var listEnd time.Time
	for now := t0; now.Before(t0.Add(d)); now = now.Add(step) {
		el := now.Sub(t0)
		if el > 0 && el%every == 0 {
			fire(p, now)
		}
		if el > 0 && el%(30*time.Second) == 0 {
			p.RelayCaughtUp(now)
		}
		if !listEnd.IsZero() && !now.Before(listEnd) {
			p.ListingDone(now)
			listEnd = time.Time{}
		}
		if listEnd.IsZero() && p.Due(now) {
			n++
			p.ListingStarted(now)
			listEnd = now.Add(took)
		}
	}
	return n
}

// No relay, however it misbehaves, makes an instance list more often than
// it does without a relay; and it is found out.
func TestListPolicyHostileRelay(t *testing.T) {
	const d, took = time.Hour, 100 * time.Millisecond
	bound, err := ListingsWithoutRelay(ListConfig{}, d, took)
	if err != nil {
		t.Fatal(err)
	}
	for _, hr := range hostileRelays {
		t.Run(hr.name, func(t *testing.T) {
			p, err := NewListPolicy(ListConfig{}, rand.New(rand.NewPCG(1, 2)), t0)
			if err != nil {
				t.Fatal(err)
			}
			n := driveHostile(p, hr.every, hr.fire, d, took)
			t.Logf("%d listings in %v, %d without a relay at most; %d asks held", n, d, bound, p.Held())
			if n > bound {
				t.Errorf("got %d listings in %v, want at most %d (no relay)", n, d, bound)
			}
			if !p.Suspect(t0.Add(d)) {
				t.Errorf("relay not suspect after %v of asks every %v", d, hr.every)
			}
			if p.Healthy(t0.Add(d)) {
				t.Error("a suspect relay's link counts as healthy")
			}
		})
	}
}

// The failpoint lifts the limit: the storm lists far more than no relay.
func TestListPolicyNoUrgentLimit(t *testing.T) {
	const d, took = time.Hour, 100 * time.Millisecond
	bound, _ := ListingsWithoutRelay(ListConfig{}, d, took)
	faults := registry.New()
	if err := faults.Enable(FailNoUrgentLimit, "return(true)"); err != nil {
		t.Fatal(err)
	}
	p, err := NewListPolicy(ListConfig{Faults: faults}, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	if n := driveHostile(p, hostileRelays[0].every, hostileRelays[0].fire, d, took); n <= 10*bound {
		t.Errorf("with %s: %d listings, want over %d", FailNoUrgentLimit, n, 10*bound)
	}
}

// Without a relay an instance lists at Soon, then every ListInterval after
// the last listing ended, jitter at its shortest.
func TestListingsWithoutRelay(t *testing.T) {
	n, err := ListingsWithoutRelay(ListConfig{}, time.Hour, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// 0.9s, then every 54.1s: 0.9 + 66*54.1 = 3571.5s ≤ 1h < 3625.6s.
	if n != 67 {
		t.Errorf("got %d listings in an hour, want 67", n)
	}
	if _, err := ListingsWithoutRelay(ListConfig{ListInterval: -1}, time.Hour, 0); err == nil {
		t.Error("a bad config was accepted")
	}
}

// Asks the limit holds back back it off; a quiet HealthyInterval forgives
// the relay.
func TestUrgentGateBackoff(t *testing.T) {
	p := newPolicy(t)
	connectedAndCaughtUp(p)
	list(p, time.Second, 2*time.Second)
	p.RescanAsked(at(3 * time.Second)) // within ListInterval of the listing
	wantNext(t, p, 62*time.Second)
	if p.Suspect(at(3 * time.Second)) {
		t.Fatal("suspect after one early ask")
	}
	list(p, 62*time.Second, 63*time.Second)
	p.RescanAsked(at(64 * time.Second)) // again: the spacing doubled
	wantNext(t, p, 63*time.Second+2*time.Minute)
	if !p.Suspect(at(64 * time.Second)) {
		t.Fatalf("not suspect after %d early asks", SuspectStrikes)
	}
	if p.Held() != 2 {
		t.Errorf("held %d asks, want 2", p.Held())
	}
	list(p, 3*time.Minute+3*time.Second, 3*time.Minute+4*time.Second)
	quiet := 64*time.Second + 15*time.Minute
	if p.Suspect(at(quiet)) {
		t.Error("still suspect after a quiet HealthyInterval")
	}
	// Forgiven, the spacing is back to ListInterval.
	p.RelayCaughtUp(at(quiet))
	list(p, quiet, quiet+time.Second)
	p.RescanAsked(at(quiet + 2*time.Second))
	wantNext(t, p, quiet+time.Second+time.Minute)
}

// A pool's per-relay meter marks a relay that keeps asking, and forgives
// it after a quiet HealthyInterval.
func TestUrgentMeter(t *testing.T) {
	m := NewUrgentMeter(ListConfig{})
	for i := range 10 {
		m.Ask(at(time.Duration(i) * 10 * time.Minute))
	}
	if m.Suspect(at(91 * time.Minute)) {
		t.Error("a relay asking every 10 minutes is suspect")
	}
	for i := range 3000 { // every 200ms for 10 minutes
		m.Ask(at(100*time.Minute + time.Duration(i)*200*time.Millisecond))
	}
	if !m.Suspect(at(110 * time.Minute)) {
		t.Error("a relay asking every 200ms is not suspect")
	}
	if m.Suspect(at(126 * time.Minute)) {
		t.Error("still suspect after a quiet HealthyInterval")
	}
	if m.Asks() != 3010 {
		t.Errorf("got %d asks, want 3010", m.Asks())
	}
}

// An honest relay that restarts every 10 minutes (a lost link, then a new
// epoch 5s later) is never suspect, and each restart costs at most the
// listing it asks for and the one the new epoch asks for.
func TestUrgentLimitSparesRestarts(t *testing.T) {
	p := newPolicy(t)
	m := NewUrgentMeter(ListConfig{})
	restart := func(p *ListPolicy, now time.Time) {
		p.StateChanged(Disconnected, now)
		m.Ask(now)
		p.StateChanged(Connected, now.Add(5*time.Second))
		p.EpochChanged(now.Add(5 * time.Second))
		m.Ask(now.Add(5 * time.Second))
		p.RelayCaughtUp(now.Add(5 * time.Second))
	}
	const d, took = 2 * time.Hour, 100 * time.Millisecond
	n := driveHostile(p, 10*time.Minute, restart, d, took)
	if p.Suspect(t0.Add(d)) || m.Suspect(t0.Add(d)) {
		t.Errorf("a relay restarting every 10 minutes is suspect: policy %v, meter %v", p.Suspect(t0.Add(d)), m.Suspect(t0.Add(d)))
	}
	// 12 restarts, two listings each, and the healthy schedule between.
	if n > 2*12+int(d/(15*time.Minute))+1 {
		t.Errorf("%d listings in %v of restarts every 10 minutes, want at most %d", n, d, 2*12+int(d/(15*time.Minute))+1)
	}
}
