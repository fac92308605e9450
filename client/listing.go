package client

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/wire"
)

// ListConfig holds the settings of a ListPolicy. Zero fields take the
// defaults of DefaultListConfig through WithDefaults.
type ListConfig struct {
	// ListInterval is how often a capsule hub is listed while the relay
	// link is not healthy: no relay, unreachable, connecting, not yet
	// caught up, or lagging (default 60s).
	ListInterval time.Duration
	// HealthyInterval is how often it is listed while the link is healthy:
	// connected and caught up within StaleAfter (default 15m). Listing
	// stays necessary then, rarely: a relay that restarted forgets the
	// capsules of instances that are gone.
	HealthyInterval time.Duration
	// Soon is the delay of the listing that follows an event after which
	// the relay cannot be trusted to be complete: its epoch changed (it
	// restarted and forgot), it asked for a rescan or a resync, or the link
	// was lost. A starting instance also gives the relay Soon to catch it
	// up before it lists (default 1s).
	Soon time.Duration
	// StaleAfter is how long a healthy link may go without a finished
	// catch-up before it counts as lagging (default 2m; the client's
	// anti-entropy catches up every 30s by default).
	StaleAfter time.Duration

	// Faults holds failpoints (FailNoUrgentLimit); nil in production.
	Faults fault.Set
}

// DefaultListConfig returns the documented defaults.
func DefaultListConfig() ListConfig {
	return ListConfig{
		ListInterval:    60 * time.Second,
		HealthyInterval: 15 * time.Minute,
		Soon:            time.Second,
		StaleAfter:      2 * time.Minute,
	}
}

// Scaled returns c with every interval divided by k, for simulations and
// tests that run the policy on a time base k times faster.
func (c ListConfig) Scaled(k int) ListConfig {
	d := time.Duration(k)
	c.ListInterval, c.HealthyInterval, c.Soon, c.StaleAfter = c.ListInterval/d, c.HealthyInterval/d, c.Soon/d, c.StaleAfter/d
	return c
}

// WithDefaults fills zero fields with defaults.
func (c ListConfig) WithDefaults() ListConfig {
	d := DefaultListConfig()
	for _, p := range []struct{ v, def *time.Duration }{
		{&c.ListInterval, &d.ListInterval}, {&c.HealthyInterval, &d.HealthyInterval},
		{&c.Soon, &d.Soon}, {&c.StaleAfter, &d.StaleAfter},
	} {
		if *p.v == 0 {
			*p.v = *p.def
		}
	}
	return c
}

// Validate reports settings that cannot work.
func (c ListConfig) Validate() error {
	switch {
	case c.ListInterval <= 0 || c.HealthyInterval <= 0 || c.Soon <= 0 || c.StaleAfter <= 0:
		return errors.New("client: listing intervals must be positive")
	case c.Soon > c.ListInterval:
		return errors.New("client: listing Soon must not exceed ListInterval")
	}
	return nil
}

// ListPolicy decides when an instance lists one capsule hub in cloud
// storage. Listing is the ground truth and the only way to learn capsules
// without a relay; the relay makes it rare. Use one policy per hub.
//
// The policy is pure: it holds the next listing time and changes it only
// when fed an event with the time it happened. The driver lists when Due
// reports true, calls ListingStarted when the listing's first query goes
// out and ListingDone when its last page is in. Events map to schedules:
//
//   - start (NewListPolicy): first listing after Soon, unless the relay
//     catches the instance up before then;
//   - relay caught up (and the link thus healthy): next listing
//     HealthyInterval after the last one (or after now, if none yet), unless
//     a Soon listing is pending;
//   - relay lost (a link that was up went down), epoch changed, rescan or
//     resync asked: a listing within Soon, which a later catch-up does not
//     cancel (the relay may lack what it forgot or dropped);
//   - no catch-up for StaleAfter: the link is lagging, a listing is due;
//   - listing done: next after HealthyInterval if healthy, else after
//     ListInterval; Soon again if an urgent event came while it ran.
//
// Urgent listings (those Soon asks for) are rate-limited, so that no relay
// can make an instance list more often than it would without one: an
// urgent listing starts no sooner than ListInterval after the last listing
// ended, that spacing doubling (up to HealthyInterval) for each listing
// period in a row in which the relay asked within it. A relay that did so
// SuspectStrikes periods in a row is suspect (Suspect) until it is quiet
// for HealthyInterval: the link then counts as not healthy, and the hub is
// listed every ListInterval, as without a relay.
// Nothing else lists sooner than ListInterval after a listing either (a
// lagging link waits for it), so ListingsWithoutRelay bounds what any
// relay can make an instance list.
//
// Every delay is spread by ±10% from the handed-in source (none if nil), so
// that instances do not list in step. It is not safe for concurrent use.
type ListPolicy struct {
	cfg ListConfig
	rng *rand.Rand

	next        time.Time
	relaxed     bool      // next was set by the healthy schedule
	connected   bool      // the relay link is up
	caughtUp    time.Time // last finished catch-up on this link; zero if none
	lastListed  time.Time // end of the last listing; zero if none
	started     time.Time // start of the listing in progress; zero if none
	urgentSince time.Time // when a Soon listing was asked; zero if none pending
	gate        urgentGate
	held        uint64 // urgent asks the gate postponed
	shortest    bool   // every jitter at its shortest (ListingsWithoutRelay)
}

