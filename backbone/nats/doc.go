// Package nats is the production driver of the backbone seam: a
// backbone.Bus over one NATS connection (github.com/nats-io/nats.go).
//
// The relay core calls the Bus inside its event context, so no method
// blocks: publishes, requests and replies join a bounded outbox that one
// writer goroutine hands to nats.go; what does not fit is dropped and
// counted (reconciliation between relays repairs it). Subscriptions are
// kept as a set the writer applies, so they are never dropped, and nats.go
// restores them after a reconnect.
//
// Everything nats.go reports (messages, replies, connection state) comes
// back to the core through the run function given to Start, which runs it
// in the core's event context, never inside a call the core is making.
// Messages of every subscription share one bounded Go channel read by one
// goroutine; past its capacity nats.go drops them and counts a slow
// consumer rather than blocking its reader.
package nats
