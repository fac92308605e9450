package sim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/relay"
)

// Scenario is one simulation: a cluster, a workload and a fault schedule.
type Scenario struct {
	Seed  uint64
	Class Class
	// Timing is the cores' timing; Caps the relay's limits and network.
	Timing Timing
	Caps   Caps

	Channels          int // channels (one per capsule hub)
	ClientsPerChannel int
	// HubSpanning clients join every channel, as an instance with several
	// capsule hubs does, over one connection.
	HubSpanning int
	// Announces is how many capsules each client announces during chaos.
	Announces int
	// Burst makes every announce a burst of this many capsules (0 or 1:
	// one at a time), so that members fall behind and caches evict.
	Burst int
	// OnDisk is how many entries per channel exist before the run, held on
	// the disks of the channel's clients (the first holds all of them).
	// Clients past the second of each channel then start late, with
	// nothing, and catch up by multi-frame syncs.
	OnDisk int
	// Chaos is how long faults fire; the workload runs during it.
	Chaos time.Duration
	// Faults fire during chaos, in time order.
	Faults []Fault
	// Forger adds a client that holds a channel's join key but not its seal
	// key and announces forged entries.
	Forger bool
	// Hostile lists hostile clients that run beside the honest ones.
	Hostile []HostileKind
	// Failpoints lists failpoints turned on for the whole run (self-tests).
	Failpoints []string
	// Pool, if set, runs the scenario on a pool of relays (ClassPool).
	Pool *PoolSpec
	// HostileRelay, if set, runs it on a malicious relay
	// (ClassHostileRelay).
	HostileRelay *HostileRelaySpec
	// Rotation, if set, has channels go idle and be forgotten while others
	// are created (ClassLongRunning).
	Rotation *Rotation
}

// FaultKind names a fault; it is also the fault's script verb.
type FaultKind string

// Fault kinds. Targets name nodes: "relay" or a client such as "c0-1".
const (
	FaultPartition   FaultKind = "partition"    // Targets cut off from the relay until heal
	FaultOneWay      FaultKind = "oneway"       // Targets[0] → relay traffic held
	FaultClog        FaultKind = "clog"         // Targets[0] ↔ relay traffic held
	FaultSwizzle     FaultKind = "swizzle"      // swizzle-clog among Targets and the relay
	FaultHeal        FaultKind = "heal"         // every partition and clog lifted
	FaultCrashRelay  FaultKind = "crash-relay"  // relay dies, restarts after Duration with memory lost
	FaultCrashClient FaultKind = "crash-client" // Targets[0] dies, restarts after Duration
	FaultReset       FaultKind = "reset"        // Targets[0]'s relay connection reset
	FaultRefuse      FaultKind = "refuse"       // relay refuses connections for Duration
	FaultReplay      FaultKind = "replay"       // an old connection's bytes replayed on a new one
	FaultBuggify     FaultKind = "buggify"      // failpoint Targets[0] on for Duration
	FaultDrift       FaultKind = "drift"        // Targets[0]'s clock drifts by Duration
	FaultDrainRelay  FaultKind = "drain"        // relay drains and restarts after Duration
)

// Fault is one scheduled fault.
type Fault struct {
	At       time.Duration // since the start
	Kind     FaultKind
	Targets  []string
	Duration time.Duration
}

func (f Fault) String() string {
	return fmt.Sprintf("%v %s %v %v", f.At, f.Kind, f.Targets, f.Duration)
}

// buggifyPoints are failpoints the protocol must recover from (anti-entropy
// repairs what they lose); buggify turns one on for a while.
var buggifyPoints = []string{
	relay.FailDropAnnounce,
	relay.FailSkipFanout,
	relay.FailSlowWriter,
	relay.FailDecodeError,
	client.FailDropDeliver,
}

// buggifyKeepData are those that lose nothing, for runs without
// anti-entropy.
var buggifyKeepData = []string{relay.FailSlowWriter, relay.FailDecodeError}

// ClientName names client i of channel ch.
func ClientName(ch, i int) string { return fmt.Sprintf("c%d-%d", ch, i) }

// SpanningName names hub-spanning client i.
func SpanningName(i int) string { return fmt.Sprintf("m%d", i) }

// Generate makes a random scenario from seed: the same seed always gives
// the same scenario. The seed's class (classOf) sets timing, caps and
// workload; the faults come from the fault registry (genFaults).
func Generate(seed uint64) Scenario {
	if classOf(seed) == ClassPool {
		return generatePool(seed)
	}
	if classOf(seed) == ClassHostileRelay {
		return generateHostileRelay(seed)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	sc := Scenario{
		Seed:              seed,
		Class:             classOf(seed),
		Timing:            shortTiming,
		Channels:          1 + rng.IntN(3),
		ClientsPerChannel: 2 + rng.IntN(4),
		Announces:         3 + rng.IntN(8),
		Chaos:             time.Duration(30+rng.IntN(60)) * time.Second,
		Forger:            rng.IntN(3) == 0,
	}
	if sc.Channels > 1 {
		sc.HubSpanning = rng.IntN(3)
	}
	// Class settings draw from a stream of their own.
	crng := rand.New(rand.NewPCG(seed, 0xc1a55e))
	switch sc.Class {
	case ClassAEOff:
		sc.Timing.AntiEntropy = 0
	case ClassAEProd:
		sc.Timing.AntiEntropy = prodTiming.AntiEntropy
	case ClassSmallCaps:
		sc.Caps = Caps{
			CacheEntries:   8 + crng.IntN(32),
			PendingEntries: 4 + crng.IntN(12),
			MaxFrameSize:   1200 + crng.IntN(900), // entries of up to 1100 bytes must fit
			HighWater:      1024 + crng.IntN(3072),
			Bandwidth:      (256 + crng.IntN(768)) << 10,
		}
		sc.Burst = 10 + crng.IntN(30)
	case ClassLargeRoster:
		sc.Channels, sc.HubSpanning = 1+crng.IntN(2), 0
		sc.OnDisk = 1000 + crng.IntN(4000)
	case ClassProdTimings:
		sc.Timing = prodTiming
		sc.Chaos = time.Duration(60+crng.IntN(120)) * time.Second
	case ClassLongRunning:
		sc.Channels, sc.HubSpanning, sc.Forger = 3+crng.IntN(2), 0, false
		sc.Chaos = time.Duration(70+crng.IntN(40)) * time.Second
		sc.Rotation = genRotation(crng)
	case ClassHostile:
		n := 2 + crng.IntN(4)
		for range n {
			sc.Hostile = append(sc.Hostile, hostileKinds[crng.IntN(len(hostileKinds))])
		}
	}
	var clients []string
	for ch := 0; ch < sc.Channels; ch++ {
		for i := 0; i < sc.ClientsPerChannel; i++ {
			clients = append(clients, ClientName(ch, i))
		}
	}
	for i := 0; i < sc.HubSpanning; i++ {
		clients = append(clients, SpanningName(i))
	}
	if sc.Rotation != nil {
		sc.Faults = sc.Rotation.faults(&sc)
	} else {
		sc.Faults = genFaults(&sc, clients)
	}
	return sc
}
