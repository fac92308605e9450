// Package agent is the client API that instances embed: Agent runs the
// pure client core (package client) on a tcp.Loop, with the goroutines,
// locks and channels a caller needs. It connects at once, reconnects with
// backoff, honours drains, catches up after every reconnect, feeds learned
// references to a bounded channel and routes the core's events to each
// hub's listing policy (client.ListPolicy). No method blocks on a slow or
// absent relay except the Wait ones, which take a context and end at once
// when the relay cannot be used as configured (ErrPermanent: a TLS port
// dialed without TLS, a refused certificate, not a relay at all), while
// the Agent keeps retrying in case it is fixed.
package agent
