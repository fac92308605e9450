package client

import "time"

// FailNoUrgentLimit lifts the limit on urgent listings: every rescan,
// resync, epoch change or lost link lists within Soon again, however often
// the relay causes them.
const FailNoUrgentLimit = "client/no-urgent-limit"

// SuspectStrikes is in how many listing periods in a row a relay must ask
// for an urgent listing within the spacing before it counts as asking too
// often: one such period happens to an honest relay that restarts (a lost
// link, a listing, then a new epoch), even every few minutes; two in a row
// do not.
const SuspectStrikes = 2

// urgentGate rate-limits the urgent listings that a relay's asks (rescan,
// resync, a new epoch, a lost link) cause, with thresholds taken from a
// ListConfig: an urgent listing waits for a gap after the period's start,
// the gap starting at ListInterval and doubling, up to HealthyInterval,
// for each period in a row in which the relay asked within it (a strike);
// a period without a strike resets the gap and the count. After
// SuspectStrikes strikes in a row the relay is suspect until it has been
// quiet for HealthyInterval.
//
// A period starts when open is called: at the end of every listing
// (ListPolicy), or at an ask let through (UrgentMeter). It is pure, like
// ListPolicy.
type urgentGate struct {
	min, max time.Duration // ListInterval, HealthyInterval
	gap      time.Duration // the current period's spacing
	next     time.Duration // the next period's; 0 for the same
	last     time.Time     // start of the current period; zero if none
	lastAsk  time.Time     // zero if none
	strikes  int           // in a row
	struck   bool          // a strike was counted in the current period
	suspect  bool          // until quiet for max
}

func newUrgentGate(cfg ListConfig) urgentGate {
	return urgentGate{min: cfg.ListInterval, max: cfg.HealthyInterval, gap: cfg.ListInterval}
}

// ask records an ask at now and returns the earliest time an urgent
// listing may start for it: zero if at once.
func (g *urgentGate) ask(now time.Time) time.Time {
	if !g.lastAsk.IsZero() && now.Sub(g.lastAsk) >= g.max {
		g.gap, g.next, g.strikes, g.suspect = g.min, 0, 0, false
	}
	g.lastAsk = now
	t := g.earliest(now)
	if !t.IsZero() && !g.struck {
		// The doubled gap holds from the next period on.
		g.struck = true
		g.strikes++
		g.next = min(2*g.gap, g.max)
		g.suspect = g.suspect || g.strikes >= SuspectStrikes
	}
	return t
}

// earliest is the end of the current period's spacing if now is before
// it, else zero.
func (g *urgentGate) earliest(now time.Time) time.Time {
	if g.last.IsZero() || !now.Before(g.last.Add(g.gap)) {
		return time.Time{}
	}
	return g.last.Add(g.gap)
}

// open starts a period at t.
func (g *urgentGate) open(t time.Time) {
	switch {
	case !g.struck:
		g.gap, g.strikes = g.min, 0
	case g.next != 0:
		g.gap = g.next
	}
	g.last, g.struck, g.next = t, false, 0
}

// suspect reports a relay that asks too often: SuspectStrikes strikes and
// not yet forgiven.
func (g *urgentGate) suspected(now time.Time) bool {
	return g.suspect && now.Sub(g.lastAsk) < g.max
}

// UrgentMeter counts one relay's asks for urgent listings with the
// thresholds a ListPolicy uses (see ListConfig), to tell which relay asks
// too often: a Pool keeps one per relay. It is pure.
type UrgentMeter struct {
	g    urgentGate
	asks uint64
}

// NewUrgentMeter returns a meter with cfg's thresholds (defaults filled).
func NewUrgentMeter(cfg ListConfig) UrgentMeter {
	return UrgentMeter{g: newUrgentGate(cfg.WithDefaults())}
}

// Ask records an ask at now. An ask let through opens a period; one that
// follows a whole spacing without asks ends a period without a strike.
func (m *UrgentMeter) Ask(now time.Time) {
	m.asks++
	if !m.g.lastAsk.IsZero() && now.Sub(m.g.lastAsk) >= m.g.gap {
		m.g.struck = false
	}
	if m.g.ask(now).IsZero() {
		m.g.open(now)
	}
}

// Asks is how many asks were recorded.
func (m *UrgentMeter) Asks() uint64 { return m.asks }

// Suspect reports whether the relay asks too often (see urgentGate).
func (m *UrgentMeter) Suspect(now time.Time) bool { return m.g.suspected(now) }
