// Package bench is the load generator behind `cosnim relay bench`.
//
// It drives a relay over the real TCP or TLS transport with clients that
// speak the wire protocol directly (internal/wirepeer over a net.Conn),
// which costs far less per connection than an agent.Agent and so lets one
// process hold thousands of them.
//
// # Targets
//
// A run measures one relay, its Target:
//   - in-process: a relayserver.Server on 127.0.0.1:0 inside the bench process;
//     CPU and memory are then the whole process's (relay and bench clients);
//   - spawned: the same server in a child process of the same binary
//     (`cosnim relay bench --serve`), so CPU, RSS and heap are the relay's
//     alone and each process has its own file-descriptor limit;
//   - external: a relay named in the configuration, optionally with its PID
//     so that its CPU and RSS are read from /proc;
//   - nats: a NATS server (--nats URL), driven through nats.go by the same
//     fanout and channels code paths, the yardstick of
//     scripts/nats-compare.sh.
//
// # Entries and latency
//
// Publishers seal every entry with the channel keys (roster.Keys.Seal); the
// sealed capsule reference starts with the publish time in nanoseconds since
// the run began (monotonic clock, one process), then the publisher and a
// sequence number, padded to the entry size. Subscribers open the first
// entry of every Deliver frame with the channel keys and record its latency
// once per entry the frame carries, into an HDR histogram (three
// significant digits) sharded over a few locks.
//
// # Scenarios
//
//   - fanout: Pub publishers and Sub subscribers on one channel; the
//     publishers send Msgs entries each, in Announce frames of Batch entries,
//     with an end-to-end window so that no subscriber is pushed past the
//     relay's slow-member cap;
//   - channels: Channels channels of Sub clients, each client announcing at
//     Rate/(Channels×Sub) entries per second for Duration, and receiving the
//     others' entries;
//   - storm: Idle clients (TLS or not) joined over Channels channels, each
//     holding Msgs entries; the relay restarts with its memory lost and every
//     client reconnects at once (spread over Jitter) and syncs; the result is
//     the time until the last one has caught up;
//   - idle: Idle joined connections that stay silent; the relay's heap and
//     stack growth after a GC, divided by Idle, is the memory per connection,
//     read Settle after the joins (default DefaultIdleSettle, so that the
//     relay's idle connections have parked: see tcp.LoopOptions.ParkAfter).
package bench
