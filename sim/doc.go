// Package sim runs relays and Cosnim instances on netsim, the deterministic
// network with a virtual clock, and checks what the system promises.
//
// # Fault simulations
//
// Run plays a Scenario (generated from a seed by Generate, or scripted, see
// RunScriptFile): relay and client cores, a workload of announces, and
// faults during a chaos phase (partitions, clogs, relay and client crashes,
// resets, refused dials, replays, drift, failpoints). It checks safety all
// the time (no fabrication, isolation, monotonic rosters, read-your-writes,
// bounded relay memory, reports of a finished catch-up) and, after the
// heal, convergence within HealBound. Instances list storage on the
// schedule of the shipped client.ListPolicy (sim/internal/lister).
// The same seed gives the same Result and trace hash on any machine.
//
// The relay-value harness (cosnim sim --compare) is package sim/value.
package sim