// NewListPolicy returns a policy for an instance starting at now.
func NewListPolicy(cfg ListConfig, rng *rand.Rand, now time.Time) (*ListPolicy, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &ListPolicy{cfg: cfg, rng: rng, gate: newUrgentGate(cfg)}
	p.next = now.Add(p.jitter(cfg.Soon))
	return p, nil
}

// Config returns the policy's settings, defaults filled in.
func (p *ListPolicy) Config() ListConfig { return p.cfg }

// Next reports when the next listing is due.
func (p *ListPolicy) Next() time.Time {
	if p.relaxed && p.connected && !p.caughtUp.IsZero() {
		stale := p.caughtUp.Add(p.cfg.StaleAfter)
		if !p.lastListed.IsZero() {
			stale = maxTime(stale, p.lastListed.Add(p.cfg.ListInterval))
		}
		if stale.Before(p.next) {
			return stale
		}
	}
	return p.next
}

// Due reports whether a listing should start at now. It stays false while
// one is in progress.
func (p *ListPolicy) Due(now time.Time) bool {
	return p.started.IsZero() && !now.Before(p.Next())
}

// Healthy reports whether the relay link is up and caught up within
// StaleAfter: the state in which listing is rare.
func (p *ListPolicy) Healthy(now time.Time) bool {
	return p.connected && !p.caughtUp.IsZero() && now.Sub(p.caughtUp) < p.cfg.StaleAfter && !p.Suspect(now)
}

// Suspect reports a relay that asks for urgent listings too often (see
// ListPolicy): while it is, the hub is listed as without a relay.
func (p *ListPolicy) Suspect(now time.Time) bool { return p.gate.suspected(now) }

// Held reports how many urgent asks the rate limit postponed.
func (p *ListPolicy) Held() uint64 { return p.held }

// RelayConnected reports the relay link up (handshake done). The link is
// not healthy until the first catch-up.
func (p *ListPolicy) RelayConnected(now time.Time) {
	if !p.connected {
		p.connected = true
		p.caughtUp = time.Time{}
	}
}

// RelayCaughtUp reports a finished sync with the relay for this hub.
func (p *ListPolicy) RelayCaughtUp(now time.Time) {
	if !p.connected {
		return
	}
	was := p.Healthy(now)
	p.caughtUp = now
	if was || !p.urgentSince.IsZero() || p.Suspect(now) {
		return
	}
	base := p.lastListed
	if base.IsZero() {
		base = now
	}
	p.next, p.relaxed = base.Add(p.jitter(p.cfg.HealthyInterval)), true
}

// RelayLost reports the relay link down. Only the loss of a link that was
// up asks for a listing: dials that keep failing leave the ListInterval
// schedule alone.
func (p *ListPolicy) RelayLost(now time.Time) {
	if !p.connected {
		return
	}
	p.connected = false
	p.caughtUp = time.Time{}
	p.soon(now)
}

// EpochChanged reports a relay that restarted and forgot everything.
func (p *ListPolicy) EpochChanged(now time.Time) { p.soon(now) }

// RescanAsked reports a relay that asked for a rescan (wire.CodeRescan):
// its cache is incomplete.
func (p *ListPolicy) RescanAsked(now time.Time) { p.soon(now) }

