// Package value measures what a relay buys, on netsim: the relay-value
// harness behind cosnim sim --compare (the fault simulations are package
// sim).
//
// Compare (cosnim sim --compare) runs one seeded workload once per Variant
// (with a relay, without one, with the relay crashing, with instances
// partitioned from it, and pools of relays with and without a netsim
// backbone, whose instances run a client.Pool; see relays.go for how the
// pool variants' faults are spread over the relays) and measures what the relay buys: awareness latency,
// list queries, a starting command's catch-up time, bytes.
//
// Storage models the cloud storage of one capsule hub. A write is stored
// at once and becomes visible to listings after a delay drawn uniformly
// from [0, VisibleWithin] (eventual consistency, default within 1s). A
// listing returns every capsule visible when it started, one list query per
// PageSize names (default 1000, at least one query), each query taking
// ListLatency (default 100ms) one after the other; queries are counted.
// Storage is always reachable: partitions cut instances off from the relay
// only.
//
// An instance models a Cosnim process of one continuum whose hubs it all
// joins. It writes a capsule (to a hub drawn from the workload source) into
// storage first and then announces it through the client core, so the
// relay's fan-out may beat the storage's visibility. It lists each hub when
// that hub's client.ListPolicy says so, the policy fed every event the
// core reports (link state, catch-up, epoch change, rescan and resync
// problems) through client.Listings, the routing the Agent ships; capsules a listing finds that it did not know are announced
// too, so that a relay that restarted relearns those of instances that are
// gone. It learns of others' capsules from the relay (Observer.Learned) or
// by listing, whichever comes first. Without a relay the same code runs
// with no relay listening: dials are refused and the instance lives on its
// listings. An instance runs one client core joined to every hub: a
// client.Client on one relay connection, or a client.Pool in the pool
// variants.
//
// Commands are instances that start during the workload with nothing known
// and exit once they know every capsule that was visible in storage when
// they started: with a healthy relay that is one catch-up sync, without one
// a listing of every hub after the policy's Soon.
//
// The workload (write times, hubs, visibility delays, command starts) comes
// from its own seeded source, so every variant replays the same writes.
// After it, faults stop and the run continues until every live instance
// knows every capsule in storage, up to CompareConfig.SettleBound; the
// invariant is that none is missed, whatever the relay did
// (Measure.MissedCapsules must be 0), and each variant has stated targets
// (targets.go: awareness percentiles, list queries, catch-up time) that
// Comparison.MissedTargets checks: `cosnim sim --compare` prints TARGET
// MISSED and exits non-zero on any, as TestRelayValueTargets fails.
package value

// The relay's node and address on the simulated network; a pool's relays
// are relayName-1, relayName-2, ... on relayPort.
const (
	relayName = "relay"
	relayPort = ":7420"
	relayAddr = relayName + relayPort
)
