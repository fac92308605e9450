// Package netsim is a deterministic in-memory network that drives relay and
// client cores through the transport interfaces, for simulations and tests.
//
// # Model
//
// A Network holds Nodes (processes, by name), one virtual clock, one seeded
// random source (math/rand/v2 PCG) and one event queue ordered by (time,
// sequence number). Everything runs on the caller's goroutine: Step runs one
// event, RunUntil runs all events up to a time. There are no goroutines, no
// wall clock and no map iteration in anything observable (a test enforces
// the last), so the same seed and the same calls give the same trace, byte
// for byte.
//
// A Node runs one transport.Handler. Every call into it passes the node's own
// clock (Node.Now, which SetDrift can skew and offset); after every call the
// network asks Deadline and keeps one pending Tick for the node at that time.
// Handlers may call Send, Close and Dial from inside callbacks: those only
// queue work, and no handler is ever entered from inside another.
//
// A connection gives TCP's promise. Each direction is a pipe of segments
// (data, and control: SYN, SYNACK, FIN, RST). Everything a handler sends
// during one event is coalesced and, with Options.SplitReads, cut again at
// random, then scheduled: a segment arrives at
// max(previous arrival, wire free + Latency + rand[0, Jitter)), where the
// wire is busy size/Bandwidth per segment. So bytes arrive once and in
// order, while different connections interleave freely.
//
// Dial sends a SYN. At the listener it is accepted (listener Open, then a
// SYNACK back gives the dialer Open: one way and a round trip) or refused
// (an RST gives the dialer Closed(ErrRefused) after a round trip). A dial to
// an address nobody ever listened on is refused after a round trip too. A
// dial not open after ConnectTimeout fails with ErrTimeout; a SYN moves only
// when both directions are open, so a dial across any partition times out
// unless the partition heals first.
//
// # Faults
//
// Partition, PartitionOneWay and Clog block directions between nodes; Heal
// and Unclog lift them. A blocked direction holds its segments (they stay in
// the sender's Queued) and resumes them in order when unblocked; segments
// already in flight when a block starts are held on arrival. Nothing is
// dropped, so a connection across a partition stays up until a core closes
// it (heartbeats, idle timeouts), and the peer hears that close only once
// the link heals.
//
// Error values a handler sees in Closed:
//   - io.EOF: the peer called Close; it comes after all the peer's bytes.
//   - transport.ErrReset: ResetConn (both ends, at once, whatever the
//     links), or the peer crashed (its RST travels like any segment: one
//     delay, later if the link is blocked), or a dial that timed out had
//     already been accepted.
//   - transport.ErrRefused: no listener, Refuse on, or the listener crashed
//     during the handshake.
//   - transport.ErrTimeout: the handshake did not finish in ConnectTimeout.
//
// A core's own Close never produces Closed for it. Send after Close or after
// Closed returns transport.ErrClosed.
//
// Crash kills a node: its connections vanish (peers get ErrReset as above,
// bytes still in flight to it are dropped), its listeners close, its timer
// is cancelled and its handler is dropped. Restart gives it a fresh handler;
// it must Listen again. SwizzleClog schedules FoundationDB's swizzle, and
// Replay re-sends recorded bytes of an old connection on a new one, to test
// replay defences.
//
// # What it does not model
//
// Packet loss and retransmission (blocked traffic waits instead), TCP flow
// control and receive windows (Queued grows without bound; the sender's
// queue is the only buffer), half-close, SYN queues and backlogs, address
// families and ports, DNS, TLS, MTU or per-packet overhead, congestion, and
// keepalives (cores run their own). Bandwidth is per connection direction,
// not per node or link. Writable fires as bytes reach the peer's handler,
// not when acknowledgements return. A Deadline still due right after its
// Tick is retried one millisecond later, so a core whose timers do not
// advance cannot stall the simulation.
package netsim