// ResyncAsked reports a relay that dropped entries pending for this
// instance (wire.CodeResync).
func (p *ListPolicy) ResyncAsked(now time.Time) { p.soon(now) }

// StateChanged feeds a client link state change (Observer.StateChanged).
func (p *ListPolicy) StateChanged(s State, now time.Time) {
	switch s {
	case Connected:
		p.RelayConnected(now)
	case Disconnected, Stopped:
		p.RelayLost(now)
	}
}

// Problem feeds an error the relay reported (Observer.Problem); codes other
// than CodeRescan and CodeResync leave the schedule alone.
func (p *ListPolicy) Problem(code wire.Code, now time.Time) {
	switch code {
	case wire.CodeRescan:
		p.RescanAsked(now)
	case wire.CodeResync:
		p.ResyncAsked(now)
	}
}

// ListingStarted reports that a listing of the hub began.
func (p *ListPolicy) ListingStarted(now time.Time) { p.started = now }

// ListingDone reports that the listing finished (its last page is in) and
// schedules the next. A listing is also done when it failed: the next one
// follows on the usual schedule.
func (p *ListPolicy) ListingDone(now time.Time) {
	began := p.started
	if began.IsZero() {
		began = now
	}
	p.started = time.Time{}
	p.lastListed = now
	p.gate.open(now)
	if !p.urgentSince.IsZero() && !p.urgentSince.Before(began) {
		// Asked while the listing ran: it may not have seen what was asked.
		p.next, p.relaxed = now.Add(p.jitter(p.cfg.Soon)), false
		if t := p.earliest(now); t.After(p.next) {
			p.schedule(now)
			if t.Before(p.next) {
				p.next, p.relaxed = t, false
			}
		}
		return
	}
	p.urgentSince = time.Time{}
	p.schedule(now)
}

// schedule sets the next listing after one that ended at now.
func (p *ListPolicy) schedule(now time.Time) {
	if p.Healthy(now) {
		p.next, p.relaxed = now.Add(p.jitter(p.cfg.HealthyInterval)), true
	} else {
		p.next, p.relaxed = now.Add(p.jitter(p.cfg.ListInterval)), false
	}
}

// soon asks for a listing within Soon, or as soon as the rate limit on
// urgent listings lets it.
func (p *ListPolicy) soon(now time.Time) {
	p.urgentSince = now
	t := now.Add(p.jitter(p.cfg.Soon))
	if g := p.gated(now); g.After(t) {
		t = g
		p.held++
	}
	if t.Before(p.next) {
		p.next, p.relaxed = t, false
	}
}

// gated records an urgent ask at now with the rate limit and returns the
// earliest time it lets an urgent listing start (zero: at once).
func (p *ListPolicy) gated(now time.Time) time.Time {
	if _, ok := fault.Hit(p.cfg.Faults, FailNoUrgentLimit); ok {
		return time.Time{}
	}
	return p.gate.ask(now)
}

func maxTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

// earliest is when the rate limit lets an urgent listing start, asked
// for or not: zero if at once.
func (p *ListPolicy) earliest(now time.Time) time.Time {
	if _, ok := fault.Hit(p.cfg.Faults, FailNoUrgentLimit); ok {
		return time.Time{}
	}
	return p.gate.earliest(now)
}

// ListingsWithoutRelay counts the listings a ListPolicy with cfg starts
// within d of an instance's start when there is no relay at all, each
// listing taking took and every jittered delay at its shortest: the most
// listings an instance makes without a relay, which no relay can push it
// past.
func ListingsWithoutRelay(cfg ListConfig, d, took time.Duration) (int, error) {
	var t0 time.Time
	p, err := NewListPolicy(cfg, nil, t0)
	if err != nil {
		return 0, err
	}
	p.shortest = true
	p.next = t0.Add(p.jitter(p.cfg.Soon))
	n := 0
	for t := p.Next(); !t.After(t0.Add(d)); t = p.Next() {
		n++
		p.ListingStarted(t)
		p.ListingDone(t.Add(took))
	}
	return n, nil
}

// jitter spreads d by ±10%.
func (p *ListPolicy) jitter(d time.Duration) time.Duration {
	spread := int64(d) / 5
	if p.shortest {
		return d - time.Duration(spread/2)
	}
	if p.rng == nil || spread <= 0 {
		return d
	}
	return d - time.Duration(spread/2) + time.Duration(p.rng.Int64N(spread))
}
