// Package determinism holds the tests that guard the rule that keeps
// simulations replayable: the relay and client cores, the roster, the wire
// format, netsim and sim never let map iteration order, the wall clock,
// goroutines or global randomness reach anything observable.
package determinism
