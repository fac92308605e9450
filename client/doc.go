// Package client is the side of the relay protocol that Cosnim instances
// embed.
//
// The core (Client) is pure and event driven like the relay's: it
// implements transport.Handler, reads no clock and draws randomness only
// from the source it is handed. It connects to a relay, joins one channel
// per capsule hub with a proof derived from the continuum secret, announces
// entries (which enter its own roster at once), opens and checks every
// entry it receives (refusing any that were not sealed with the channel's
// key), and catches up with a range-based sync after every join, after a
// CodeResync, and periodically (anti-entropy). It reconnects with
// exponential backoff and jitter, rotating through its relay addresses, and
// honours a relay's Drain. Relays are optional: a client that cannot reach
// one keeps its roster and works on.
//
// Pool runs one Client per relay of a pool: each channel orders the pool
// by rendezvous hashing (RendezvousWeight) and is joined on its first
// reachable relays (its homes), with failover, a hysteresis before moving
// back, and drains honoured; what one home delivers is merged into the
// others (Client.Merge) and reported once. It is a transport.Handler like
// Client, so one driver loop, or the simulator, carries all its
// connections.
//
// The Agent that runs this core on real sockets is package client/agent;
// ListPolicy, which schedules storage listings from the core's events, is
// pure and lives here so that the simulator runs the same code.
package client
