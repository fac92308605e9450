package value

import (
	"fmt"
	"strings"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/sim/internal/relaynode"
)

// variantSpec is what a Variant runs: how many relays, whether they share
// a backbone, whether instances use a client.Pool over them, and which
// fault.
type variantSpec struct {
	relays   int  // relays listening; 0 for none
	pool     bool // instances run a client.Pool over the relays (else one client.Client on relayAddr)
	homes    int  // the pool's homes
	backbone bool // the relays share a netsim bus
	fault    faultKind
}

type faultKind int

const (
	noFault faultKind = iota
	crashFault
	partitionFault
)

// spec returns v's setup; pool variants take cfg.PoolRelays relays.
func (v Variant) spec(cfg CompareConfig) variantSpec {
	pool := func(homes int, backbone bool, f faultKind) variantSpec {
		return variantSpec{relays: cfg.PoolRelays, pool: true, homes: homes, backbone: backbone, fault: f}
	}
	switch v {
	case WithoutRelay:
		return variantSpec{}
	case WithRelayCrashing:
		return variantSpec{relays: 1, fault: crashFault}
	case WithRelayPartitioned:
		return variantSpec{relays: 1, fault: partitionFault}
	case PoolPartitioned:
		return pool(2, true, partitionFault)
	case PoolCrashing:
		return pool(2, true, crashFault)
	case PoolHealthyHomes1:
		return pool(1, false, noFault)
	case PoolHealthyHomes2:
		return pool(2, false, noFault)
	default:
		return variantSpec{relays: 1}
	}
}

// simRelay is one relay of a run (relaynode.Relay) and what its
// incarnations that crashed during the workload counted.
type simRelay struct {
	*relaynode.Relay
	goneBytes, goneDelivered uint64
}

// addRelays adds the variant's relay nodes (and bus) and starts them.
func (w *cworld) addRelays() {
	if w.spec.relays == 0 {
		return
	}
	names := []string{relayName}
	if w.spec.pool {
		names = nil
		for i := range w.spec.relays {
			names = append(names, fmt.Sprintf("%s-%d", relayName, i+1))
		}
	}
	var bus *netsim.Bus
	if w.spec.backbone {
		bus = w.net.NewBus("backbone", netsim.BusOptions{})
	}
	for _, name := range names {
		r := &simRelay{Relay: relaynode.New(w.net, bus, name, name+relayPort)}
		w.relays = append(w.relays, r)
		w.startRelay(r)
	}
}

// startRelay starts r with a fresh core (an empty memory, a new epoch).
func (w *cworld) startRelay(r *simRelay) {
	cfg := relay.Config{}
	if r.Port != nil {
		cfg.Backbone = r.Port
		// Pools are measured as deployed with a pool key: on a bus that
		// is not authenticated, a relay with one peer left never says
		// complete (PROTOCOL.md §14, "Trust"), and instances list.
		cfg.BackboneAuthenticated = true
	}
	core, err := relay.New(cfg, w.coreRand())
	if err != nil {
		panic(err)
	}
	r.Start(core, core, core)
}

// crashRelay crashes r; it comes back after CrashDown, its memory lost.
func (w *cworld) crashRelay(r *simRelay) {
	if !r.Up {
		return
	}
	w.faults++
	if !w.workloadOver {
		st := r.Core.Stats()
		r.goneBytes += st.BytesIn + st.BytesOut
		r.goneDelivered += st.Delivered
	}
	r.Crash()
	w.net.At(w.net.Now().Add(w.cfg.CrashDown), func() { w.startRelay(r) })
}

// relayCounts sums, over the relays, the connection bytes in and out and
// the entries fanned out to members so far, and counts the relays that
// fanned out any.
func (w *cworld) relayCounts() (bytes uint64, delivering int) {
	for _, r := range w.relays {
		b, d := r.goneBytes, r.goneDelivered
		if r.Up {
			st := r.Core.Stats()
			b += st.BytesIn + st.BytesOut
			d += st.Delivered
		}
		bytes += b
		if d > 0 {
			delivering++
		}
	}
	return bytes, delivering
}

// poolConfig is the client.PoolConfig of an instance of a pool variant.
func (w *cworld) poolConfig(agent string) client.PoolConfig {
	cfg := client.PoolConfig{Homes: w.spec.homes, Client: client.Config{Agent: agent}}
	for _, r := range w.relays {
		cfg.Relays = append(cfg.Relays, client.PoolRelay{Name: r.Name, Addrs: []string{r.Addr}})
	}
	return cfg
}

// scheduleFaults sets up the variant's faults. Fault k (from 0) of a pool
// hits relay k mod PoolRelays: crash k crashes that relay, partition k
// cuts the k-th group of instances (the groups of with_relay_partitioned)
// from that relay alone, so a cut instance still reaches the others.
func (w *cworld) scheduleFaults() {
	cfg := w.cfg
	switch w.spec.fault {
	case crashFault:
		k := 0
		for t := cfg.CrashEvery; t < cfg.Duration; t += cfg.CrashEvery {
			r := w.relays[k%len(w.relays)]
			k++
			what := "relay crash"
			if w.spec.pool {
				what = r.Name + " crash"
			}
			w.marks = append(w.marks, faultMark{from: t, to: t + cfg.CrashDown, what: what})
			w.net.At(w.start.Add(t), func() { w.crashRelay(r) })
		}
	case partitionFault:
		k := 0
		for t := cfg.PartitionEvery / 2; t < cfg.Duration; t += cfg.PartitionEvery {
			var names []string
			for j := range cfg.PartitionInstances {
				names = append(names, w.instances[(k*cfg.PartitionInstances+j)%len(w.instances)].name)
			}
			r := w.relays[k%len(w.relays)]
			k++
			what := "partition " + strings.Join(names[:1], "") + "+"
			if w.spec.pool {
				what += " from " + r.Name
			}
			w.marks = append(w.marks, faultMark{from: t, to: t + cfg.PartitionFor, what: what})
			w.net.At(w.start.Add(t), func() {
				w.faults++
				w.net.Partition(names, []string{r.Name})
				w.net.At(w.net.Now().Add(cfg.PartitionFor), w.net.Heal)
			})
		}
	}
}
