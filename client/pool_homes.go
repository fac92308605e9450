package client

import (
	"slices"
	"time"

	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// settle brings every channel's homes and the running relays in line with
// what the pool knows, after every event that changed it (a relay's state,
// a join) or reached the time of a hysteresis or drain end. Relay Clients report to the pool
// during their events; acting on a report (stopping the Client that made
// it, say) waits for here, outside them.
func (p *Pool) settle(now time.Time) {
	if !p.started || !p.dirty && (p.wake.IsZero() || now.Before(p.wake)) {
		return
	}
	p.dirty = false
	chans := p.chans
	if len(chans) == 0 {
		chans = []*poolChannel{&p.idle}
	} else {
		p.idle.homes = nil
	}
	for _, pc := range chans {
		p.rehome(pc, now)
	}
	wanted := make([]bool, len(p.relays))
	for _, pc := range chans {
		p.markWanted(pc, wanted)
	}
	p.wake = time.Time{}
	for i, r := range p.relays {
		switch {
		case wanted[i] && r.cl == nil && !now.Before(r.drainUntil):
			p.startRelay(r, now)
		case wanted[i] && r.cl == nil:
			p.wakeAt(r.drainUntil)
		case !wanted[i] && r.cl != nil:
			p.stopRelay(r, now)
		}
		if r.state == Connected && now.Before(r.since.Add(p.cfg.Hysteresis)) {
			p.wakeAt(r.since.Add(p.cfg.Hysteresis))
		}
	}
	p.setState(p.aggregate(chans), now)
}

// joinStagger bounds how long a channel's next new home waits for the
// Joined of the one joined before it (rehome).
const joinStagger = time.Second

// rehome chooses pc's homes, joins the new ones, then leaves the old.
//
// New homes are joined one at a time: the next waits until the relay
// joined before it sent its Joined, or joinStagger passed. A relay on a
// backbone sends Joined once it reconciled a new channel with its peers;
// two relays creating the channel at once would each reconcile with the
// other while both are unsure, and both end up claiming an incomplete
// cache (every member told to list storage). The waiting relays' Clients
// run meanwhile, so their connections are ready.
func (p *Pool) rehome(pc *poolChannel, now time.Time) {
	target := p.choose(pc, now)
	if slices.Equal(target, pc.homes) && len(pc.deferred) == 0 {
		return
	}
	homes := make([]int, 0, len(target))
	pc.deferred = pc.deferred[:0]
	for _, i := range target {
		r := p.relays[i]
		switch {
		case slices.Contains(pc.homes, i) || pc.keys == nil:
			homes = append(homes, i)
			continue
		case r.cl == nil:
			p.startRelay(r, now)
		}
		if w := pc.waitOn; w != nil && now.Before(pc.waitUntil) && w.cl != nil &&
			slices.Contains(homes, slices.Index(p.relays, w)) && !p.joinedOn(pc, w) {
			pc.deferred = append(pc.deferred, i)
			p.wakeAt(pc.waitUntil)
			continue
		}
		if err := r.cl.Join(pc.keys, pc.view.Entries(), now); err != nil {
			r.log.Warn("pool: join failed", "err", err)
		}
		homes = append(homes, i)
		pc.waitOn, pc.waitUntil = r, now.Add(joinStagger)
	}
	for _, i := range pc.homes {
		if slices.Contains(target, i) || pc.keys == nil {
			continue
		}
		if r := p.relays[i]; r.cl != nil {
			if err := r.cl.Leave(pc.id, now); err != nil {
				r.log.Warn("pool: leave failed", "err", err)
			}
		}
	}
	pc.homes = homes
}

// joinedOn reports whether r's Client has pc joined (its Joined arrived
// on the current connection).
func (p *Pool) joinedOn(pc *poolChannel, r *poolRelay) bool {
	if r.cl == nil {
		return false
	}
	ch := r.cl.byID[pc.id]
	return ch != nil && ch.joined
}

// choose is pc's homes: its current homes that are still reachable, and,
// in pc's order, reachable relays for the missing places, while a relay
// preferred over a home and connected for Hysteresis takes the place of
// the least preferred home.
func (p *Pool) choose(pc *poolChannel, now time.Time) []int {
	if _, ok := fault.Hit(p.cfg.Client.Faults, FailPoolNoFailover); ok && len(pc.homes) == p.homes(pc) {
		return pc.homes
	}
	keep := 0
	for _, i := range pc.homes {
		if p.reachable(p.relays[i], now) {
			keep++
		}
	}
	need := p.homes(pc) - keep
	target := make([]int, 0, p.homes(pc))
	// A drained home's alternates in the pool come first: the operator
	// named them.
	for _, h := range pc.homes {
		if d := p.relays[h]; now.Before(d.drainUntil) {
			for _, i := range d.alternates {
				if need > 0 && p.reachable(p.relays[i], now) && !slices.Contains(pc.homes, i) && !slices.Contains(target, i) {
					target = append(target, i)
					need--
				}
			}
		}
	}
	for _, i := range pc.order {
		if len(target) == p.homes(pc) {
			break
		}
		r := p.relays[i]
		switch {
		case slices.Contains(target, i):
		case !p.reachable(r, now):
		case slices.Contains(pc.homes, i), p.settled(r, now):
			target = append(target, i)
		case need > 0:
			target = append(target, i)
			need--
		}
	}
	return target
}

// homes is how many homes pc keeps.
func (p *Pool) homes(pc *poolChannel) int {
	if pc.keys == nil {
		return 1
	}
	return p.cfg.Homes
}

// reachable reports a relay that may be a home: not failed since it was
// last connected, and not draining.
func (p *Pool) reachable(r *poolRelay, now time.Time) bool {
	return !r.failed && !now.Before(r.drainUntil)
}

// settled reports a relay connected for at least the hysteresis.
func (p *Pool) settled(r *poolRelay, now time.Time) bool {
	return r.state == Connected && !now.Before(r.since.Add(p.cfg.Hysteresis))
}

// markWanted marks the relays pc keeps running: its homes and those it
// prefers over one, or all of them while it lacks homes.
func (p *Pool) markWanted(pc *poolChannel, wanted []bool) {
	last := len(pc.order) - 1
	if len(pc.homes)+len(pc.deferred) == p.homes(pc) {
		last = 0
		for _, i := range slices.Concat(pc.homes, pc.deferred) {
			last = max(last, slices.Index(pc.order, i))
		}
	}
	for _, i := range pc.order[:last+1] {
		wanted[i] = true
	}
}

func (p *Pool) wakeAt(t time.Time) {
	if p.wake.IsZero() || t.Before(p.wake) {
		p.wake = t
	}
}

// aggregate is the pool's state: Connected while a home is.
func (p *Pool) aggregate(chans []*poolChannel) State {
	s := Disconnected
	for _, pc := range chans {
		for _, i := range pc.homes {
			if p.relays[i].state == Connected {
				return Connected
			}
		}
	}
	for _, r := range p.relays {
		if r.state == Connecting {
			s = Connecting
		}
	}
	return s
}

func (p *Pool) setState(s State, now time.Time) {
	if p.state != s {
		p.state = s
		p.obs.StateChanged(s, now)
	}
}

// startRelay runs a fresh Client for r.
func (p *Pool) startRelay(r *poolRelay, now time.Time) {
	cfg := p.cfg.Client
	cfg.Addrs = r.addrs
	cfg.Logger = r.log
	cfg.NoAlternates = true
	cl, err := New(cfg, r, p.rng, r)
	if err != nil {
		// Validate checked this configuration in NewPool.
		panic("client: pool relay config: " + err.Error())
	}
	r.cl = cl
	r.state = Disconnected
	cl.Start(now)
}

// stopRelay stops r's Client and forgets it; its channels were left.
func (p *Pool) stopRelay(r *poolRelay, now time.Time) {
	if r.cl == nil {
		return
	}
	cl := r.cl
	p.base = p.base.plus(cl.Stats())
	r.cl, r.conn, r.acks = nil, nil, nil
	cl.Stop(now)
	r.state = Stopped
}

// Dial dials for r's Client and remembers the connection, so the pool can
// route its events.
func (r *poolRelay) Dial(addr string) transport.Conn {
	r.conn = r.dialer.Dial(addr)
	return r.conn
}

// The Observer of r's Client.

func (r *poolRelay) Learned(id roster.ChannelID, refs [][]byte, now time.Time) {
	p := r.p
	pc := p.byID[id]
	if pc == nil || r.cl == nil {
		return
	}
	var fresh [][]byte
	var entries []roster.Entry
	for _, ref := range refs {
		e, err := pc.keys.Seal(ref)
		if err != nil || !pc.view.Add(e) {
			continue
		}
		fresh = append(fresh, ref)
		entries = append(entries, e)
	}
	if len(fresh) == 0 {
		return
	}
	for _, i := range pc.homes {
		if o := p.relays[i]; o != r && o.cl != nil {
			if _, err := o.cl.Merge(id, entries); err != nil {
				o.log.Warn("pool: merge failed", "err", err)
			}
		}
	}
	p.obs.Learned(id, fresh, now)
}

func (r *poolRelay) StateChanged(s State, now time.Time) {
	if r.cl == nil {
		return // stopped by the pool
	}
	was := r.state
	r.state = s
	r.p.dirty = true
	switch s {
	case Connected:
		r.failed, r.since, r.alternates = false, now, nil
	case Disconnected:
		if was == Connected {
			r.asks.Ask(now) // a link that was up is lost
		}
		r.failed, r.acks = true, nil
		if d := r.cl.DrainUntil(); d.After(now) {
			r.drainUntil = d
			r.alternates = r.p.relaysAt(r.cl.DrainAlternates(), r)
		}
	}
}

func (r *poolRelay) CaughtUp(id roster.ChannelID, now time.Time) {
	if r.cl != nil {
		r.p.obs.CaughtUp(id, now)
	}
}

func (r *poolRelay) EpochChanged(epoch uint64, now time.Time) {
	if r.cl == nil {
		return
	}
	r.asks.Ask(now)
	if !r.p.epochMatters(r) {
		r.log.Info("pool: relay restarted; other homes held its channels", "epoch", epoch)
		return
	}
	r.p.obs.EpochChanged(epoch, now)
}

// epochMatters reports whether r's new epoch may have cost the pool
// entries: always with one home per channel (a channel homed on r had
// none while r was lost), else when a channel has no connected home but r.
func (p *Pool) epochMatters(r *poolRelay) bool {
	if p.cfg.Homes == 1 {
		return true
	}
	i := slices.Index(p.relays, r)
	for _, pc := range p.chans {
		if !slices.ContainsFunc(pc.homes, func(j int) bool { return j != i && p.relays[j].state == Connected }) {
			return true
		}
	}
	return false
}

func (r *poolRelay) Acked(id roster.ChannelID, seq uint32, now time.Time) {
	var done []uint32
	r.acks = slices.DeleteFunc(r.acks, func(a poolAck) bool {
		if a.relay == seq {
			done = append(done, a.pool)
			return true
		}
		return false
	})
	for _, s := range done {
		for _, o := range r.p.relays {
			o.acks = slices.DeleteFunc(o.acks, func(a poolAck) bool { return a.pool == s })
		}
		r.p.obs.Acked(id, s, now)
	}
}

func (r *poolRelay) Problem(id roster.ChannelID, code wire.Code, text string, now time.Time) {
	if r.cl != nil {
		if code == wire.CodeRescan || code == wire.CodeResync {
			r.asks.Ask(now)
		}
		r.p.obs.Problem(id, code, r.name+": "+text, now)
	}
}

// relaysAt lists, in order and once each, the relays of the pool other
// than except that have one of addrs among their addresses.
func (p *Pool) relaysAt(addrs []string, except *poolRelay) []int {
	var out []int
	for _, a := range addrs {
		for i, r := range p.relays {
			if r != except && slices.Contains(r.addrs, a) && !slices.Contains(out, i) {
				out = append(out, i)
			}
		}
	}
	return out
}
