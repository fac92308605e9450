package sim

import (
	"strings"
	"time"
)

// Fault kinds of pool scenarios (faultRegistry; Targets name relays
// "relay-1".. and clients).
const (
	FaultPoolCrash FaultKind = "relay-crash" // Targets[0] dies, restarts after Duration with memory lost
	FaultPoolCut   FaultKind = "relay-cut"   // Targets[0] (a client) cut from the relays after it until heal
	FaultBusCut    FaultKind = "bus-cut"     // Targets[0] cut from the bus for Duration
	FaultBusCrash  FaultKind = "bus-crash"   // the bus server down for Duration
	FaultPoolDrain FaultKind = "relay-drain" // Targets[0] drains; crashes and restarts after Duration
)

// genPoolCut cuts a client from some relays of the pool but not all: its
// channels must move to the others.
func genPoolCut(g *genCtx, f *Fault) bool {
	f.Targets = []string{g.pick()}
	n := 1 + g.rng.IntN(len(g.relays)-1)
	for _, i := range g.rng.Perm(len(g.relays))[:n] {
		f.Targets = append(f.Targets, g.relays[i])
	}
	return true
}

// poolTargets splits a fault's targets into clients and relays.
func poolTargets(f Fault) (clients, relays []string) {
	for _, t := range f.Targets {
		if strings.HasPrefix(t, "relay-") {
			relays = append(relays, t)
		} else {
			clients = append(clients, t)
		}
	}
	return clients, relays
}

func applyPoolCrash(w *poolWorld, f Fault) {
	r := w.relay(f.Targets[0])
	if !r.Up {
		return
	}
	w.crashRelay(r)
	w.later(f.Duration, func() {
		if !r.Up {
			w.startRelay(r)
		}
	})
}

// later runs fn after d unless the chaos phase ended first (heal does
// what fn would).
func (w *poolWorld) later(d time.Duration, fn func()) {
	if d <= 0 {
		return
	}
	w.net.At(w.net.Now().Add(d), func() {
		if !w.healed {
			fn()
		}
	})
}

func applyPoolCut(w *poolWorld, f Fault) {
	clients, relays := poolTargets(f)
	w.net.Partition(clients, relays)
	var pairs []string
	for _, c := range clients {
		for _, r := range relays {
			pairs = append(pairs, pairName(c, r))
		}
	}
	w.touch.untilHeal(pairs, w.net.Now())
}

func applyBusCut(w *poolWorld, f Fault) {
	name := f.Targets[0]
	pair := pairName(busNode, name)
	if _, down := w.touch.down[pair]; down {
		return
	}
	w.touch.untilRestart(pair, w.net.Now())
	w.bus.Partition(name)
	w.later(f.Duration, func() {
		w.bus.Heal(name)
		w.touch.restarted(pair, w.net.Now())
	})
}

func applyBusCrash(w *poolWorld, f Fault) {
	if !w.bus.Up() {
		return
	}
	w.touch.untilRestart(busNode, w.net.Now())
	w.bus.Crash()
	w.later(f.Duration, func() {
		w.bus.Restart()
		w.touch.restarted(busNode, w.net.Now())
	})
}

// applyPoolDrain drains a relay: its members are told to go and come back
// after a while, so their channels move within the pool; the relay then
// restarts.
func applyPoolDrain(w *poolWorld, f Fault) {
	r := w.relay(f.Targets[0])
	if !r.Up || r.Core.Draining() {
		return
	}
	w.touch.untilRestart(r.Name, w.net.Now())
	r.Core.Drain(w.net.Now(), 500*time.Millisecond, time.Second, nil)
	r.Node.SetHandler(w.relayTap(r)) // re-arm its timer
	gen := r.Gen
	w.later(f.Duration, func() {
		if r.Up && r.Gen == gen { // not restarted meanwhile by a crash
			r.Node.Crash()
			r.Up = false
			w.startRelay(r)
		}
	})
}
