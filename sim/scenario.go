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
	Seed              uint64
	Channels          int // channels (one per capsule hub)
	ClientsPerChannel int
	// HubSpanning clients join every channel, as an instance with several
	// capsule hubs does, over one connection.
	HubSpanning int
	// Announces is how many capsules each client announces during chaos.
	Announces int
	// Chaos is how long faults fire; the workload runs during it.
	Chaos time.Duration
	// Faults fire during chaos, in time order.
	Faults []Fault
	// Forger adds a client that holds a channel's join key but not its seal
	// key and announces forged entries.
	Forger bool
	// Failpoints lists failpoints turned on for the whole run (self-tests).
	Failpoints []string
}

// FaultKind names a fault.
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

// recoverable failpoints: the protocol must converge despite them.
var buggifyPoints = []string{
	relay.FailDropAnnounce,
	relay.FailSkipFanout,
	relay.FailSlowWriter,
	relay.FailDecodeError,
	client.FailDropDeliver,
}

// ClientName names client i of channel ch.
func ClientName(ch, i int) string { return fmt.Sprintf("c%d-%d", ch, i) }

// SpanningName names hub-spanning client i.
func SpanningName(i int) string { return fmt.Sprintf("m%d", i) }

// Generate makes a random scenario from seed: the same seed always gives
// the same scenario.
func Generate(seed uint64) Scenario {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	sc := Scenario{
		Seed:              seed,
		Channels:          1 + rng.IntN(3),
		ClientsPerChannel: 2 + rng.IntN(4),
		Announces:         3 + rng.IntN(8),
		Chaos:             time.Duration(30+rng.IntN(60)) * time.Second,
		Forger:            rng.IntN(3) == 0,
	}
	if sc.Channels > 1 {
		sc.HubSpanning = rng.IntN(3)
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
	pick := func() string { return clients[rng.IntN(len(clients))] }
	some := func() []string {
		var out []string
		for _, c := range clients {
			if rng.IntN(2) == 0 {
				out = append(out, c)
			}
		}
		if len(out) == 0 {
			out = append(out, pick())
		}
		return out
	}
	n := 2 + rng.IntN(10)
	for range n {
		f := Fault{At: time.Duration(rng.Int64N(int64(sc.Chaos)))}
		dur := time.Duration(500+rng.IntN(10000)) * time.Millisecond
		switch rng.IntN(13) {
		case 0, 1:
			f.Kind, f.Targets = FaultPartition, some()
		case 2:
			f.Kind, f.Targets = FaultOneWay, []string{pick()}
		case 3:
			f.Kind, f.Targets = FaultClog, []string{pick()}
		case 4:
			f.Kind, f.Targets, f.Duration = FaultSwizzle, some(), time.Duration(100+rng.IntN(900))*time.Millisecond
		case 5:
			f.Kind = FaultHeal
		case 6, 7:
			f.Kind, f.Duration = FaultCrashRelay, dur
		case 8:
			f.Kind, f.Targets, f.Duration = FaultCrashClient, []string{pick()}, dur
		case 9:
			f.Kind, f.Targets = FaultReset, []string{pick()}
		case 10:
			f.Kind, f.Duration = FaultRefuse, dur
		case 11:
			f.Kind, f.Targets = FaultReplay, []string{pick()}
		case 12:
			switch rng.IntN(3) {
			case 0:
				f.Kind, f.Targets, f.Duration = FaultBuggify, []string{buggifyPoints[rng.IntN(len(buggifyPoints))]}, dur
			case 1:
				f.Kind, f.Targets = FaultDrift, []string{pick()}
				f.Duration = time.Duration(rng.Int64N(int64(2*time.Second))) - time.Second
			default:
				f.Kind, f.Duration = FaultDrainRelay, dur
			}
		}
		sc.Faults = append(sc.Faults, f)
	}
	sortFaults(sc.Faults)
	return sc
}
