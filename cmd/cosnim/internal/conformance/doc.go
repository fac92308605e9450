// Package conformance drives a relay, any implementation, through the
// numbered requirements of PROTOCOL.md and reports one result per
// requirement (`cosnim relay conformance URL`).
//
// Every check speaks the wire protocol itself over fresh connections,
// under a continuum secret drawn at random per run, so the channels it
// uses are new to the relay and nothing of another run, or of real
// instances, is touched. Checks that need a state the kit cannot bring
// about on any relay (a full relay, an evicting cache, a drain) run only
// when the relay's advertised limits or the caller make it possible, and
// are otherwise reported as skipped, with the reason.
package conformance
