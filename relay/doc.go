// Package relay is the relay: a stateless server through which Cosnim
// instances exchange rosters.
//
// The core (Relay) is pure and event driven, after etcd-io/raft's split:
// it implements transport.Handler, starts no goroutines, reads no clock
// (time arrives with each event) and draws randomness only from the source
// it is handed. The same core runs on real sockets (tcp.Loop) and in
// the deterministic simulator (netsim). The production server around it is
// package relay/relayserver; side outputs (join proofs to verify off the
// loop, fan-out counts for metrics) leave the core through Ready.
//
// What the relay keeps, in memory only:
//   - per connection: handshake state, a join nonce, the channels joined;
//   - per channel: its members in join order and a bounded cache of recent
//     entries (CacheEntries), from which a joining client catches up with
//     one range-based sync instead of listing storage;
//   - per slow member: entries merged while its queue is over HighWater,
//     flushed when it drains; past PendingEntries they are dropped and the
//     member is told to sync again (CodeResync), so nothing is lost for good.
//
// An epoch drawn at start tells clients when the relay has forgotten
// everything. Entries a client pushes while syncing are stored and fanned
// out like announcements, which is how a restarted relay refills.
package relay
