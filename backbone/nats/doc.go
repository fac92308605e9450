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
// Messages of every subscription share one small Go channel that a pump
// goroutine empties at once (recv.go): it drops messages over MaxMessage,
// requests whose reply subject is not an inbox, and, with a pool key
// (auth.go), whatever fails authentication, and queues the rest in a
// queue bounded in bytes that one reader hands to the core. So nats.go
// keeps pace with the server whatever the core does, and what the relay
// cannot take is dropped here and counted. Options.MaxHeld is the most
// the Bus holds; the relay counts it in its memory budget.
package nats
